"""`progress.json`, the trainer's heartbeat: its fields, what each reads as before the trainer
has reported it, and which of them outlive an attempt.

The trainer starts from `initial` and the API reads through `readings`, so a number the
trainer has not reported yet shows the same default (-1: unknown, 0: none counted) on the
v1.5 monitor, the AI Factory /status and in the file itself.
"""

from __future__ import annotations

from typing import Any

from contracts import timeutil
from contracts.statuses import INITIALIZING, PHASE

# Each number the heartbeat carries and its value before the trainer reports it.
DEFAULTS: dict[str, int] = {
    "epoch": 0,
    "total_epoch": 0,
    "batch": 0,
    "total_batch": 0,
    "avg_loss": -1,
    "learning_rate": -1,
    "samples_per_sec": -1,
    "eta_hr": -1,
}
# Where a job stands, which stays true after its attempt ends (restore resumes from there);
# the speed, loss and ETA of an earlier attempt say nothing about the current one.
COUNTERS = ("epoch", "total_epoch", "batch", "total_batch")


def initial(total_epoch: int, attempt: int) -> dict[str, Any]:
    """The heartbeat a trainer starts from, before it has loaded anything."""
    return {
        "status": INITIALIZING,
        "datetime": timeutil.now_str(),
        **DEFAULTS,
        "total_epoch": total_epoch,
        PHASE: None,
        "exception": None,
        "attempt": attempt,
        "devices": [],
    }


def is_current(heartbeat: dict[str, Any], attempt: int) -> bool:
    """Whether the heartbeat was written by `attempt` (files before attempts were counted: 1)."""
    return heartbeat.get("attempt", 1) == attempt


def of_attempt(heartbeat: dict[str, Any], attempt: int) -> dict[str, Any]:
    """The heartbeat as `attempt` shows it: an earlier attempt's leaves only its counters."""
    if is_current(heartbeat, attempt):
        return heartbeat
    return {k: v for k, v in heartbeat.items() if k in COUNTERS}


def readings(heartbeat: dict[str, Any], names: dict[str, str] | None = None) -> dict[str, Any]:
    """The heartbeat's numbers, each at its default where missing. `names` picks and renames
    (heartbeat field -> name shown) for an API that speaks of them in its own terms."""
    names = names or {name: name for name in DEFAULTS}
    return {shown: heartbeat.get(name, DEFAULTS[name]) for name, shown in names.items()}

"""One time format for every API surface and the trainer: "YYYY-mm-dd HH:MM:SS" in UTC.

Written here once because both sides stamp times the API shows side by side (the
trainer's heartbeat `datetime`, job and attempt times, callback delivery times).
"""

from __future__ import annotations

import datetime as dt
import time

FORMAT = "%Y-%m-%d %H:%M:%S"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def now_str() -> str:
    return now().strftime(FORMAT)


def fmt(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime(FORMAT)


def from_epoch(epoch: float) -> str:
    """A Unix time (seconds) in the one format."""
    return time.strftime(FORMAT, time.gmtime(epoch))

"""A job's trainer output (stdout and stderr, in order) for both APIs, secrets scrubbed.

Offsets count lines of one attempt (a restore starts a new attempt with its own log);
`next_offset` is where the next call continues, `complete` says the attempt has ended and
nothing is left to read.

The log is shown as people read it: the `#metric name=value;` lines the trainers print for
SageMaker's metric regexes (contracts.metrics) are left out unless `metrics` is true. Offsets
always count every line of the log, metric lines included, so `offset`/`next_offset` mean the
same with and without `metrics` and paging from `next_offset` never skips or repeats a line;
a page without metrics holds up to `limit` shown lines, and its `next_offset` is past the
metric lines it skipped.
"""

from __future__ import annotations

from typing import Any

from chalicelib.job_record import Job
from chalicelib.ports import Adapters
from chalicelib.services import jobs
from contracts.v15_literals import parse_bool, parse_int_in
from outbound import Redactor

MAX_LIMIT = 5000
DEFAULT_LIMIT = 1000
METRIC_PREFIX = "#metric "  # contracts.metrics.format_line
MAX_READS = 8  # platform reads a page without metrics may take to fill `limit` shown lines
RAW_PAGE = 500  # lines per such read at least: a log is mostly metric lines between human ones


def _bounded(field: str, raw: Any, default: int, low: int, high: int | None = None) -> int:
    return default if raw in (None, "") else parse_int_in(field, raw, low, high)


def is_metric_line(line: str) -> bool:
    """A `#metric name=value;` line: for SageMaker's metric regexes, not for people."""
    return line.lstrip().startswith(METRIC_PREFIX)


def wants_metrics(raw: Any) -> bool:
    """The `metrics` field: absent or empty is false; true/false in any case, 1/0, or a JSON bool."""
    if raw in (None, ""):
        return False
    if isinstance(raw, bool):
        return raw
    return parse_bool("metrics", raw, "true or false")


def _page(svc: Adapters, name: str, start: int, count: int, metrics: bool) -> tuple[list[str], int, bool]:
    """Up to `count` shown lines from raw line `start`: (lines, next_offset, complete)."""
    if metrics:
        lines, more = svc.platform.logs(name, start, count)
        return lines, start + len(lines), not more and len(lines) < count
    shown: list[str] = []
    position = start
    for _ in range(MAX_READS):
        asked = min(MAX_LIMIT, max(count - len(shown), RAW_PAGE))
        lines, more = svc.platform.logs(name, position, asked)
        for line in lines:
            position += 1
            if not is_metric_line(line):
                shown.append(line)
                if len(shown) == count:
                    return shown, position, False
        if not more and len(lines) < asked:
            return shown, position, True
        if not lines:
            break
    return shown, position, False


def read(
    svc: Adapters, job: jobs.Record, offset: Any, limit: Any, attempt: Any = None, metrics: Any = None
) -> dict[str, Any]:
    job = Job.from_item(job)
    start = _bounded("offset", offset, 0, 0)
    count = _bounded("limit", limit, DEFAULT_LIMIT, 1, MAX_LIMIT)
    number = _bounded("attempt", attempt, jobs.current_attempt(job)["attempt"], 1, len(job.attempts))
    with_metrics = wants_metrics(metrics)
    name = job.attempts[number - 1]["training_job_name"]
    lines, next_offset, complete = _page(svc, name, start, count, with_metrics)
    secret = svc.secrets.get(job.secret_ref) if job.secret_ref else {}
    config = svc.settings
    scrub = Redactor(
        {
            **(secret.get("callback_headers") or {}),
            **(secret.get("dataset_headers") or {}),
            "api": config.api_key_env,
            "signing": config.callback_signing_key,
        }
    )
    return {
        "job_id": job.job_id,
        "attempt": number,
        "lines": [scrub(line) for line in lines],
        "offset": start,
        "next_offset": next_offset,
        "complete": complete,
        "metrics": with_metrics,
    }

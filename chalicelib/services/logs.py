"""A job's trainer output (stdout and stderr, in order) for both APIs, secrets scrubbed.

Offsets count lines of one attempt (a restore starts a new attempt with its own log);
`next_offset` is where the next call continues, `complete` says the attempt has ended and
nothing is left to read.
"""

from __future__ import annotations

from typing import Any

from chalicelib import settings
from chalicelib.errors import ValidationError
from chalicelib.ports import Services
from chalicelib.services import jobs
from outbound import Redactor

MAX_LIMIT = 5000
DEFAULT_LIMIT = 1000


def _bounded(field: str, raw: Any, default: int, low: int, high: int | None = None) -> int:
    if raw in (None, ""):
        return default
    if isinstance(raw, bool):
        raise ValidationError(field, f"must be an integer; got {raw!r}")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationError(field, f"must be an integer; got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise ValidationError(
            field, f"must be an integer in [{low}, {high if high is not None else 'Inf'}]; got {value}"
        )
    return value


def read(svc: Services, job: dict[str, Any], offset: Any, limit: Any, attempt: Any = None) -> dict[str, Any]:
    start = _bounded("offset", offset, 0, 0)
    count = _bounded("limit", limit, DEFAULT_LIMIT, 1, MAX_LIMIT)
    number = _bounded("attempt", attempt, jobs.current_attempt(job)["attempt"], 1, len(job["attempts"]))
    name = job["attempts"][number - 1]["training_job_name"]
    lines, more = svc.platform.logs(name, start, count)
    secret = svc.secrets.get(job["secret_ref"]) if job.get("secret_ref") else {}
    config = settings.current()
    scrub = Redactor(
        {
            **(secret.get("callback_headers") or {}),
            **(secret.get("dataset_headers") or {}),
            "api": config.api_key_env,
            "signing": config.callback_signing_key,
        }
    )
    return {
        "job_id": job["job_id"],
        "attempt": number,
        "lines": [scrub(line) for line in lines],
        "offset": start,
        "next_offset": start + len(lines),
        "complete": not more and len(lines) < count,
    }

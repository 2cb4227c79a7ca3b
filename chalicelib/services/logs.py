"""A job's trainer output (stdout and stderr, in order) for both APIs, secrets scrubbed.

Offsets count lines of one attempt (a restore starts a new attempt with its own log);
`next_offset` is where the next call continues, `complete` says the attempt has ended and
nothing is left to read.
"""

from __future__ import annotations

from typing import Any

from chalicelib import settings
from chalicelib.ports import Services
from chalicelib.services import jobs
from contracts.v15_literals import parse_int_in
from outbound import Redactor

MAX_LIMIT = 5000
DEFAULT_LIMIT = 1000


def _bounded(field: str, raw: Any, default: int, low: int, high: int | None = None) -> int:
    return default if raw in (None, "") else parse_int_in(field, raw, low, high)


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

"""Job logs for both APIs: offsets, limits, attempts, and secrets scrubbed from every line."""

from __future__ import annotations

import pytest

from chalicelib.adapters.local.secret_store import FileSecretStore
from chalicelib.errors import ValidationError
from chalicelib.ports import Adapters
from chalicelib.services import logs

SECRET = "dataset-token-4c1f"
LINES = {"aif-1": [f"line {i}" for i in range(5)] + [f"fetching with {SECRET}"], "aif-1-r2": ["resumed"]}


class Platform:
    def logs(self, name, offset, limit):
        lines = LINES[name][offset : offset + limit]
        return lines, offset + limit < len(LINES[name])


@pytest.fixture
def svc(tmp_path):
    secrets = FileSecretStore(tmp_path / "secrets")
    return Adapters(jobs=None, artifacts=None, platform=Platform(), secrets=secrets)


@pytest.fixture
def job(svc):
    ref = svc.secrets.put("job-1", {"dataset_headers": {"x-api-key": SECRET}, "callback_headers": {}})
    return {
        "job_id": "job-1",
        "secret_ref": ref,
        "attempts": [
            {"attempt": 1, "training_job_name": "aif-1"},
            {"attempt": 2, "training_job_name": "aif-1-r2"},
        ],
    }


def test_pages_continue_where_the_last_ended(svc, job):
    first = logs.read(svc, job, 0, 4, attempt=1)
    assert first["lines"] == ["line 0", "line 1", "line 2", "line 3"] and first["next_offset"] == 4
    assert first["complete"] is False
    rest = logs.read(svc, job, first["next_offset"], 100, attempt=1)
    assert rest["lines"][0] == "line 4" and rest["complete"] is True and rest["next_offset"] == 6


def test_secrets_never_reach_a_log_line(svc, job):
    body = logs.read(svc, job, 0, 100, attempt=1)
    assert SECRET not in repr(body) and body["lines"][-1] == "fetching with ***"


def test_the_current_attempt_by_default(svc, job):
    assert logs.read(svc, job, None, None)["lines"] == ["resumed"]


@pytest.mark.parametrize(
    ("offset", "limit", "attempt", "message"),
    [
        ("-1", None, None, "Invalid 'offset': must be an integer in [0, Inf]; got -1"),
        (None, "0", None, "Invalid 'limit': must be an integer in [1, 5000]; got 0"),
        ("x", None, None, "Invalid 'offset': must be an integer in [0, Inf]; got 'x'"),
        (float("inf"), None, None, "Invalid 'offset': must be an integer in [0, Inf]; got 'inf'"),
        (None, float("-inf"), None, "Invalid 'limit': must be an integer in [1, 5000]; got '-inf'"),
        (None, None, 1e400, "Invalid 'attempt': must be an integer in [1, 2]; got 'inf'"),
        (None, 2.5, None, "Invalid 'limit': must be an integer in [1, 5000]; got '2.5'"),
        (None, None, "3", "Invalid 'attempt': must be an integer in [1, 2]; got 3"),
    ],
)
def test_bad_arguments_are_named(svc, job, offset, limit, attempt, message):
    with pytest.raises(ValidationError) as caught:
        logs.read(svc, job, offset, limit, attempt)
    assert caught.value.message == message

"""Non-finite and overflowing numbers in every numeric field, through the real server.

Python's JSON reader turns `Infinity`, `-Infinity` and `1e400` into float infinities, and
`int()` of one raises OverflowError: before this test `check_trained_job`'s `limit` and the
logs' `offset`/`limit`/`attempt` answered 500. Every numeric field of every request must
answer 400 in its API's envelope naming the field, and change nothing.

The fields are derived: every number in the spec's create payload, every integer or float
argument of the v1.5 table, and the paging fields of the list and logs routes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from contracts.v15_arguments import ARGS
from tests.builders import create_payload
from tests.hardening.test_fuzz_routes import state_of

NON_FINITE = ("Infinity", "-Infinity", "1e400", "-1e400")


def numeric_paths(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from numeric_paths(value, (*path, key))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path


CREATE_NUMBERS = sorted(numeric_paths(create_payload()))


def post_raw(api, path: str, text: str, content_type: str = "application/json"):
    request = urllib.request.Request(
        api.url + path,
        data=text.encode(),
        headers={"x-api-key": api.api_key, "Content-Type": content_type, "Accept": "*/*"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def with_literal(payload: dict, path: tuple, literal: str) -> str:
    """The payload as JSON text with the number at `path` written as `literal`."""
    marker = "__NUMBER_UNDER_TEST__"
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = marker
    return json.dumps(payload).replace(f'"{marker}"', literal)


@pytest.fixture(scope="module")
def job_name(api):
    status, body = api.call("POST", "/create_training_job", body=create_payload())
    assert status == 200, body
    return body["job_name"]


def test_the_create_payload_has_numbers_to_try():
    assert len(CREATE_NUMBERS) >= 4, CREATE_NUMBERS


@pytest.mark.parametrize("literal", NON_FINITE)
@pytest.mark.parametrize("path", CREATE_NUMBERS, ids=".".join)
def test_create_refuses_a_non_finite_number_by_name(api, path, literal):
    before = state_of(api.home)
    status, body = post_raw(api, "/create_training_job", with_literal(create_payload(), path, literal))
    assert status == 400, body
    assert body["status"] == "error" and path[-1] in body["message"], body
    assert state_of(api.home) == before


@pytest.mark.parametrize("literal", NON_FINITE)
def test_check_trained_job_refuses_a_non_finite_limit(api, literal):
    status, body = post_raw(api, "/check_trained_job", f'{{"limit": {literal}}}')
    assert status == 400, body
    assert body == {"status": "error", "message": body["message"]}
    assert body["message"].startswith("Invalid 'limit': must be an integer in [1, ")


@pytest.mark.parametrize("literal", NON_FINITE)
@pytest.mark.parametrize("field", ["offset", "limit", "attempt"])
def test_ai_factory_logs_refuse_a_non_finite_paging_field(api, job_name, field, literal):
    status, body = post_raw(api, "/logs", f'{{"job_name": "{job_name}", "{field}": {literal}}}')
    assert status == 400, body
    assert body["status"] == "error" and body["message"].startswith(f"Invalid '{field}'"), body


@pytest.mark.parametrize("literal", [*NON_FINITE, "inf", "nan", "9" * 5000])
@pytest.mark.parametrize("field", ["offset", "limit", "attempt"])
def test_v15_logs_refuse_a_non_finite_paging_field(api, field, literal):
    query = urllib.parse.urlencode({field: literal})
    status, body = api.call("GET", f"/api/v1.5.0/train/20250101000000-nosuchjob/logs?{query}")
    assert status in (400, 404), body
    assert body["result"] == "Error"


NUMERIC_V15 = sorted({arg.name for arg in ARGS if arg.type in ("int", "float")})


def test_the_v15_table_has_numeric_arguments_to_try():
    assert len(NUMERIC_V15) >= 10, NUMERIC_V15


@pytest.mark.parametrize("literal", ["inf", "Infinity", "-Infinity", "1e400", "nan"])
@pytest.mark.parametrize("name", NUMERIC_V15)
def test_v15_train_refuses_a_non_finite_argument_by_name(api, tmp_path, name, literal):
    data_dir = tmp_path / "data"
    (data_dir / "images").mkdir(parents=True)
    before = state_of(api.home)
    form = {"task": "classification", "data_dir": str(data_dir), name: literal}
    status, body = api.call("POST", "/api/v1.5.0/train", form=form)
    assert status == 400, body
    assert body["result"] == "Error" and body["message"], body
    assert state_of(api.home) == before

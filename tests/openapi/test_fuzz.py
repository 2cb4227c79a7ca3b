"""Schemathesis fuzzes the running local API from the document it serves: no 5xx, and every
status code, Content-Type and body conforms to the document.

The server cannot start real work from fuzzed input: `AIFACTORY_DATA_ROOTS` is an empty
temporary directory (no `data_dir` or image path passes), no trainer image is allowed for the
AI Factory API, and the local stage only ever talks to 127.0.0.1. Examples are few and
derandomized so the run is bounded and repeatable (`FUZZ_EXAMPLES` raises it locally).
"""

from __future__ import annotations

import os
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chalicelib.openapi import document
from tests.servers import ApiServer

pytestmark = pytest.mark.e2e
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_api(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    roots = base / "empty-data-root"
    roots.mkdir()
    env = {
        "AIFACTORY_DATA_ROOTS": str(roots),
        "AIFACTORY_ALLOWED_IMAGES": f"never-allowed-{uuid.uuid4().hex}",
        "AIFACTORY_MAX_CONCURRENT_JOBS": "1",
    }
    with ApiServer(base / "home", extra_env=env) as server:
        yield server
        server.kill_jobs()


def _operations() -> list[tuple[str, str]]:
    """Every operation of the document the server serves (test_document keeps them equal)."""
    from app import app

    return [(path, method.upper()) for path, item in document.build(app)["paths"].items() for method in item]


@pytest.fixture(scope="module")
def api_schema(fuzzed_api):
    status, served = fuzzed_api.call("GET", "/openapi.json")
    assert status == 200, served
    return schemathesis.openapi.from_dict(served)


@pytest.mark.parametrize(("path", "method"), _operations(), ids=lambda value: value)
def test_operation_conforms_to_the_document(api_schema, fuzzed_api, path, method):
    headers = {"x-api-key": fuzzed_api.api_key}

    @given(case=api_schema[path][method].as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def conforms(case):
        response = case.call(base_url=fuzzed_api.url, headers=headers, timeout=60)
        case.validate_response(response, checks=CHECKS)

    conforms()

"""The tools function on AWS: started with an asynchronous invocation (`InvocationType=Event`),
its handler writing the answer to S3, the API reading it through the S3 ArtifactStore within
the synchronous budget (chalicelib/v15/tool_jobs.py)."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from chalicelib import settings
from chalicelib.adapters.aws.artifact_store import S3ArtifactStore
from chalicelib.adapters.aws.tool_runner import MAX_EVENT_BYTES, LambdaToolRunner
from chalicelib.errors import StillComputing, Unavailable
from chalicelib.ports import Adapters
from chalicelib.v15 import tool_jobs
from contracts import tools
from tests.aws import service_model
from tests.aws.conftest import BUCKET, REGION
from tests.servers import LoopbackServer

FUNCTION = "aifactory-tools-dev"
REQUEST = tools.request(
    tools.SUMMARIZE, checkpoint_uri="s3://aifactory-artifacts/dev/jobs/j1/checkpoints/epoch-3"
)
RESULT_KEY = "jobs/j1/tools/abc/answer.json"
SUMMARY = tools.ok(flops="8.219G", params="23.514M", param_keys=["backbone.conv1.weight"])


def event_params(event: dict) -> dict:
    return {"FunctionName": FUNCTION, "InvocationType": "Event", "Payload": json.dumps(event).encode()}


@pytest.fixture
def store(s3):
    return S3ArtifactStore(s3, BUCKET, "dev")


@pytest.fixture
def stubbed(store):
    """A real Lambda client that only ever talks to a Stubber (which validates each request)."""
    client = boto3.client("lambda", region_name=REGION)
    service_model.record_requests(client)
    with Stubber(client) as stub:
        yield LambdaToolRunner(client, FUNCTION, store), stub
        stub.assert_no_pending_responses()


def test_start_invokes_asynchronously_naming_where_the_answer_goes(stubbed):
    runner, stub = stubbed
    event = tools.job(f"s3://{BUCKET}/dev/{RESULT_KEY}", request=REQUEST)
    stub.add_response("invoke", {"StatusCode": 202}, expected_params=event_params(event))
    assert runner.start(REQUEST, RESULT_KEY) is None


def test_a_request_too_large_for_an_event_travels_through_s3(stubbed, store):
    runner, stub = stubbed
    big = tools.request(tools.PLOT, plot="confusion_matrix", data={"matrix": [[7] * 400] * 400})
    assert len(json.dumps(big)) > MAX_EVENT_BYTES
    request_key = f"{RESULT_KEY}.request.json"
    event = tools.job(f"s3://{BUCKET}/dev/{RESULT_KEY}", request_uri=f"s3://{BUCKET}/dev/{request_key}")
    stub.add_response("invoke", {"StatusCode": 202}, expected_params=event_params(event))
    runner.start(big, RESULT_KEY)
    assert store.get_json(request_key) == big


def test_a_missing_function_names_the_setting(stubbed):
    runner, stub = stubbed
    stub.add_client_error(
        "invoke",
        service_error_code="ResourceNotFoundException",
        service_message=f"Function not found: arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}",
        http_status_code=404,
    )
    with pytest.raises(Unavailable) as caught:
        runner.start(REQUEST, RESULT_KEY)
    assert caught.value.message == (
        f"The tools function '{FUNCTION}' does not exist; deploy the stack "
        "(infra/cloudformation.yaml) and set AIFACTORY_TOOLS_FUNCTION."
    )


def test_throttling_is_unavailable(stubbed):
    runner, stub = stubbed
    stub.add_client_error(
        "invoke",
        service_error_code="TooManyRequestsException",
        service_message="Rate exceeded",
        http_status_code=429,
    )
    with pytest.raises(Unavailable, match=r"cannot run summarize now \(TooManyRequestsException\)"):
        runner.start(REQUEST, RESULT_KEY)


def test_needs_a_function_name():
    with pytest.raises(ValueError, match="AIFACTORY_TOOLS_FUNCTION"):
        LambdaToolRunner(object(), "", None)


# -- the handler in the tools image -------------------------------------------------------


def test_the_handler_writes_the_answer_of_a_job_to_s3(s3, monkeypatch):
    from trainer import tools as handler_module

    monkeypatch.setitem(handler_module.HANDLERS, tools.SUMMARIZE, lambda request, scratch: SUMMARY)
    uri = f"s3://{BUCKET}/dev/{RESULT_KEY}"
    handler_module.handler(tools.job(uri, request=REQUEST), None)
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=f"dev/{RESULT_KEY}")["Body"].read()) == SUMMARY
    # a request put in S3 (too large for the event) is read from there; an unreadable one is an answer
    s3.put_object(Bucket=BUCKET, Key="dev/req.json", Body=json.dumps(REQUEST).encode())
    handler_module.handler(tools.job(uri + "2", request_uri=f"s3://{BUCKET}/dev/req.json"), None)
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=f"dev/{RESULT_KEY}2")["Body"].read()) == SUMMARY
    handler_module.handler(tools.job(uri + "3", request_uri=f"s3://{BUCKET}/dev/none.json"), None)
    failed = json.loads(s3.get_object(Bucket=BUCKET, Key=f"dev/{RESULT_KEY}3")["Body"].read())
    assert failed["ok"] is False and failed["status"] == 500 and "could not be read" in failed["message"]
    # a plain request (a synchronous invocation) is still answered directly
    assert handler_module.handler(REQUEST, None) == SUMMARY


# -- over the wire: Lambda's asynchronous Invoke on loopback, the answer through moto S3 ------


class FakeLambda(BaseHTTPRequestHandler):
    """Answers `POST /2015-03-31/functions/<name>/invocations` with `X-Amz-Invocation-Type:
    Event` as Lambda does (202, empty body) and runs the handler afterwards in a thread of
    its own, after `cold_start_s` (an injected cold start)."""

    handler = None
    cold_start_s = 0.0
    seen: list = []
    threads: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers.get("X-Amz-Invocation-Type"), json.loads(body)))

        def later(event=json.loads(body)):
            time.sleep(self.cold_start_s)
            type(self).handler(event, None)

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        self.threads.append(thread)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def wire_client():
    FakeLambda.seen, FakeLambda.threads = [], []
    with LoopbackServer(FakeLambda) as server:
        client = boto3.client(
            "lambda",
            region_name=REGION,
            endpoint_url=server.url,
            config=Config(retries={"total_max_attempts": 1}),
        )
        service_model.record_requests(client)
        try:
            yield client
        finally:
            for running in FakeLambda.threads:
                running.join(10)


@pytest.mark.serial
def test_over_the_wire_a_cold_start_past_the_budget_answers_retry_then_the_answer(
    wire_client, store, monkeypatch
):
    from trainer import tools as handler_module

    monkeypatch.setitem(handler_module.HANDLERS, tools.SUMMARIZE, lambda request, scratch: SUMMARY)
    monkeypatch.setenv("AIFACTORY_SYNC_BUDGET_SECONDS", "0.5")
    settings.reset()
    FakeLambda.handler = staticmethod(handler_module.handler)
    FakeLambda.cold_start_s = 1.5
    svc = Adapters(
        jobs=None,
        artifacts=store,
        platform=None,
        secrets=None,
        tools=LambdaToolRunner(wire_client, FUNCTION, store),
    )
    prefix = tool_jobs.job_prefix("j1")
    started = time.monotonic()
    with pytest.raises(StillComputing) as caught:
        tool_jobs.run(svc, REQUEST, prefix, keep=True)
    assert 0.5 <= time.monotonic() - started < 1.5
    assert caught.value.status_code == 503 and caught.value.headers == {"Retry-After": "5"}
    assert caught.value.message == "The checkpoint's summary is still being computed; retry in 5 s."
    ((path, invocation_type, event),) = FakeLambda.seen
    assert path == f"/2015-03-31/functions/{FUNCTION}/invocations" and invocation_type == "Event"
    entry = tool_jobs.entry_key(prefix, REQUEST)
    assert event == tools.job(f"s3://{BUCKET}/dev/{entry}/answer.json", request=REQUEST)
    with pytest.raises(StillComputing):  # a quick retry waits for the same work
        tool_jobs.run(svc, REQUEST, prefix, keep=True)
    assert len(FakeLambda.seen) == 1
    FakeLambda.threads[0].join(10)
    expected = {k: v for k, v in SUMMARY.items() if k != "ok"}
    assert tool_jobs.run(svc, REQUEST, prefix, keep=True) == expected
    assert json.loads(io.BytesIO(store.get_bytes(f"{entry}/answer.json")).read()) == SUMMARY  # kept
    assert tool_jobs.run(svc, REQUEST, prefix, keep=True) == expected and len(FakeLambda.seen) == 1

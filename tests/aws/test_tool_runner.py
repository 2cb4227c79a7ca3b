from __future__ import annotations

import io
import json
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import Stubber

from chalicelib.adapters.aws.tool_runner import LambdaToolRunner
from chalicelib.errors import Unavailable, ValidationError
from contracts import tools
from tests.aws import service_model
from tests.aws.conftest import REGION

FUNCTION = "aifactory-tools-dev"
REQUEST = tools.request(
    tools.SUMMARIZE, checkpoint_uri="s3://aifactory-artifacts/dev/jobs/j1/checkpoints/epoch-3"
)
INVOKE_PARAMS = {
    "FunctionName": FUNCTION,
    "InvocationType": "RequestResponse",
    "Payload": json.dumps(REQUEST).encode(),
}


def payload(value) -> StreamingBody:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


@pytest.fixture
def stubbed():
    """A real Lambda client that only ever talks to a Stubber (which validates each request)."""
    client = boto3.client("lambda", region_name=REGION)
    service_model.record_requests(client)
    with Stubber(client) as stub:
        yield LambdaToolRunner(client, FUNCTION), stub
        stub.assert_no_pending_responses()


def test_run_sends_the_request_and_returns_the_answer(stubbed):
    runner, stub = stubbed
    answer = tools.ok(flops="8.219G", params="23.514M", param_keys=["backbone.conv1.weight"])
    stub.add_response(
        "invoke", {"StatusCode": 200, "Payload": payload(answer)}, expected_params=INVOKE_PARAMS
    )
    assert runner.run(REQUEST) == answer


def test_the_tools_own_refusal_is_an_answer(stubbed):
    """`{"ok": false, ...}` is the tool's verdict (e.g. an unknown key): the caller maps it."""
    runner, stub = stubbed
    answer = tools.failed(400, "Key 'nope' does not exist")
    stub.add_response(
        "invoke", {"StatusCode": 200, "Payload": payload(answer)}, expected_params=INVOKE_PARAMS
    )
    assert runner.run(REQUEST) == answer


def test_a_crash_is_unavailable_with_its_message_and_no_stack_trace(stubbed):
    runner, stub = stubbed
    crash = {
        "errorMessage": "CUDA error: out of memory",
        "errorType": "RuntimeError",
        "requestId": "5f1e",
        "stackTrace": [
            '  File "/var/task/trainer/tools.py", line 40, in handler\n    secret_internal_frame()\n'
        ],
    }
    stub.add_response(
        "invoke",
        {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": payload(crash)},
        expected_params=INVOKE_PARAMS,
    )
    with pytest.raises(Unavailable) as caught:
        runner.run(REQUEST)
    assert (
        caught.value.message
        == "The tools function failed running summarize: RuntimeError: CUDA error: out of memory"
    )
    assert caught.value.status_code == 503
    assert "secret_internal_frame" not in caught.value.message


def test_a_timeout_says_so(stubbed):
    runner, stub = stubbed
    crash = {"errorMessage": "2026-11-22T19:45:01Z 5f1e Task timed out after 300.00 seconds"}
    stub.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": payload(crash)})
    with pytest.raises(Unavailable, match="Task timed out after 300.00 seconds$"):
        runner.run(REQUEST)


def test_a_missing_function_names_the_setting(stubbed):
    runner, stub = stubbed
    stub.add_client_error(
        "invoke",
        service_error_code="ResourceNotFoundException",
        service_message=f"Function not found: arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}",
        http_status_code=404,
    )
    with pytest.raises(Unavailable) as caught:
        runner.run(REQUEST)
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
        runner.run(REQUEST)


def test_an_answer_that_is_not_an_object_is_unavailable(stubbed):
    runner, stub = stubbed
    stub.add_response("invoke", {"StatusCode": 200, "Payload": payload(b"null")})
    with pytest.raises(Unavailable, match="with NoneType, not an object"):
        runner.run(REQUEST)
    stub.add_response("invoke", {"StatusCode": 200, "Payload": payload(b"<html>")})
    with pytest.raises(Unavailable, match="not JSON"):
        runner.run(REQUEST)


def test_a_request_over_lambdas_limit_is_refused_before_sending(stubbed):
    runner, _ = stubbed
    with pytest.raises(ValidationError) as caught:
        runner.run({"tool": "summarize", "checkpoint_uri": "x" * (6 * 1024 * 1024)})
    assert caught.value.field == "request"
    assert "at most 6291456" in caught.value.message


def test_needs_a_function_name():
    with pytest.raises(ValueError, match="AIFACTORY_TOOLS_FUNCTION"):
        LambdaToolRunner(object(), "")


# -- over the wire: Lambda's Invoke protocol on loopback -----------------------------------


class FakeLambda(BaseHTTPRequestHandler):
    """Answers `POST /2015-03-31/functions/<name>/invocations` the way Lambda's Python runtime
    does: the handler's return value, or its exception as an error payload flagged by the
    X-Amz-Function-Error header (HTTP 200 either way)."""

    handlers: dict = {}
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, dict(self.headers), body))
        name = self.path.split("/")[3]
        headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
        if name not in self.handlers:
            status = 404
            headers["x-amzn-ErrorType"] = "ResourceNotFoundException"
            answer = {"Type": "User", "Message": f"Function not found: {name}"}
        else:
            status = 200
            try:
                answer = self.handlers[name](json.loads(body), None)
            except Exception as error:  # noqa: BLE001 - reported like Lambda does
                headers["X-Amz-Function-Error"] = "Unhandled"
                answer = {
                    "errorMessage": str(error),
                    "errorType": type(error).__name__,
                    "stackTrace": traceback.format_tb(error.__traceback__),
                }
        raw = json.dumps(answer).encode()
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(raw))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def wire_client():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLambda)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeLambda.seen = []
    client = boto3.client(
        "lambda",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{server.server_port}",
        config=Config(retries={"total_max_attempts": 1}),
    )
    service_model.record_requests(client)
    try:
        yield client
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_over_the_wire_the_answer_and_a_crash(wire_client):
    def handler(event, context):
        if event["checkpoint_uri"].endswith("broken"):
            raise FileNotFoundError("No checkpoint at s3://b/broken")
        return tools.ok(flops="1.000G", params="2.000M", param_keys=["w"])

    FakeLambda.handlers = {FUNCTION: handler}
    runner = LambdaToolRunner(wire_client, FUNCTION)
    assert runner.run(REQUEST) == tools.ok(flops="1.000G", params="2.000M", param_keys=["w"])
    path, headers, body = FakeLambda.seen[0]
    assert path == f"/2015-03-31/functions/{FUNCTION}/invocations"
    assert headers["X-Amz-Invocation-Type"] == "RequestResponse"
    assert json.loads(body) == REQUEST
    with pytest.raises(Unavailable) as caught:
        runner.run(tools.request(tools.SUMMARIZE, checkpoint_uri="s3://b/broken"))
    assert caught.value.message == (
        "The tools function failed running summarize: FileNotFoundError: No checkpoint at s3://b/broken"
    )


def test_over_the_wire_a_missing_function(wire_client):
    FakeLambda.handlers = {}
    with pytest.raises(Unavailable, match="does not exist"):
        LambdaToolRunner(wire_client, FUNCTION).run(REQUEST)

"""Torch-bound tools (contracts.tools) on AWS: an asynchronous invocation of the tools function.

The tools function is a container-image Lambda built from the trainer image
(`trainer.tools.handler`, infra/cloudformation.yaml), so the API Lambda's zip stays free
of torch. A tool may need longer than API Gateway waits (a cold start of a torch image
alone takes seconds), so the API never waits on the invocation: `start` invokes it with
`InvocationType="Event"` (Lambda queues it and answers 202 at once) and a job event
(contracts.tools.job) naming the S3 object the handler writes its answer to, which the API
reads through its ArtifactStore (chalicelib/v15/tool_jobs.py). A request too large for an
asynchronous event (256 KB) is put beside that object and the event names it. A refused
invocation (no function, throttled) is Unavailable at once; a crash of the function
(timeout, memory) leaves no answer, and the API restarts the work once it is stale.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import Unavailable
from contracts import tools

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 256 * 1024  # Lambda's asynchronous invocation payload limit
FUNCTION_TIMEOUT_S = 60.0  # the tools function's Timeout (infra/cloudformation.yaml)

_BUSY = {
    "TooManyRequestsException",
    "ResourceNotReadyException",
    "ResourceConflictException",
    "ServiceException",
    "EC2ThrottledException",
    "ENILimitReachedException",
    "SubnetIPAddressLimitReachedException",
}


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


class LambdaToolRunner:
    """ports.ToolRunner on the tools Lambda function (AIFACTORY_TOOLS_FUNCTION). `artifacts`:
    the stage's S3ArtifactStore, whose keys `start` names as S3 URIs to the function."""

    def __init__(self, lambda_client, function_name: str, artifacts, timeout_s: float = FUNCTION_TIMEOUT_S):
        if not function_name:
            raise ValueError("LambdaToolRunner needs the tools function's name (AIFACTORY_TOOLS_FUNCTION).")
        self._lambda = lambda_client
        self.function_name = function_name
        self.artifacts = artifacts
        self.timeout_s = float(timeout_s)

    def start(self, request: dict[str, Any], result_key: str) -> None:
        result_uri = self.artifacts.uri(result_key)
        payload = json.dumps(tools.job(result_uri, request=request)).encode()
        if len(payload) > MAX_EVENT_BYTES:
            request_key = f"{result_key}.request.json"
            self.artifacts.put_json(request_key, request)
            payload = json.dumps(tools.job(result_uri, request_uri=self.artifacts.uri(request_key))).encode()
        tool = request.get("tool", "tool")
        try:
            response = self._lambda.invoke(
                FunctionName=self.function_name, InvocationType="Event", Payload=payload
            )
        except ClientError as error:
            code = _error_code(error)
            if code == "ResourceNotFoundException":
                raise Unavailable(
                    f"The tools function '{self.function_name}' does not exist; deploy the stack "
                    "(infra/cloudformation.yaml) and set AIFACTORY_TOOLS_FUNCTION."
                ) from error
            if code in _BUSY:
                raise Unavailable(
                    f"The tools function cannot run {tool} now ({code}); try again shortly."
                ) from error
            raise
        if response.get("StatusCode") != 202:
            raise Unavailable(
                f"The tools function did not take {tool} ({response.get('StatusCode')}); try again shortly."
            )

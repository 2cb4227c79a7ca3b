"""Torch-bound tools (contracts.tools) on AWS: one synchronous call of the tools function.

The tools function is a container-image Lambda built from the trainer image
(`trainer.tools.handler`, infra/cloudformation.yaml), so the API Lambda's zip stays free
of torch. The request and the answer are JSON dicts; the answer's own `ok`/`status` are
the caller's business. A crash of the function (an exception, a timeout, memory) becomes
Unavailable with the function's message, never its stack trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import Unavailable, ValidationError

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous request/response limit

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


def _error_message(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Message", "")


class LambdaToolRunner:
    """ports.ToolRunner on the tools Lambda function (AIFACTORY_TOOLS_FUNCTION)."""

    def __init__(self, lambda_client, function_name: str):
        if not function_name:
            raise ValueError("LambdaToolRunner needs the tools function's name (AIFACTORY_TOOLS_FUNCTION).")
        self._lambda = lambda_client
        self.function_name = function_name

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(request).encode()
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValidationError(
                "request", f"is {len(payload)} bytes; the tools function takes at most {MAX_PAYLOAD_BYTES}."
            )
        tool = request.get("tool", "tool")
        try:
            response = self._lambda.invoke(
                FunctionName=self.function_name, InvocationType="RequestResponse", Payload=payload
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
        raw = response["Payload"].read()
        if response.get("FunctionError"):
            raise Unavailable(f"The tools function failed running {tool}: {self._describe_failure(raw)}")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise Unavailable(
                f"The tools function answered {tool} with something that is not JSON."
            ) from None
        if not isinstance(answer, dict):
            raise Unavailable(
                f"The tools function answered {tool} with {type(answer).__name__}, not an object."
            )
        return answer

    def _describe_failure(self, raw: bytes) -> str:
        """`errorType: errorMessage` of Lambda's error payload; the stack trace only goes to the log."""
        try:
            error = json.loads(raw)
        except ValueError:
            error = None
        if not isinstance(error, dict):
            return "no error message"
        log.error("tools function %s failed: %s", self.function_name, error)
        kind, message = error.get("errorType"), error.get("errorMessage")
        return ": ".join(str(part) for part in (kind, message) if part) or "no error message"

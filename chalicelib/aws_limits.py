"""AWS's hard limits on one request, in one place, so the local stage refuses what AWS refuses.

Every test runs on the local stage; a route that works there must work behind API Gateway,
Lambda and SageMaker, so the local server (`chalicelib.entrypoints.local_server`) and the
local hosting platform apply the same limits, answered as AWS answers them:

- API Gateway (REST) answers 504 `{"message": "Endpoint request timed out"}` when the
  Lambda has not answered within 29 s; the Lambda goes on running (to its own 60 s).
- API Gateway refuses a request body over 10 MB (413, before any Lambda runs); Lambda
  refuses a synchronous invocation whose event (the body, base64 when binary, plus the
  headers and the rest of the event) is over 6 MB, which API Gateway answers 413
  `{"message": "Request Too Long"}`.
- Lambda fails an invocation whose proxy output is over 6 MB (6,291,556 bytes), which API
  Gateway answers 502 `{"message": "Internal server error"}`.
- SageMaker's InvokeEndpoint takes and returns at most 6 MB (botocore's BodyBlob max):
  the API answers a request over it 413 and an answer over it 502, naming the limit.

`AIFACTORY_RELAX_AWS_LIMITS` lifts the timeout and the 6 MB limits on the local stage for
debugging (a route that needs it would fail on AWS); the 10 MB request cap stays, since it
is also what keeps one request from filling the server's memory. Tests never relax them.
"""

from __future__ import annotations

from chalicelib.errors import DomainError

# API Gateway (REST API quotas): the integration timeout and the request payload.
INTEGRATION_TIMEOUT_S = 29.0
API_GATEWAY_MAX_REQUEST_BYTES = 10 * 1024 * 1024  # 10,485,760
# Lambda, synchronous invocation: the event in, the proxy output out (Lambda's own numbers:
# "Request must be smaller than 6291456 bytes", "maximum allowed payload size (6291556 bytes)").
LAMBDA_MAX_REQUEST_BYTES = 6 * 1024 * 1024  # 6,291,456
LAMBDA_MAX_RESPONSE_BYTES = 6_291_556
# SageMaker InvokeEndpoint: the request body (botocore's BodyBlob max) and the model's answer.
INVOKE_ENDPOINT_MAX_BYTES = 6 * 1024 * 1024  # 6,291,456

RELAX_SETTING = "AIFACTORY_RELAX_AWS_LIMITS"

# What API Gateway itself answers (its shape, not the API's envelope: the Lambda never
# answered, or its answer was refused).
TIMED_OUT_BODY = b'{"message": "Endpoint request timed out"}'
REQUEST_TOO_LONG_BODY = b'{"message": "Request Too Long"}'
INTERNAL_SERVER_ERROR_BODY = b'{"message": "Internal server error"}'


class PayloadTooLarge(DomainError):
    """A request a downstream service refuses for its size (413): the caller must send less."""

    status_code = 413


class AnswerTooLarge(DomainError):
    """A downstream service's answer over what it may return (502): nothing the caller sent
    was wrong, and the same request fails again until the answer is made smaller."""

    status_code = 502


def _mb(size: int) -> str:
    return f"{size:,} bytes ({size / 1_000_000:.1f} MB)"


def invoke_request_too_large(name: str, size: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request to deployment {name} is {_mb(size)}; SageMaker's InvokeEndpoint takes at most "
        f"{INVOKE_ENDPOINT_MAX_BYTES:,} bytes (6 MB). The image travels base64 in JSON (a third "
        "larger than the file): send a smaller image."
    )


def invoke_answer_too_large(name: str, size: int | None) -> AnswerTooLarge:
    """`size`: the answer's length when the server said it, else None (read only past the limit)."""
    told = _mb(size) if size is not None else f"more than {INVOKE_ENDPOINT_MAX_BYTES:,} bytes"
    return AnswerTooLarge(
        f"The model server of deployment {name} answered {told}; SageMaker's InvokeEndpoint "
        f"returns at most {INVOKE_ENDPOINT_MAX_BYTES:,} bytes (6 MB). Ask for less (returns_images=False)."
    )

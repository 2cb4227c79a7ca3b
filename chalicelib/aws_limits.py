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

What follows for infer's image (`chalicelib.v15.deployments`): the API sends it to the
endpoint as raw bytes (`ContentType: image/jpeg|image/png`, the thresholds and
`returns_images` in `CustomAttributes`), so an image the endpoint takes may be as large as
its body, 6 MB (`AIFACTORY_MAX_IMAGE_BYTES`, held to it unless the limits are relaxed): what
`path_to_image` may name. A `base64_image` arrives in the request body, inside Lambda's 6 MB
event: base64 adds a third, and a form's percent-encoding of `+`, `/` and `=` about 6 % more,
so the largest one that fits is about 4.4 MB (`AIFACTORY_MAX_BASE64_IMAGE_BYTES`); one over
it that still reaches the API is refused with a 400 saying so, a body over the event itself
is API Gateway's 413 `Request Too Long`.

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
# ... and its CustomAttributes header (botocore: max 1024, ASCII), where infer's arguments travel.
CUSTOM_ATTRIBUTES_MAX_CHARS = 1024

# infer's images (see above). A 4,400,000-byte image is 5,866,668 base64 characters; as a form
# field (each `+` and `/`, 2 in 64 characters, becomes 3) about 6,233,000 bytes: under Lambda's
# 6,291,456 with the event's headers and fields. A JSON or multipart body carries it as is.
MAX_BASE64_IMAGE_BYTES = 4_400_000
MAX_IMAGE_BYTES = INVOKE_ENDPOINT_MAX_BYTES  # an image sent raw: the endpoint's body

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
        f"{INVOKE_ENDPOINT_MAX_BYTES:,} bytes (6 MB). Infer sends the image as it is: send a smaller "
        f"image (AIFACTORY_MAX_IMAGE_BYTES is held to the limit unless {RELAX_SETTING} is set)."
    )


def invoke_answer_too_large(name: str, size: int | None) -> AnswerTooLarge:
    """`size`: the answer's length when the server said it, else None (read only past the limit)."""
    told = _mb(size) if size is not None else f"more than {INVOKE_ENDPOINT_MAX_BYTES:,} bytes"
    return AnswerTooLarge(
        f"The model server of deployment {name} answered {told}; SageMaker's InvokeEndpoint "
        f"returns at most {INVOKE_ENDPOINT_MAX_BYTES:,} bytes (6 MB). Ask for less (returns_images=False)."
    )


def image_limit_reason(field: str, limit: int) -> str:
    """Why an image given as `field` may be at most `limit` bytes: the sentence the API's 400
    adds to "is N bytes; at most M", so the caller knows which limit applies and what to do."""
    if field == "base64_image":
        return (
            f"a base64_image travels in the request body, which API Gateway hands to Lambda in an event "
            f"of at most {LAMBDA_MAX_REQUEST_BYTES:,} bytes (6 MB) and base64 adds a third, so the API "
            f"takes at most {limit:,} bytes decoded (AIFACTORY_MAX_BASE64_IMAGE_BYTES); send a larger "
            f"image (up to {MAX_IMAGE_BYTES:,} bytes) by path_to_image"
        )
    return (
        f"the image is sent to the endpoint as it is, and SageMaker's InvokeEndpoint takes at most "
        f"{INVOKE_ENDPOINT_MAX_BYTES:,} bytes (6 MB), so the API reads at most {limit:,} bytes "
        "(AIFACTORY_MAX_IMAGE_BYTES): send a smaller image"
    )


def check_custom_attributes(value: str | None) -> None:
    """InvokeEndpoint's CustomAttributes as botocore validates it (ASCII, at most 1,024
    characters): the local hosting path refuses what SageMaker's would (a bug of ours, not
    the caller's, so a ValueError)."""
    if value is None:
        return
    if len(value) > CUSTOM_ATTRIBUTES_MAX_CHARS or not value.isascii():
        raise ValueError(
            f"CustomAttributes must be ASCII and at most {CUSTOM_ATTRIBUTES_MAX_CHARS} characters "
            f"(InvokeEndpoint); got {len(value)}"
        )

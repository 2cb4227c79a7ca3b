"""Request -> (image, arguments): the toolkit's `input_fn`, with every check a public endpoint needs.

Two request shapes:

- `application/json`: `{"base64_image": "...", "lower_prob_thresh": 0.7,
  "upper_prob_thresh": 1.0, "returns_images": true}` (the v1.5 infer arguments);
- raw image bytes (`image/jpeg`, `image/png`, `application/x-image`,
  `application/octet-stream`) with the arguments in the query string or in
  `X-Amzn-SageMaker-Custom-Attributes` (`lower_prob_thresh=0.5,returns_images=false`),
  which is how `sagemaker-runtime invoke_endpoint(CustomAttributes=...)` passes them.

The API (`chalicelib.v15.deployments`) sends raw bytes with `CustomAttributes`: a third
smaller than base64, so any image up to InvokeEndpoint's 6 MB body reaches the server. The
JSON form stays for other clients and for an API older than that (issue 17).

Precedence: JSON body over query string over custom attributes. Image bytes are checked
for format (what the trainer reads), size, and decompressed pixel count before decoding.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass
from urllib.parse import parse_qsl

from PIL import Image, UnidentifiedImageError

from inference.errors import bad_request, too_large, unsupported_media_type

JSON_TYPES = ("application/json",)
IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image", "application/octet-stream")
ALLOWED_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF")
DEFAULT_LOWER = 0.7
DEFAULT_UPPER = 1.0
DEFAULT_RETURNS_IMAGES = True
ARGUMENTS = ("lower_prob_thresh", "upper_prob_thresh", "returns_images")
_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f")


@dataclass
class InferRequest:
    image: Image.Image  # RGB, loaded
    lower_prob_thresh: float = DEFAULT_LOWER
    upper_prob_thresh: float = DEFAULT_UPPER
    returns_images: bool = DEFAULT_RETURNS_IMAGES


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_custom_attributes(header: str | None) -> dict[str, str]:
    """`a=1,b=2` or `a=1;b=2` (SageMaker passes the string through untouched)."""
    pairs = {}
    for part in (header or "").replace(";", ",").split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def _probability(name: str, value) -> float:
    if isinstance(value, bool):
        raise bad_request(f"{name} must be a number in [0, 1], got {json.dumps(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:  # NaN fails this too
        raise bad_request(f"{name} must be a number in [0, 1], got {value!r}")
    return number


def _boolean(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise bad_request(f"{name} must be true or false, got {value!r}")


def parse_arguments(values: dict) -> dict:
    """lower/upper thresholds and returns_images, checked; absent ones take the v1.5 defaults."""
    lower = _probability("lower_prob_thresh", values.get("lower_prob_thresh", DEFAULT_LOWER))
    upper = _probability("upper_prob_thresh", values.get("upper_prob_thresh", DEFAULT_UPPER))
    if lower > upper:
        raise bad_request(f"lower_prob_thresh ({lower}) must not exceed upper_prob_thresh ({upper})")
    returns = _boolean("returns_images", values.get("returns_images", DEFAULT_RETURNS_IMAGES))
    return {"lower_prob_thresh": lower, "upper_prob_thresh": upper, "returns_images": returns}


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Bytes -> loaded RGB image; 400 for what is not an image, 413 for a decompression bomb."""
    if not data:
        raise bad_request("The image is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise bad_request(
            f"The body is not a readable image; send one of: {', '.join(ALLOWED_FORMATS)}"
        ) from None
    if image.format not in ALLOWED_FORMATS:
        raise bad_request(
            f"Unsupported image format {image.format}; send one of: {', '.join(ALLOWED_FORMATS)}"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise too_large(
            f"The image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            return image.convert("RGB")
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise bad_request(f"The image could not be decoded: {exc}") from None


def _json_body(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("The body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise bad_request('The JSON body must be an object like {"base64_image": "..."}')
    return payload


def _base64(payload: dict) -> bytes:
    value = payload.get("base64_image")
    if not isinstance(value, str) or not value:
        raise bad_request("base64_image is required: a base64-encoded JPEG or PNG image")
    if value.startswith("data:") and "," in value:  # a data URL: keep what follows the comma
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("base64_image is not valid base64") from None


def parse_request(
    body: bytes,
    content_type: str | None,
    query_string: str = "",
    custom_attributes: str | None = None,
    *,
    max_bytes: int,
    max_pixels: int,
) -> InferRequest:
    kind = media_type(content_type)
    if len(body) > max_bytes:
        raise too_large(f"The request body is {len(body)} bytes, more than the limit of {max_bytes}")
    values = {k: v for k, v in parse_custom_attributes(custom_attributes).items() if k in ARGUMENTS}
    values.update((k, v) for k, v in parse_qsl(query_string or "") if k in ARGUMENTS)
    if kind in JSON_TYPES:
        payload = _json_body(body)
        values.update((k, payload[k]) for k in ARGUMENTS if k in payload)
        data = _base64(payload)
    elif kind in IMAGE_TYPES or kind.startswith("image/"):
        data = body
    else:
        raise unsupported_media_type(
            f"Unsupported content type {kind or '(none)'!r}; send application/json with base64_image, "
            f"or the image bytes as {', '.join(IMAGE_TYPES)}"
        )
    arguments = parse_arguments(values)
    return InferRequest(image=open_image(data, max_pixels), **arguments)

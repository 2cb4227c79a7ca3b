"""The image an infer request names: where it may come from, and whether its bytes are an
image we will hand to a model server.

The Lambda has no Pillow, so dimensions are read from the PNG IHDR and JPEG SOF headers
(a few bytes each): enough to refuse a decompression bomb before it reaches a server, which
checks again with Pillow's own limit while decoding.
"""

from __future__ import annotations

import base64
import binascii
import struct
from pathlib import Path

from chalicelib.errors import ValidationError
from chalicelib.security import check_data_location

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _because(why: str) -> str:
    return f": {why}" if why else ""


def decode_base64(field: str, text: str, max_bytes: int, why: str = "") -> bytes:
    """`why`: the reason for `max_bytes`, added to the refusal (which limit applies)."""
    if len(text) > (max_bytes * 4) // 3 + 8:
        raise ValidationError(field, f"is larger than {max_bytes} bytes once decoded{_because(why)}")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(field, "is not valid base64") from None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def image_size(data: bytes) -> tuple[str, int, int]:
    """(content type, width, height) of a PNG or JPEG; ValueError for anything else."""
    if data.startswith(PNG) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "image/png", width, height
    if data.startswith(JPEG):
        size = _jpeg_size(data)
        if size is None:
            raise ValueError("is a JPEG without a readable frame header")
        return "image/jpeg", *size
    raise ValueError("is not a JPEG or PNG image")


def check_image(field: str, data: bytes, max_bytes: int, max_pixels: int, why: str = "") -> str:
    """The image's content type, or a ValidationError naming `field` and the problem (and
    `why` the size limit is what it is, when given)."""
    if not data:
        raise ValidationError(field, "is empty")
    if len(data) > max_bytes:
        raise ValidationError(field, f"is {len(data)} bytes; at most {max_bytes} are allowed{_because(why)}")
    try:
        content_type, width, height = image_size(data)
    except ValueError as exc:
        raise ValidationError(field, str(exc)) from None
    if width < 1 or height < 1:
        raise ValidationError(field, f"has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ValidationError(field, f"is {width}x{height} pixels; at most {max_pixels} pixels are allowed")
    return content_type


def check_location(field: str, location: str, *, local: bool, roots: tuple[str, ...], home: Path) -> str:
    """An allowed place to read an image (or a pattern of images) from: the data-location
    rule (security.check_data_location) for images."""
    return check_data_location(field, location, local=local, roots=roots, home=home, images=True)

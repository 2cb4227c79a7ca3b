"""What an infer request may read, and which bytes pass for an image (no Pillow in the Lambda)."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from chalicelib import settings
from chalicelib.errors import ValidationError
from chalicelib.v15 import image_input


def encoded(fmt: str, size=(31, 17)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 40)).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size (the decompression-bomb shape: small file, huge canvas)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return image_input.PNG + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize(("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_reads_the_size_from_the_header(fmt, content_type):
    assert image_input.image_size(encoded(fmt)) == (content_type, 31, 17)


def test_progressive_jpeg_size_is_read():
    buffer = io.BytesIO()
    Image.new("RGB", (40, 12)).save(buffer, format="JPEG", progressive=True)
    assert image_input.image_size(buffer.getvalue())[1:] == (40, 12)


def test_a_decompression_bomb_is_refused_by_its_header():
    with pytest.raises(ValidationError) as caught:
        image_input.check_image("base64_image", png_header_only(100_000, 100_000), 10**6, 40_000_000)
    assert caught.value.message == (
        "Invalid 'base64_image': is 100000x100000 pixels; at most 40000000 pixels are allowed"
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "is empty"),
        (b"GIF89a....", "is not a JPEG or PNG image"),
        (b"\xff\xd8\xff\xe0garbage", "is a JPEG without a readable frame header"),
    ],
)
def test_what_is_not_an_image_is_named(data, problem):
    with pytest.raises(ValidationError, match=problem):
        image_input.check_image("base64_image", data, 10**6, 10**8)


def test_size_cap():
    with pytest.raises(ValidationError, match="at most 20 are allowed"):
        image_input.check_image("path_to_image", encoded("PNG"), 20, 10**8)


def test_base64_is_checked():
    assert image_input.decode_base64("base64_image", base64.b64encode(b"abc").decode(), 10) == b"abc"
    with pytest.raises(ValidationError, match="not valid base64"):
        image_input.decode_base64("base64_image", "%%%", 10)
    with pytest.raises(ValidationError, match="larger than 10 bytes"):
        image_input.decode_base64("base64_image", "QUFB" * 10, 10)


def test_local_locations_stay_out_of_the_state_directory(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("AIFACTORY_HOME", str(home))
    settings.reset()
    (home / "artifacts").mkdir(parents=True)
    with pytest.raises(ValidationError, match="inside the service's state directory"):
        image_input.check_location("path_to_image", str(home / "artifacts" / "x.jpg"), local=True, roots=())
    with pytest.raises(ValidationError, match="inside the service's state directory"):
        image_input.check_location("p", str(home / "*" / "*.jpg"), local=True, roots=())


def test_local_locations_respect_the_data_roots(tmp_path):  # the home is ./.aifactory here
    root = tmp_path / "data"
    root.mkdir()
    inside = image_input.check_location("p", str(root / "a" / "*.jpg"), local=True, roots=(str(root),))
    assert inside == str(root / "a" / "*.jpg")
    with pytest.raises(ValidationError, match="outside the allowed data roots"):
        image_input.check_location("p", str(tmp_path / "other.jpg"), local=True, roots=(str(root),))


def test_s3_locations_follow_the_stage():
    with pytest.raises(ValidationError, match="need an aws stage"):
        image_input.check_location("p", "s3://b/x.jpg", local=True, roots=())
    assert image_input.check_location("p", "s3://b/in/x.jpg", local=False, roots=("s3://b/in",))
    with pytest.raises(ValidationError, match="not under an allowed S3 prefix"):
        image_input.check_location("p", "s3://b/inner/x.jpg", local=False, roots=("s3://b/in",))
    with pytest.raises(ValidationError, match="must be an s3:// location"):
        image_input.check_location("p", "/etc/passwd", local=False, roots=("s3://b/in",))


def test_a_name_too_long_for_the_file_system_is_not_found_not_a_crash():
    from chalicelib.adapters.local.data_store import LocalDataStore
    from chalicelib.errors import NotFound

    long_name = "/data/" + "{" * 600 + "/x.jpg"
    with pytest.raises(NotFound):
        LocalDataStore().read(long_name, 100)
    assert LocalDataStore().glob(long_name, 10) == []


def test_a_data_dir_too_long_for_the_file_system_is_a_400():
    from chalicelib.security import check_data_location

    with pytest.raises(ValidationError, match="is not a usable path"):
        check_data_location("data_dir", "/tmp/" + "{" * 600, local=True, roots=())

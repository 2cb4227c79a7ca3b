"""What an infer request may read, and which bytes pass for an image (no Pillow in the Lambda)."""

from __future__ import annotations

import base64
import io
import os
import struct
import time
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
        image_input.check_location("path_to_image", str(home / "artifacts" / "x.jpg"), home=settings.current().home, local=True, roots=())
    with pytest.raises(ValidationError, match="inside the service's state directory"):
        image_input.check_location("p", str(home / "*" / "*.jpg"), home=settings.current().home, local=True, roots=())


def test_local_locations_respect_the_data_roots(tmp_path):  # the home is ./.aifactory here
    root = tmp_path / "data"
    root.mkdir()
    inside = image_input.check_location("p", str(root / "a" / "*.jpg"), home=settings.current().home, local=True, roots=(str(root),))
    assert inside == str(root / "a" / "*.jpg")
    with pytest.raises(ValidationError, match="outside the allowed data roots"):
        image_input.check_location("p", str(tmp_path / "other.jpg"), home=settings.current().home, local=True, roots=(str(root),))


def test_s3_locations_follow_the_stage():
    with pytest.raises(ValidationError, match="need an aws stage"):
        image_input.check_location("p", "s3://b/x.jpg", home=settings.current().home, local=True, roots=())
    assert image_input.check_location("p", "s3://b/in/x.jpg", home=settings.current().home, local=False, roots=("s3://b/in",))
    with pytest.raises(ValidationError, match="not under an allowed S3 prefix"):
        image_input.check_location("p", "s3://b/inner/x.jpg", home=settings.current().home, local=False, roots=("s3://b/in",))
    with pytest.raises(ValidationError, match="must be an s3:// location"):
        image_input.check_location("p", "/etc/passwd", home=settings.current().home, local=False, roots=("s3://b/in",))


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
        check_data_location("data_dir", "/tmp/" + "{" * 600, home=settings.current().home, local=True, roots=())


# --- the local data store: bounded walks, careful reads (issue 16) -------------------------------
def store(**limits):
    from chalicelib.adapters.local.data_store import LocalDataStore

    return LocalDataStore(**limits)


def test_a_pattern_deeper_than_the_walk_allows_is_refused_before_any_walk():
    started = time.monotonic()
    with pytest.raises(ValidationError, match="has 10 levels after its fixed directory; at most 6"):
        store().glob("/*/*/*/*/*/*/*/*/*/nomatch.jpg", 100)
    assert time.monotonic() - started < 0.5


def test_a_walk_past_its_directory_budget_names_the_limit(tmp_path):
    for i in range(6):
        (tmp_path / f"d{i}" / "images").mkdir(parents=True)
    with pytest.raises(ValidationError, match="visits more than 3 directories"):
        store(max_dirs=3).glob(str(tmp_path / "*" / "images" / "*.jpg"), 100)


def test_a_walk_past_its_entry_budget_names_the_limit(tmp_path):
    for i in range(50):
        (tmp_path / f"{i}.jpg").write_bytes(b"x")
    with pytest.raises(ValidationError, match="lists more than 10 directory entries"):
        store(max_entries=10).glob(str(tmp_path / "*.png"), 100)


def test_a_walk_past_its_time_names_the_limit(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(ValidationError, match="takes longer than 0 s to walk"):
        store(max_seconds=0).glob(str(tmp_path / "*" / "*.jpg"), 100)


def test_a_walk_matches_as_glob_does(tmp_path):
    for name in ("a/1.jpg", "a/2.png", "b/3.jpg", ".hidden/4.jpg", "a/.5.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = store().glob(str(tmp_path / "*" / "*.jpg"), 100)
    assert found == [str(tmp_path / "a" / "1.jpg"), str(tmp_path / "b" / "3.jpg")]
    assert store().glob(str(tmp_path / "a" / "[12].*"), 100) == [
        str(tmp_path / "a" / "1.jpg"),
        str(tmp_path / "a" / "2.png"),
    ]
    assert len(store().glob(str(tmp_path / "*" / "*"), 1)) == 2  # limit + 1: the caller sees "too many"


def test_a_walk_never_descends_into_a_symlinked_directory(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "escape").symlink_to("/")
    assert store().glob(str(tmp_path / "data" / "*" / "etc" / "passwd"), 100) == []


def test_a_read_refuses_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(ValidationError, match="is not a regular file"):
        store().read(str(fifo), 100)  # nobody writes: an open without O_NONBLOCK would hang
    assert time.monotonic() - started < 1
    with pytest.raises(ValidationError, match="is not a regular file"):
        store().read(str(tmp_path), 100)
    with pytest.raises(ValidationError, match="is not a regular file"):
        store().read("/dev/zero", 100)


def test_a_read_of_a_file_that_fails_mid_read_is_a_400():
    with pytest.raises(ValidationError, match=r"cannot be read \(EIO\)"):
        store().read("/proc/self/mem", 100)


def test_a_read_stops_after_the_limit_when_the_size_lies():
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("no procfs here")
    assert os.stat("/proc/self/maps").st_size == 0  # procfs says 0 whatever it holds
    with pytest.raises(ValidationError, match="is larger than 64 bytes, the most allowed"):
        store().read("/proc/self/maps", 64)


def test_a_read_of_an_unreadable_file_is_a_400(tmp_path, monkeypatch):
    def refused(*args, **kwargs):  # EACCES as a non-root service sees it (root reads a 0000 file)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(ValidationError, match="is not readable by the service"):
        store().read(str(tmp_path / "x.jpg"), 100)


def test_a_read_returns_the_bytes_of_a_file_at_the_limit(tmp_path):
    image = tmp_path / "x.jpg"
    image.write_bytes(b"y" * 64)
    assert store().read(str(image), 64) == b"y" * 64
    with pytest.raises(ValidationError, match="is 64 bytes; at most 63 are allowed"):
        store().read(str(image), 63)


# --- the default image roots (issue 16) -------------------------------------------------------------
def test_without_data_roots_images_are_read_only_under_uploads_and_jobs_data(local_stage, tmp_path):
    from chalicelib.services import data_roots

    data = tmp_path / "CatDog"
    data.mkdir()
    roots = data_roots.for_images(settings.current())
    assert roots == (str(local_stage / "uploads"),)
    for path in ("/etc/shadow", "/proc/self/environ", str(data / "images" / "1.jpg")):
        with pytest.raises(ValidationError, match=r"outside the allowed data roots \(.*uploads\)"):
            image_input.check_location("path_to_image", path, home=settings.current().home, local=True, roots=roots)
    data_roots.remember(settings.current(), str(data))
    data_roots.remember(settings.current(), str(data))  # once
    assert data_roots.for_images(settings.current()) == (str(local_stage / "uploads"), str(data))
    inside = str(data / "images" / "1.jpg")
    assert image_input.check_location("path_to_image", inside, home=settings.current().home, local=True, roots=data_roots.for_images(settings.current()))
    upload = str(local_stage / "uploads" / "mine.jpg")  # in the home, yet the user's own
    assert image_input.check_location("path_to_image", upload, home=settings.current().home, local=True, roots=data_roots.for_images(settings.current()))


def test_data_roots_when_set_replace_the_default(local_stage, tmp_path, monkeypatch):
    from chalicelib import settings
    from chalicelib.services import data_roots

    data_roots.remember(settings.current(), str(tmp_path / "job-data"))
    monkeypatch.setenv("AIFACTORY_DATA_ROOTS", str(tmp_path / "only"))
    settings.reset()
    assert data_roots.for_images(settings.current()) == (str(tmp_path / "only"),)

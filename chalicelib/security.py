"""Outbound URL, header and data-location checks (DESIGN.md, "Security rules").

URLs and headers go through `outbound`, the policy the callback sender and the dataset
fetcher send with, so whatever is accepted at submit time can be sent.
"""

from __future__ import annotations

import os
from pathlib import Path

import outbound
from chalicelib.errors import ValidationError
from chalicelib.services.data_roots import UPLOADS


def check_outbound_url(field: str, url: object, allow_private: bool) -> str:
    """http(s) only, no credentials, one reading of the host; never link-local (instance
    metadata); non-global addresses only if allowed. The host is resolved now and again
    when the request is sent."""
    try:
        outbound.validate_url(url, allow_private)
    except outbound.UrlRefused as exc:
        raise ValidationError(field, exc.problem) from None
    return url  # type: ignore[return-value]  # validate_url accepted a str


def check_headers(field: str, headers: object) -> dict[str, str]:
    """Caller headers (callback or dataset) the sender can send as given: RFC 7230 names,
    latin-1 values without line breaks or control characters, bounded count and size."""
    try:
        return outbound.validate_headers(headers)
    except outbound.HeadersRefused as exc:
        raise ValidationError(field, exc.problem) from None


def check_s3_location(field: str, location: str, *, local: bool, roots: tuple[str, ...]) -> str:
    """An `s3://` location under one of the allowed prefixes (aws stages only)."""
    if local:
        raise ValidationError(field, "s3:// locations need an aws stage; the local stage reads local paths")
    prefixes = [root.rstrip("/") for root in roots if root.startswith("s3://")]
    if not any(location.rstrip("/") == p or location.startswith(p + "/") for p in prefixes):
        raise ValidationError(field, f"'{location}' is not under an allowed S3 prefix")
    return location


def check_local_place(field: str, location: str, path: Path, roots: tuple[str, ...], home: Path) -> None:
    """A resolved local path: never inside the service's own state (`home`: the stage's
    AIFACTORY_HOME), under the data roots when set."""
    home = home.resolve()  # jobs, secrets, artifacts: never user data
    uploads = home / UPLOADS  # the one folder of the home that holds the user's own images
    if (path == home or home in path.parents) and not (path == uploads or uploads in path.parents):
        raise ValidationError(field, f"'{location}' is inside the service's state directory")
    local_roots = [Path(r).expanduser().resolve() for r in roots if not r.startswith("s3://")]
    if local_roots and not any(path == r or r in path.parents for r in local_roots):
        shown = ", ".join(str(r) for r in local_roots[:5])
        more = f" and {len(local_roots) - 5} more" if len(local_roots) > 5 else ""
        raise ValidationError(
            field,
            f"'{location}' is outside the allowed data roots ({shown}{more}); "
            "put it under one of them or widen AIFACTORY_DATA_ROOTS",
        )


def check_data_location(
    field: str, location: str, *, local: bool, roots: tuple[str, ...], home: Path, images: bool = False
) -> str:
    """Where the service may read data from: aws stages, an `s3://` location under an allowed
    prefix; the local stage, a path outside the service's own state (under the data roots
    when set) that is a readable directory, or with `images` the path of an image or a
    pattern of images (checked by its fixed part, `a/*/x.jpg` by `a`)."""
    if not isinstance(location, str) or not location.strip():
        raise ValidationError(field, "required")
    location = location.strip()
    if location.startswith("s3://"):
        return check_s3_location(field, location, local=local, roots=roots)
    if not local:
        raise ValidationError(field, f"must be an s3:// {'location' if images else 'prefix'} in this stage")
    if images:
        return _check_image_place(field, location, roots, home)
    try:
        path = Path(location).expanduser().resolve()
        is_dir = path.is_dir()
    except (OSError, RuntimeError, ValueError) as exc:  # a name too long, a symlink loop, a NUL
        raise ValidationError(field, f"is not a usable path ({type(exc).__name__})") from None
    if not is_dir:
        raise ValidationError(field, f"'{location}' is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ValidationError(field, f"'{location}' is not readable")
    check_local_place(field, location, path, roots, home)
    return str(path)


def _check_image_place(field: str, location: str, roots: tuple[str, ...], home: Path) -> str:
    """A local image path or pattern: its fixed part must be an allowed place (the files
    themselves are checked when read, after the walk)."""
    path = Path(location).expanduser()
    fixed = Path(*[part for part in path.parts if not any(c in part for c in "*?[")] or ["."])
    try:
        resolved = fixed.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a name too long, a symlink loop, a NUL
        raise ValidationError(field, f"is not a usable path ({type(exc).__name__})") from None
    check_local_place(field, location, resolved, roots, home)
    return str(path.resolve()) if fixed == path else str(path)

"""The callback's `model`: a download link that works with a plain GET, like an S3
presigned URL. `/models/<job_name>/signed?expires=<unix time>&signature=<HMAC>` is checked
without the API key until it expires; `/models/<job_name>` with `x-api-key` always works.

The HMAC key is `AIFACTORY_MODEL_LINK_KEY` (a secret: on AWS the stage's Secrets Manager
value), or on the local stage a key generated once into `<home>/model_link_key` (0600).
The key file is written whole under a temporary name and linked into place: a full disk
(`StorageFull`, 507) leaves no empty key file behind, which would sign with an empty key.
Checking a link never makes a key: with no key file no link was ever signed, so it is a 403.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import time

from chalicelib import key_files
from chalicelib.errors import DISK_FULL_ERRNOS, Forbidden, StorageFull, ValidationError
from chalicelib.settings import Settings

SIGNED_SUFFIX = "/signed"


@functools.cache
def _key(configured: str, home: str) -> bytes:
    if configured:
        return configured.encode()
    try:
        return key_files.read_or_create(_path(home)).encode()
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise StorageFull(home) from exc
        raise


def _path(home: str) -> str:
    return os.path.join(home, "model_link_key")


def _stored_key(home: str) -> bytes | None:
    key = key_files.stored(_path(home))
    return key.encode() if key else None


def _signature(config: Settings, job_name: str, expires: int, create: bool = True) -> str | None:
    """The link's HMAC; None when `create` is false and no key exists yet (nothing was signed)."""
    if not create and not config.model_link_key and _stored_key(str(config.home)) is None:
        return None
    key = _key(config.model_link_key, str(config.home))
    return hmac.new(key, f"{job_name}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(config: Settings, base_url: str | None, job_name: str, now: float | None = None) -> str | None:
    """`base_url` is the job's `<API>/models/<job_name>`; None when the API's address is unknown."""
    if not base_url:
        return None
    expires = int((now or time.time()) + config.model_link_days * 86400)
    return f"{base_url}{SIGNED_SUFFIX}?expires={expires}&signature={_signature(config, job_name, expires)}"


def check(config: Settings, job_name: str, query: dict[str, str] | None, now: float | None = None) -> None:
    query = query or {}
    try:
        expires = int(query.get("expires", ""))
    except ValueError:
        raise ValidationError("expires", "must be the link's expiry time (seconds since 1970)") from None
    given = query.get("signature", "")
    expected = _signature(config, job_name, expires, create=False)
    if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("The link's signature does not match; use the link from the callback as it is.")
    if expires < (now or time.time()):
        raise Forbidden(f"The link expired; GET /models/{job_name} with your x-api-key instead.")

"""The callback's `model`: a download link that works with a plain GET, like an S3
presigned URL. `/models/<job_name>/signed?expires=<unix time>&signature=<HMAC>` is checked
without the API key until it expires; `/models/<job_name>` with `x-api-key` always works.

The HMAC key is `AIFACTORY_MODEL_LINK_KEY` (a secret: on AWS the stage's Secrets Manager
value), or on the local stage a key generated once into `<home>/model_link_key` (0600).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import time

from chalicelib import settings
from chalicelib.errors import Forbidden, ValidationError

SIGNED_SUFFIX = "/signed"


@functools.cache
def _key(configured: str, home: str) -> bytes:
    if configured:
        return configured.encode()
    path = os.path.join(home, "model_link_key")
    try:
        with open(path) as handle:
            return handle.read().strip().encode()
    except FileNotFoundError:
        os.makedirs(home, exist_ok=True)
        key = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return _key(configured, home)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key.encode()


def _signature(job_name: str, expires: int) -> str:
    config = settings.current()
    key = _key(config.model_link_key, str(config.home))
    return hmac.new(key, f"{job_name}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(base_url: str | None, job_name: str, now: float | None = None) -> str | None:
    """`base_url` is the job's `<API>/models/<job_name>`; None when the API's address is unknown."""
    if not base_url:
        return None
    expires = int((now or time.time()) + settings.current().model_link_days * 86400)
    return f"{base_url}{SIGNED_SUFFIX}?expires={expires}&signature={_signature(job_name, expires)}"


def check(job_name: str, query: dict[str, str] | None, now: float | None = None) -> None:
    query = query or {}
    try:
        expires = int(query.get("expires", ""))
    except ValueError:
        raise ValidationError("expires", "must be the link's expiry time (seconds since 1970)") from None
    given = query.get("signature", "")
    if not hmac.compare_digest(given.encode(), _signature(job_name, expires).encode()):
        raise Forbidden("The link's signature does not match; use the link from the callback as it is.")
    if expires < (now or time.time()):
        raise Forbidden(f"The link expired; GET /models/{job_name} with your x-api-key instead.")

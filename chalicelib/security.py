"""Outbound URL and data-location checks (DESIGN.md, "Security rules")."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from chalicelib.errors import ValidationError


def _addresses(host: str) -> list[ipaddress._BaseAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise ValidationError("", f"cannot resolve host '{host}'") from exc
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def check_outbound_url(field: str, url: object, allow_private: bool) -> str:
    """http(s) only; never link-local (instance metadata); loopback/private only if allowed."""
    if not isinstance(url, str) or not url:
        raise ValidationError(field, "must be a non-empty URL string")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ValidationError(field, f"must be an http or https URL; got scheme '{parsed.scheme}'")
    if not parsed.hostname:
        raise ValidationError(field, "has no host")
    try:
        addresses = _addresses(parsed.hostname)
    except ValidationError as exc:
        raise ValidationError(field, exc.problem) from None
    for address in addresses:
        if address.is_link_local or address.is_multicast or address.is_unspecified or address.is_reserved:
            raise ValidationError(field, f"points to a forbidden address ({address})")
        if (address.is_loopback or address.is_private) and not allow_private:
            raise ValidationError(
                field, f"points to a private or loopback address ({address}), not allowed here"
            )
    return url


def check_data_location(field: str, location: str, *, local: bool, roots: tuple[str, ...]) -> str:
    """Local stage: a readable directory (under AIFACTORY_DATA_ROOTS if set); aws: an allowed s3:// prefix."""
    if not isinstance(location, str) or not location.strip():
        raise ValidationError(field, "required")
    location = location.strip()
    if location.startswith("s3://"):
        if local:
            raise ValidationError(
                field, "s3:// locations need an aws stage; the local stage reads local paths"
            )
        if not any(location.startswith(root) for root in roots if root.startswith("s3://")):
            raise ValidationError(field, f"'{location}' is not under an allowed S3 prefix")
        return location
    if not local:
        raise ValidationError(field, "must be an s3:// prefix in this stage")
    path = Path(location).expanduser().resolve()
    if not path.is_dir():
        raise ValidationError(field, f"'{location}' is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ValidationError(field, f"'{location}' is not readable")
    local_roots = [Path(r).expanduser().resolve() for r in roots if not r.startswith("s3://")]
    if local_roots and not any(path == r or r in path.parents for r in local_roots):
        raise ValidationError(field, f"'{location}' is outside the allowed data roots")
    return str(path)

"""Header policy: what the API accepts is exactly what the sender can put on the wire.

Names are RFC 7230 tokens (so no `:`, space or line break); values are latin-1 (the
encoding http.client writes) without control characters other than tab. Framing and
hop-by-hop headers belong to the sender, never to the caller: a caller's
`Content-Length` or `Transfer-Encoding` could split one request into two.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from outbound.errors import HeadersRefused

MAX_HEADERS = 50
MAX_NAME_LENGTH = 256
MAX_VALUE_LENGTH = 8192
MAX_TOTAL_LENGTH = 32768
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
RESERVED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)


def _printable(name: str) -> str:
    shown = name[:40].encode("unicode_escape").decode("ascii")
    return shown + ("..." if len(name) > 40 else "")


def validate_headers(headers: object) -> dict[str, str]:
    """A copy of `headers` that can be sent as is, or `HeadersRefused` saying why not.

    Messages name the header, never quote its value: values are the caller's secrets.
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise HeadersRefused("must be an object of header names to string values")
    if len(headers) > MAX_HEADERS:
        raise HeadersRefused(f"at most {MAX_HEADERS} headers are allowed; got {len(headers)}")
    seen: set[str] = set()
    total = 0
    result: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise HeadersRefused("must map header names to string values")
        if not name or len(name) > MAX_NAME_LENGTH or not _TOKEN.fullmatch(name):
            raise HeadersRefused(
                f"header name '{_printable(name)}' is not a valid HTTP token "
                f"(letters, digits and !#$%&'*+-.^_`|~, at most {MAX_NAME_LENGTH} characters)"
            )
        lower = name.lower()
        if lower in RESERVED:
            raise HeadersRefused(f"header '{name}' is set by the sender and cannot be given")
        if lower in seen:
            raise HeadersRefused(f"header '{name}' is given more than once (names are case-insensitive)")
        seen.add(lower)
        if len(value) > MAX_VALUE_LENGTH:
            raise HeadersRefused(f"header '{name}' is longer than {MAX_VALUE_LENGTH} characters")
        if _BAD_VALUE.search(value):
            raise HeadersRefused(f"header '{name}' contains a line break or another control character")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise HeadersRefused(
                f"header '{name}' has a character outside latin-1 (HTTP header values are bytes)"
            ) from None
        total += len(name) + len(value)
        if total > MAX_TOTAL_LENGTH:
            raise HeadersRefused(f"headers are longer than {MAX_TOTAL_LENGTH} characters in total")
        result[name] = value
    return result


def merge(defaults: Mapping[str, str], given: Mapping[str, str], *, sender_wins: bool) -> dict[str, str]:
    """One header per name (case-insensitive): the sender's defaults and the caller's."""
    merged = dict(defaults)
    lowered = {k.lower(): k for k in merged}
    for name, value in given.items():
        existing = lowered.get(name.lower())
        if existing is not None:
            if sender_wins:
                continue
            del merged[existing]
        merged[name] = value
        lowered[name.lower()] = name
    return merged

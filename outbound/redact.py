"""Header values are the caller's secrets: every message that may quote one goes through here."""

from __future__ import annotations

from collections.abc import Mapping

MASK = "***"


class Redactor:
    """Replaces each (string) header value in a text with `***`, longest first, so a value
    that contains another is masked whole."""

    def __init__(self, headers: object):
        values = headers.values() if isinstance(headers, Mapping) else ()
        self.secrets = sorted({v for v in values if isinstance(v, str) and v}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

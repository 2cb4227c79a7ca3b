"""How every ArtifactStore reads JSON: over its own `get_bytes`, the same on disk and in S3.

A heartbeat read while the trainer rewrites it (a torn S3 upload, a file caught mid-rename
by a copy) must read as "nothing yet", never as a 500: so unreadable JSON is the default,
like a missing key. Written once here so the two stores cannot answer differently.
"""

from __future__ import annotations

import json
from typing import Any


class JsonArtifacts:
    """Mixin: `get_json` for a store that has `get_bytes(key) -> bytes | None`."""

    def get_json(self, key: str, default: Any = None) -> Any:
        data = self.get_bytes(key)
        if data is None:
            return default
        try:
            return json.loads(data)
        except json.JSONDecodeError:
            return default

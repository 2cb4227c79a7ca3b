"""DataStore on the local file system: images to infer and the globs of infer_multiple."""

from __future__ import annotations

import glob as _glob
from pathlib import Path

from chalicelib.errors import NotFound, ValidationError


class LocalDataStore:
    def read(self, location: str, max_bytes: int) -> bytes:
        path = Path(location)
        try:
            size = path.stat().st_size if path.is_file() else None
        except (OSError, ValueError):
            size = None
        if size is None:
            raise NotFound(f"Image '{location}' not found.")
        if size > max_bytes:
            raise ValidationError(
                "path_to_image", f"'{location}' is {size} bytes; at most {max_bytes} are allowed"
            )
        return path.read_bytes()

    def glob(self, pattern: str, limit: int) -> list[str]:
        found = []
        for match in _glob.iglob(pattern, recursive=False):
            if Path(match).is_file():
                found.append(str(Path(match).resolve()))
                if len(found) > limit:
                    break
        return sorted(found)

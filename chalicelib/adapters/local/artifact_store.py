"""ArtifactStore on a directory laid out like the bucket (`<root>/jobs/<job_id>/...`).

Writes go to a temporary name and are renamed into place; on a full disk the temporary file
is removed and the write raises `StorageFull` (507), so no half-written file is left.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chalicelib.adapters.json_artifacts import JsonArtifacts
from chalicelib.adapters.local.disk_full import storage_full_as_domain_error
from contracts import atomic


class DirectoryArtifactStore(JsonArtifacts):
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise ValueError(f"Artifact key escapes the store: {key!r}")
        return path

    def job_uri(self, job_id: str) -> str:
        return str(self.root / "jobs" / job_id)

    def path(self, key: str) -> Path:
        return self._path(key)

    def get_bytes(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with storage_full_as_domain_error(self.root):
            atomic.write_bytes(path, data)

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, indent=1).encode())

    def copy(self, source_key: str, target_key: str) -> None:
        target = self._path(target_key)
        source = self._path(source_key)
        with storage_full_as_domain_error(self.root):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            os.close(fd)
            try:
                shutil.copyfile(source, tmp)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def list_keys(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        if not base.exists():
            return
        for dirpath, _dirs, files in os.walk(base, followlinks=True):
            for name in sorted(files):
                if not name.startswith("."):
                    yield str((Path(dirpath) / name).relative_to(self.root))

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        for key in self.list_keys(prefix):
            try:
                yield key, self._path(key).stat().st_size
            except FileNotFoundError:  # removed meanwhile
                continue

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def download_url(self, key: str) -> str | None:
        return None

"""SecretStore as 0600 files under the local state directory (Secrets Manager locally).

A secret is written to a temporary 0600 file beside its name and renamed into place, so a
failed write (a full disk: `StorageFull`) leaves neither an empty nor a half-written file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from chalicelib.adapters.local.disk_full import storage_full_as_domain_error
from contracts import atomic


class FileSecretStore:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def put(self, job_id: str, secret: dict[str, Any]) -> dict[str, str]:
        path = self.root / f"{job_id}.json"
        data = json.dumps(secret).encode()
        with storage_full_as_domain_error(self.root):
            atomic.write_bytes(path, data)  # a temporary name (mkstemp: 0600), renamed into place
        return {"kind": "file", "ref": str(path)}

    def get(self, ref: dict[str, str]) -> dict[str, Any]:
        path = Path(ref["ref"])
        return json.loads(path.read_text()) if path.exists() else {}

    def delete(self, ref: dict[str, str]) -> None:
        Path(ref["ref"]).unlink(missing_ok=True)

"""SecretStore as 0600 files under the local state directory (Secrets Manager locally)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class FileSecretStore:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def put(self, job_id: str, secret: dict[str, Any]) -> dict[str, str]:
        path = self.root / f"{job_id}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(secret, handle)
        return {"kind": "file", "ref": str(path)}

    def get(self, ref: dict[str, str]) -> dict[str, Any]:
        path = Path(ref["ref"])
        return json.loads(path.read_text()) if path.exists() else {}

    def delete(self, ref: dict[str, str]) -> None:
        Path(ref["ref"]).unlink(missing_ok=True)

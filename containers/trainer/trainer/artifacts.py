"""Writes a job's artifacts under its prefix: a local directory or an S3 prefix.

The API only ever reads what lands here (DESIGN.md, "Artifacts"), so every write is
atomic: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from contracts import atomic


class ArtifactWriter:
    def __init__(self, uri: str, s3_client=None):
        parsed = urlparse(uri)
        self.uri = uri.rstrip("/")
        self.scheme = parsed.scheme or "file"
        if self.scheme == "file":
            self.root = Path(parsed.path if parsed.scheme else uri)
            self.root.mkdir(parents=True, exist_ok=True)
        elif self.scheme == "s3":
            self.bucket = parsed.netloc
            self.prefix = parsed.path.lstrip("/").rstrip("/")
            if s3_client is None:
                import boto3

                s3_client = boto3.client("s3")
            self.s3 = s3_client
        else:
            raise ValueError(f"Unsupported artifact URI scheme {parsed.scheme!r} in {uri!r}")

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        if self.scheme == "s3":
            self.s3.put_object(
                Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data, ContentType=content_type
            )
            return
        atomic.write_bytes(self.root / key, data)

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, indent=1).encode(), "application/json")

    def put_file(self, key: str, source: Path) -> None:
        self.put_bytes(key, Path(source).read_bytes())

    def get_bytes(self, key: str) -> bytes | None:
        if self.scheme == "s3":
            try:
                return self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"].read()
            except self.s3.exceptions.NoSuchKey:
                return None
        path = self.root / key
        return path.read_bytes() if path.exists() else None

    def get_json(self, key: str, default: Any = None) -> Any:
        data = self.get_bytes(key)
        return default if data is None else json.loads(data)

    def download_dir(self, key: str, dest: Path) -> Path:
        """Copies `key/` (e.g. another job's checkpoint) into `dest` and returns it."""
        dest.mkdir(parents=True, exist_ok=True)
        if self.scheme == "file":
            src = self.root / key
            if not src.is_dir():
                raise FileNotFoundError(f"Checkpoint not found: {src}")
            for item in src.iterdir():
                if item.is_file():
                    (dest / item.name).write_bytes(item.read_bytes())
            return dest
        paginator = self.s3.get_paginator("list_objects_v2")
        found = False
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{key}/"):
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                self.s3.download_file(self.bucket, obj["Key"], str(dest / name))
                found = True
        if not found:
            raise FileNotFoundError(f"Checkpoint not found: {self.uri}/{key}")
        return dest

"""Job artifacts in S3, addressed by keys relative to the artifact root.

Services speak in keys like `jobs/<job_id>/progress.json`; only this adapter knows the
bucket and the stage prefix, so the same service code reads a local directory or S3.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib.adapters.json_artifacts import JsonArtifacts

DELETE_BATCH = 1000  # the most keys one DeleteObjects call accepts
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def make_s3_client(session=None, region_name: str | None = None):
    """The S3 client this store wants: SigV4 presigned URLs (SigV2, botocore's default in
    us-east-1, is refused for KMS-encrypted objects) and virtual-host addressing."""
    if session is None:
        import boto3

        session = boto3.session.Session()
    config = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
    return session.client("s3", region_name=region_name, config=config)


class S3ArtifactStore(JsonArtifacts):
    """ports.ArtifactStore on `s3://<bucket>/<prefix>/`.

    `page_size` bounds each ListObjectsV2 page (paging stays inside `list_keys`);
    `url_expires_s` is the lifetime of `download_url` links.
    """

    def __init__(
        self,
        s3_client,
        bucket: str,
        prefix: str = "",
        *,
        page_size: int | None = None,
        url_expires_s: int = 3600,
    ):
        if not bucket:
            raise ValueError("S3ArtifactStore needs a bucket name (AIFACTORY_BUCKET).")
        self._s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.page_size = page_size
        self.url_expires_s = url_expires_s

    def _key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def job_uri(self, job_id: str) -> str:
        return f"s3://{self.bucket}/{self._key(f'jobs/{job_id}')}"

    def uri(self, key: str) -> str:
        """`s3://<bucket>/<prefix>/<key>`: where a container reads or writes `key` itself."""
        return f"s3://{self.bucket}/{self._key(key)}"

    def get_bytes(self, key: str) -> bytes | None:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in MISSING_CODES:
                return None
            raise
        return response["Body"].read()

    def put_bytes(self, key: str, data: bytes) -> None:
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def copy(self, source_key: str, target_key: str) -> None:
        """CopyObject: the bytes stay in S3 (objects up to 5 GB, which checkpoints are)."""
        self._s3.copy_object(
            Bucket=self.bucket,
            Key=self._key(target_key),
            CopySource={"Bucket": self.bucket, "Key": self._key(source_key)},
        )

    def put_json(self, key: str, value: Any) -> None:
        self._s3.put_object(
            Bucket=self.bucket,
            Key=self._key(key),
            Body=json.dumps(value).encode(),
            ContentType="application/json",
        )

    def _folder(self, prefix: str) -> str:
        """`jobs/a` lists `jobs/a/...` only, never `jobs/ab/...`: prefixes are folders, as on disk."""
        prefix = prefix.strip("/")
        if not prefix:
            return f"{self.prefix}/" if self.prefix else ""
        return self._key(prefix) + "/"

    def list_keys(self, prefix: str) -> Iterator[str]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._folder(prefix)}
        if self.page_size:
            kwargs["PaginationConfig"] = {"PageSize": self.page_size}
        for page in self._s3.get_paginator("list_objects_v2").paginate(**kwargs):
            for entry in page.get("Contents", []):
                yield self._relative(entry["Key"])

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._folder(prefix)}
        if self.page_size:
            kwargs["PaginationConfig"] = {"PageSize": self.page_size}
        for page in self._s3.get_paginator("list_objects_v2").paginate(**kwargs):
            for entry in page.get("Contents", []):
                yield self._relative(entry["Key"]), int(entry["Size"])

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        if not prefix.strip("/"):
            raise ValueError("Refusing to delete the whole artifact root; give a job prefix.")
        batch: list[dict[str, str]] = []
        for key in self.list_keys(prefix):
            batch.append({"Key": self._key(key)})
            if len(batch) == DELETE_BATCH:
                self._delete(batch)
                batch = []
        if batch:
            self._delete(batch)

    def _delete(self, objects: list[dict[str, str]]) -> None:
        response = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"Could not delete {len(errors)} object(s) from s3://{self.bucket}, "
                f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
            )

    def download_url(self, key: str) -> str | None:
        """Presigned GET; it does not check that the object exists (callers list first)."""
        return self._s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=self.url_expires_s,
        )

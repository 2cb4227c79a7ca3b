"""DataStore on S3: `s3://bucket/key` images, `s3://bucket/prefix/*.jpg` patterns."""

from __future__ import annotations

import fnmatch
import re
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from chalicelib.errors import NotFound, ValidationError

_WILDCARD = re.compile(r"[*?\\[]")


def _split(location: str) -> tuple[str, str]:
    parsed = urlparse(location)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValidationError("path_to_image", f"'{location}' is not an s3:// location")
    return parsed.netloc, parsed.path.lstrip("/")


class S3DataStore:
    def __init__(self, s3_client):
        self._s3 = s3_client

    def read(self, location: str, max_bytes: int) -> bytes:
        bucket, key = _split(location)
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"Image '{location}' not found.") from None
            raise
        if head["ContentLength"] > max_bytes:
            raise ValidationError(
                "path_to_image",
                f"'{location}' is {head['ContentLength']} bytes; at most {max_bytes} are allowed",
            )
        return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def glob(self, pattern: str, limit: int) -> list[str]:
        bucket, key_pattern = _split(pattern)
        wildcard = _WILDCARD.search(key_pattern)
        prefix = key_pattern[: wildcard.start()] if wildcard else key_pattern
        found = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if fnmatch.fnmatchcase(item["Key"], key_pattern) and not item["Key"].endswith("/"):
                    found.append(f"s3://{bucket}/{item['Key']}")
                    if len(found) > limit:
                        return sorted(found)
        return sorted(found)

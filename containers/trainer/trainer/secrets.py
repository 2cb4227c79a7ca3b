"""Reads the dataset headers from the job's secret reference.

Headers (API keys) never travel in hyper-parameters, tags or the environment, which
DescribeTrainingJob and CloudWatch show (DESIGN.md, "Security rules"); job.json carries
only a reference: a file (local platform) or a Secrets Manager ARN (aws stages). Error
messages name the reference, never the secret's content.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.job_config import DataSource

KINDS = ("file", "secretsmanager")


def _region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[0] == "arn" and parts[3] else None


def _load(kind: str, ref: str, client: Any = None) -> dict:
    if kind == "file":
        path = Path(ref)
        if not path.is_file():
            raise FileNotFoundError(f"Secret file not found: {path}")
        text = path.read_text()
    elif kind == "secretsmanager":
        if client is None:
            import boto3

            client = boto3.client("secretsmanager", region_name=_region_of(ref))
        text = client.get_secret_value(SecretId=ref).get("SecretString")
        if text is None:
            raise ValueError(f"Secret {ref} has no SecretString; store the headers as a JSON string")
    else:
        raise ValueError(f"Invalid secret kind {kind!r}. Choose one of: {', '.join(KINDS)}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f'Secret {ref} is not JSON; expected {{"dataset_headers": {{...}}}}') from None
    if not isinstance(value, dict):
        raise ValueError(f"Secret {ref} must be a JSON object with 'dataset_headers'")
    return value


def read_dataset_headers(data: DataSource, client: Any = None) -> dict[str, str]:
    """job.json's `data.secret` → the headers to send to the dataset endpoint ({} if none)."""
    secret = data.secret
    if not secret:
        return {}
    if not isinstance(secret, dict) or not secret.get("ref"):
        raise ValueError('Invalid data.secret in job.json: expected {"kind": ..., "ref": ...}')
    ref = str(secret["ref"])
    headers = _load(secret.get("kind", "file"), ref, client).get("dataset_headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError(f"Secret {ref}: 'dataset_headers' must map header names to string values")
    return dict(headers)

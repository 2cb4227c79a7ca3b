"""Per-job secrets (callback and dataset headers) in Secrets Manager.

The trainer receives only the reference (`{"kind": "secretsmanager", "ref": <ARN>}`)
in job.json and reads the value with its execution role, so headers never appear in
hyper-parameters, tags, environment or logs.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import NotFound

KIND = "secretsmanager"


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


class SecretsManagerStore:
    """ports.SecretStore: one secret per job, named `<name_prefix><job_id>`."""

    def __init__(self, client, name_prefix: str = "aifactory/jobs/"):
        self._client = client
        self.name_prefix = name_prefix

    def put(self, job_id: str, secret: dict[str, Any]) -> dict[str, str]:
        name = f"{self.name_prefix}{job_id}"
        value = json.dumps(secret)
        try:
            response = self._client.create_secret(
                Name=name,
                SecretString=value,
                Description=f"AI Factory job {job_id}: request headers for callbacks and datasets",
            )
        except ClientError as error:
            if _code(error) != "ResourceExistsException":
                raise
            # A restored job stores its headers again: replace the value, keep the ARN.
            response = self._client.put_secret_value(SecretId=name, SecretString=value)
        return {"kind": KIND, "ref": response["ARN"]}

    @staticmethod
    def _ref(ref: dict[str, str]) -> str:
        if ref.get("kind") != KIND or not ref.get("ref"):
            raise ValueError(f"Not a Secrets Manager reference: {ref!r}")
        return ref["ref"]

    def get(self, ref: dict[str, str]) -> dict[str, Any]:
        try:
            response = self._client.get_secret_value(SecretId=self._ref(ref))
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                raise NotFound(f"Secret '{ref['ref']}' not found.") from error
            raise
        return json.loads(response["SecretString"])

    def delete(self, ref: dict[str, str]) -> None:
        try:
            self._client.delete_secret(SecretId=self._ref(ref), ForceDeleteWithoutRecovery=True)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise


@functools.cache
def stage_secret(secret_id: str) -> str:
    """A stage-wide secret's value (callback signing key, model link key), read once per
    process: settings read it at start, so it never sits in the Lambda's configuration."""
    import boto3

    return boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]

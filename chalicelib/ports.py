"""The ports chalicelib talks to.

The Chalice stage picks the adapters (`chalicelib.wiring`): `local` uses SQLite, a
directory, child processes and a file store; `dev`/`prod` use DynamoDB, S3, SageMaker
and Secrets Manager. Services depend only on these protocols and on `Services`, the
bundle an entry point builds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.errors import Conflict
from contracts.statuses import (  # noqa: F401 - re-exported: the platform statuses services use
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    STOPPED,
    STOPPING,
    TERMINAL,
)


class ConflictError(Conflict):
    """A conditional write lost: the record exists, or is not in the expected state (409)."""


class JobStore(Protocol):
    def create(self, job: dict[str, Any]) -> None: ...
    def get(self, job_id: str) -> dict[str, Any] | None: ...
    def get_by_name(self, job_name: str) -> dict[str, Any] | None: ...
    def update(
        self, job_id: str, changes: dict[str, Any], expect: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...
    def list(self, api: str | None = None) -> list[dict[str, Any]]: ...
    def delete(self, job_id: str) -> None: ...


class ArtifactStore(Protocol):
    def job_uri(self, job_id: str) -> str: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def get_json(self, key: str, default: Any = None) -> Any: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_json(self, key: str, value: Any) -> None: ...
    def copy(self, source_key: str, target_key: str) -> None:
        """Server-side copy (S3 CopyObject): object bytes never pass through the API."""
        ...

    def list_keys(self, prefix: str) -> Iterator[str]: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def download_url(self, key: str) -> str | None:
        """A URL that serves the object without our API (S3 presigned), or None."""
        ...


@dataclass
class TrainingRequest:
    """One SageMaker training job (an attempt of one of our jobs)."""

    job_id: str
    training_job_name: str
    image: str
    hyperparameters: dict[str, str]
    instance_type: str
    instance_count: int
    volume_size_gb: int
    artifact_uri: str  # <artifacts>/jobs/<job_id>: checkpoints/, model output, job.json
    data_uri: str | None = None  # v1.5 data_dir (s3:// prefix or local path)
    max_runtime_s: int = 86400
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class TrainingDescription:
    status: str  # one of the statuses above
    secondary_status: str = ""
    failure_reason: str = ""
    creation_time: str | None = None  # "YYYY-mm-dd HH:MM:SS" UTC
    end_time: str | None = None


@dataclass
class Hardware:
    """What the training fleet offers: GPUs, and software versions when the platform knows them."""

    devices: list[dict[str, Any]]
    software: dict[str, Any] | None = None  # None: read what the trainer recorded (environment.json)


class TrainingPlatform(Protocol):
    def check_image(self, image: str) -> None:
        """Raises Unavailable when this platform cannot run `image` at all."""
        ...

    def start(self, request: TrainingRequest) -> None: ...
    def describe(self, training_job_name: str) -> TrainingDescription: ...
    def stop(self, training_job_name: str) -> None: ...
    def recover(self) -> None:
        """Settles jobs whose process died and launches queued ones (no-op where the cloud does it)."""
        ...

    def hardware(self) -> Hardware: ...
    def live_devices(self) -> list[dict[str, Any]] | None:
        """Live GPU readings of this machine, or None where they come from the jobs' heartbeats."""
        ...


class SecretStore(Protocol):
    def put(self, job_id: str, secret: dict[str, Any]) -> dict[str, str]:
        """Stores the secret and returns the reference the trainer gets: {kind, ref}."""
        ...

    def get(self, ref: dict[str, str]) -> dict[str, Any]: ...
    def delete(self, ref: dict[str, str]) -> None: ...


@dataclass
class Services:
    """The adapters of one stage, built by an entry point (`chalicelib.wiring`)."""

    jobs: JobStore
    artifacts: ArtifactStore
    platform: TrainingPlatform
    secrets: SecretStore

"""The ports chalicelib talks to.

The Chalice stage picks the adapters (`chalicelib.wiring`): `local` uses SQLite, a
directory, child processes and a file store; `dev`/`prod` use DynamoDB, S3, SageMaker
and Secrets Manager. Services depend only on these protocols and on `Adapters`, the
bundle an entry point builds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.errors import Conflict, Unavailable
from chalicelib.job_record import Job
from chalicelib.settings import Settings
from chalicelib.settings import current as current_settings
from chalicelib.tenancy import DEFAULT as DEFAULT_TENANT_ID
from chalicelib.tenancy import Quotas, Tenant
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


class CapacityError(Unavailable):
    """The platform cannot start a training job now (ResourceLimitExceeded, no capacity): the
    job waits in the API's queue and a scheduled handler launches it later."""


class JobStore(Protocol):
    """Keeps `Job` records (chalicelib.job_record), read and written with its versioned
    `from_item`/`to_item`; `create` takes a Job or the fields of one."""

    def create(self, job: Mapping[str, Any]) -> None: ...
    def get(self, job_id: str) -> Job | None: ...
    def get_by_name(self, job_name: str) -> Job | None: ...
    def update(self, job_id: str, changes: dict[str, Any], expect: dict[str, Any] | None = None) -> Job:
        """`changes` (field name -> value) applied when every `expect` field holds its value
        (or one of a list of values); ConflictError otherwise."""
        ...

    def list(self, api: str | None = None) -> list[Job]:
        """Every record (a full table read): for tools and tests, never for a sweep or a route."""
        ...

    def list_active(self) -> list[Job]:
        """Jobs that have not ended (queued, pending, in progress, stopping), oldest first, read
        from an index that holds only them (`chalicelib.job_index`): O(active), never the table."""
        ...

    def list_due_callbacks(self, now: float) -> list[Job]:
        """AI Factory jobs that ended and whose callback needs a sender at `now` (not enqueued
        yet, or pending and due), read from the same index: O(callbacks not yet settled)."""
        ...

    def page(
        self,
        api: str,
        limit: int,
        after: tuple[str, str] | None = None,
        tenants: Sequence[str] = (DEFAULT_TENANT_ID,),
    ) -> tuple[list[Job], bool]:
        """At most `limit` jobs of `api` that belong to one of `tenants`, newest first by
        (created_at, job_id), all strictly before `after` when given; and whether more follow.
        Reads O(limit) records in a few batched reads (no read per job), however much work
        other tenants have."""
        ...

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
    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, bytes) of every object under a folder prefix: what a job holds."""
        ...

    def delete_prefix(self, prefix: str) -> None: ...
    def delete(self, key: str) -> None:
        """One object; a missing one is no error."""
        ...

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
    use_spot: bool = False  # managed spot training: interruptions resume from /opt/ml/checkpoints
    max_wait_s: int | None = None  # spot: how long to wait for capacity and interruptions in all
    keep_alive_s: int = 0  # warm pool: instances kept this long after the job for the next one


@dataclass
class TrainingDescription:
    status: str  # one of the statuses above
    secondary_status: str = ""
    failure_reason: str = ""
    creation_time: str | None = None  # "YYYY-mm-dd HH:MM:SS" UTC
    end_time: str | None = None
    billable_seconds: int | None = None  # SageMaker BillableTimeInSeconds; None while unknown


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

    def logs(self, training_job_name: str, offset: int, limit: int) -> tuple[list[str], bool]:
        """Lines `offset`.. of the trainer's stdout/stderr (at most `limit`), and whether more may come."""
        ...

    def hardware(self) -> Hardware: ...
    def live_devices(self) -> list[dict[str, Any]] | None:
        """Live GPU readings of this machine, or None where they come from the jobs' heartbeats."""
        ...


# SageMaker EndpointStatus values the API distinguishes.
CREATING = "Creating"
IN_SERVICE = "InService"
DEPLOY_FAILED = "Failed"
DELETING = "Deleting"


@dataclass
class Deployment:
    """One deployed checkpoint: a SageMaker model + endpoint config + endpoint (or a local server)."""

    name: str  # the endpoint name: unique per (job, epoch, target device)
    job_id: str
    epoch: int
    target_device_id: int  # -1 = CPU, else a GPU index
    task: str
    model_uri: str  # the self-contained checkpoint directory: local path or s3:// prefix
    status: str = CREATING
    failure_reason: str = ""
    tenant: str = DEFAULT_TENANT_ID  # whose it is (chalicelib.tenancy); older records: the default's
    # What it holds, read when it is described, never stored: the endpoint's SageMaker
    # instance type (None locally, where it is a process on this machine), and its memory in
    # bytes (locally the server process tree's RSS; on AWS the instance's memory when known).
    instance_type: str | None = None
    memory_bytes: int | None = None


MEASURED_FIELDS = ("instance_type", "memory_bytes")
"""Deployment fields that describe the moment they were read; adapters do not persist them."""


def holds_resources(deployment: Deployment) -> bool:
    """Whether it counts against the deployment cap: everything but Failed (no server process
    or instance is left) and Deleting (undeployed; its instance is going away)."""
    return deployment.status not in (DEPLOY_FAILED, DELETING)


def same_tenant(a: Deployment, b: Deployment) -> bool:
    """Whether two deployments count against one cap: the cap is per tenant."""
    return a.tenant == b.tenant


class DeploymentCapReached(Conflict):
    """`deploy` refused: `limit` deployments of the tenant hold resources already. `live` are
    they (what to undeploy to make room); nothing of the refused deployment is left behind."""

    def __init__(self, limit: int, live: list[Deployment]):
        super().__init__(
            f"{len(live)} deployments are live and the cap is {limit}: {', '.join(d.name for d in live)}."
        )
        self.limit = limit
        self.live = live


class HostingPlatform(Protocol):
    def device_count(self) -> int:
        """GPUs a deployment may ask for (`target_device_id` in [0, count), or -1 for CPU)."""
        ...

    def deploy(self, deployment: Deployment, max_live: int | None = None) -> None:
        """Starts it and returns at once; Conflict when the name exists (checked first, so a
        redeploy of a live deployment is never counted as a new one). With `max_live`,
        DeploymentCapReached when that many deployments of its tenant hold resources
        (`holds_resources`): decided atomically with the start, so concurrent deploys never
        leave more than `max_live` live, and a refused one leaves nothing behind."""
        ...

    def undeploy(self, name: str) -> None:
        """Removes everything the deployment made; NotFound when there is none."""
        ...

    def describe(self, name: str) -> Deployment: ...
    def list(self) -> list[Deployment]: ...
    def recover(self) -> None:
        """Restarts local servers that died (a no-op where the cloud keeps endpoints up)."""
        ...

    def invoke(
        self, name: str, body: bytes, content_type: str, custom_attributes: str | None = None
    ) -> tuple[int, bytes]:
        """The model server's answer (HTTP status, body); Unavailable while it is not InService.
        `custom_attributes` reaches the server as `X-Amzn-SageMaker-Custom-Attributes`
        (InvokeEndpoint's CustomAttributes: ASCII, at most 1024 characters)."""
        ...


class DataStore(Protocol):
    """Where users keep images and data sets: local files on the local stage, S3 on AWS."""

    def read(self, location: str, max_bytes: int) -> bytes:
        """The object's bytes; NotFound when absent, ValidationError when over `max_bytes`."""
        ...

    def glob(self, pattern: str, limit: int) -> list[str]:
        """Locations matching a shell pattern, sorted; at most `limit` + 1 (so callers see "too many")."""
        ...


class ToolRunner(Protocol):
    """Torch-bound one-off work (contracts.tools) in the trainer image: a detached child process
    locally, the tools Lambda function (a container image built from the trainer image) invoked
    asynchronously on AWS. The work outlives the API's request; the API reads its answer from
    the ArtifactStore (chalicelib/v15/tool_jobs.py)."""

    timeout_s: float  # the longest one run may take: past it (and a grace) its work is restarted

    def start(self, request: dict[str, Any], result_key: str) -> None:
        """Starts `request` and returns at once; the work writes its answer (contracts.tools'
        `ok`/`failed` JSON, failures included) to the ArtifactStore under `result_key`.
        Unavailable when it cannot be started."""
        ...


class SecretStore(Protocol):
    def put(self, job_id: str, secret: dict[str, Any]) -> dict[str, str]:
        """Stores the secret and returns the reference the trainer gets: {kind, ref}."""
        ...

    def get(self, ref: dict[str, str]) -> dict[str, Any]: ...
    def delete(self, ref: dict[str, str]) -> None: ...


class TenantStore(Protocol):
    """API keys as tenants (`chalicelib.tenancy`): a keys file locally, API Gateway keys on AWS."""

    def authenticate(self, key: str | None = None, key_id: str | None = None) -> Tenant | None:
        """The tenant of a request's key (local: the key itself; AWS: the id API Gateway
        checked); None when it is no tenant's."""
        ...

    def list(self) -> list[dict[str, Any]]: ...

    def create(self, name: str, admin: bool, quotas: Quotas) -> tuple[dict[str, Any], str]:
        """The new tenant, described, and its key: shown this once, kept nowhere in clear."""
        ...

    def revoke(self, tenant_id: str) -> dict[str, Any] | None: ...


@dataclass
class Adapters:
    """The adapters of one stage, built by an entry point (`chalicelib.wiring`), and the
    settings they were built with: services read the stage's settings from here, handed down
    with the adapters, rather than each reaching for the process-wide `settings.current()`."""

    jobs: JobStore
    artifacts: ArtifactStore
    platform: TrainingPlatform
    secrets: SecretStore
    hosting: HostingPlatform | None = None
    tools: ToolRunner | None = None
    data: DataStore | None = None
    tenants: TenantStore | None = None
    # A bundle built without them (a test's or a benchmark's stand-ins) gets the stage's.
    settings: Settings = field(default_factory=current_settings)

"""`Job`: the one record per job that the job stores keep (SQLite locally, DynamoDB on AWS).

Both stores turn a stored item into a `Job` with `Job.from_item` and back with `to_item`,
so what a record holds, its defaults and its migrations are written once. The container's
view of the same job is another type, `contracts.job_config.JobConfig` (job.json).

Versions (`record_version` in the item):

0 (absent): every record written before this class. AI Factory records kept the task twice
  (`task` and `task_def`, always equal); `task` is the one kept.
1: this class.

A record written by a newer API than the reader is refused (a rollback would otherwise
rewrite it without the fields it does not know about... and with its own version).

`Job` is also a read-only `Mapping` of the item's fields (`job["status"]`, `job.get(...)`),
so code not yet reading attributes keeps working while it moves to them; a change is a new
record (`with_changes`), never a mutation, as the stores' conditional writes need.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

RECORD_VERSION = 1
VERSION_KEY = "record_version"
_RETIRED = ("task_def",)  # version 0's copy of `task`


class RecordVersionError(ValueError):
    """A stored record is newer than this code: deploy the newer API, do not rewrite it."""


@dataclass(frozen=True, eq=False)
class Job(Mapping):
    """One job; `attempts` are its SageMaker training jobs, oldest first (restore adds one)."""

    job_id: str  # the stores' key: the only field a record cannot do without
    job_name: str = ""  # SageMaker-valid, unique; the AI Factory API's name of the job
    api: str = ""  # "v1.5" or "ai_factory"
    task: str = ""
    status: str = ""  # contracts.statuses: the platform's
    created_at: str = ""  # "YYYY-mm-dd HH:MM:SS" UTC (contracts.timeutil)
    attempts: list[dict[str, Any]] = field(
        default_factory=list
    )  # {"attempt", "training_job_name", "created_at"}
    secondary_status: str = ""
    failure_reason: str = ""
    status_message: str | None = None  # the platform's words while it waits for capacity
    ended_at: str | None = None
    settled: bool | None = None  # the terminal status is final: no platform read is needed
    tenant: str | None = None  # chalicelib.tenancy: None in records from before tenants
    format_version: int | None = None  # artifact layout (contracts.layout.FORMAT_VERSION)
    artifact_key: str | None = None  # jobs/<job_id>
    artifact_uri: str | None = None  # where the trainer writes: a directory or s3:// prefix
    image: str | None = None
    hyperparameters: dict[str, Any] | None = None  # as given (AI Factory) or resolved (v1.5)
    resource: dict[str, Any] | None = None  # CreateTrainingJob's ResourceConfig and capacity options
    # AI Factory
    creator: str | None = None
    callback: dict[str, Any] | None = None  # {"url"}; headers live behind secret_ref
    dataset: dict[str, Any] | None = None  # {"url", "pagination"}
    model_url: str | None = None
    secret_ref: dict[str, str] | None = None
    callback_outbox: dict[str, Any] | None = None  # chalicelib.services.outbox
    # v1.5
    data_dir: str | None = None
    resume: dict[str, Any] | None = None
    finetune: dict[str, Any] | None = None
    # the platform and the capacity queue (chalicelib.services.jobs)
    launched_request: dict[str, Any] | None = None  # the TrainingRequest a capacity failure re-sends
    queued_request: dict[str, Any] | None = None
    capacity_since: float | None = None
    capacity_tries: int | None = None
    billable_seconds: int | None = None
    # Fields other modules add that this version does not name; kept as they are.
    extra: dict[str, Any] = field(default_factory=dict)
    # The fields the record holds, in order: those its item had (a field a record never had
    # is not stored as null, so items stay as small as before), else every one that is set.
    keys_held: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.keys_held is None:
            held = tuple(f.name for f in _FIELDS if getattr(self, f.name) is not None) + tuple(self.extra)
            object.__setattr__(self, "keys_held", held)

    # --- item <-> record -------------------------------------------------------------------
    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Job:
        """A stored item (or a record's fields) as a Job, migrated to RECORD_VERSION."""
        if isinstance(item, Job):
            return item
        raw = dict(item)
        version = raw.pop(VERSION_KEY, 0)
        if not isinstance(version, int) or version > RECORD_VERSION:
            raise RecordVersionError(
                f"Job {raw.get('job_id')!r} is stored as record_version {version!r}; this API reads up to "
                f"{RECORD_VERSION}: deploy the release that wrote it"
            )
        if version < 1 and raw.get("task_def") and not raw.get("task"):
            raw["task"] = raw["task_def"]
        for name in _RETIRED:
            raw.pop(name, None)
        raw.pop("extra", None)
        raw.pop("keys_held", None)
        for name in _REQUIRED:
            if not raw.get(name):
                raise ValueError(f"A job record needs a '{name}'.")
        return cls(
            **{k: v for k, v in raw.items() if k in _NAMES},
            extra={k: v for k, v in raw.items() if k not in _NAMES},
            keys_held=tuple(raw),
        )

    def to_item(self) -> dict[str, Any]:
        """The stored form: the fields the record holds (JSON values) and the record version."""
        return {**{key: self[key] for key in self.keys_held}, VERSION_KEY: RECORD_VERSION}

    def with_changes(self, changes: Mapping[str, Any]) -> Job:
        """A store's update: the same job with `changes` (field name -> value) applied. (Not
        `dataclasses.replace`, which would not add a field the record did not hold yet.)"""
        if "job_id" in changes and changes["job_id"] != self.job_id:
            raise ValueError("A job's 'job_id' cannot change.")
        return Job.from_item({**self.to_item(), **changes})

    @property
    def current_attempt(self) -> dict[str, Any]:
        return self.attempts[-1]

    # --- read-only Mapping: code that reads job["..."] ----------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in _NAMES:
            return getattr(self, key)
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_held)

    def __len__(self) -> int:
        return len(self.keys_held)


_FIELDS = tuple(f for f in dataclasses.fields(Job) if f.name not in ("extra", "keys_held"))
_NAMES = frozenset(f.name for f in _FIELDS)
_REQUIRED = tuple(
    f.name for f in _FIELDS if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)

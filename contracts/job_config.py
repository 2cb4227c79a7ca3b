"""`job.json`: what the API tells the trainer about one job, written once and read once.

The API writes it under the job's artifact prefix (`jobs/<job_id>/job.json`) before the
platform starts anything; SageMaker hands it to every host in the `config` channel and the
local platform copies it there. This dataclass is the file's only writer (`to_json`) and
only reader (`from_json`), on both sides, so the API and the trainer image cannot drift.

Hyper-parameters travel here, once, resolved and typed (v1.5 lists and booleans, the AI
Factory dotted strings): SageMaker's `hyperparameters.json` holds at most 100 strings of
256 characters, so it cannot carry every job's configuration, and the trainers read
`JobConfig.hyperparameters` only (never a merge of two sources).

Versions (`version`, the schema of this file; `format_version` is the artifact layout's,
`contracts.layout.FORMAT_VERSION`, which `upgrade` migrates):

0 (no `version` key): every file written before this class; the same shape as 1, and every
  field but `task` and `artifacts.uri` may be missing (defaults below).
1: this class.

A file from a newer API than the reader (a trainer image older than the API) is refused
with a message that says so, rather than half understood.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
FETCH = "fetch"  # data.type: pages from a dataset endpoint (AI Factory text tasks)
DATA_DIR = "data_dir"  # data.type: a v1.5 data_dir in an input channel


class JobConfigError(ValueError):
    """job.json cannot be read: names the field and what to do."""


@dataclass(frozen=True)
class DataSource:
    """Where the trainer's data comes from: a dataset endpoint (`fetch`: `url`, `pagination`,
    and `secret`, a reference to the headers, never the headers) or an input channel
    (`data_dir`: `channel`)."""

    type: str = ""
    url: str | None = None
    pagination: dict[str, Any] | None = None
    secret: dict[str, str] | None = None
    channel: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that are set: the shape job.json always had."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    @classmethod
    def from_dict(cls, data: Any) -> DataSource:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise JobConfigError(f"job.json 'data' must be an object; got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class JobConfig:
    """One job as the containers see it. Frozen: a new attempt is `dataclasses.replace(config,
    attempt=n)`, written again with `to_json`."""

    job_id: str
    task: str
    artifact_uri: str  # job.json's `artifacts.uri`: where the trainer writes (jobs/<job_id>)
    job_name: str = ""
    api: str = ""  # "v1.5" or "ai_factory"
    attempt: int = 1  # the SageMaker training job (attempt) this run is; heartbeats carry it
    format_version: int = 0  # the artifact layout's version (contracts.layout.FORMAT_VERSION)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    data: DataSource = field(default_factory=DataSource)
    # The model a new job starts from: {"checkpoint_uri", "epoch"} (v1.5) or
    # {"checkpoint_uri", "step", "job_name"} (AI Factory), resolved and checked by the API.
    finetune: dict[str, Any] | None = None
    # Keys this version does not know, kept so a read-modify-write never drops them.
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = field(default=VERSION, init=False)  # what `from_dict` migrated it to

    # --- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "version": VERSION,
            "format_version": self.format_version,
            "job_id": self.job_id,
            "job_name": self.job_name,
            "api": self.api,
            "task": self.task,
            "attempt": self.attempt,
            "hyperparameters": dict(self.hyperparameters),
            "data": self.data.to_dict(),
            "artifacts": {"uri": self.artifact_uri},
            "finetune": self.finetune,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, raw: Any) -> JobConfig:
        if not isinstance(raw, dict):
            raise JobConfigError(f"job.json must hold a JSON object; got {type(raw).__name__}")
        version = raw.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise JobConfigError(f"job.json 'version' must be a whole number; got {version!r}")
        if version > VERSION:
            raise JobConfigError(
                f"job.json version {version} is newer than this reader understands (up to {VERSION}): "
                "run the job with a trainer image from the same release as the API that wrote it"
            )
        artifacts = raw.get("artifacts")
        uri = artifacts.get("uri") if isinstance(artifacts, dict) else None
        for name, value in (("job_id", raw.get("job_id")), ("task", raw.get("task")), ("artifacts.uri", uri)):
            if not isinstance(value, str) or not value:
                raise JobConfigError(f"job.json '{name}' is required (a non-empty string); got {value!r}")
        hyperparameters = raw.get("hyperparameters") or {}
        if not isinstance(hyperparameters, dict):
            raise JobConfigError(
                f"job.json 'hyperparameters' must be an object; got {type(hyperparameters).__name__}"
            )
        finetune = raw.get("finetune")
        if finetune is not None and not isinstance(finetune, dict):
            raise JobConfigError(
                f"job.json 'finetune' must be an object or null; got {type(finetune).__name__}"
            )
        try:
            attempt = int(raw.get("attempt", 1))
            format_version = int(raw.get("format_version") or 0)
        except (TypeError, ValueError):
            raise JobConfigError(
                f"job.json 'attempt' and 'format_version' must be whole numbers; got "
                f"{raw.get('attempt')!r} and {raw.get('format_version')!r}"
            ) from None
        known = {"version", "format_version", "job_id", "job_name", "api", "task", "attempt"}
        known |= {"hyperparameters", "data", "artifacts", "finetune"}
        return cls(
            job_id=raw["job_id"],
            task=raw["task"],
            artifact_uri=uri,
            job_name=str(raw.get("job_name") or ""),
            api=str(raw.get("api") or ""),
            attempt=attempt,
            format_version=format_version,
            hyperparameters=dict(hyperparameters),
            data=DataSource.from_dict(raw.get("data")),
            finetune=dict(finetune) if finetune is not None else None,
            extra={k: v for k, v in raw.items() if k not in known},
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> JobConfig:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise JobConfigError(f"job.json is not JSON: {exc}") from None
        return cls.from_dict(raw)

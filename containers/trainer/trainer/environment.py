"""The SageMaker `/opt/ml` contract, read once.

Shaped like sagemaker-training-toolkit's `environment.py`: everything the trainer
learns from its surroundings comes from here, and the base directory is overridable
(`AIFACTORY_OPT_ML`) so the local platform can run the same code under a job directory.

The job itself is `job.json` in the `config` channel, read as a `contracts.job_config.JobConfig`;
its `hyperparameters` are the job's only hyper-parameters (SageMaker's hyperparameters.json
is not read: it holds at most 100 strings of 256 characters, and two sources were merged
differently by the text and vision trainers).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts import layout
from contracts.job_config import JobConfig

DEFAULT_BASE = "/opt/ml"
CONFIG_CHANNEL = "config"
DATA_CHANNEL = "training"
JOB_FILE = layout.JOB_FILE


def _read_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    return json.loads(path.read_text())


def opt_ml_base(environ: dict[str, str] | None = None) -> Path:
    """The root of the `/opt/ml` tree: the one place it is worked out."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("AIFACTORY_OPT_ML") or DEFAULT_BASE)


@dataclass
class TrainingEnvironment:
    base_dir: Path
    resource_config: dict[str, Any]
    job: JobConfig
    environ: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, base_dir: str | os.PathLike | None = None, environ=None) -> TrainingEnvironment:
        environ = dict(os.environ if environ is None else environ)
        base = Path(base_dir) if base_dir else opt_ml_base(environ)
        config = base / "input" / "config"
        resources = _read_json(config / "resourceconfig.json", {})
        job_path = base / "input" / "data" / CONFIG_CHANNEL / JOB_FILE
        if not job_path.exists():
            raise FileNotFoundError(f"Job configuration not found at {job_path}")
        return cls(base, resources, JobConfig.from_json(job_path.read_text()), environ)

    @classmethod
    def unloaded(cls, environ=None) -> TrainingEnvironment:
        """The directories alone, for reporting a failure that came before (or while) the
        configuration was read."""
        environ = dict(os.environ if environ is None else environ)
        return cls(base_dir=opt_ml_base(environ), resource_config={}, job=None, environ=environ)

    # --- directories -------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        return Path(self.environ.get("SM_MODEL_DIR") or self.base_dir / "model")

    @property
    def output_dir(self) -> Path:
        return Path(self.environ.get("SM_OUTPUT_DIR") or self.base_dir / "output")

    @property
    def checkpoint_dir(self) -> Path:
        return self.base_dir / layout.CHECKPOINTS

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    def channel_dir(self, name: str) -> Path:
        env_name = f"SM_CHANNEL_{name.upper()}"
        return Path(self.environ.get(env_name) or self.base_dir / "input" / "data" / name)

    # --- distribution ------------------------------------------------------
    @property
    def hosts(self) -> list[str]:
        return list(self.resource_config.get("hosts") or ["algo-1"])

    @property
    def current_host(self) -> str:
        return self.resource_config.get("current_host") or self.hosts[0]

    @property
    def num_gpus(self) -> int:
        value = self.environ.get("SM_NUM_GPUS")
        if value is not None:
            return int(value)
        try:
            import torch

            return torch.cuda.device_count()
        except Exception:
            return 0

    @property
    def node_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def world_size(self) -> int:
        return len(self.hosts) * max(1, self.num_gpus)

    @property
    def is_master(self) -> bool:
        """Only rank 0 writes artifacts, heartbeats and results."""
        return self.node_rank == 0 and int(self.environ.get("LOCAL_RANK", "0")) == 0

    # --- job ---------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.job.task

    @property
    def artifact_uri(self) -> str:
        return self.job.artifact_uri

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The job's hyper-parameters, one source for every task (job.json)."""
        return self.job.hyperparameters

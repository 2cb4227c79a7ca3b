"""A SageMaker `/opt/ml` tree for one job and its artifact directory, run in this process.

Text and vision trainer tests lay out their jobs with it; they differ only in the job's
data section and what they put beside it. The bench scripts (bench/bench_tasks.py, ...) run
the trainer on the same tree (`run()` without a monkeypatch sets the variable for good).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from trainer import entry

from contracts import layout
from contracts.job_config import JobConfig


class OptMlJob:
    def __init__(self, root: Path, job: dict):
        self.root = root
        self.base = root / "opt_ml"
        self.artifacts = root / "artifacts"
        self.config = self.base / "input" / "config"
        self.config.mkdir(parents=True)
        (self.config / "resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
        )
        self.job = {
            "format_version": 1,
            "job_id": "20261122194501-8c0c1d2e",
            "job_name": "aif-20261122-194501-8c0c1d2e",
            "attempt": 1,
            "hyperparameters": {},
            "artifacts": {"uri": str(self.artifacts)},
            "finetune": None,
            **job,
        }

    def write(self, hyperparameters: dict | None = None, **job_fields) -> JobConfig:
        """The job.json channel, written as the API writes it (contracts.job_config): the
        hyper-parameters travel there only, so no hyperparameters.json is needed."""
        if hyperparameters is not None:
            self.job["hyperparameters"] = dict(hyperparameters)
        self.job.update(job_fields)
        config = JobConfig.from_dict(self.job)
        channel = self.base / "input" / "data" / "config"
        channel.mkdir(parents=True, exist_ok=True)
        (channel / layout.JOB_FILE).write_text(config.to_json())
        return config

    def link_data(self, data: Path) -> None:
        """The `training` channel: a v1.5 data_dir, linked as the local platform links it."""
        channel = self.base / "input" / "data" / "training"
        channel.parent.mkdir(parents=True, exist_ok=True)
        channel.symlink_to(data)

    def link_checkpoints(self) -> Path:
        """/opt/ml/checkpoints is the artifact directory's, as the local platform links it."""
        checkpoints = self.artifacts / layout.CHECKPOINTS
        checkpoints.mkdir(parents=True)
        (self.base / "checkpoints").symlink_to(checkpoints)
        return checkpoints

    def run(self, monkeypatch=None) -> int:
        if monkeypatch is None:  # a bench script: one job per process, or one after another
            os.environ["AIFACTORY_OPT_ML"] = str(self.base)
        else:
            monkeypatch.setenv("AIFACTORY_OPT_ML", str(self.base))
        previous = signal.getsignal(signal.SIGTERM)
        try:
            return entry.main([])
        finally:
            signal.signal(signal.SIGTERM, previous)

    def read(self, key: str):
        return json.loads((self.artifacts / key).read_text())

    @property
    def failure(self) -> str:
        return (self.base / "output" / "failure").read_text()

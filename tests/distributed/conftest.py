"""Jobs on the local platform as the API would lay them out: job.json under the artifact
directory, a TrainingRequest, and the runner doing the rest (several hosts, interruptions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.adapters.local.training_platform import LocalTrainingPlatform
from chalicelib.ports import TrainingRequest
from contracts.job_config import JobConfig
from tests.polling import wait_until as _wait_until

TRAINER_IMAGE = "aifactory-trainer:latest"
DATASET_HEADER = ("x-api-key", "dataset-key-5d1c")


@pytest.fixture
def platform(local_stage, monkeypatch):
    """Trainers on one intra-op thread each: on a shared 2-core box a small model trains many
    times faster that way (tests/trainer/test_text_quality.py), and hosts do not fight."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    return LocalTrainingPlatform(local_stage, max_concurrent=4, stop_grace_seconds=30)


def submit(
    platform: LocalTrainingPlatform,
    root: Path,
    name: str,
    job: dict,
    *,
    instance_count: int = 1,
    data_uri: str | None = None,
    use_spot: bool = False,
) -> Path:
    """Writes job.json as `jobs.launch` does and starts the training job; returns its artifacts."""
    artifacts = root / "artifacts" / name
    artifacts.mkdir(parents=True)
    config = JobConfig.from_dict(
        {"format_version": 2, "job_id": name, "job_name": name, "artifacts": {"uri": str(artifacts)}, **job}
    )
    (artifacts / "job.json").write_text(config.to_json())
    platform.start(
        TrainingRequest(
            job_id=name,
            training_job_name=name,
            image=TRAINER_IMAGE,
            hyperparameters={},  # they travel in job.json only
            instance_type="ml.m5.large",
            instance_count=instance_count,
            volume_size_gb=1,
            artifact_uri=str(artifacts),
            data_uri=data_uri,
            use_spot=use_spot,
        )
    )
    return artifacts


def fetch_job(root: Path, name: str, task: str, url: str, hyperparameters: dict) -> dict:
    """An AI Factory text job fetching `url`, its dataset header in a secret file."""
    secret = root / "secrets" / f"{name}.json"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(json.dumps({"dataset_headers": dict([DATASET_HEADER])}))
    return {
        "api": "ai_factory",
        "task": task,
        "hyperparameters": hyperparameters,
        "data": {
            "type": "fetch",
            "url": url,
            "pagination": {"begin_offset": 0, "page_size": 100, "max_pages": 0},
            "secret": {"kind": "file", "ref": str(secret)},
        },
    }


def wait_until(predicate, timeout: float = 300.0, interval: float = 0.2):
    """Distributed jobs are slow to start: 300 s unless told otherwise."""
    return _wait_until(predicate, timeout=timeout, interval=interval)


def wait_terminal(platform: LocalTrainingPlatform, name: str, timeout: float = 600.0):
    def ended():
        description = platform.describe(name)
        return description if description.status in ("Completed", "Failed", "Stopped") else None

    return wait_until(ended, timeout=timeout)


def trainer_logs(platform: LocalTrainingPlatform, name: str) -> str:
    return "\n".join(platform.logs(name, 0, 1_000_000)[0])

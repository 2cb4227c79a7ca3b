"""environment/devices on the aws stage: instance GPUs, recorded versions, live heartbeats."""

from __future__ import annotations

from chalicelib.adapters.aws.training_platform import SageMakerTrainingPlatform
from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.ports import Adapters
from chalicelib.v15 import service as environment


def aws_services(tmp_path, monkeypatch):
    monkeypatch.setenv("AIFACTORY_STAGE", "dev")
    monkeypatch.setenv("AIFACTORY_V15_INSTANCE_TYPE", "ml.g5.12xlarge")
    from chalicelib import settings

    settings.reset()
    jobs, artifacts = SqliteJobStore(tmp_path / "jobs.db"), DirectoryArtifactStore(tmp_path / "artifacts")
    for job_id, status in (("old", "Completed"), ("live", "InProgress")):
        jobs.create(
            {
                "job_id": job_id,
                "job_name": job_id,
                "api": "v1.5",
                "status": status,
                "created_at": f"2026-01-0{1 if job_id == 'old' else 2} 00:00:00",
                "artifact_key": f"jobs/{job_id}",
            }
        )
    artifacts.put_json(
        "jobs/old/environment.json",
        {"software": {"python_version": "3.11.9", "cuda_version": "12.8", "cudnn_version": "91002"}},
    )
    artifacts.put_json(
        "jobs/live/progress.json",
        {"devices": [{"id": 0, "name": "NVIDIA A10G", "utilization_in_percent": 93}]},
    )
    platform = SageMakerTrainingPlatform(
        object(), "arn:aws:iam::123456789012:role/sm", instance_type="ml.g5.12xlarge"
    )
    return Adapters(jobs=jobs, artifacts=artifacts, platform=platform, secrets=None)


def test_aws_environment_reports_instance_gpus_and_recorded_versions(tmp_path, monkeypatch):
    body = environment.environment(aws_services(tmp_path, monkeypatch))
    devices = body["environment"]["hardware"]["devices"]
    assert [d["id"] for d in devices] == [0, 1, 2, 3] and devices[0]["name"] == "NVIDIA A10G"
    assert body["environment"]["software"] == {
        "python_version": "3.11.9",
        "cuda_version": "12.8",
        "cudnn_version": "91002",
    }


def test_aws_devices_come_from_running_jobs_heartbeats(tmp_path, monkeypatch):
    body = environment.devices(aws_services(tmp_path, monkeypatch))
    assert body == {
        "result": "OK",
        "devices": [{"id": 0, "name": "NVIDIA A10G", "utilization_in_percent": 93}],
    }

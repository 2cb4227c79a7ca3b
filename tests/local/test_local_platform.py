"""The local TrainingPlatform: SageMaker's statuses, the queue, stop, dead runners, Docker."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from chalicelib.adapters.local.training_platform import (
    LocalTrainingPlatform,
    docker_command,
)
from chalicelib.errors import Conflict, Unavailable
from chalicelib.ports import TrainingRequest


def request(tmp_path, name, task="no_such_task", image="aifactory-trainer:latest", **hp):
    artifacts = tmp_path / "artifacts" / name
    artifacts.mkdir(parents=True)
    (artifacts / "job.json").write_text(
        json.dumps(
            {
                "job_id": name,
                "job_name": name,
                "task": task,
                "attempt": 1,
                "hyperparameters": hp,
                "artifacts": {"uri": str(artifacts)},
                "data": {"type": "none"},
            }
        )
    )
    return TrainingRequest(
        job_id=name,
        training_job_name=name,
        image=image,
        hyperparameters={},
        instance_type="ml.m5.large",
        instance_count=1,
        volume_size_gb=1,
        artifact_uri=str(artifacts),
    )


def wait_terminal(platform, name, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        description = platform.describe(name)
        if description.status in ("Completed", "Failed", "Stopped"):
            return description
        time.sleep(0.2)
    raise AssertionError(f"{name} did not end")


@pytest.fixture
def platform(local_stage):
    return LocalTrainingPlatform(local_stage, max_concurrent=1, stop_grace_seconds=5)


def test_docker_command_mounts_opt_ml_and_host_paths_where_they_are(tmp_path):
    command = docker_command(
        "my/img:1",
        "job-1",
        tmp_path / "opt_ml",
        "/srv/artifacts/jobs/j",
        "/data/set",
        "/home/s/j.json",
        {"AIFACTORY_STAGE": "local", "AIFACTORY_API_KEY": "never"},
    )
    opt_ml = tmp_path / "opt_ml"
    assert command == ["docker", "run", "--rm", "--name", "job-1", "--network", "host",
                       "-v", f"{opt_ml}/input:/opt/ml/input", "-v", f"{opt_ml}/model:/opt/ml/model",
                       "-v", f"{opt_ml}/output:/opt/ml/output", "-v", f"{opt_ml}/checkpoints:/opt/ml/checkpoints",
                       "-v", "/srv/artifacts/jobs/j:/srv/artifacts/jobs/j",
                       "-v", "/data/set:/data/set:ro", "-v", "/home/s/j.json:/home/s/j.json:ro",
                       "-e", "AIFACTORY_STAGE", "-e", "TRAINING_JOB_NAME=job-1", "my/img:1", "train"]  # fmt: skip


def test_foreign_image_without_docker_is_unavailable(platform, tmp_path):
    with pytest.raises(Unavailable, match="needs a Docker engine"):
        platform.start(request(tmp_path, "foreign", image="someone/else:1"))


def test_failed_trainer_reports_its_failure_file(platform, tmp_path):
    platform.start(request(tmp_path, "bad-task"))
    description = wait_terminal(platform, "bad-task")
    assert description.status == "Failed"
    assert description.failure_reason.startswith("E03 ValueError: Invalid task 'no_such_task'")
    assert description.creation_time <= description.end_time


def test_jobs_beyond_the_limit_wait_in_the_queue(platform, tmp_path):
    platform.start(request(tmp_path, "first"))
    platform.start(request(tmp_path, "second"))
    state = platform.read_state("second")
    assert (state["status"], state["secondary_status"], state["runner_pid"]) == (
        "InProgress",
        "Starting",
        None,
    )
    assert wait_terminal(platform, "first").status == "Failed"
    assert wait_terminal(platform, "second").status == "Failed"  # launched when the first ended


def test_stopping_a_queued_job_never_launches_it(platform, tmp_path):
    platform.start(request(tmp_path, "runs"))
    platform.start(request(tmp_path, "queued"))
    platform.stop("queued")
    assert platform.describe("queued").status == "Stopped"
    wait_terminal(platform, "runs")
    assert platform.read_state("queued")["runner_pid"] is None
    with pytest.raises(Conflict, match="in status Stopped"):
        platform.stop("queued")


def test_a_job_whose_runner_died_is_marked_failed(platform, tmp_path):
    platform.start(request(tmp_path, "killed"))
    state = platform.read_state("killed")
    os.killpg(state["runner_pid"], signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.waitpid(state["runner_pid"], os.WNOHANG)  # reap it: it is our child in tests
        except ChildProcessError:
            pass
        description = platform.describe("killed")
        if description.status == "Failed":
            break
        time.sleep(0.1)
    assert description.status == "Failed"
    assert "ended unexpectedly" in description.failure_reason


def test_foreign_image_runs_through_docker_and_is_killed_after_the_grace_period(
    local_stage, tmp_path, monkeypatch
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "docker-args"
    fake = bin_dir / "docker"  # a container that ignores SIGTERM, as a stuck one would
    killed = tmp_path / "docker-kill"
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = kill ]; then echo "$@" > {killed}; exit 0; fi\n'
        f"echo \"$@\" > {calls}\ntrap '' TERM\nwhile true; do sleep 0.1; done\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    platform = LocalTrainingPlatform(
        local_stage, max_concurrent=1, docker_enabled=lambda: True, stop_grace_seconds=1
    )
    platform.start(request(tmp_path, "foreign", image="my-team/custom-trainer:1.0"))
    deadline = time.time() + 30
    while not calls.exists() and time.time() < deadline:
        time.sleep(0.1)
    opt_ml = platform.job_dir("foreign") / "opt_ml"
    artifacts = str((tmp_path / "artifacts" / "foreign").resolve())
    assert (
        calls.read_text().split()
        == docker_command("my-team/custom-trainer:1.0", "foreign", opt_ml, artifacts, None)[1:]
    )
    platform.stop("foreign")
    started = time.time()
    assert wait_terminal(platform, "foreign", timeout=30).status == "Stopped"
    assert time.time() - started < 20  # SIGKILL after the 1 s grace, not a hang
    assert killed.read_text().split() == ["kill", "foreign"]  # and the container itself is killed


def test_packing_the_model_leaves_no_second_copy_in_opt_ml(tmp_path):
    import tarfile

    from chalicelib.adapters.local.runner import pack_model
    from contracts import layout

    opt_ml = tmp_path / "opt_ml"
    (opt_ml / "model").mkdir(parents=True)
    (opt_ml / "model" / "model.safetensors").write_bytes(b"w" * 100)
    request = TrainingRequest(
        job_id="j-1",
        training_job_name="tj-1",
        image="aifactory-trainer:latest",
        hyperparameters={},
        instance_type="local",
        instance_count=1,
        volume_size_gb=1,
        artifact_uri=str(tmp_path / "artifacts"),
    )
    pack_model(opt_ml, request)
    with tarfile.open(tmp_path / "artifacts" / layout.model_output("tj-1")) as tar:
        assert tar.getnames() == ["model.safetensors"]
    assert list((opt_ml / "model").iterdir()) == []  # the mount point stays for a restore

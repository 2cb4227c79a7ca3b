"""Stop on a real engine: SIGTERM reaches the container first, and a container that ignores it
is killed once the grace period is over, as SageMaker's StopTrainingJob does.

The trainer image stops cleanly on SIGTERM (test_trainer_image.py); a stuck container needs
an image that ignores it, built here in seconds on the local base.
"""

from __future__ import annotations

import io
import json
import time

import docker as docker_sdk
import pytest

from chalicelib.adapters.local.training_platform import LocalTrainingPlatform
from chalicelib.ports import TrainingRequest
from tests.docker.conftest import BASE_IMAGE, docker

pytestmark = pytest.mark.timeout(300)
STUCK_IMAGE = "local/aifactory-stuck-trainer:test"
# `train` notes SIGTERM in /opt/ml/output (mounted from the host) and keeps running.
STUCK_DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN printf '#!/bin/sh\\ntrap "echo TERM >> /opt/ml/output/signals" TERM\\nwhile true; do sleep 0.2; done\\n' \\
    > /usr/local/bin/train && chmod 0755 /usr/local/bin/train
"""


@pytest.fixture(scope="module")
def stuck_image(engine):
    client = docker_sdk.APIClient(timeout=300)
    for chunk in client.build(
        fileobj=io.BytesIO(STUCK_DOCKERFILE.encode()), tag=STUCK_IMAGE, decode=True, rm=True
    ):
        assert "error" not in chunk, chunk
    yield STUCK_IMAGE
    docker("rmi", "-f", STUCK_IMAGE)


def stuck_request(tmp_path, name: str, image: str) -> TrainingRequest:
    artifacts = tmp_path / "artifacts" / name
    artifacts.mkdir(parents=True)
    (artifacts / "job.json").write_text(
        json.dumps({"job_id": name, "task": "none", "data": {"type": "none"}})
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


def running(name: str) -> bool:
    return docker("ps", "-q", "--filter", f"name=^{name}$").stdout.strip() != ""


def test_a_container_ignoring_sigterm_is_killed_after_the_grace_period(local_stage, tmp_path, stuck_image):
    platform = LocalTrainingPlatform(
        local_stage, max_concurrent=1, docker_enabled=lambda: True, stop_grace_seconds=2
    )
    name = f"stuck-{int(time.time() * 1000)}"
    platform.start(stuck_request(tmp_path, name, stuck_image))
    try:
        deadline = time.time() + 60
        while not running(name) and time.time() < deadline:
            time.sleep(0.2)
        assert running(name), (platform.job_dir(name) / "trainer.log").read_text()
        platform.stop(name)
        deadline = time.time() + 60
        while platform.describe(name).status not in ("Stopped", "Failed") and time.time() < deadline:
            time.sleep(0.2)
        assert platform.describe(name).status == "Stopped"
        signals = platform.job_dir(name) / "opt_ml" / "output" / "signals"
        assert signals.read_text().split() == ["TERM"]  # SIGTERM reached the container first
        assert "ignored SIGTERM for 2.0s: killing it" in (platform.job_dir(name) / "runner.log").read_text()
        assert not running(name)  # then SIGKILL: the container is gone
    finally:
        docker("rm", "-f", name)

"""The real trainer image on a real Docker engine: what the engine and the image must be, and
one loud line when they are not.

`.ci/run` starts an engine and builds `local/aifactory-trainer:latest` (`make
docker-trainer-image`) before the suite; these tests never build it themselves (a cold build
takes minutes). Where no engine answers or the image is missing, the test module skips as a
whole: one `SKIPPED` line saying what failed and the command that fixes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.servers import ApiServer

TRAINER_IMAGE = os.environ.get("AIFACTORY_DOCKER_TRAINER_IMAGE", "local/aifactory-trainer:latest")
BASE_IMAGE = os.environ.get("AIFACTORY_BASE_IMAGE", "aifactory-base:bookworm")
FIX = "run `make docker-trainer-image` as root (starts dockerd, builds the base and the image)"


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def why_not() -> str | None:
    """What keeps the trainer image from running here, or None when nothing does."""
    if not shutil.which("docker"):
        return "no `docker` client on PATH"
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` hung for 20 s"
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers (`docker info`: {last})"
    for image in (TRAINER_IMAGE, BASE_IMAGE):
        if docker("image", "inspect", image).returncode != 0:
            return f"image {image} is not on the engine"
    return None


def skip_reason() -> str | None:
    reason = why_not()
    return f"Docker trainer tests skipped: {reason}; {FIX}" if reason else None


@pytest.fixture(scope="session")
def engine() -> str:
    """The trainer image's tag (the module has already skipped when there is none)."""
    return TRAINER_IMAGE


@pytest.fixture
def api(engine, tmp_path):
    """The local API whose allowed image and v1.5 trainer image are the locally built tag."""
    repository = engine.rsplit(":", 1)[0]
    server = ApiServer(
        tmp_path / "home",
        extra_env={
            "AIFACTORY_DOCKER": "1",
            "AIFACTORY_ALLOWED_IMAGES": repository,
            "AIFACTORY_TRAINER_IMAGE": engine,
            "AIFACTORY_STOP_GRACE_SECONDS": "20",
            "AIFACTORY_CALLBACK_BACKOFF_SECONDS": "0.2",
        },
    )
    with server:
        yield server
    server.kill_jobs()
    for state in (tmp_path / "home").glob("training/*/state.json"):
        docker("rm", "-f", state.parent.name)  # nothing of a test outlives it on the engine

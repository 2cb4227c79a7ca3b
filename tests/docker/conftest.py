"""The real trainer image on a real Docker engine: what the engine and the image must be, and
one loud line when they are not.

`make test` (scripts/test-deps.sh) starts an engine and builds `local/aifactory-trainer:latest` and
`local/aifactory-inference:latest` (`make docker-images`) before the suite; these tests never
build them themselves (a cold build takes minutes). Where no engine answers or an image is
missing, the test module skips as a whole: one `SKIPPED` line saying what failed and the
command that fixes it. The SageMaker SDK's local-mode tests run the SDK in its own virtualenv
(`make docker-sagemaker-sdk`) with `sdk_env`: telemetry off, every AWS endpoint on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.servers import ApiServer

TRAINER_IMAGE = os.environ.get("AIFACTORY_DOCKER_TRAINER_IMAGE", "local/aifactory-trainer:latest")
INFERENCE_IMAGE = os.environ.get("AIFACTORY_DOCKER_INFERENCE_IMAGE", "local/aifactory-inference:latest")
BASE_IMAGE = os.environ.get("AIFACTORY_BASE_IMAGE", "aifactory-base:bookworm")
FIX = "run `make docker-trainer-image` as root (starts dockerd, builds the base and the image)"
INFERENCE_FIX = "run `make docker-images` as root (starts dockerd, builds the base and both images)"
REPO = Path(__file__).resolve().parents[2]
SDK_PYTHON = REPO / "build" / "sagemaker-venv" / "bin" / "python"


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def why_not(images: tuple[str, ...] = (TRAINER_IMAGE, BASE_IMAGE)) -> str | None:
    """What keeps `images` (the trainer's by default) from running here, or None when nothing does."""
    if not shutil.which("docker"):
        return "no `docker` client on PATH"
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` hung for 20 s"
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers (`docker info`: {last})"
    for image in images:
        if docker("image", "inspect", image).returncode != 0:
            return f"image {image} is not on the engine"
    return None


def skip_reason() -> str | None:
    reason = why_not()
    return f"Docker trainer tests skipped: {reason}; {FIX}" if reason else None


def inference_skip_reason() -> str | None:
    reason = why_not((INFERENCE_IMAGE,))
    return f"Docker inference image tests skipped: {reason}; {INFERENCE_FIX}" if reason else None


def sdk_missing() -> str | None:
    if SDK_PYTHON.exists():
        return None
    return f"SageMaker SDK local mode: no {SDK_PYTHON.relative_to(REPO)}; run `make docker-sagemaker-sdk`"


def sdk_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an SDK child: its telemetry off in the config files it reads too
    (`sdk_session.py` gives the session the same opt-out), every AWS endpoint and any HTTPS on a
    closed loopback port, so nothing it does can leave this machine; docker's socket is local."""
    config = tmp_path / "sagemaker-config.json"  # YAML is a superset of JSON
    config.write_text(
        json.dumps(
            {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
        )
    )
    closed = "http://127.0.0.1:9"
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))},
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
        "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(config),
        "AWS_ENDPOINT_URL": closed,
        "AWS_EC2_METADATA_DISABLED": "true",
        "HTTPS_PROXY": closed,
        "https_proxy": closed,
        "NO_PROXY": "localhost,127.0.0.1",
        "no_proxy": "localhost,127.0.0.1",
        "PYTHONPATH": "",
    }


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

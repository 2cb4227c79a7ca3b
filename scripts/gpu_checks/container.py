"""The trainer image under `docker run --gpus all`: its `python -m trainer.probe` must see the
GPU (on the CPU, the same run without `--gpus` must answer). No Docker engine, or no trainer
image on this machine, is a SKIPPED row, not a failure: the GPU machine that is lent has
neither, a workstation or a CI runner with the image built (`make docker-trainer-image`) runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from scripts.gpu_checks.common import OK, SKIPPED, Config, Row, maybe_fail

IMAGE_ENV = "AIFACTORY_TRAINER_IMAGE"
# what scripts/docker/build_images.py tags, then the Dockerfile's own example
CANDIDATES = ("local/aifactory-trainer:latest", "aifactory-trainer:latest")
PATH = "docker"


def _docker(docker: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([docker, *args], capture_output=True, text=True, timeout=timeout)


def find_image(docker: str, wanted: str | None) -> str | None:
    for image in [wanted] if wanted else CANDIDATES:
        if _docker(docker, "image", "inspect", image, timeout=60).returncode == 0:
            return image
    return None


def run(config: Config) -> Row:
    maybe_fail(config, "docker")
    docker = shutil.which("docker")
    if docker is None:
        return Row(PATH, SKIPPED, note="no Docker engine: the docker CLI is not on PATH")
    info = _docker(docker, "info", "--format", "{{.ServerVersion}}", timeout=60)
    if info.returncode != 0:
        return Row(PATH, SKIPPED, note=f"no Docker engine answers: {_last_line(info.stderr)}")
    wanted = config.trainer_image or os.environ.get(IMAGE_ENV)
    image = find_image(docker, wanted)
    if image is None:
        looked = wanted or ", ".join(CANDIDATES)
        return Row(PATH, SKIPPED, note=f"no trainer image ({looked}); make docker-trainer-image builds it")
    gpus = ["--gpus", "all"] if config.cuda else []
    command = ["run", "--rm", "--network", "none", *gpus, image, "python", "-m", "trainer.probe"]
    done = _docker(docker, *command, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(command)} exited {done.returncode}: {_last_line(done.stderr)}")
    probe = json.loads(done.stdout)
    software, devices = probe["software"], probe["devices"]
    if config.cuda and not (devices and software.get("cuda_version")):
        raise RuntimeError(f"the image sees no GPU under --gpus all: {probe}")
    measured = f"torch {software['torch_version']}, CUDA {software['cuda_version']}, {len(devices)} GPU(s)"
    note = f"docker run {'--gpus all ' if gpus else ''}{image} python -m trainer.probe"
    return Row(PATH, OK, measured, "probe answers" + (", sees the GPU" if gpus else ""), note, probe)


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"

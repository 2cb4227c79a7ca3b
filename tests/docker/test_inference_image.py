"""The real inference image on a real engine, as SageMaker hosting runs it: `docker run <image>
serve` with the checkpoint at /opt/ml/model, then the same under the SageMaker Python SDK's
local mode (`Model(..., predictor_cls=Predictor).deploy(instance_type="local")` and `predict`
on an image). Both must answer what the in-repo server answers for the same checkpoint and
image, so the image serves what the local platform serves.

`make test` (scripts/test-deps.sh) builds the image (`make docker-images`) and the SDK's virtualenv (`make
docker-sagemaker-sdk`); where either is missing, or no engine answers, the tests skip with one
line saying which and the command that fixes it. The SDK runs with its telemetry off and every
AWS endpoint on loopback (conftest.sdk_env, sdk_session.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.docker.conftest import (
    INFERENCE_IMAGE,
    SDK_PYTHON,
    docker,
    inference_skip_reason,
    sdk_env,
    sdk_missing,
)
from tests.servers import free_port

if reason := inference_skip_reason():
    pytest.skip(reason, allow_module_level=True)  # one line for the whole module

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(a one-epoch classification checkpoint the real trainer wrote, one of its images, and
    the in-repo server's answer for that image)."""
    from tests.inference.harness import InferenceServer, train_checkpoint

    root = tmp_path_factory.mktemp("inference-image")
    checkpoint, data_dir = train_checkpoint(root, "classification")
    image = sorted((Path(data_dir) / "images").iterdir())[0]
    if image.suffix.lower() not in (".jpg", ".jpeg"):
        from PIL import Image

        converted = root / "image.jpg"
        Image.open(image).convert("RGB").save(converted, quality=95)
        image = converted
    server = InferenceServer(checkpoint, root / "local-server.log")
    try:
        expected = server.post(data=image.read_bytes(), headers={"Content-Type": "image/jpeg"}).json()
    finally:
        server.stop()
    # What SageMaker copies to /opt/ml/model: the checkpoint directory as it is, on its own.
    model_dir = root / "model"
    shutil.copytree(checkpoint, model_dir)
    return model_dir, image, expected


def same_prediction(answer: dict, expected: dict) -> None:
    assert answer.get("result", "OK") == expected.get("result", "OK"), answer
    assert answer["classification"]["category"] == expected["classification"]["category"], (answer, expected)
    assert set(answer) == set(expected)


def test_the_image_serves_a_checkpoint_as_sagemaker_hosting_runs_it(checkpoint):
    model_dir, image, expected = checkpoint
    port = free_port()
    name = f"aifactory-serve-test-{port}"
    started = docker(
        "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8080",
        "-v", f"{model_dir}:/opt/ml/model:ro", "-e", "AIFACTORY_DEVICE=cpu", INFERENCE_IMAGE, "serve",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("no /ping answer in 180 s:\n" + docker("logs", name).stdout[-3000:])
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            data=image.read_bytes(),
            headers={"Content-Type": "image/jpeg"},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        same_prediction(answer.json(), expected)
    finally:
        docker("rm", "-f", name)


def sdk_containers() -> set[str]:
    return set(docker("ps", "-aq", "--filter", "name=algo-1").stdout.split())


def test_the_image_serves_under_the_sagemaker_sdk_local_mode(checkpoint, tmp_path):
    if reason := sdk_missing():
        pytest.skip(reason)
    model_dir, image, expected = checkpoint
    before = sdk_containers()
    try:
        done = subprocess.run(
            [str(SDK_PYTHON), str(Path(__file__).with_name("sagemaker_local_serving.py")), INFERENCE_IMAGE,
             str(model_dir), str(image), str(free_port())],
            capture_output=True, text=True, timeout=600, cwd=tmp_path, env=sdk_env(tmp_path),
        )  # fmt: skip
    finally:  # delete_endpoint stops the container; one a failure left behind goes here
        for container in sdk_containers() - before:
            docker("rm", "-f", container)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    same_prediction(json.loads(done.stdout.strip().splitlines()[-1]), expected)
    assert "sm-pysdk-t-" not in done.stdout + done.stderr  # no telemetry request was even logged

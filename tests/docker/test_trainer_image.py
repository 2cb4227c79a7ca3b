"""Jobs trained through the API in the real trainer image on a real engine, as SageMaker runs
it: `docker run <image> train`, /opt/ml's subdirectories mounted, SIGTERM on stop.

The image's Python is Debian's, the API's is not: `environment.json`, which the trainer
writes from inside, names the interpreter that trained, so each test proves where it ran.
"""

from __future__ import annotations

import io
import json
import platform
import subprocess
import tarfile
import time
from pathlib import Path

import docker as docker_sdk
import pytest

from chalicelib.adapters.local.training_platform import LocalTrainingPlatform
from chalicelib.ports import TrainingRequest
from contracts.job_config import DataSource, JobConfig
from tests.builders import DATASET_SECRET, create_payload, fast_tagger_hyperparameters
from tests.dataset_fetcher.loopback import DatasetServer as LoopbackDataset
from tests.docker.conftest import BASE_IMAGE, SDK_PYTHON, docker, sdk_env, sdk_missing, skip_reason
from tests.servers import CallbackServer, tagging_records, topic_records

if reason := skip_reason():
    pytest.skip(reason, allow_module_level=True)  # one line for the whole module

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
V = "/api/v1.5.0"


def DatasetServer(records, **options):
    return LoopbackDataset(records, header=("x-api-key", DATASET_SECRET), reply="data", **options)


def image_python(image: str) -> str:
    done = docker("run", "--rm", image, "python", "-c", "import platform; print(platform.python_version())")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def create(api, engine, callback, dataset, **kwargs) -> str:
    payload = create_payload(callback=callback.url, dataset=dataset.url, **kwargs)
    payload["training_model"]["image"] = engine
    status, body = api.call("POST", "/create_training_job", payload)
    assert status == 200, body
    return body["job_name"]


def wait_status(api, name, wanted, timeout=300) -> str:
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status = api.call("POST", "/status", {"job_name": name})[1]["status"]
        if status in wanted:
            return status
        time.sleep(0.5)
    raise AssertionError(f"{name} still {status}, wanted {wanted}")


def state_of(api, name) -> dict:
    return json.loads((api.home / "training" / name / "state.json").read_text())


def trained_in(api, engine, name) -> None:
    """The job's trainer ran in the image's container, not the API's interpreter."""
    assert state_of(api, name)["trainer_container"] == name
    found = list(api.home.glob("artifacts/**/environment.json"))
    assert found, "the trainer wrote no environment.json"
    recorded = json.loads(found[0].read_text())["software"]["python_version"]
    assert recorded == image_python(engine)
    assert docker("ps", "-aq", "--filter", f"name=^{name}$").stdout.strip() == ""  # --rm: nothing left


def test_tagger_job_trains_in_the_image(api, engine):
    if image_python(engine) == platform.python_version():
        pytest.fail("the image's Python equals the API's: this test could not tell where training ran")
    with DatasetServer(tagging_records(300)) as dataset, CallbackServer() as callback:
        name = create(api, engine, callback, dataset, hyperparameters=fast_tagger_hyperparameters(steps=60))
        assert wait_status(api, name, ("Completed", "Failed")) == "Completed"
        body = callback.wait(1)[0]["body"]
    assert body["status"] == "Completed" and body["task_def"] == "ml_tagger"
    assert float(body["log"]["avg"]["f1-score"]) > 0.6  # chance is ~0.25 over 4 tags
    status, model = api.call("GET", body["model"].replace(api.url, ""), raw=True)
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(model)) as tar:
        assert "model.safetensors" in tar.getnames()
    trained_in(api, engine, name)


def test_topic_job_trains_in_the_image(api, engine):
    with DatasetServer(topic_records(200)) as dataset, CallbackServer() as callback:
        name = create(
            api,
            engine,
            callback,
            dataset,
            task_def="ml_topic",
            hyperparameters=fast_tagger_hyperparameters(steps=40),
        )
        assert wait_status(api, name, ("Completed", "Failed")) == "Completed"
        body = callback.wait(1)[0]["body"]
    assert body["task_def"] == "ml_topic" and len(body["log"]["details"]) == 3
    trained_in(api, engine, name)


def test_failure_file_written_in_the_container_is_the_failure_reason(api, engine):
    with (
        DatasetServer(tagging_records(300), always_fail={100: 403}) as dataset,
        CallbackServer() as callback,
    ):
        name = create(api, engine, callback, dataset, hyperparameters=fast_tagger_hyperparameters(steps=40))
        assert wait_status(api, name, ("Completed", "Failed")) == "Failed"
        body = callback.wait(1)[0]["body"]
    failure = (api.home / "training" / name / "opt_ml" / "output" / "failure").read_text()
    assert "offset 100" in failure and "403" in failure
    assert body["FailureReason"] == failure.strip()[: len(body["FailureReason"])]
    assert state_of(api, name)["exit_code"] != 0
    trained_in(api, engine, name)


def test_stop_sends_sigterm_to_the_container(api, engine):
    with DatasetServer(tagging_records(300)) as dataset, CallbackServer() as callback:
        name = create(
            api, engine, callback, dataset, hyperparameters=fast_tagger_hyperparameters(steps=100000)
        )
        deadline = time.time() + 180
        while not list(api.home.glob("artifacts/**/progress.json")) and time.time() < deadline:
            time.sleep(0.5)
        status, body = api.call("POST", "/stop_training_job", {"job_name": name})
        assert status == 200 and body["status"] == "success"
        assert wait_status(api, name, ("Stopped",), timeout=120) == "Stopped"
        assert callback.wait(1)[0]["body"]["status"] == "Stopped"
    log = (api.home / "training" / name / "trainer.log").read_text()
    assert "SIGTERM received" in log, log[-2000:]  # the trainer in the container got it
    trained_in(api, engine, name)


def test_classification_job_trains_in_the_image(api, engine, tmp_path):
    from trainer.vision.synthetic import generate

    data_dir = Path(generate(tmp_path / "cls", "classification", num_images=24, image_size=32, num_classes=2))
    form = {
        "task": "classification",
        "algorithm": "resnet18",
        "pretrained": "False",
        "batch_size": "8",
        "image_resized_width": "32",
        "image_resized_height": "32",
        "num_workers": "0",
        "num_epochs_to_finish": "1",
        "num_batches_to_display": "1",
        "data_dir": str(data_dir),
    }
    status, body = api.call("POST", f"{V}/train", form=form)
    assert status == 200 and body["result"] == "OK", body
    job_id = body["job_id"]
    deadline = time.time() + 300
    while time.time() < deadline:
        body = api.call("GET", f"{V}/train/{job_id}")[1]
        if body["status"] in ("finished", "exception"):
            break
        time.sleep(0.5)
    assert body["status"] == "finished", body
    assert body["epoch"] == body["total_epoch"] == 1
    status, found = api.call("GET", f"{V}/train/{job_id}/checkpoints")
    assert [c["epoch"] for c in found["checkpoints"]] == [1]
    names = [p.name for p in (api.home / "training").iterdir() if p.is_dir()]
    assert len(names) == 1
    trained_in(api, engine, names[0])


# Stop on a real engine for a container that ignores SIGTERM (the trainer image stops cleanly,
# above): an image whose `train` notes SIGTERM in /opt/ml/output and keeps running, built here
# in seconds on the local base. SageMaker's StopTrainingJob kills it after the grace period.
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
        JobConfig(
            job_id=name, task="none", artifact_uri=str(artifacts), data=DataSource(type="none")
        ).to_json()
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


# The same image under the SageMaker Python SDK's local mode: the SDK's own `docker run <image>
# train` (docker compose, /opt/ml/input written by the SDK, /opt/ml/model packed by it). The SDK
# lives in its own virtualenv (`make docker-sagemaker-sdk`), driven as a child process.
SDK_CLASSIFICATION = {
    "task": "classification",
    "algorithm": "resnet18",
    "pretrained": False,
    "num_frozen_levels": 0,
    "needs_freeze_bn": True,
    "image_resized_width": 32,
    "image_resized_height": 32,
    "image_min_side": -1,
    "image_max_side": -1,
    "eval_center_crop_ratio": 1,
    "learning_rate": 0.01,
    "num_epochs_to_finish": 1,
    "batch_size": 4,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "step_lr_sizes": [],
    "step_lr_gamma": 0.1,
    "clip_grad_base_and_max": ["norm", 10.0],
    "num_batches_to_display": 1,
    "num_epochs_to_validate": 1,
    "max_num_checkpoints": 5,
    "num_workers": 0,
    "visible_devices": [],
}


def sdk_containers() -> set[str]:
    return set(docker("ps", "-aq", "--filter", "name=algo-1").stdout.split())


def run_sdk(engine, config, data_dir, output, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SDK_PYTHON), str(Path(__file__).with_name("sagemaker_local_mode.py")), engine, str(config),
         str(data_dir), str(output)],
        capture_output=True, text=True, timeout=900, cwd=cwd, env=sdk_env(Path(cwd)),
    )  # fmt: skip


def test_the_image_trains_under_the_sagemaker_sdk_local_mode(engine, tmp_path):
    if reason := sdk_missing():
        pytest.skip(reason)
    from trainer.vision.synthetic import generate

    data_dir = generate(tmp_path / "data", "classification", num_images=16, image_size=32, num_classes=2)
    config = tmp_path / "config"
    config.mkdir()
    job = {
        "format_version": 2,
        "job_id": "20261130000000-sdk-local-mode",
        "job_name": "aifactory-sdk-local",
        "api": "v1.5",
        "task": "classification",
        "attempt": 1,
        "hyperparameters": SDK_CLASSIFICATION,
        "data": {"type": "data_dir", "channel": "training"},
        "artifacts": {"uri": "/opt/ml/model/artifacts"},  # packed into model.tar.gz by the SDK
        "finetune": None,
    }
    (config / "job.json").write_text(JobConfig.from_dict(job).to_json())  # as the API writes it
    output = tmp_path / "output"
    output.mkdir()
    before = sdk_containers()
    try:
        done = run_sdk(engine, config, data_dir, output, tmp_path)
    finally:  # local mode leaves its exited algo-1 container behind
        for container in sdk_containers() - before:
            docker("rm", "-f", container)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    model = Path(result["model_data"].removeprefix("file://"))
    with tarfile.open(model) as tar:
        names = tar.getnames()
        progress = json.load(tar.extractfile("artifacts/progress.json"))
    assert progress["status"] == "finished" and progress["epoch"] == progress["total_epoch"] == 1
    assert {"model.safetensors", "artifacts/result.json", "artifacts/environment.json"} <= set(names), names

"""Managed spot on the local platform: an interruption kills every trainer mid-run (no grace,
like a reclaimed instance) and the runner starts them again; training resumes from the last
checkpoint, and no epoch or step is lost or counted twice. One callback, once it ends."""

from __future__ import annotations

import json
import re
import time

import pytest
from trainer.vision import synthetic

from chalicelib.adapters.local.training_platform import LocalTrainingPlatform
from chalicelib.errors import Conflict
from tests.builders import DATASET_SECRET, create_payload, fast_tagger_hyperparameters
from tests.dataset_fetcher.loopback import DatasetServer
from tests.distributed.conftest import submit, trainer_logs, wait_terminal, wait_until
from tests.servers import ApiServer, CallbackServer, tagging_records
from tests.trainer.test_vision_train import CLASSIFICATION


def progress_of(artifacts) -> dict:
    path = artifacts / "progress.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_an_interrupted_classifier_resumes_after_its_last_epoch(platform, tmp_path):
    data = synthetic.generate(
        tmp_path / "data", "classification", num_images=60, image_size=32, num_classes=2, seed=0
    )
    hp = {**CLASSIFICATION, "num_epochs_to_finish": 4, "max_num_checkpoints": 5}
    job = {
        "api": "v1.5",
        "task": "classification",
        "hyperparameters": hp,
        "data": {"type": "data_dir", "channel": "training"},
    }
    artifacts = submit(platform, tmp_path, "spot", job, data_uri=str(data), use_spot=True)
    # Mid-epoch 2 or later, with epoch 1's checkpoint on disk: the epoch in flight is lost.
    wait_until(
        lambda: (
            (artifacts / "checkpoints" / "epoch-1" / "train_state.pt").exists()
            and progress_of(artifacts).get("epoch", 0) >= 2
            and 0 < progress_of(artifacts).get("batch", 0) < progress_of(artifacts).get("total_batch", 0)
        ),
        interval=0.05,
    )
    platform.interrupt("spot")
    description = wait_terminal(platform, "spot")
    logs = trainer_logs(platform, "spot")
    assert description.status == "Completed", (description.failure_reason, logs)

    [resumed] = re.findall(r"resuming after epoch (\d+)", logs)  # one restart, from a checkpoint
    assert (artifacts / "checkpoints" / f"epoch-{resumed}").is_dir()
    epochs = sorted(int(p.name.split("-")[1]) for p in (artifacts / "checkpoints").glob("epoch-*"))
    assert epochs == [1, 2, 3, 4]  # none lost
    progress = progress_of(artifacts)
    assert (progress["status"], progress["epoch"], progress["batch"]) == (
        "finished",
        4,
        progress["total_batch"],
    )
    losses = json.loads((artifacts / "losses.json").read_text())
    assert len(losses) == 4 * (progress["total_batch"] // 2)  # none counted twice
    state = platform.read_state("spot")
    assert state["interruptions"] == 1 and state["secondary_status"] == "Completed"
    assert description.billable_seconds >= 1


def test_only_a_running_spot_job_can_be_interrupted(platform, tmp_path):
    job = {"api": "v1.5", "task": "no_such_task", "hyperparameters": {}, "data": {"type": "none"}}
    submit(platform, tmp_path, "on-demand", job)
    with pytest.raises(Conflict, match="does not use spot capacity"):
        platform.interrupt("on-demand")
    wait_terminal(platform, "on-demand")
    submit(platform, tmp_path, "ended", job, use_spot=True)
    wait_terminal(platform, "ended")
    with pytest.raises(Conflict, match="no running trainer to interrupt \\(status Failed\\)"):
        platform.interrupt("ended")


@pytest.fixture
def api(tmp_path):
    server = ApiServer(
        tmp_path / "home",
        extra_env={
            "AIFACTORY_CALLBACK_BACKOFF_SECONDS": "0.2",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        },
    )
    with server:
        yield server
    server.kill_jobs()


def test_an_interrupted_spot_tagger_resumes_from_its_checkpoint_and_calls_back_once(api):
    steps, display = 200, 10
    hps = fast_tagger_hyperparameters(
        steps=steps,
        **{"process.train.displaySteps": str(display), "process.train.keepCheckpointMax": "20"},
    )
    records = tagging_records(400)
    with (
        DatasetServer(records, header=("x-api-key", DATASET_SECRET), reply="data") as dataset,
        CallbackServer() as callback,
    ):
        payload = create_payload(callback=callback.url, dataset=dataset.url, hyperparameters=hps)
        payload["training_model"]["resource"]["EnableManagedSpotTraining"] = True
        status, body = api.call("POST", "/create_training_job", payload)
        assert status == 200, body
        name = body["job_name"]
        [artifacts] = wait_until(lambda: list(api.home.glob("artifacts/jobs/*/")))
        wait_until(lambda: (artifacts / "checkpoints" / "step-40").exists(), interval=0.05)
        LocalTrainingPlatform(api.home).interrupt(name)
        [call] = callback.wait(1)
        time.sleep(2)  # a second callback would come within the sweep's interval
        calls = list(callback.calls)
    assert len(calls) == 1
    assert call["body"]["status"] == "Completed" and call["body"]["BillableTimeInSeconds"] >= 1
    logs = (api.home / "training" / name / "trainer.log").read_text()
    [resumed] = re.findall(r"Resuming from checkpoint \S+ at step (\d+)", logs)
    saved = [int(s) for s in re.findall(r"Saved checkpoint \S+step-(\d+)", logs)]
    assert int(resumed) >= 40 and int(resumed) in saved
    assert saved == list(range(20, steps + 1, 20))  # every save point once: none lost, none repeated
    assert len(json.loads((artifacts / "losses.json").read_text())) == steps // display
    progress = json.loads((artifacts / "progress.json").read_text())
    assert progress["status"] == "finished" and progress["batch"] == progress["total_batch"] == steps
    state = json.loads((api.home / "training" / name / "state.json").read_text())
    assert state["interruptions"] == 1

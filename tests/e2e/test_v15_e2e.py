"""The v1.5 training API end to end over HTTP on the local platform: real vision training
from scratch on tiny synthetic data sets."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from tests.servers import ApiServer

pytestmark = pytest.mark.e2e
V = "/api/v1.5.0"
TINY_CLASSIFICATION = {
    "task": "classification",
    "algorithm": "resnet18",
    "pretrained": "False",
    "batch_size": "8",
    "image_resized_width": "32",
    "image_resized_height": "32",
    "num_workers": "0",
    "learning_rate": "0.01",
    "num_batches_to_display": "2",
    "aug_hflip_prob": "0.5",
    "needs_freeze_bn": "True",  # learns the colour cue fastest
    "clip_grad_base_and_max": "('norm', 5.0)",  # without BatchNorm statistics, keeps a step from collapsing it
}
TINY_DETECTION = {
    "task": "detection",
    "algorithm": "faster_rcnn",
    "backbone": "resnet18",
    "backbone_pretrained": "False",
    "batch_size": "2",
    "image_min_side": "64",
    "image_max_side": "96",
    "anchor_sizes": "[16, 32, 64]",
    "num_epochs_to_finish": "2",
    "num_workers": "0",
    "train_rpn_pre_nms_top_n": "200",
    "train_rpn_post_nms_top_n": "50",
    "eval_rpn_pre_nms_top_n": "100",
    "eval_rpn_post_nms_top_n": "50",
    "num_batches_to_display": "2",
}
TINY_SEGMENTATION = {
    "task": "instance_segmentation",
    "algorithm": "mask_rcnn",
    "backbone_pretrained": "False",
    "batch_size": "2",
    "image_min_side": "64",
    "image_max_side": "96",
    "num_epochs_to_finish": "1",
    "num_workers": "0",
    "train_rpn_pre_nms_top_n": "200",
    "train_rpn_post_nms_top_n": "50",
    "eval_rpn_pre_nms_top_n": "100",
    "eval_rpn_post_nms_top_n": "50",
}


def generate(root: Path, task: str, **kwargs) -> str:
    from trainer.vision.synthetic import generate as make

    return str(make(root, task, **kwargs))


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("v15") / "home"
    with ApiServer(home, extra_env={"AIFACTORY_MAX_CONCURRENT_JOBS": "2"}) as server:
        yield server
    server.kill_jobs()


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "classification": generate(
            root / "cls", "classification", num_images=60, image_size=32, num_classes=3
        ),
        "detection": generate(root / "det", "detection", num_images=8, image_size=64),
        "instance_segmentation": generate(root / "seg", "instance_segmentation", num_images=6, image_size=64),
    }


def train(api, form) -> str:
    status, body = api.call("POST", f"{V}/train", form=form)
    assert status == 200, body
    assert body["result"] == "OK"
    return body["job_id"]


def monitor(api, job_id) -> dict:
    status, body = api.call("GET", f"{V}/train/{job_id}")
    assert status == 200, body
    return body


def wait_for(api, job_id, statuses, timeout=300, condition=None) -> dict:
    deadline = time.time() + timeout
    body = {}
    while time.time() < deadline:
        body = monitor(api, job_id)
        if body["status"] in statuses and (condition is None or condition(body)):
            return body
        if body["status"] == "exception" and "exception" not in statuses:
            raise AssertionError(f"job failed: {body['exception']}")
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {body.get('status')} after {timeout}s: {body}")


def checkpoints(api, job_id) -> list[dict]:
    status, body = api.call("GET", f"{V}/train/{job_id}/checkpoints")
    assert status == 200, body
    return body["checkpoints"]


@pytest.fixture(scope="module")
def finished_classification(api, datasets):
    job_id = train(
        api,
        {
            **TINY_CLASSIFICATION,
            "data_dir": datasets["classification"],
            "num_epochs_to_finish": "4",
            "max_num_checkpoints": "2",
        },
    )
    wait_for(api, job_id, ("finished",))
    return job_id


def test_version_is_text(api):
    status, body = api.call("GET", "/api/version")
    assert (status, body) == (200, "v1.5.0")


def test_environment_and_devices_describe_this_machine(api):
    status, body = api.call("GET", f"{V}/environment")
    assert status == 200 and body["result"] == "OK"
    assert body["environment"]["software"]["python_version"].startswith("3.")
    assert isinstance(body["environment"]["hardware"]["devices"], list)
    status, body = api.call("GET", f"{V}/devices")
    assert status == 200 and body == {"result": "OK", "devices": body["devices"]}


def test_classification_job_finishes_and_learns(api, finished_classification):
    job_id = finished_classification
    body = monitor(api, job_id)
    assert body["status"] == "finished" and body["exception"] is None
    assert body["epoch"] == body["total_epoch"] == 4 and body["eta_hr"] == 0
    assert body["batch"] == body["total_batch"] > 0 and body["samples_per_sec"] > 0
    found = checkpoints(api, job_id)
    assert [c["epoch"] for c in found] == [1, 2, 3, 4]
    assert sum(c["is_best"] for c in found) == 1
    best = max(found, key=lambda c: c["accuracy"])
    # max_num_checkpoints=2 pruned the rest but the best
    assert [c["epoch"] for c in found if c["is_available"]] == sorted({3, 4, best["epoch"]})
    assert best["is_best"] == 1 and best["accuracy"] >= 0.7  # 3 classes: chance is 0.33
    status, detail = api.call("GET", f"{V}/train/{job_id}/checkpoints/epoch/4")
    checkpoint = detail["checkpoint"]
    assert set(checkpoint) == {
        "epoch",
        "avg_loss",
        "metrics",
        "base64_metric_plot",
        "is_best",
        "is_available",
    }
    assert set(checkpoint["metrics"]["overall"]) == {
        "accuracy",
        "avg_recall",
        "avg_precision",
        "avg_f1_score",
    }
    specific = checkpoint["metrics"]["specific"]
    assert specific["categories"][0] == "mean" and len(specific["categories"]) == 4
    assert all(len(specific[k]) == 4 for k in ("aucs", "sensitivities", "specificities"))
    assert base64.b64decode(checkpoint["base64_metric_plot"])[:2] == b"\xff\xd8"  # a JPEG
    status, losses = api.call("GET", f"{V}/train/{job_id}/losses")
    assert losses["result"] == "OK" and len(losses["losses"]) >= 4
    status, hp = api.call("GET", f"{V}/train/{job_id}/hyper-parameters")
    assert list(hp["hyper-parameters"]) == [
        "image_resized_width",
        "image_resized_height",
        "image_min_side",
        "image_max_side",
        "batch_size",
        "learning_rate",
        "momentum",
        "weight_decay",
        "step_lr_sizes",
        "step_lr_gamma",
        "num_epochs_to_validate",
        "num_epochs_to_finish",
        "pretrained",
        "num_frozen_levels",
        "eval_center_crop_ratio",
    ]
    assert hp["hyper-parameters"]["batch_size"] == 8 and hp["hyper-parameters"]["pretrained"] is False


def test_detection_job_finishes_with_per_class_metrics(api, datasets):
    job_id = train(api, {**TINY_DETECTION, "data_dir": datasets["detection"]})
    wait_for(api, job_id, ("finished",), timeout=400)
    found = checkpoints(api, job_id)
    assert [c["epoch"] for c in found] == [1, 2] and all("mean_ap" in c for c in found)
    status, detail = api.call("GET", f"{V}/train/{job_id}/checkpoints/epoch/2")
    specific = detail["checkpoint"]["metrics"]["specific"]
    assert detail["checkpoint"]["metrics"]["overall"] == {}
    assert specific["categories"] == ["mean", "red", "green"]
    for key in ("aps", "f1_scores", "precisions", "recalls", "accuracies"):
        assert len(specific[key]) == 3
    status, hp = api.call("GET", f"{V}/train/{job_id}/hyper-parameters")
    assert hp["hyper-parameters"]["anchor_sizes"] == [16, 32, 64]


def test_instance_segmentation_job_finishes_with_mask_ap(api, datasets):
    job_id = train(api, {**TINY_SEGMENTATION, "data_dir": datasets["instance_segmentation"]})
    wait_for(api, job_id, ("finished",), timeout=500)
    status, detail = api.call("GET", f"{V}/train/{job_id}/checkpoints/epoch/1")
    specific = detail["checkpoint"]["metrics"]["specific"]
    assert set(specific) == {"categories", "aps"} and specific["categories"][0] == "mean"
    assert len(specific["aps"]) == len(specific["categories"])


def test_stop_then_restore_resumes_without_retraining_an_epoch(api, datasets):
    job_id = train(
        api, {**TINY_CLASSIFICATION, "data_dir": datasets["classification"], "num_epochs_to_finish": "40"}
    )
    wait_for(api, job_id, ("running",), condition=lambda b: b["epoch"] >= 3)
    status, body = api.call("PATCH", f"{V}/train/{job_id}")
    assert (status, body) == (200, {"result": "OK"})
    stopped = wait_for(api, job_id, ("stopped",), timeout=120)
    status, body = api.call("PATCH", f"{V}/train/{job_id}")
    assert body == {"result": "Error", "message": "Job is not under tracking."}
    done = [c["epoch"] for c in checkpoints(api, job_id)]
    assert done == list(range(1, len(done) + 1)) and len(done) >= 2
    metrics_dir = api.home / "artifacts" / "jobs" / job_id / "checkpoints"
    before = {e: (metrics_dir / f"epoch-{e}" / "metrics.json").stat().st_mtime_ns for e in done}
    losses_before = api.call("GET", f"{V}/train/{job_id}/losses")[1]["losses"]
    status, body = api.call("PUT", f"{V}/train/{job_id}")
    assert (status, body) == (200, {"result": "OK"})
    assert stopped["total_epoch"] == 40
    deadline = time.time() + 120
    while len(checkpoints(api, job_id)) <= len(done) and time.time() < deadline:
        time.sleep(0.3)
    api.call("PATCH", f"{V}/train/{job_id}")
    wait_for(api, job_id, ("stopped",), timeout=120)
    after = [c["epoch"] for c in checkpoints(api, job_id)]
    assert after == list(range(1, len(after) + 1)) and len(after) > len(done)
    assert {e: (metrics_dir / f"epoch-{e}" / "metrics.json").stat().st_mtime_ns for e in done} == before
    losses_after = api.call("GET", f"{V}/train/{job_id}/losses")[1]["losses"]
    assert losses_after[: len(losses_before)] == losses_before
    status, body = api.call("DELETE", f"{V}/train/{job_id}")
    assert (status, body) == (200, {"result": "OK"})


def test_restore_of_a_job_that_is_not_stopped_is_refused(api, finished_classification):
    status, body = api.call("PUT", f"{V}/train/{finished_classification}")
    assert body == {"result": "Error", "message": "Job is not stopped."}


def test_finetune_from_another_jobs_checkpoint(api, datasets, finished_classification):
    # A learning rate too small to move the weights in one epoch (and frozen BatchNorm, inherited):
    # the fine-tuned model scores what the source checkpoint scored, so it started from it.
    available = [c for c in checkpoints(api, finished_classification) if c["is_available"]]
    source = max(available, key=lambda c: c["accuracy"])
    assert source["accuracy"] > 0.5, available  # well above chance (0.33), so equal scores mean something
    job_id = train(
        api,
        {
            "finetune_job_id_and_epoch": f'("{finished_classification}", {source["epoch"]})',
            "data_dir": datasets["classification"],
            "learning_rate": "0.000001",
            "num_epochs_to_finish": "1",
        },
    )
    wait_for(api, job_id, ("finished",))
    found = checkpoints(api, job_id)
    assert [c["epoch"] for c in found] == [1]
    assert abs(found[0]["accuracy"] - source["accuracy"]) <= 0.05, (found, source)
    hp = api.call("GET", f"{V}/train/{job_id}/hyper-parameters")[1]["hyper-parameters"]
    assert hp["learning_rate"] == 0.000001 and hp["batch_size"] == 8 and hp["pretrained"] is False


def test_resume_from_an_epoch_continues_the_epoch_count(api, finished_classification):
    job_id = train(
        api, {"resume_job_id_and_epoch": f'("{finished_classification}", 4)', "num_epochs_to_finish": "5"}
    )
    wait_for(api, job_id, ("finished",))
    found = checkpoints(api, job_id)
    assert [c["epoch"] for c in found] == [1, 2, 3, 4, 5]  # the source's history, then epoch 5
    assert [c["is_available"] for c in found] == [0, 0, 0, 1, 1]
    source_dir = api.home / "artifacts" / "jobs" / finished_classification / "checkpoints"
    own_dir = api.home / "artifacts" / "jobs" / job_id / "checkpoints"
    assert (own_dir / "epoch-4" / "model.safetensors").read_bytes() == (
        source_dir / "epoch-4" / "model.safetensors"
    ).read_bytes()  # resumed from it, not retrained
    status, body = api.call(
        "POST",
        f"{V}/train",
        form={"resume_job_id_and_epoch": f'("{finished_classification}", 4)', "learning_rate": "0.5"},
    )
    assert status == 400 and "'learning_rate'" in body["message"] and "resuming" in body["message"]


def test_clear_removes_a_finished_job(api, datasets):
    job_id = train(
        api, {**TINY_CLASSIFICATION, "data_dir": datasets["classification"], "num_epochs_to_finish": "1"}
    )
    status, body = api.call("DELETE", f"{V}/train/{job_id}")
    assert body == {"result": "Error", "message": "Job is not stopped."}
    wait_for(api, job_id, ("finished",))
    status, body = api.call("DELETE", f"{V}/train/{job_id}")
    assert (status, body) == (200, {"result": "OK"})
    status, body = api.call("GET", f"{V}/train/{job_id}")
    assert (status, body) == (404, {"result": "Error", "message": "Job not found."})
    assert not (api.home / "artifacts" / "jobs" / job_id).exists()


def test_corrupt_image_shows_exception_e04(api, tmp_path):
    root = Path(generate(tmp_path / "bad", "classification", num_images=12, image_size=32))
    victim = sorted((root / "images").iterdir())[0]
    victim.write_bytes(b"this is not a jpeg")
    job_id = train(api, {**TINY_CLASSIFICATION, "data_dir": str(root), "num_epochs_to_finish": "1"})
    body = wait_for(api, job_id, ("exception",))
    assert body["exception"]["code"] == "E04"
    assert body["exception"]["type"] == "FileNotFoundError"
    assert victim.name in body["exception"]["message"]
    assert body["exception"]["traceback"].startswith("Traceback")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"task": "classification", "data_dir": "/no/such/dir", "algorithm": "resnet18"}, "data_dir"),
        ({"task": "classification", "algorithm": "resnet18"}, "data_dir"),
        ({"task": "segmentation", "data_dir": "/tmp", "algorithm": "resnet18"}, "task"),
        ({"task": "classification", "data_dir": "/tmp", "algorithm": "vgg16"}, "algorithm"),
        (
            {"task": "classification", "data_dir": "/tmp", "algorithm": "resnet18", "batch_size": "0"},
            "batch_size",
        ),
        ({"resume_job_id_and_epoch": '("no-such-job", 1)'}, "resume_job_id_and_epoch"),
    ],
)
def test_bad_train_requests_are_rejected_over_http(api, form, field):
    jobs_dir = api.home / "artifacts" / "jobs"
    before = set(jobs_dir.iterdir()) if jobs_dir.exists() else set()
    status, body = api.call("POST", f"{V}/train", form=form)
    assert status == 400 and body["result"] == "Error" and f"'{field}'" in body["message"], body
    assert (set(jobs_dir.iterdir()) if jobs_dir.exists() else set()) == before  # nothing half-made


def test_unknown_job_routes_say_job_not_found(api):
    for path in ("", "/hyper-parameters", "/losses", "/checkpoints", "/checkpoints/epoch/1"):
        status, body = api.call("GET", f"{V}/train/nope{path}")
        assert (status, body) == (404, {"result": "Error", "message": "Job not found."}), path
    assert api.call("PUT", f"{V}/train/nope")[1] == {"result": "Error", "message": "Job not found."}
    assert api.call("DELETE", f"{V}/train/nope")[1] == {"result": "Error", "message": "Job not found."}
    assert api.call("PATCH", f"{V}/train/nope")[1] == {
        "result": "Error",
        "message": "Job is not under tracking.",
    }

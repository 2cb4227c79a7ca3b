"""The serving half of the v1.5 API end to end over HTTP on the local platform: plots, tools,
deploy -> infer -> infer_multiple -> undeploy for every task, an API restart with a live
deployment, and upgrade of a job in an older layout. Real tiny models, real model servers."""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path

import pytest

from chalicelib.adapters.local.job_store import SqliteJobStore
from tests.e2e.test_v15_e2e import (
    TINY_CLASSIFICATION,
    TINY_DETECTION,
    TINY_SEGMENTATION,
    generate,
    train,
    wait_for,
)
from tests.servers import ApiServer

pytestmark = pytest.mark.e2e
V = "/api/v1.5.0"
FORMS = {
    "classification": {**TINY_CLASSIFICATION, "num_epochs_to_finish": "2"},
    "detection": {**TINY_DETECTION, "num_epochs_to_finish": "1", "learning_rate": "0.0005"},
    "instance_segmentation": {**TINY_SEGMENTATION, "learning_rate": "0.0005"},
}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("serving") / "home"


@pytest.fixture(scope="module")
def api(home):
    server = ApiServer(home, extra_env={"AIFACTORY_MAX_CONCURRENT_JOBS": "3"}).start()
    yield server
    server.stop()
    server.kill_jobs()
    import psutil

    for process in psutil.process_iter(["cmdline"]):  # model servers outlive the API on purpose
        if str(home) in " ".join(process.info["cmdline"] or []):
            process.kill()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "classification": generate(
            root / "cls", "classification", num_images=24, image_size=32, num_classes=2
        ),
        "detection": generate(root / "det", "detection", num_images=6, image_size=64),
        "instance_segmentation": generate(root / "seg", "instance_segmentation", num_images=6, image_size=64),
    }


@pytest.fixture(scope="module")
def trained(api, data):
    ids = {task: train(api, {**form, "data_dir": data[task]}) for task, form in FORMS.items()}
    for job_id in ids.values():
        wait_for(api, job_id, ("finished",), timeout=600)
    return ids


def images_of(data_dir: str) -> list[Path]:
    return sorted(p for p in (Path(data_dir) / "images").iterdir() if p.suffix in (".jpg", ".png"))


def ok(api, method, path, form=None):
    status, body = api.call(method, path, form=form)
    assert status == 200 and body["result"] == "OK", (status, body)
    return body


def error(api, method, path, form=None, expected=400):
    status, body = api.call(method, path, form=form)
    assert status == expected and body["result"] == "Error", (status, body)
    return body["message"]


def wait_in_service(api, job_id, epoch, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        listed = ok(api, "GET", f"{V}/deploy/list")["deployments"]
        mine = [d for d in listed if d["job_id"] == job_id and d["epoch"] == epoch]
        assert mine, listed
        if mine[0]["status"] == "InService":
            return
        assert mine[0]["status"] == "Creating", mine[0]
        time.sleep(0.5)
    raise AssertionError("deployment did not come up")


def same_answer(a, b) -> bool:
    """Equal, floats up to 1e-4 (a batched forward rounds a little differently than a lone one)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_answer(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_answer(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b))
    return a == b


def is_jpeg(text: str) -> bool:
    return base64.b64decode(text).startswith(b"\xff\xd8\xff")


# --- plots -------------------------------------------------------------------------------------
def test_plots_of_a_classification_job(api, trained):
    job = trained["classification"]
    assert is_jpeg(ok(api, "GET", f"{V}/train/{job}/plots/model-graph")["base64_model_graph_plot"])
    assert is_jpeg(ok(api, "GET", f"{V}/train/{job}/plots/loss")["base64_loss_plot"])
    assert is_jpeg(
        ok(api, "GET", f"{V}/train/{job}/plots/confusion-matrix/epoch/2")["base64_confusion_matrix_plot"]
    )
    mean = ok(api, "GET", f"{V}/train/{job}/plots/threshold/epoch/2/class/0")["base64_threshold_plot"]
    first = ok(api, "GET", f"{V}/train/{job}/plots/threshold/epoch/2/class/1")["base64_threshold_plot"]
    assert is_jpeg(mean) and is_jpeg(first) and mean != first


def test_plot_errors_name_the_problem(api, trained):
    job = trained["classification"]
    assert "must be in [0, 2]" in error(api, "GET", f"{V}/train/{job}/plots/threshold/epoch/2/class/3")
    assert error(api, "GET", f"{V}/train/{job}/plots/confusion-matrix/epoch/9", expected=404) == (
        "Checkpoint of epoch 9 not found."
    )
    detection = trained["detection"]
    assert "no confusion matrix plot" in error(
        api, "GET", f"{V}/train/{detection}/plots/confusion-matrix/epoch/1"
    )
    assert error(api, "GET", f"{V}/train/nope/plots/loss", expected=404) == "Job not found."


# --- tools -------------------------------------------------------------------------------------
def test_summarize_and_visualize_a_checkpoint(api, trained):
    job = trained["classification"]
    summary = ok(api, "POST", f"{V}/summarize/{job}", {"task": "classification", "epoch": "2"})
    assert summary["flops"][-1] in "KMGT" and summary["params"].endswith("M")
    key = next(k for k in summary["param_keys"] if k.endswith("conv1.weight"))
    image = ok(
        api, "POST", f"{V}/visualize/{job}", {"task": "classification", "epoch": "2", "param_key": key}
    )
    assert is_jpeg(image["base64_image"])
    message = error(
        api, "POST", f"{V}/visualize/{job}", {"task": "classification", "epoch": "2", "param_key": "x.y"}
    )
    assert message == "Key 'x.y' does not exist"


def test_aug_preview_is_the_training_pipeline(api, data):
    from trainer.tools import jpeg_base64
    from trainer.vision.preview import preview

    from contracts import v15_arguments

    form = {"task": "detection", "data_dir": data["detection"], "index": "1", "aug_hflip_prob": "1",
            "aug_brightness_prob_and_min_max": "(1, (0.4, 0.4))", "image_min_side": "64", "image_max_side": "96"}  # fmt: skip
    body = ok(api, "POST", f"{V}/aug", form)
    expected = preview(
        data["detection"], "detection", 1, v15_arguments.resolve_preview_args("detection", form), 0
    )
    assert body["base64_aug_image"] == jpeg_base64(expected)  # the same pixels, the same encoder
    assert "out of range" in error(api, "POST", f"{V}/aug", {**form, "index": "999"})


# --- deploy / infer ------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["classification", "detection", "instance_segmentation"])
def test_deploy_infer_undeploy(api, trained, data, home, task):
    from inference.predict import Predictor

    job, epoch = trained[task], int(FORMS[task]["num_epochs_to_finish"])
    base = {"task": task, "epoch": str(epoch)}
    image = images_of(data[task])[0]
    encoded = base64.b64encode(image.read_bytes()).decode()
    not_deployed = error(api, "POST", f"{V}/infer/{job}", {**base, "base64_image": encoded}, expected=404)
    assert f"deploy it first with POST /api/v1.5.0/deploy/{job}" in not_deployed
    ok(api, "POST", f"{V}/deploy/{job}", {**base, "target_device_id": "-1"})
    assert "already exists" in error(
        api, "POST", f"{V}/deploy/{job}", {**base, "target_device_id": "-1"}, 409
    )
    wait_in_service(api, job, epoch)

    by_path = ok(
        api, "POST", f"{V}/infer/{job}", {**base, "path_to_image": str(image), "lower_prob_thresh": "0"}
    )
    by_bytes = ok(api, "POST", f"{V}/infer/{job}", {**base, "base64_image": encoded, "lower_prob_thresh": "0",
                                                    "returns_images": "False"})  # fmt: skip
    assert by_path["base64_images"] and all(is_jpeg(i) for i in by_path["base64_images"])
    assert "base64_images" not in by_bytes
    own = Predictor(home / "artifacts" / "jobs" / job / "checkpoints" / f"epoch-{epoch}", "cpu").predict(
        str(image), lower_prob_thresh=0.0, returns_images=False
    )
    assert same_answer(
        {k: v for k, v in by_bytes.items() if k != "result"}, {k: v for k, v in own.items() if k != "result"}
    )

    pattern = str(Path(data[task]) / "images" / "*")
    many = ok(api, "POST", f"{V}/infer_multiple/{job}", {**base, "path_to_image_pattern_list": f"[{pattern!r}, {str(image)!r}]",
                                                         "lower_prob_thresh": "0"})  # fmt: skip
    paths = [entry["path"] for entry in many["images"]]
    assert paths == [str(p) for p in images_of(data[task])] + [str(image)]
    assert same_answer(
        many["images"][0], {"path": str(image), **{k: v for k, v in by_bytes.items() if k != "result"}}
    )

    ok(api, "DELETE", f"{V}/deploy/{job}", {**base, "target_device_id": "-1"})
    assert all(d["job_id"] != job for d in ok(api, "GET", f"{V}/deploy/list")["deployments"])
    assert "is not deployed" in error(api, "POST", f"{V}/infer/{job}", {**base, "base64_image": encoded}, 404)


def test_bad_infer_arguments_are_named(api, trained, data):
    job = trained["classification"]
    image = images_of(data["classification"])[0]
    base = {"task": "classification", "epoch": "2"}
    both = {**base, "path_to_image": str(image), "base64_image": "aGk="}
    assert "exactly one of path_to_image and base64_image" in error(api, "POST", f"{V}/infer/{job}", both)
    assert "is not a JPEG or PNG image" in error(
        api, "POST", f"{V}/infer/{job}", {**base, "base64_image": "aGVsbG8="}
    )
    assert "not valid base64" in error(api, "POST", f"{V}/infer/{job}", {**base, "base64_image": "%%%"})
    assert "'lower_prob_thresh'" in error(
        api, "POST", f"{V}/infer/{job}", {**base, "base64_image": "aGk=", "lower_prob_thresh": "2"}
    )
    assert "'task'" in error(
        api, "POST", f"{V}/infer/{job}", {"task": "detection", "epoch": "2", "base64_image": "aGk="}
    )
    assert "'target_device_id'" in error(api, "POST", f"{V}/deploy/{job}", {**base, "target_device_id": "7"})
    assert "Checkpoint of epoch 5 not found." == error(
        api, "POST", f"{V}/deploy/{job}", {**base, "epoch": "5", "target_device_id": "-1"}, 404
    )


def test_a_deployment_survives_an_api_restart(api, trained, data):
    job = trained["classification"]
    base = {"task": "classification", "epoch": "1"}
    ok(api, "POST", f"{V}/deploy/{job}", {**base, "target_device_id": "-1"})
    wait_in_service(api, job, 1)
    api.stop()
    api.start()
    listed = ok(api, "GET", f"{V}/deploy/list")["deployments"]
    spec_fields = ("job_id", "epoch", "target_device_id", "status")  # the rest (memory) is beyond the spec
    mine = {"job_id": job, "epoch": 1, "target_device_id": -1, "status": "InService"}
    assert mine in [{k: d[k] for k in spec_fields} for d in listed]
    assert all(d["memory_bytes"] > 0 for d in listed if d["job_id"] == job)
    image = images_of(data["classification"])[0]
    assert ok(api, "POST", f"{V}/infer/{job}", {**base, "path_to_image": str(image)})["classification"]
    ok(api, "DELETE", f"{V}/deploy/{job}", {**base, "target_device_id": "-1"})


def test_infer_reads_images_only_under_the_data_roots(api, trained, data, home, tmp_path):
    job = trained["classification"]
    base = {"task": "classification", "epoch": "2"}
    ok(api, "POST", f"{V}/deploy/{job}", {**base, "target_device_id": "-1"})
    wait_in_service(api, job, 2)
    uploads = home / "uploads"
    try:
        outside = tmp_path / "elsewhere.jpg"
        shutil.copy(images_of(data["classification"])[0], outside)
        for path in ("/etc/shadow", "/proc/self/environ", "/proc/kallsyms", str(outside)):
            message = error(api, "POST", f"{V}/infer/{job}", {**base, "path_to_image": path})
            assert "outside the allowed data roots" in message and str(uploads) in message, message
        uploads.mkdir(exist_ok=True)
        shutil.copy(outside, uploads / "mine.jpg")
        mine = ok(api, "POST", f"{V}/infer/{job}", {**base, "path_to_image": str(uploads / "mine.jpg")})
        assert mine["classification"]

        started = time.monotonic()
        whole_disk = {**base, "path_to_image_pattern_list": "['/*/*/*/*/*/*/*/*/*/nomatch.jpg']"}
        assert "outside the allowed data roots" in error(api, "POST", f"{V}/infer_multiple/{job}", whole_disk)
        deep = str(Path(data["classification"]) / "*/*/*/*/*/*/*/x.jpg")
        deep_form = {**base, "path_to_image_pattern_list": f"[{deep!r}]"}
        assert "at most 6 are walked" in error(api, "POST", f"{V}/infer_multiple/{job}", deep_form)
        (uploads / "escape").symlink_to("/")
        escape = {**base, "path_to_image_pattern_list": f"[{str(uploads / '*' / 'etc' / 'passwd')!r}]"}
        assert "matches no image" in error(api, "POST", f"{V}/infer_multiple/{job}", escape)
        assert time.monotonic() - started < 10
    finally:
        (uploads / "escape").unlink(missing_ok=True)
        ok(api, "DELETE", f"{V}/deploy/{job}", {**base, "target_device_id": "-1"})


def test_image_limits_hold_through_the_stack(api, trained, home):
    """Issue 17: the image reaches the model server as its bytes, so a 5.5 MB JPEG by path
    infers (base64 in JSON, it failed at InvokeEndpoint's 6 MB); a base64_image over the API's
    4.4 MB gets the API's reason while the body still fits Lambda's event, and API Gateway's
    413 past it."""
    from tests.serving.test_invoke_limits import jpeg_of

    job = trained["classification"]
    base = {"task": "classification", "epoch": "2"}
    ok(api, "POST", f"{V}/deploy/{job}", {**base, "target_device_id": "-1"})
    wait_in_service(api, job, 2)
    uploads = home / "uploads"
    uploads.mkdir(exist_ok=True)
    try:
        (uploads / "large.jpg").write_bytes(jpeg_of(5_500_000))
        assert (
            ok(api, "POST", f"{V}/infer/{job}", {**base, "path_to_image": str(uploads / "large.jpg")})[
                "classification"
            ]["prob"]
            > 0
        )
        status, body = api.call(
            "POST",
            f"{V}/infer/{job}",
            body={**base, "base64_image": base64.b64encode(jpeg_of(4_600_000)).decode()},
        )
        assert status == 400 and "a base64_image travels in the request body" in body["message"], (
            status,
            body,
        )
        status, body = api.call(
            "POST",
            f"{V}/infer/{job}",
            body={**base, "base64_image": base64.b64encode(jpeg_of(4_800_000)).decode()},
        )
        assert (status, body) == (413, {"message": "Request Too Long"})
    finally:
        (uploads / "large.jpg").unlink(missing_ok=True)
        ok(api, "DELETE", f"{V}/deploy/{job}", {**base, "target_device_id": "-1"})


# --- upgrade -------------------------------------------------------------------------------------
def test_upgrade_migrates_an_older_layout(api, trained, home):
    job = trained["detection"]
    checkpoint = home / "artifacts" / "jobs" / job / "checkpoints" / "epoch-1" / "model.json"
    model = json.loads(checkpoint.read_text())
    model["hyperparameters"].pop("rcnn_norm", None)  # a version-1 model.json left it implicit
    checkpoint.write_text(json.dumps(model))
    store = SqliteJobStore(home / "jobs.sqlite3")
    store.update(job, {"format_version": 1})

    assert ok(api, "POST", f"{V}/upgrade/{job}", {"task": "detection"}) == {
        "result": "OK",
        "upgraded": True,
        "exception": None,
    }
    migrated = json.loads(checkpoint.read_text())["hyperparameters"]
    assert migrated["rcnn_norm"] == ("frozen_batch" if migrated.get("needs_freeze_bn") else "batch")
    assert ok(api, "POST", f"{V}/upgrade/{job}", {"task": "detection"})["upgraded"] is False

    store.update(job, {"format_version": 0})
    body = ok(api, "POST", f"{V}/upgrade/{job}", {"task": "detection"})
    assert body["upgraded"] is False
    assert body["exception"] == {
        "type": "ValueError",
        "message": "The version under 1.1.0 is not upgradable.",
    }


# --- around the API: job list and logs ---------------------------------------------------------
def test_v15_jobs_are_listed_and_their_logs_page(api, trained):
    listed = ok(api, "GET", f"{V}/train")["jobs"]
    assert {j["job_id"] for j in listed} >= set(trained.values())
    assert all(j["status"] == "finished" for j in listed if j["job_id"] in trained.values())
    job = trained["classification"]
    first = ok(api, "GET", f"{V}/train/{job}/logs?offset=0&limit=1")
    assert len(first["lines"]) == 1 and first["next_offset"] >= 1 and first["complete"] is False
    rest = ok(api, "GET", f"{V}/train/{job}/logs?offset={first['next_offset']}&limit=5000")
    assert rest["complete"] is True
    human = first["lines"] + rest["lines"]
    assert not any(line.startswith("#metric") for line in human)  # for SageMaker, not people
    every = ok(api, "GET", f"{V}/train/{job}/logs?offset=0&limit=5000&metrics=true")
    assert any("#metric eval:accuracy=" in line for line in every["lines"])
    assert [line for line in every["lines"] if not line.startswith("#metric")] == human
    assert every["next_offset"] == rest["next_offset"] == len(every["lines"])  # offsets count every line
    assert "'limit'" in error(api, "GET", f"{V}/train/{job}/logs?limit=0")


def test_the_console_tells_each_job_event(api, trained):
    console = (api.home.parent / f"api-{api.port}.log").read_text()
    job = trained["classification"]
    for event in ("queued", "started", "epoch 1/2 done", "finished"):
        assert f"v1.5 job {job} (classification): {event}" in console, event


def test_the_cli_deploys_infers_and_undeploys(api, trained, data, capsys, tmp_path):
    from aifactory.cli import main

    job = trained["classification"]
    common = ["--url", api.url, "--api-key", api.api_key]
    assert main(["deploy", *common, "--task", "classification", "--epoch", "2", "--device", "-1", job]) == 0
    wait_in_service(api, job, 2)
    capsys.readouterr()
    assert main(["deployments", *common, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert any(d["job_id"] == job and d["epoch"] == 2 for d in listed)
    image = images_of(data["classification"])[0]
    assert (
        main(["infer", *common, "--json", "--task", "classification", "--epoch", "2", job, str(image)]) == 0
    )
    assert json.loads(capsys.readouterr().out)["classification"]["category"] in ("red", "green", "blue", None)
    drawn = tmp_path / "cli-annotated.jpg"
    argv = ["infer", *common, "--task", "classification", "--epoch", "2", job, str(image), "-o", str(drawn)]
    assert main(argv) == 0
    summary, wrote = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"(red|green|blue) \d\.\d\d|no confident class \(top probability \d\.\d\d\)", summary)
    assert wrote == f"wrote {drawn}" and drawn.read_bytes()[:2] == b"\xff\xd8"
    assert main(["undeploy", *common, "--epoch", "2", "--device", "-1", job]) == 0
    assert main(["infer", *common, "--task", "classification", "--epoch", "2", job, str(image)]) != 0
    assert f"`aifactory deploy {job} --task classification --epoch 2`" in capsys.readouterr().err

"""The CLI's commands over the whole API (plots, tools, infer, jobs of both APIs, deployments,
stop, hints), against the scripted server: one behaviour per test, no training."""

from __future__ import annotations

import base64
import io
import json

import pytest

from aifactory.cli import main
from aifactory.progress import status_line
from tests.cli.fake_api import FakeApi

JOB = "20240101120000-0f8fad5b-d9cb-469f-a165-70867728950e"
V = "/api/v1.5.0"
JPEG = b"\xff\xd8\xff\xe0fake-jpeg"
B64 = base64.b64encode(JPEG).decode()


@pytest.fixture
def fake():
    with FakeApi() as server:
        yield server


@pytest.fixture
def run(fake, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AIFACTORY_URL", fake.url)
    monkeypatch.setenv("AIFACTORY_API_KEY", "k")
    monkeypatch.setenv("AIFACTORY_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)

    def invoke(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


# --- plots and tools: image files ----------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, path, key",
    [
        (["model-graph"], "/plots/model-graph", "base64_model_graph_plot"),
        (["loss"], "/plots/loss", "base64_loss_plot"),
        (
            ["confusion-matrix", "--epoch", "2"],
            "/plots/confusion-matrix/epoch/2",
            "base64_confusion_matrix_plot",
        ),
        (
            ["threshold", "--epoch", "2", "--class", "1"],
            "/plots/threshold/epoch/2/class/1",
            "base64_threshold_plot",
        ),
    ],
)
def test_plot_writes_the_jpeg(fake, run, tmp_path, argv, path, key):
    fake.reply("GET", f"{V}/train/{JOB}{path}", 200, {"result": "OK", key: B64})
    target = tmp_path / "out" / "plot.jpg"
    code, out, err = run("plot", JOB, *argv, "-o", str(target))
    assert (code, out, err) == (0, f"{target}\n", "")
    assert target.read_bytes() == JPEG


def test_plot_without_output_names_the_file_after_the_job(fake, run, tmp_path):
    fake.reply("GET", f"{V}/train/{JOB}/plots/loss", 200, {"result": "OK", "base64_loss_plot": B64})
    code, out, _ = run("plot", JOB, "loss")
    assert (code, out) == (0, f"{JOB}-loss.jpg\n")
    assert (tmp_path / f"{JOB}-loss.jpg").read_bytes() == JPEG


def test_plot_threshold_needs_a_class(run):
    code, _, err = run("plot", JOB, "threshold", "--epoch", "2")
    assert code == 2 and "--class" in err


def test_plot_waits_out_503_retry_answers(fake, run, tmp_path):
    answers = [(503, {"result": "Error", "message": "still being computed; retry"}, {"Retry-After": "0"})] * 5
    answers.append((200, {"result": "OK", "base64_confusion_matrix_plot": B64}, {}))
    fake.route("GET", f"{V}/train/{JOB}/plots/confusion-matrix/epoch/1", lambda r: answers.pop(0))
    code, _, err = run("plot", JOB, "confusion-matrix", "--epoch", "1", "-o", str(tmp_path / "cm.jpg"))
    assert code == 0, err
    assert (tmp_path / "cm.jpg").read_bytes() == JPEG


def test_tool_retries_are_bounded(fake, run):
    busy = (503, {"result": "Error", "message": "still being computed; retry"}, {"Retry-After": "0"})
    fake.route("POST", f"{V}/summarize/{JOB}", lambda r: busy)
    code, _, err = run("summarize", JOB, "--task", "classification", "--epoch", "1")
    assert (code, err) == (1, "aifactory: still being computed; retry\n")
    assert 1 < len([r for r in fake.requests if r.path.endswith("/summarize/" + JOB)]) <= 40


def test_summarize_lists_flops_params_and_keys(fake, run):
    body = {"result": "OK", "flops": "1.8G", "params": "11.2M", "param_keys": ["conv1.weight", "fc.bias"]}
    fake.reply("POST", f"{V}/summarize/{JOB}", 200, body)
    code, out, _ = run("summarize", JOB, "--task", "classification", "--epoch", "3")
    assert code == 0
    assert out.splitlines()[:5] == [
        "FLOPs: 1.8G",
        "parameters: 11.2M",
        "2 parameter tensors:",
        "  conv1.weight",
        "  fc.bias",
    ]
    assert fake.requests[-1].form() == {"task": "classification", "epoch": "3"}


def test_visualize_writes_the_parameter_image(fake, run, tmp_path):
    fake.reply("POST", f"{V}/visualize/{JOB}", 200, {"result": "OK", "base64_image": B64})
    code, out, _ = run(
        "visualize", JOB, "--task", "classification", "--epoch", "1", "--param-key", "conv1.weight",
        "-o", str(tmp_path / "w.jpg"),
    )  # fmt: skip
    assert (code, out) == (0, f"{tmp_path / 'w.jpg'}\n")
    assert fake.requests[-1].form()["param_key"] == "conv1.weight"
    assert (tmp_path / "w.jpg").read_bytes() == JPEG


def test_aug_sends_aug_arguments_and_writes_the_preview(fake, run, tmp_path):
    fake.reply("POST", f"{V}/aug", 200, {"result": "OK", "base64_aug_image": B64})
    code, out, err = run(
        "aug", "--task", "detection", "--data-dir", "/data/d", "--index", "2", "--aug_hflip_prob", "1",
        "-o", str(tmp_path / "a.jpg"),
    )  # fmt: skip
    assert code == 0, err
    form = fake.requests[-1].form()
    assert form == {"task": "detection", "data_dir": "/data/d", "index": "2", "aug_hflip_prob": "1"}
    assert (tmp_path / "a.jpg").read_bytes() == JPEG


# --- infer -----------------------------------------------------------------------------------
def test_infer_classification_prints_the_class_and_probability(fake, run, tmp_path):
    image = tmp_path / "i.jpg"
    image.write_bytes(JPEG)
    body = {"result": "OK", "base64_images": [B64], "classification": {"category": "red", "prob": 0.9987}}
    fake.reply("POST", f"{V}/infer/{JOB}", 200, body)
    code, out, _ = run("infer", JOB, str(image), "--task", "classification", "--epoch", "1")
    assert (code, out) == (0, "red 1.00\n")


def test_infer_detection_prints_boxes_with_scores(fake, run, tmp_path):
    image = tmp_path / "i.jpg"
    image.write_bytes(JPEG)
    detections = [
        {"bbox": [1.2, 2.0, 30.4, 40.6], "category": "red", "prob": 0.91},
        {"bbox": [5, 6, 7, 8], "category": "blue", "prob": 0.72},
    ]
    fake.reply("POST", f"{V}/infer/{JOB}", 200, {"result": "OK", "detections": detections})
    code, out, _ = run("infer", JOB, str(image), "--task", "detection", "--epoch", "1")
    assert (code, out) == (0, "red 0.91 box [1, 2, 30, 41]\nblue 0.72 box [5, 6, 7, 8]\n")


def test_infer_segmentation_prints_instances_with_areas(fake, run):
    items = [{"bbox": [0, 0, 9, 9], "category": "red", "prob": 0.8, "color": 1, "area": 57, "polygons": []}]
    body = {"result": "OK", "instance_segmentations": items, "instance_segmentation_base64_map": B64}
    fake.reply("POST", f"{V}/infer/{JOB}", 200, body)
    code, out, _ = run(
        "infer", JOB, "--server-path", "/d/a.png", "--task", "instance_segmentation", "--epoch", "1"
    )
    assert (code, out) == (0, "red 0.80 box [0, 0, 9, 9] area 57\n")


def test_infer_output_writes_the_annotated_images(fake, run, tmp_path):
    other = base64.b64encode(b"\xff\xd8second").decode()
    body = {"result": "OK", "base64_images": [B64, other], "instance_segmentations": []}
    fake.reply("POST", f"{V}/infer/{JOB}", 200, body)
    target = tmp_path / "annotated.jpg"
    code, out, _ = run(
        "infer", JOB, "--server-path", "/d/a.png", "--task", "instance_segmentation", "--epoch", "1",
        "-o", str(target),
    )  # fmt: skip
    assert code == 0
    assert target.read_bytes() == JPEG
    assert (tmp_path / "annotated-2.jpg").read_bytes() == b"\xff\xd8second"
    assert out.splitlines()[-2:] == [f"wrote {target}", f"wrote {tmp_path / 'annotated-2.jpg'}"]


def test_infer_json_is_the_whole_answer(fake, run):
    body = {"result": "OK", "classification": {"category": "red", "prob": 1.0}}
    fake.reply("POST", f"{V}/infer/{JOB}", 200, body)
    code, out, _ = run(
        "--json", "infer", JOB, "--server-path", "/x", "--task", "classification", "--epoch", "1"
    )
    assert (code, json.loads(out)) == (0, body)


def test_infer_of_an_undeployed_checkpoint_names_the_deploy_command(fake, run):
    message = (
        f"Checkpoint of epoch 2 of job {JOB} is not deployed; deploy it first with POST {V}/deploy/{JOB}."
    )
    fake.reply("POST", f"{V}/infer/{JOB}", 404, {"result": "Error", "message": message})
    code, _, err = run("infer", JOB, "--server-path", "/x", "--task", "detection", "--epoch", "2")
    assert code == 1
    assert err == (
        f"aifactory: epoch 2 of job {JOB} is not deployed; deploy it first with "
        f"`aifactory deploy {JOB} --task detection --epoch 2`\n"
    )


def test_infer_multiple_prints_one_line_per_image(fake, run):
    body = {
        "result": "OK",
        "images": [
            {"path": "/d/a.jpg", "classification": {"category": "red", "prob": 0.95}},
            {"path": "/d/b.jpg", "classification": {"category": "blue", "prob": 0.61}},
        ],
    }
    fake.reply("POST", f"{V}/infer_multiple/{JOB}", 200, body)
    code, out, _ = run("infer-multiple", JOB, "/d/*.jpg", "--task", "classification", "--epoch", "1")
    assert (code, out) == (0, "/d/a.jpg: red 0.95\n/d/b.jpg: blue 0.61\n")
    assert fake.requests[-1].form()["path_to_image_pattern_list"] == "['/d/*.jpg']"


# --- jobs, deployments, stop -------------------------------------------------------------------
def test_jobs_lists_both_apis_across_v15_pages(fake, run):
    pages = {
        None: {"result": "OK", "jobs": [dict(job_id=JOB, task="classification", status="finished",
                                             epoch=2, total_epoch=2, created_at="2024-01-01 12:00:00")],
               "next_token": "t2"},
        "t2": {"result": "OK", "jobs": [dict(job_id="20240101110000-" + JOB[15:], task="detection",
                                             status="running", epoch=1, total_epoch=3,
                                             created_at="2024-01-01 11:00:00")],
               "next_token": None},
    }  # fmt: skip
    fake.route("GET", f"{V}/train", lambda r: (200, pages[r.query.get("next_token")], {}))
    aif = [{"TrainingJobName": "aif-1", "TrainingJobStatus": "Completed", "CreationTime": "2024-01-02"}]
    fake.reply("POST", "/check_trained_job", 200, aif)
    code, out, _ = run("jobs")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["JOB", "API", "STATUS", "EPOCH", "CREATED"]
    assert [line.split()[:3] for line in lines[1:]] == [
        [JOB, "v1.5", "classification"],
        ["20240101110000-" + JOB[15:], "v1.5", "detection"],
        ["aif-1", "ai_factory", "Completed"],
    ]


def test_deployments_show_status_and_memory(fake, run):
    item = {"job_id": JOB, "epoch": 2, "target_device_id": -1, "status": "InService",
            "memory": "812.4 MiB", "memory_bytes": 851863142, "instance_type": None}  # fmt: skip
    fake.reply("GET", f"{V}/deploy/list", 200, {"result": "OK", "deployments": [item]})
    code, out, _ = run("deployments")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["JOB", "EPOCH", "DEVICE", "STATUS", "MEMORY", "INSTANCE"]
    assert lines[1].split() == [JOB, "2", "-1", "InService", "812.4", "MiB"]


def test_stopping_a_stopped_v15_job_says_it_is_already_stopped(fake, run):
    fake.reply("PATCH", f"{V}/train/{JOB}", 409, {"result": "Error", "message": "Job is not under tracking."})
    fake.reply("GET", f"{V}/train/{JOB}", 200, {"result": "OK", "status": "stopped"})
    code, out, err = run("stop", JOB)
    assert (code, out, err) == (0, f"job {JOB} is already stopped\n", "")


def test_stopping_a_stopped_ai_factory_job_sends_no_stop(fake, run):
    fake.reply("POST", "/status", 200, {"status": "Stopped"})
    code, out, _ = run("stop", "aif-1")
    assert (code, out) == (0, "job aif-1 is already stopped\n")
    assert not [r for r in fake.requests if r.path == "/stop_training_job"]


def test_v15_download_says_no_route_serves_weights(fake, run, tmp_path):
    item = {"epoch": 2, "is_best": 1, "is_available": 1, "avg_loss": 0.1}
    fake.reply("GET", f"{V}/train/{JOB}/checkpoints/epoch/2", 200, {"result": "OK", "checkpoint": item})
    code, out, err = run("download", JOB, "--epoch", "2", "-o", str(tmp_path))
    assert code == 0 and out == f"{tmp_path / (JOB + '-epoch-2') / 'checkpoint.json'}\n"
    assert "serves no checkpoint weights file" in err


def test_deploy_cap_message_names_the_undeploy_command(fake, run):
    message = (
        "Deployment refused: 1 deployments are live and the cap is 1 (AIFACTORY_MAX_DEPLOYMENTS). "
        "Undeploy one first with DELETE /api/v1.5.0/deploy/<job_id> (epoch, target_device_id). Live: ..."
    )
    fake.reply("POST", f"{V}/deploy/{JOB}", 409, {"result": "Error", "message": message})
    code, _, err = run("deploy", JOB, "--task", "classification", "--epoch", "1")
    assert code == 1
    assert "Undeploy one first with `aifactory undeploy JOB --epoch EPOCH --device DEVICE`." in err
    assert "/api/v1.5.0" not in err


# --- messages and AI Factory progress ------------------------------------------------------------
def test_connection_refused_says_how_to_point_at_another_api(run, monkeypatch):
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run("--url", url, "version")
    assert code == 1 and err.startswith(f"aifactory: cannot reach {url}: connection refused")
    assert "AIFACTORY_URL" in err and "--url" in err


def test_ai_factory_status_line_shows_step_loss_and_eta():
    body = {"status": "InProgress", "progress": {"step": 30, "total_steps": 100, "loss": 0.52341,
                                                 "learning_rate": 0.001, "eta_hr": 0.02}}  # fmt: skip
    assert status_line(body) == "InProgress step 30/100 loss 0.5234 lr 0.001 ETA 0:01:12"


def test_follow_of_an_ai_factory_job_prints_its_progress(fake, run, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("{}"))
    beats = [
        {"status": "InProgress", "progress": {"step": 5, "total_steps": 10, "loss": 0.9, "eta_hr": 0.001}},
        {"status": "Completed", "progress": {"step": 10, "total_steps": 10, "loss": 0.4, "eta_hr": 0}},
    ]
    fake.route("POST", "/status", lambda r: (200, beats.pop(0) if len(beats) > 1 else beats[0], {}))
    fake.reply("POST", "/logs", 200, {"lines": [], "offset": 0, "next_offset": 0, "complete": True})
    fake.reply("POST", "/create_training_job", 200, {"status": "success", "job_name": "aif-1"})
    code, _, err = run("create", "--payload", "-", "--follow", "--poll", "0.01")
    assert code == 0, err
    assert "aif-1 InProgress step 5/10 loss 0.9000 ETA 0:00:04" in err.splitlines()

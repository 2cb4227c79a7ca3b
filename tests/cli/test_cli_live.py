"""`aifactory` against the real local API: real HTTP, a real (tiny) training job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import KEY

pytestmark = pytest.mark.e2e
V = "/api/v1.5.0"
TINY = [
    "--algorithm", "resnet18",
    "--pretrained", "False",
    "--batch_size", "8",
    "--image_resized_width", "32",
    "--image_resized_height", "32",
    "--num_workers", "0",
    "--learning_rate", "0.01",
    "--num_batches_to_display", "1",
]  # fmt: skip
TINY_ARGS = {name[2:]: value for name, value in zip(TINY[::2], TINY[1::2], strict=True)}


def wait_status(client, job_id, statuses, timeout=120) -> dict:
    deadline = time.time() + timeout
    body = {}
    while time.time() < deadline:
        body = client.monitor(job_id)
        if body["status"] in statuses:
            return body
        time.sleep(0.3)
    raise AssertionError(f"{job_id} still {body.get('status')} after {timeout}s")


@pytest.fixture(scope="module")
def followed(api, classification_data, tmp_path_factory):
    """`aifactory train ... --follow` of a two-epoch job, run once for the tests that read it."""
    from aifactory.cli import main

    out, err = tmp_path_factory.mktemp("follow") / "out", None
    env = {"AIFACTORY_URL": api.url, "AIFACTORY_API_KEY": KEY}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    real_out, real_err = sys.stdout, sys.stderr
    with open(out, "w") as stdout, open(out.with_suffix(".err"), "w") as stderr:
        sys.stdout, sys.stderr = stdout, stderr
        try:
            code = main(
                ["train", "--task", "classification", "--data-dir", classification_data, *TINY]
                + ["--num_epochs_to_finish", "2", "--follow", "--poll", "0.3"]
            )
        finally:
            sys.stdout, sys.stderr = real_out, real_err
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    err = out.with_suffix(".err").read_text()
    return code, out.read_text(), err


def test_version(cli):
    result = cli("version")
    assert (result.code, result.out, result.err) == (0, "v1.5.0\n", "")


def test_version_json(cli):
    result = cli("--json", "version")
    assert result.code == 0 and json.loads(result.out) == {"version": "v1.5.0"}


def test_jobs_lists_ai_factory_jobs(cli):
    result = cli("--json", "jobs")
    assert result.code == 0
    assert isinstance(json.loads(result.out), list)


def test_jobs_lists_a_job_trained_with_the_cli(cli, followed):
    job_id = followed[1].splitlines()[0]
    rows = json.loads(cli("--json", "jobs").out)
    assert {"api": "v1.5", "job_id": job_id, "status": "finished"}.items() <= next(
        r for r in rows if r.get("job_id") == job_id
    ).items()


def test_train_follow_runs_to_finished_and_exits_zero(followed):
    code, out, err = followed
    job_id = out.splitlines()[0]
    assert code == 0, err
    assert out.splitlines()[-1] == f"job {job_id} finished"
    heartbeats = err.splitlines()
    assert heartbeats[-1].startswith("finished epoch 2/2 batch ") and "ETA 0:00:00" in heartbeats[-1]
    assert any(line.startswith("running epoch ") and "samples/s" in line for line in heartbeats)
    assert "Traceback" not in err


def test_status_of_a_finished_job(cli, followed):
    job_id = followed[1].splitlines()[0]
    result = cli("status", job_id)
    assert result.code == 0
    assert result.out.startswith("finished epoch 2/2 batch ")
    body = json.loads(cli("--json", "status", job_id).out)
    assert body["status"] == "finished" and body["exception"] is None


def test_checkpoints_table_marks_the_best(cli, followed):
    job_id = followed[1].splitlines()[0]
    result = cli("checkpoints", job_id)
    lines = result.out.splitlines()
    assert result.code == 0 and lines[0].split() == [
        "EPOCH",
        "AVG_LOSS",
        "ACCURACY",
        "BEST",
        "AVAILABLE",
        "SIZE",
    ]
    rows, total = lines[1:-1], lines[-1]
    assert [line.split()[0] for line in rows] == ["1", "2"]
    assert sum("*" in line for line in rows) == 1
    assert total.startswith("job holds ") and "aifactory reclaim JOB" in total


def test_download_writes_the_checkpoint_metrics_and_plot(cli, followed, tmp_path):
    job_id = followed[1].splitlines()[0]
    result = cli("download", job_id, "--epoch", "2", "-o", str(tmp_path))
    assert result.code == 0, result.err
    folder = tmp_path / f"{job_id}-epoch-2"
    assert json.loads((folder / "checkpoint.json").read_text())["epoch"] == 2
    assert (folder / "metric.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_plot_loss_writes_a_jpeg(cli, followed, tmp_path):
    job_id = followed[1].splitlines()[0]
    result = cli("plot", job_id, "loss", "-o", str(tmp_path / "loss.jpg"))
    assert (result.code, result.out) == (0, f"{tmp_path / 'loss.jpg'}\n"), result.err
    assert (tmp_path / "loss.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_stop_a_running_job_then_stop_again_says_it_is_already_stopped(cli, client, classification_data):
    job_id = client.train("classification", classification_data, **TINY_ARGS, num_epochs_to_finish=200)
    result = cli("stop", job_id)
    assert (result.code, result.out) == (0, f"stopping {job_id}\n")
    wait_status(client, job_id, ("stopped",))
    again = cli("stop", job_id)
    assert (again.code, again.out, again.err) == (0, f"job {job_id} is already stopped\n", "")


def test_follow_of_a_stopped_job_exits_non_zero_with_the_reason(cli, client, classification_data):
    job_id = client.train("classification", classification_data, **TINY_ARGS, num_epochs_to_finish=200)
    client.stop(job_id)
    wait_status(client, job_id, ("stopped",))
    result = cli("logs", job_id, "--follow", "--poll", "0.2")
    assert result.code == 1
    assert result.err == f"aifactory: job {job_id} was stopped before it finished\n"


def test_unknown_job_is_one_line_and_non_zero(cli):
    result = cli("status", "20200101000000-00000000-0000-0000-0000-000000000000")
    assert (result.code, result.out, result.err) == (1, "", "aifactory: Job not found.\n")


def test_unknown_ai_factory_job_is_one_line(cli):
    result = cli("status", "aif-nope")
    assert (result.code, result.err) == (1, "aifactory: Job aif-nope not found.\n")


def test_bad_key_is_one_line(cli, api):
    result = cli("--api-key", "wrong", "jobs")
    assert result.code == 1
    assert result.err == f"aifactory: {api.url} refused the API key: Forbidden\n"


def test_rejected_argument_names_it(cli, classification_data):
    result = cli(
        "train", "--task", "classification", "--data-dir", classification_data, *TINY, "--batch_size", "0"
    )
    assert result.code == 1
    assert result.err.startswith("aifactory: Invalid 'batch_size'") and result.err.count("\n") == 1


def test_connection_refused_is_one_line(cli):
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = cli("--url", url, "version")
    assert result.code == 1 and result.err.count("\n") == 1
    assert result.err.startswith(f"aifactory: cannot reach {url}: connection refused (")


def test_installed_console_script(api):
    script = Path(sys.executable).parent / "aifactory"
    assert script.exists(), "run `make venv`: it installs the aifactory console script"
    env = {**os.environ, "AIFACTORY_URL": api.url, "AIFACTORY_API_KEY": KEY}
    done = subprocess.run(
        [str(script), "version"], capture_output=True, text=True, env=env, timeout=60, cwd="/"
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "v1.5.0\n", "")
    done = subprocess.run(
        [str(script), "status", "aif-missing"], capture_output=True, text=True, env=env, timeout=60, cwd="/"
    )
    assert (done.returncode, done.stderr) == (1, "aifactory: Job aif-missing not found.\n")

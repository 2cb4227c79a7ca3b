"""`aifactory logs` shows the human log; `--metrics` adds the `#metric` lines (issue 18).

The scripted server pages the log with the API's own code (chalicelib.services.logs), so the
CLI's paging meets the real offsets: they count every line, metric lines included."""

from __future__ import annotations

import json

import pytest

from aifactory.cli import main
from chalicelib.ports import Adapters
from chalicelib.services import logs
from contracts import metrics
from tests.cli.fake_api import FakeApi

JOB = "20240101120000-0f8fad5b-d9cb-469f-a165-70867728950e"
V = "/api/v1.5.0"
LOG = [
    "epoch 1 started",
    metrics.format_line(metrics.TRAIN_LOSS, 0.9),
    metrics.format_line(metrics.TRAIN_LEARNING_RATE, 0.01),
    "epoch 1 batch 1/1 loss 0.9",
    metrics.format_line(metrics.EVAL_ACCURACY, 0.5),
    "finished",
]
HUMAN = [line for line in LOG if not line.startswith("#metric")]
FINISHED = {"result": "OK", "status": "finished", "epoch": 1, "total_epoch": 1, "batch": 1, "total_batch": 1}


class Platform:
    def logs(self, name, offset, limit):
        return LOG[offset : offset + limit], offset + limit < len(LOG)


SVC = Adapters(jobs=None, artifacts=None, platform=Platform(), secrets=None)
RECORD = {"job_id": JOB, "attempts": [{"attempt": 1, "training_job_name": "t-1"}]}


def v15_logs(request):
    query = request.query
    page = logs.read(SVC, RECORD, query.get("offset"), query.get("limit"), metrics=query.get("metrics"))
    return 200, {"result": "OK", **page}, {}


def ai_factory_logs(request):
    body = request.json()
    page = logs.read(SVC, RECORD, body.get("offset"), body.get("limit"), metrics=body.get("metrics"))
    return 200, {"status": "success", **page}, {}


@pytest.fixture
def run(capsys, monkeypatch, tmp_path):
    with FakeApi() as fake:
        fake.route("GET", f"{V}/train/{JOB}/logs", v15_logs)
        fake.route("POST", "/logs", ai_factory_logs)
        fake.route("GET", f"{V}/train/{JOB}", lambda request: (200, FINISHED, {}))
        monkeypatch.setenv("AIFACTORY_URL", fake.url)
        monkeypatch.setenv("AIFACTORY_API_KEY", "k")
        monkeypatch.setenv("AIFACTORY_HOME", str(tmp_path / "state"))

        def invoke(*argv):
            code = main(list(argv))
            out, err = capsys.readouterr()
            return code, out, err

        yield invoke


def test_logs_leave_out_metric_lines_by_default(run):
    assert run("logs", JOB) == (0, "".join(f"{line}\n" for line in HUMAN), "")


def test_logs_with_metrics_show_every_line(run):
    assert run("logs", JOB, "--metrics") == (0, "".join(f"{line}\n" for line in LOG), "")


def test_ai_factory_logs_with_metrics_show_every_line(run):
    assert run("logs", "aif-job", "--metrics") == (0, "".join(f"{line}\n" for line in LOG), "")


@pytest.mark.parametrize("limit", ["1", "2"])
def test_a_page_of_the_human_log_continues_past_metric_lines(run, limit):
    seen, offset = [], 0
    while True:
        code, out, _ = run("--json", "logs", JOB, "--offset", str(offset), "--limit", limit)
        page = json.loads(out)
        seen += page["lines"]
        if page["complete"]:
            break
        offset = page["next_offset"]
    assert seen == HUMAN


def test_follow_shows_the_human_log(run):
    code, out, err = run("logs", JOB, "--follow", "--poll", "0.01")
    assert (code, out) == (0, "".join(f"{line}\n" for line in HUMAN)), err


def test_follow_with_metrics_shows_every_line(run):
    code, out, err = run("logs", JOB, "--follow", "--poll", "0.01", "--metrics")
    assert (code, out) == (0, "".join(f"{line}\n" for line in LOG)), err

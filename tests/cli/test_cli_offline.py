"""The CLI's following, configuration and usage errors, against the scripted server."""

from __future__ import annotations

import io
import json

import pytest

from aifactory import config
from aifactory.cli import main
from aifactory.progress import ProgressView
from tests.cli.fake_api import FakeApi, LogBook

JOB = "20240101120000-0f8fad5b-d9cb-469f-a165-70867728950e"
V = "/api/v1.5.0"


def heartbeat(status, epoch, batch, **extra):
    return {
        "result": "OK",
        "status": status,
        "datetime": "2024-01-01 12:00:00",
        "epoch": epoch,
        "total_epoch": 2,
        "batch": batch,
        "total_batch": 4,
        "avg_loss": 0.5 if batch else -1,
        "learning_rate": 0.01 if batch else -1,
        "samples_per_sec": 12.5 if batch else -1,
        "eta_hr": 0.01 if status == "running" else (0 if status == "finished" else -1),
        "exception": None,
        **extra,
    }


@pytest.fixture
def fake():
    with FakeApi() as server:
        yield server


@pytest.fixture
def run(fake, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AIFACTORY_URL", fake.url)
    monkeypatch.setenv("AIFACTORY_API_KEY", "k")
    monkeypatch.setenv("AIFACTORY_HOME", str(tmp_path / "state"))

    def invoke(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def scripted_job(fake, beats, book):
    """Each monitor call answers the next heartbeat and appends a log line; the last one ends the log."""
    beats = list(beats)

    def monitor(request):
        beat = beats.pop(0) if len(beats) > 1 else beats[0]
        book.lines.append(f"log {beat['status']} {beat['epoch']}.{beat['batch']}")
        book.ended = beat["status"] in ("finished", "exception", "stopped")
        return 200, beat, {}

    fake.route("GET", f"{V}/train/{JOB}", monitor)
    fake.route("GET", f"{V}/train/{JOB}/logs", book.v15_handler)


def test_train_follow_shows_progress_and_every_log_line(fake, run):
    fake.reply("POST", f"{V}/train", 200, {"result": "OK", "job_id": JOB})
    book = LogBook()
    scripted_job(
        fake,
        [heartbeat("initializing", 0, 0), heartbeat("running", 1, 2), heartbeat("running", 2, 4), heartbeat("finished", 2, 4)],
        book,
    )  # fmt: skip
    code, out, err = run(
        "train", "--task", "classification", "--data-dir", "/d", "--follow", "--poll", "0.01"
    )
    assert code == 0, err
    assert out.splitlines() == [JOB, "log initializing 0.0", "log running 1.2", "log running 2.4", "log finished 2.4", f"job {JOB} finished"]  # fmt: skip
    assert err.splitlines() == [  # not a terminal: one plain line per heartbeat that changed
        "initializing epoch 0/2 batch 0/4",
        "running epoch 1/2 batch 2/4 loss 0.5000 lr 0.01 12.5 samples/s ETA 0:00:36",
        "running epoch 2/2 batch 4/4 loss 0.5000 lr 0.01 12.5 samples/s ETA 0:00:36",
        "finished epoch 2/2 batch 4/4 loss 0.5000 lr 0.01 12.5 samples/s ETA 0:00:00",
    ]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_counts_batches_of_all_epochs():
    screen, logs = Terminal(), io.StringIO()
    view = ProgressView(JOB, bar_file=screen, log_file=logs)
    view.status(heartbeat("running", 2, 1))
    view.lines(["epoch 2 started"])
    assert (view.bar.n, view.bar.total) == (5, 8)  # epoch 1's four batches, then one
    view.status(heartbeat("finished", 2, 4))
    view.close()
    last = screen.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("finished epoch 2/2 |") and "100%, batch 4/4 loss 0.5000" in last
    assert last.endswith("12.5 samples/s ETA 0:00:00")
    assert logs.getvalue() == "epoch 2 started\n"


def test_follow_of_a_failed_job_exits_one_with_the_reason(fake, run):
    exception = {"code": "E01", "type": "RuntimeError", "message": "Out of memory", "traceback": "..."}
    scripted_job(
        fake, [heartbeat("running", 1, 1), heartbeat("exception", 1, 1, exception=exception)], LogBook()
    )
    code, out, err = run("logs", JOB, "--follow", "--poll", "0.01")
    assert code == 1
    assert out.splitlines() == ["log running 1.1", "log exception 1.1"]
    assert err == f"aifactory: job {JOB} failed: E01 RuntimeError: Out of memory\n"


def test_follow_without_a_logs_route_still_follows(fake, run):
    fake.reply("PUT", f"{V}/train/{JOB}", 200, {"result": "OK"})
    fake.reply("GET", f"{V}/train/{JOB}", 200, heartbeat("finished", 2, 4))
    code, out, err = run("restore", JOB, "--follow", "--poll", "0.01")
    assert code == 0, err
    assert out.splitlines() == [f"restored {JOB}", f"job {JOB} finished"]
    assert [r.path for r in fake.requests].count(f"{V}/train/{JOB}/logs") == 1  # asked once, then not again


def test_create_follow_of_a_failing_ai_factory_job(fake, run, tmp_path):
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"task_def": "ml_topic", "creator": "me"}))
    fake.reply("POST", "/create_training_job", 200, {"status": "success", "job_name": "aif-1"})
    answers = iter([{"status": "InProgress"}])
    fake.route("POST", "/status", lambda r: (200, next(answers, {"status": "Failed", "message": "E03 ValueError: no records"}), {}))  # fmt: skip
    code, out, err = run("create", "--payload", str(payload), "--follow", "--poll", "0.01")
    assert code == 1
    assert out == "aif-1\n"
    assert err.endswith("aifactory: job aif-1 failed: E03 ValueError: no records\n")
    assert fake.requests[0].json() == {"task_def": "ml_topic", "creator": "me"}


def test_follow_json_prints_one_document(fake, run):
    fake.reply("GET", f"{V}/train/{JOB}", 200, heartbeat("finished", 2, 4))
    fake.reply("PUT", f"{V}/train/{JOB}", 200, {"result": "OK"})
    code, out, err = run("--json", "restore", JOB, "--follow", "--poll", "0.01")
    assert code == 0 and err == ""
    document = json.loads(out)
    assert (document["job"], document["status"], document["ok"]) == (JOB, "finished", True)


def test_logs_prints_every_page(fake, run):
    fake.route("POST", "/logs", LogBook([f"l{i}" for i in range(3)]).ai_factory_handler)
    code, out, err = run("logs", "aif-job")
    assert (code, out, err) == (0, "l0\nl1\nl2\n", "")


def test_ai_factory_job_refuses_v15_only_commands(run):
    code, out, err = run("checkpoints", "aif-job")
    assert code == 2
    assert err == (
        "checkpoints works on v1.5 job ids (YYYYmmddHHMMSS-<uuid>); 'aif-job' looks like an AI Factory job name\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope"], "aifactory: argument COMMAND: invalid choice: 'nope'"),
        (["train", "--data-dir", "/d"], "aifactory train: the following arguments are required: --task"),
        (["train", "--task", "classification", "--data-dir", "/d", "--batch_size"], "aifactory train: --batch_size needs a value"),
        (["status", "a", "--bogus", "1"], "aifactory status: unrecognized arguments: --bogus 1"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line(run, argv, message):
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_create_with_a_payload_that_is_not_json(run, tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{nope")
    code, out, err = run("create", "--payload", str(bad))
    assert code == 2
    assert (
        err
        == f"aifactory create: {bad} is not JSON: Expecting property name enclosed in double quotes at line 1\n"
    )


def test_config_prefers_flags_then_environment_then_state(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "api_key").write_text("from-file\n")
    (state / "url").write_text("http://127.0.0.1:9001\n")
    env = {"AIFACTORY_HOME": str(state)}
    target = config.resolve(environ=env)
    assert (target.url, target.api_key) == ("http://127.0.0.1:9001", "from-file")
    env |= {"AIFACTORY_URL": "http://h:1/", "AIFACTORY_API_KEY": "from-env"}
    target = config.resolve(environ=env)
    assert (target.url, target.api_key) == ("http://h:1", "from-env")
    target = config.resolve("http://flag:2", "from-flag", environ=env)
    assert (target.url, target.api_key) == ("http://flag:2", "from-flag")


def test_config_default_without_state(tmp_path):
    target = config.resolve(environ={"AIFACTORY_HOME": str(tmp_path / "none")})
    assert (target.url, target.api_key) == ("http://127.0.0.1:8000", None)

"""The AI Factory API end to end: the real server process, the local platform, the real
trainer, a loopback dataset endpoint and a loopback callback receiver."""

from __future__ import annotations

import io
import tarfile
import time
import urllib.request

import pytest

from tests.builders import CALLBACK_SECRET, DATASET_SECRET, create_payload, fast_tagger_hyperparameters
from tests.dataset_fetcher.loopback import DatasetServer as LoopbackDataset
from tests.servers import ApiServer, CallbackServer, tagging_records, topic_records

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(tmp_path):
    server = ApiServer(tmp_path / "home", extra_env={"AIFACTORY_CALLBACK_BACKOFF_SECONDS": "0.2"})
    with server:
        yield server
    server.kill_jobs()


def DatasetServer(records, **options):
    """The loopback dataset endpoint, requiring the payload builder's header, replying `{"data": [...]}`."""
    return LoopbackDataset(records, header=("x-api-key", DATASET_SECRET), reply="data", **options)


def wait_status(api, name, wanted, timeout=180):
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status = api.call("POST", "/status", {"job_name": name})[1]["status"]
        if status in wanted:
            return status
        time.sleep(0.3)
    raise AssertionError(f"{name} still {status}, wanted {wanted}")


def wait_progress(api, name, wanted="running", timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for progress in api.home.glob("artifacts/jobs/*/progress.json"):
            if wanted in progress.read_text():
                return
        time.sleep(0.2)
    raise AssertionError(f"{name} never reported {wanted}")


def create(api, callback, dataset, **kwargs):
    status, body = api.call(
        "POST", "/create_training_job", create_payload(callback=callback.url, dataset=dataset.url, **kwargs)
    )
    assert status == 200, body
    assert body["status"] == "success"
    return body["job_name"]


def assert_no_secret_leaked(api, *responses):
    for response in responses:
        assert CALLBACK_SECRET not in str(response) and DATASET_SECRET not in str(response)
    for path in api.home.rglob("*"):
        if path.is_file() and path.parent.name != "secrets" and not path.suffix == ".sqlite3-wal":
            data = path.read_bytes()
            assert CALLBACK_SECRET.encode() not in data and DATASET_SECRET.encode() not in data, path
    for log in api.home.parent.glob("api-*.log"):
        assert DATASET_SECRET not in log.read_text()


def test_tagger_job_reports_held_out_metrics_to_the_callback(api):
    with DatasetServer(tagging_records(400)) as dataset, CallbackServer() as callback:
        name = create(api, callback, dataset, hyperparameters=fast_tagger_hyperparameters(steps=80))
        assert wait_status(api, name, ("Completed", "Failed")) == "Completed"
        call = callback.wait(1)[0]
    body = call["body"]
    assert call["headers"]["x-api-key"] == CALLBACK_SECRET
    assert call["headers"]["idempotency-key"] == f"{name}:Completed"
    assert body["status"] == "Completed" and body["job_name"] == name
    assert body["task_def"] == "ml_tagger" and body["creator"] == "thaiph"
    assert body["CreationTime"] <= body["TrainingEndTime"]
    details = body["log"]["details"]
    assert sorted(d["no"] for d in details) == [str(i) for i in range(len(details))]
    for item in [*details, body["log"]["avg"]]:
        assert set(item) >= {"precision", "recall", "f1-score", "support"}
        assert all(len(item[k].split(".")[1]) == 2 for k in ("precision", "recall", "f1-score"))
    assert float(body["log"]["avg"]["f1-score"]) > 0.8  # chance is ~0.25 over 4 tags
    assert int(body["log"]["avg"]["support"]) == sum(int(d["support"]) for d in details)
    # The link as a receiver uses it: a plain GET, no key and no Accept (urllib sends none).
    with urllib.request.urlopen(body["model"], timeout=60) as reply:
        status, model = reply.status, reply.read()
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(model)) as tar:
        assert "model.safetensors" in tar.getnames()
    listed = api.call("POST", "/check_trained_job")[1]
    assert listed[0]["TrainingJobName"] == name and listed[0]["TrainingJobStatus"] == "Completed"
    assert "TrainingEndTime" in listed[0]
    assert_no_secret_leaked(api, listed, body)


def test_topic_job_completes_with_metrics(api):
    with DatasetServer(topic_records(300)) as dataset, CallbackServer() as callback:
        name = create(
            api, callback, dataset, task_def="ml_topic", hyperparameters=fast_tagger_hyperparameters(steps=60)
        )
        assert wait_status(api, name, ("Completed", "Failed")) == "Completed"
        body = callback.wait(1)[0]["body"]
    assert body["task_def"] == "ml_topic"
    assert len(body["log"]["details"]) == 3
    assert float(body["log"]["avg"]["f1-score"]) > 0.7


def test_stopping_a_running_job(api):
    with DatasetServer(tagging_records(400)) as dataset, CallbackServer() as callback:
        name = create(api, callback, dataset, hyperparameters=fast_tagger_hyperparameters(steps=100000))
        wait_progress(api, name, "running")
        status, body = api.call("POST", "/stop_training_job", {"job_name": name})
        assert status == 200 and body["status"] == "success"
        assert wait_status(api, name, ("Stopped",), timeout=60) == "Stopped"
        call = callback.wait(1)[0]
    assert call["body"]["status"] == "Stopped"
    assert call["body"]["model"] is None
    checkpoints = list(api.home.glob("artifacts/jobs/*/checkpoints/step-*"))
    assert checkpoints, "the trainer saves a checkpoint when stopped"
    status, body = api.call("POST", "/stop_training_job", {"job_name": name})
    assert status == 409 and "status Stopped" in body["message"]


def test_job_survives_an_api_restart(tmp_path):
    api = ApiServer(tmp_path / "home", extra_env={"AIFACTORY_CALLBACK_BACKOFF_SECONDS": "0.2"})
    with DatasetServer(tagging_records(400), latency=0.01) as dataset, CallbackServer() as callback:
        with api:
            # long enough to be caught training on a fast, quiet machine (150 steps took ~1 s,
            # less than the heartbeat's 1 s interval, and went from initialized to finished)
            name = create(api, callback, dataset, hyperparameters=fast_tagger_hyperparameters(steps=3000))
            wait_progress(api, name, "running")
        time.sleep(1.0)  # the API is down while the job trains
        with api:
            assert wait_status(api, name, ("Completed", "Failed")) == "Completed"
            call = callback.wait(1)[0]
            assert call["body"]["status"] == "Completed"
            assert len(callback.calls) == 1
    api.kill_jobs()


def test_transient_dataset_failures_are_retried(api):
    with (
        DatasetServer(tagging_records(300), failures={0: [503, 503, 503]}) as dataset,
        CallbackServer() as callback,
    ):
        name = create(api, callback, dataset, hyperparameters=fast_tagger_hyperparameters(steps=40))
        assert wait_status(api, name, ("Completed", "Failed")) == "Completed"
        assert callback.wait(1)[0]["body"]["status"] == "Completed"


def test_permanent_dataset_failure_fails_the_job_with_a_clear_reason(api):
    with (
        DatasetServer(tagging_records(300), always_fail={100: 403}) as dataset,
        CallbackServer() as callback,
    ):
        name = create(api, callback, dataset, hyperparameters=fast_tagger_hyperparameters(steps=40))
        assert wait_status(api, name, ("Completed", "Failed")) == "Failed"
        body = callback.wait(1)[0]["body"]
    assert body["status"] == "Failed"
    assert "offset 100" in body["FailureReason"] and "403" in body["FailureReason"]
    status, reply = api.call("POST", "/status", {"job_name": name})
    assert reply["status"] == "Failed" and "offset 100" in reply["message"]
    assert_no_secret_leaked(api, reply, body)

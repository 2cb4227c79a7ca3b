"""Faults a real deployment meets, injected on loopback: kill -9 of the API and of the trainer
in the middle of a job, and a sweep of everything the service wrote for secret markers."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.builders import CALLBACK_SECRET, DATASET_SECRET, create_payload, fast_tagger_hyperparameters
from tests.dataset_fetcher.loopback import DatasetServer as LoopbackDataset
from tests.polling import wait_until as wait_for
from tests.servers import ApiServer, CallbackServer, tagging_records

pytestmark = pytest.mark.e2e
API_KEY_MARKER = "api-key-marker-5d1e0c"
SIGNING_MARKER = "signing-key-marker-a93b"
MARKERS = (CALLBACK_SECRET, DATASET_SECRET, API_KEY_MARKER, SIGNING_MARKER)
ENV = {"AIFACTORY_CALLBACK_BACKOFF_SECONDS": "0.2", "AIFACTORY_CALLBACK_SIGNING_KEY": SIGNING_MARKER}


def dataset(records, **options):
    return LoopbackDataset(records, header=("x-api-key", DATASET_SECRET), reply="data", **options)


def create(api, callback, data, steps):
    payload = create_payload(
        callback=callback.url, dataset=data.url, hyperparameters=fast_tagger_hyperparameters(steps)
    )
    status, body = api.call("POST", "/create_training_job", payload)
    assert status == 200, body
    return body["job_name"]


def status_of(api, name) -> dict:
    return api.call("POST", "/status", {"job_name": name})[1]


def ended(api, name) -> dict | None:
    body = status_of(api, name)
    return body if body["status"] in ("Completed", "Failed", "Stopped") else None


def trainer_state(api, name) -> dict:
    return json.loads((api.home / "training" / name / "state.json").read_text())


def test_kill_9_of_the_api_mid_job_loses_nothing(tmp_path):
    api = ApiServer(tmp_path / "home", api_key=API_KEY_MARKER, extra_env=ENV)
    with dataset(tagging_records(400), latency=0.01) as data, CallbackServer() as callback:
        api.start()
        name = create(api, callback, data, steps=150)
        wait_for(lambda: trainer_state(api, name).get("trainer_pid"), timeout=180, what="trainer started")
        api.proc.send_signal(signal.SIGKILL)  # no shutdown, no cleanup
        api.proc.wait()
        api.start()
        try:
            assert (
                wait_for(lambda: ended(api, name), timeout=180, what="the job ended")["status"] == "Completed"
            )
            call = callback.wait(1)[0]
            assert call["body"]["status"] == "Completed"
            time.sleep(2)  # a second sweep would have sent it again
            assert len(callback.calls) == 1
        finally:
            api.stop()
            api.kill_jobs()


def test_kill_9_of_the_trainer_fails_the_job_and_reports_it_once(tmp_path):
    api = ApiServer(tmp_path / "home", api_key=API_KEY_MARKER, extra_env=ENV)
    with dataset(tagging_records(400), latency=0.01) as data, CallbackServer() as callback, api:
        name = create(api, callback, data, steps=400)
        pid = wait_for(
            lambda: trainer_state(api, name).get("trainer_pid"), timeout=180, what="trainer started"
        )
        wait_for(
            lambda: any((api.home / "artifacts").rglob("progress.json")), timeout=180, what="a heartbeat"
        )
        os.kill(pid, signal.SIGKILL)
        body = wait_for(lambda: ended(api, name), timeout=180, what="the job ended")
        assert body["status"] == "Failed" and body["message"]
        call = callback.wait(1)[0]
        assert call["body"]["status"] == "Failed" and call["body"]["FailureReason"]
        time.sleep(2)
        assert len(callback.calls) == 1
        api.kill_jobs()


def test_no_secret_marker_appears_anywhere_but_the_secret_store(tmp_path):
    api = ApiServer(tmp_path / "home", api_key=API_KEY_MARKER, extra_env=ENV)
    responses = []
    with dataset(tagging_records(200)) as data, CallbackServer() as callback, api:
        name = create(api, callback, data, steps=30)
        trainer_env = b""
        deadline = time.time() + 120
        while time.time() < deadline and not trainer_env:
            pid = trainer_state(api, name).get("trainer_pid")
            if pid:
                try:
                    trainer_env = open(f"/proc/{pid}/environ", "rb").read()
                except OSError:
                    break
            time.sleep(0.05)
        wait_for(lambda: ended(api, name), timeout=180, what="the job ended")
        responses += [status_of(api, name), api.call("POST", "/check_trained_job", {})[1]]
        responses.append(api.call("POST", "/logs", {"job_name": name, "limit": 5000})[1])
        call = callback.wait(1)[0]
        assert call["body"]["status"] == "Completed"
        api.kill_jobs()
    for marker in MARKERS:
        assert marker not in json.dumps(responses), marker
        assert marker.encode() not in trainer_env, f"{marker} in the trainer's environment"
        assert marker not in json.dumps(call["body"]), marker
    keep = {api.home / "api_key"}  # the local stage's own key file, 0600 like the secret store
    for path in api.home.rglob("*"):
        if not path.is_file() or path in keep or "secrets" in path.relative_to(api.home).parts:
            continue
        data = path.read_bytes()
        for marker in MARKERS:
            assert marker.encode() not in data, f"{marker} in {path}"
    for log in api.home.parent.glob("api-*.log"):
        for marker in MARKERS:
            assert marker not in log.read_text(), f"{marker} in the API log"

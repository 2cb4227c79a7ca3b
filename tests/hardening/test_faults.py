"""Faults a real deployment meets, injected on loopback: kill -9 of the API and of the trainer
in the middle of a job, and a sweep of everything the service wrote for secret markers."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from chalicelib.adapters.local.source_tree import RUNNER_KEYS
from chalicelib.settings import SECRET_ENVIRONMENT
from tests.builders import CALLBACK_SECRET, DATASET_SECRET, create_payload, fast_tagger_hyperparameters
from tests.dataset_fetcher.loopback import DatasetServer as LoopbackDataset
from tests.polling import wait_until as wait_for
from tests.servers import ApiServer, CallbackServer, tagging_records

pytestmark = pytest.mark.e2e
# Every key the API holds, by construction: the settings table's secret settings, each set to a marker.
KEY_MARKERS = {env: f"{env.lower()}-marker-5d1e0c" for env in sorted(SECRET_ENVIRONMENT)}
API_KEY_MARKER = KEY_MARKERS["AIFACTORY_API_KEY"]
MARKERS = (CALLBACK_SECRET, DATASET_SECRET, *KEY_MARKERS.values())
ENV = {"AIFACTORY_CALLBACK_BACKOFF_SECONDS": "0.2", **KEY_MARKERS}


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


def descendants_environments(api, seen: dict) -> None:
    """Every process the API started (runners are detached into their own session but stay its
    children; trainers are the runners' children), by pid: (command line, environment)."""
    try:
        children = psutil.Process(api.proc.pid).children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            seen.setdefault(child.pid, (" ".join(child.cmdline()), child.environ()))
        except psutil.Error:
            pass


def test_no_child_process_gets_a_key_it_does_not_use(tmp_path):
    from tests.e2e.test_v15_e2e import generate

    api = ApiServer(tmp_path / "home", api_key=API_KEY_MARKER, extra_env=ENV)
    seen: dict = {}
    images = generate(tmp_path / "data", "classification", num_images=4, image_size=32, num_classes=2)
    with dataset(tagging_records(200)) as data, CallbackServer() as callback, api:
        name = create(api, callback, data, steps=30)
        with ThreadPoolExecutor(1) as pool:  # a tool child, too
            aug = pool.submit(
                api.call,
                "POST",
                "/api/v1.5.0/aug",
                None,
                {"task": "classification", "data_dir": images, "index": "0"},
            )
            while not (aug.done() and ended(api, name)):
                descendants_environments(api, seen)
                time.sleep(0.02)
        assert aug.result()[0] == 200, aug.result()
        callback.wait(1)
        api.kill_jobs()
    kinds = {"runner": "job_runner", "trainer": "trainer", "tool": "trainer.tools"}
    for kind, word in kinds.items():
        assert any(word in cmdline for cmdline, _ in seen.values()), f"no {kind} process was seen: {seen}"
    for cmdline, environment in seen.values():
        allowed = RUNNER_KEYS if "job_runner" in cmdline else frozenset()
        for env, marker in KEY_MARKERS.items():
            if env not in allowed:
                assert env not in environment, f"{env} in the environment of {cmdline}"
                assert marker not in " ".join(environment.values()), f"{env}'s value in {cmdline}"


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

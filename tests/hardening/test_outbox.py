"""The callback outbox: at least once, on a schedule that reaches hours, never blocking.

Jobs are created through the API with nothing launched (we play SageMaker by writing the
platform's state), then the outbox sends their callbacks to loopback receivers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from chalicelib import settings, wiring
from chalicelib.services import events, outbox
from tests.builders import CALLBACK_SECRET, create_payload
from tests.hardening.receiver import Receiver
from tests.servers import REPO, free_port

FAST = {
    "AIFACTORY_MAX_CONCURRENT_JOBS": "0",
    "AIFACTORY_CALLBACK_BACKOFF_SECONDS": "0.2",
    "AIFACTORY_CALLBACK_MAX_DELAY_SECONDS": "0.5",
    "AIFACTORY_CALLBACK_TIMEOUT_SECONDS": "1",
    "AIFACTORY_CALLBACK_LEASE_SECONDS": "1",
    "AIFACTORY_CALLBACK_WORKERS": "2",
}


@pytest.fixture
def api(client, monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    settings.reset()
    wiring.reset()
    return client


def create(api, api_headers, callback_url: str, status: str = "Failed") -> str:
    created = api.http.post(
        "/create_training_job", headers=api_headers, body=json.dumps(create_payload(callback=callback_url))
    )
    name = created.json_body["job_name"]
    platform = wiring.adapters().platform
    state = platform.read_state(name)
    state.update(status=status, secondary_status=status, end_time="2030-01-01 00:00:00")
    if status == "Failed":
        state["failure_reason"] = "AlgorithmError: boom"
    platform.write_state(name, state)
    return name


def box(name: str) -> dict:
    return wiring.adapters().jobs.get_by_name(name)["callback_outbox"]


def status_of(api, api_headers, name: str) -> dict:
    return api.http.post("/status", headers=api_headers, body=json.dumps({"job_name": name})).json_body


def sweep_until(predicate, timeout: float = 60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        events.deliver_pending(wiring.adapters())
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("the outbox did not get there in time")


def test_default_schedule_reaches_hours_and_days(local_stage):
    waits = outbox.schedule(settings.current())
    assert waits[0] == 30.0 and waits == sorted(waits)
    assert max(waits) == 8 * 3600
    assert 2 * 86400 < sum(waits) < 3 * 86400


def test_retry_after_lengthens_a_wait_up_to_the_cap(local_stage):
    config = settings.current()
    assert outbox.retry_delay(config, 1, retry_after=600) == 600
    assert outbox.retry_delay(config, 1, retry_after=10**9) == config.callback_max_delay_seconds


def test_receiver_down_then_up_is_delivered_later(api, api_headers):
    port = free_port()
    name = create(api, api_headers, f"http://127.0.0.1:{port}/callback")
    events.deliver_pending(wiring.adapters())
    first = box(name)
    assert (first["state"], first["attempts"]) == ("pending", 1)
    assert "refused" in first["last_error"].lower() or "connect" in first["last_error"].lower()
    assert status_of(api, api_headers, name)["callback"]["status"] == "pending"
    with Receiver(port) as receiver:
        sweep_until(lambda: box(name)["state"] == "delivered")
        calls = receiver.calls
    assert [c["body"]["status"] for c in calls] == ["Failed"]
    assert calls[0]["headers"]["x-api-key"] == CALLBACK_SECRET
    shown = status_of(api, api_headers, name)["callback"]
    assert shown["status"] == "delivered" and shown["attempts"] >= 2 and "delivered_at" in shown


def test_idempotency_key_is_stable_across_retries(api, api_headers):
    with Receiver(statuses=[503, 500]) as receiver:
        name = create(api, api_headers, receiver.url, status="Stopped")
        sweep_until(lambda: box(name)["state"] == "delivered")
    keys = [c["headers"]["idempotency-key"] for c in receiver.calls]
    assert keys == [f"{name}:Stopped"] * 3


def test_a_callback_that_finally_failed_says_so(api, api_headers, monkeypatch):
    monkeypatch.setenv("AIFACTORY_CALLBACK_ATTEMPTS", "3")
    settings.reset()
    with Receiver(statuses=[503] * 10) as receiver:
        name = create(api, api_headers, receiver.url)
        sweep_until(lambda: box(name)["state"] == "failed")
    assert len(receiver.calls) == 3
    assert status_of(api, api_headers, name)["callback"] == {
        "status": "failed",
        "attempts": 3,
        "last_error": "HTTP 503 Service Unavailable",
    }
    listed = api.http.post("/check_trained_job", headers=api_headers, body="{}").json_body
    assert [item["callback"]["status"] for item in listed if item["TrainingJobName"] == name] == ["failed"]


def test_a_4xx_fails_at_once(api, api_headers):
    with Receiver(statuses=[404]) as receiver:
        name = create(api, api_headers, receiver.url)
        sweep_until(lambda: box(name)["state"] == "failed")
    assert len(receiver.calls) == 1 and box(name)["last_error"] == "HTTP 404 Not Found"


def test_a_3xx_fails_at_once_and_is_never_followed(api, api_headers):
    """A redirect is not transient (docs/contracts.md, "The callback"): no retry, no second host."""
    with Receiver(statuses=[302]) as receiver:
        name = create(api, api_headers, receiver.url)
        sweep_until(lambda: box(name)["state"] == "failed")
    assert len(receiver.calls) == 1
    assert box(name)["last_error"] == (
        "HTTP 302 Found: redirects are not followed, so the callback headers reach no other host"
    )


def test_bad_records_never_escape_the_sweep(api, api_headers):
    with Receiver() as receiver:
        bad = create(api, api_headers, receiver.url)
        good = create(api, api_headers, receiver.url, status="Completed")
        svc = wiring.adapters()
        record = svc.jobs.get_by_name(bad)
        svc.jobs.update(record["job_id"], {"callback": {"url": "http://127.0.0.1:9\\@evil/"}})
        sweep_until(lambda: box(good)["state"] == "delivered" and box(bad)["state"] == "failed")
    assert box(bad)["last_error"].startswith("callback URL refused")
    assert [c["body"]["job_name"] for c in receiver.calls] == [good]


def test_a_slow_receiver_does_not_block_another_jobs_callback(api, api_headers):
    sender = outbox.Outbox(wiring.adapters, workers=2)
    try:
        with Receiver(hold=True) as slow, Receiver() as fast:
            stuck = create(api, api_headers, slow.url)
            sender.submit_due()  # returns while the slow receiver holds its worker
            slow.wait(1)
            quick = create(api, api_headers, fast.url)
            deadline = time.time() + 30
            while not fast.calls and time.time() < deadline:
                sender.submit_due()
                time.sleep(0.1)
            assert [c["body"]["job_name"] for c in fast.wait(1)] == [quick]
            assert box(stuck)["state"] == "pending"  # still in its attempt
            slow.gate.set()
    finally:
        sender.close(wait=True)


def test_kill_9_mid_attempt_is_redelivered_after_the_lease(api, api_headers, local_stage):
    with Receiver(hold=True) as receiver:
        name = create(api, api_headers, receiver.url)
        code = "from chalicelib.services import events; from chalicelib.wiring import adapters; events.deliver_pending(adapters())"
        env = {**os.environ, "PYTHONPATH": str(REPO), "AIFACTORY_CALLBACK_TIMEOUT_SECONDS": "2"}
        sender = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env)
        try:
            receiver.wait(1)  # the attempt is in flight: claimed, not recorded
            held = box(name)
            assert (held["attempts"], held["lease_owner"] is not None) == (1, True)
        finally:
            sender.send_signal(signal.SIGKILL)
            sender.wait()
        receiver.gate.set()
        sweep_until(lambda: box(name)["state"] == "delivered")
    assert len(receiver.calls) == 2
    assert {c["headers"]["idempotency-key"] for c in receiver.calls} == {f"{name}:Failed"}
    assert box(name)["attempts"] == 2


def test_state_change_handler_stays_in_its_budget_and_the_schedule_retries(api, api_headers):
    from chalice.local import LambdaContext

    from app import retry_callbacks, training_state_changed

    with Receiver() as receiver:
        name = create(api, api_headers, receiver.url)
        event = api.events.generate_cw_event(
            source="aws.sagemaker",
            detail_type="SageMaker Training Job State Change",
            resources=[],
            detail={"TrainingJobName": name, "TrainingJobStatus": "Failed"},
        )
        almost_out = LambdaContext("training_state_changed", 512, max_runtime_ms=1500)
        training_state_changed(event, almost_out)  # 0.5 s left after the margin: no attempt
        assert (box(name)["state"], box(name)["attempts"]) == ("pending", 0)
        assert receiver.calls == []
        tick = api.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", resources=[], detail={}
        )
        retry_callbacks(tick, LambdaContext("retry_callbacks", 512, max_runtime_ms=60000))
        assert [c["body"]["job_name"] for c in receiver.wait(1)] == [name]
    assert box(name)["state"] == "delivered"

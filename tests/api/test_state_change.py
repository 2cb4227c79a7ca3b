"""The job-state-change handler: reports jobs that ended without reporting, once."""

from __future__ import annotations

import json
import logging
import time

import pytest

from app import training_state_changed  # noqa: F401 - registers the handler with the app
from tests.builders import CALLBACK_SECRET, create_payload
from tests.servers import CallbackServer


@pytest.fixture
def queued_only(local_stage, monkeypatch):
    monkeypatch.setenv("AIFACTORY_MAX_CONCURRENT_JOBS", "0")  # nothing launches: we play SageMaker
    monkeypatch.setenv("AIFACTORY_CALLBACK_BACKOFF_SECONDS", "0")
    from chalicelib import settings, wiring

    settings.reset()
    wiring.reset()


def mark(name: str, status: str, reason: str = "") -> None:
    from chalicelib.wiring import adapters

    platform = adapters().platform
    state = platform.read_state(name)
    state.update(
        status=status, secondary_status=status, failure_reason=reason, end_time="2030-01-01 00:00:00"
    )
    platform.write_state(name, state)


CAPACITY = "CapacityError: Unable to provision requested ML compute capacity."


def create_job(client, api_headers, callback_url: str | None = None) -> str:
    payload = create_payload(callback=callback_url) if callback_url else create_payload()
    created = client.http.post("/create_training_job", headers=api_headers, body=json.dumps(payload))
    return created.json_body["job_name"]


def state_changed(client, name: str, status: str) -> None:
    event = client.events.generate_cw_event(
        source="aws.sagemaker",
        detail_type="SageMaker Training Job State Change",
        resources=[],
        detail={"TrainingJobName": name, "TrainingJobStatus": status},
    )
    client.lambda_.invoke("training_state_changed", event)


def test_a_capacity_failure_queues_a_new_attempt_not_a_failure(client, api_headers, queued_only):
    with CallbackServer() as callback:
        name = create_job(client, api_headers, callback.url)
        mark(name, "Failed", CAPACITY)
        state_changed(client, name, "Failed")
        state_changed(client, name, "Failed")  # EventBridge may deliver twice: one new attempt
        status = client.http.post(
            "/status", headers=api_headers, body=json.dumps({"job_name": name})
        ).json_body
        assert status["status"] == "InProgress" and status["secondary_status"] == "WaitingForCapacity"
        assert status["message"] == CAPACITY
        from chalicelib.services import events
        from chalicelib.wiring import adapters

        job = adapters().jobs.get_by_name(name)
        assert [a["training_job_name"] for a in job["attempts"]] == [name, f"{name}-r2"]
        assert events.launch_queued(adapters()) == 1  # the next sweep sends attempt 2
        assert adapters().platform.read_state(f"{name}-r2")["status"] == "InProgress"
        assert callback.calls == []


def test_a_job_that_waited_too_long_for_capacity_fails_saying_so(
    client, api_headers, queued_only, monkeypatch
):
    from chalicelib import settings

    monkeypatch.setenv("AIFACTORY_CAPACITY_MAX_WAIT_SECONDS", "0")
    settings.reset()
    with CallbackServer() as callback:
        name = create_job(client, api_headers, callback.url)
        mark(name, "Failed", CAPACITY)
        state_changed(client, name, "Failed")
        state_changed(client, name, "Failed")  # EventBridge may deliver twice
        calls = callback.wait(1)
    assert len(calls) == 1
    body = calls[0]["body"]
    assert body["status"] == "Failed" and body["job_name"] == name and body["model"] is None
    assert body["FailureReason"].startswith("No capacity for 1 x ml.m4.4xlarge after 0.0 h of tries")
    assert (
        "AIFACTORY_CAPACITY_MAX_WAIT_SECONDS" in body["FailureReason"] and CAPACITY in body["FailureReason"]
    )
    assert calls[0]["headers"]["x-api-key"] == CALLBACK_SECRET


def test_another_failure_is_a_failure(client, api_headers, queued_only):
    name = create_job(client, api_headers)
    mark(name, "Failed", "AlgorithmError: boom")
    state_changed(client, name, "Failed")
    status = client.http.post("/status", headers=api_headers, body=json.dumps({"job_name": name})).json_body
    assert status["status"] == "Failed" and status["message"] == "AlgorithmError: boom"


def test_sweep_reports_a_job_nobody_reported(client, api_headers, queued_only):
    from chalicelib import wiring
    from chalicelib.services import events

    with CallbackServer() as callback:
        name = create_job(client, api_headers, callback.url)
        events.deliver_pending(wiring.adapters())
        assert callback.calls == []  # still running: nothing to report
        mark(name, "Stopped")
        events.deliver_pending(wiring.adapters())
        events.deliver_pending(wiring.adapters())
        calls = callback.wait(1)
    assert [c["body"]["status"] for c in calls] == ["Stopped"]


def test_event_for_an_unknown_job_is_ignored(client, api_headers, queued_only, caplog):
    """Ignored: no job is created or changed (not even ours, which ended unreported), no
    callback is queued or sent, and the handler answers normally (EventBridge does not retry)."""
    from chalicelib.wiring import adapters

    with CallbackServer() as callback:
        name = create_job(client, api_headers, callback.url)
        mark(name, "Completed")
        before = adapters().jobs.list()
        event = client.events.generate_cw_event(
            source="aws.sagemaker",
            detail_type="SageMaker Training Job State Change",
            resources=[],
            detail={"TrainingJobName": "not-ours", "TrainingJobStatus": "Completed"},
        )
        with caplog.at_level(logging.INFO, logger="aifactory.events"):
            response = client.lambda_.invoke("training_state_changed", event)
        assert response.payload is None
        assert adapters().jobs.list() == before
        assert adapters().jobs.get_by_name("not-ours") is None
        assert adapters().jobs.list_due_callbacks(time.time() + 86400) == []
        assert callback.calls == []
    assert "unknown training job not-ours (Completed): ignored" in caplog.text

"""The job-state-change handler: reports jobs that ended without reporting, once."""

from __future__ import annotations

import json

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
    from chalicelib.wiring import services

    platform = services().platform
    state = platform.read_state(name)
    state.update(
        status=status, secondary_status=status, failure_reason=reason, end_time="2030-01-01 00:00:00"
    )
    platform.write_state(name, state)


def test_capacity_failure_is_reported_by_the_state_change_event(client, api_headers, queued_only):
    with CallbackServer() as callback:
        created = client.http.post(
            "/create_training_job",
            headers=api_headers,
            body=json.dumps(create_payload(callback=callback.url)),
        )
        name = created.json_body["job_name"]
        mark(name, "Failed", "CapacityError: Unable to provision requested ML compute capacity.")
        event = client.events.generate_cw_event(
            source="aws.sagemaker",
            detail_type="SageMaker Training Job State Change",
            resources=[],
            detail={"TrainingJobName": name, "TrainingJobStatus": "Failed"},
        )
        client.lambda_.invoke("training_state_changed", event)
        client.lambda_.invoke("training_state_changed", event)  # EventBridge may deliver twice
        calls = callback.wait(1)
    assert len(calls) == 1
    body = calls[0]["body"]
    assert body["status"] == "Failed" and body["job_name"] == name and body["model"] is None
    assert body["FailureReason"].startswith("CapacityError")
    assert body["TrainingEndTime"] == "2030-01-01 00:00:00"
    assert calls[0]["headers"]["x-api-key"] == CALLBACK_SECRET


def test_sweep_reports_a_job_nobody_reported(client, api_headers, queued_only):
    from chalicelib import wiring
    from chalicelib.services import events

    with CallbackServer() as callback:
        created = client.http.post(
            "/create_training_job",
            headers=api_headers,
            body=json.dumps(create_payload(callback=callback.url)),
        )
        name = created.json_body["job_name"]
        events.deliver_pending(wiring.services())
        assert callback.calls == []  # still running: nothing to report
        mark(name, "Stopped")
        events.deliver_pending(wiring.services())
        events.deliver_pending(wiring.services())
        calls = callback.wait(1)
    assert [c["body"]["status"] for c in calls] == ["Stopped"]


def test_event_for_an_unknown_job_is_ignored(client, queued_only):
    event = client.events.generate_cw_event(
        source="aws.sagemaker",
        detail_type="SageMaker Training Job State Change",
        resources=[],
        detail={"TrainingJobName": "not-ours", "TrainingJobStatus": "Completed"},
    )
    client.lambda_.invoke("training_state_changed", event)

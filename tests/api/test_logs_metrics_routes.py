"""The logs routes take `metrics` (issue 18): the v1.5 query field and the AI Factory body
field; through the Chalice test client on a queued job."""

from __future__ import annotations

import json

import pytest

from tests.builders import create_payload


@pytest.fixture
def queued(client, api_headers, monkeypatch):
    from chalicelib import settings, wiring

    monkeypatch.setenv("AIFACTORY_MAX_CONCURRENT_JOBS", "0")  # queue only: nothing launches
    settings.reset()
    wiring.reset()
    created = client.http.post("/create_training_job", headers=api_headers, body=json.dumps(create_payload()))
    return created.json_body["job_name"]


def logs(client, api_headers, body):
    return client.http.post("/logs", headers=api_headers, body=json.dumps(body))


def test_ai_factory_logs_leave_metric_lines_out_by_default(client, api_headers, queued):
    response = logs(client, api_headers, {"job_name": queued})
    assert response.status_code == 200, response.json_body
    assert response.json_body["metrics"] is False


def test_ai_factory_logs_show_metric_lines_on_request(client, api_headers, queued):
    response = logs(client, api_headers, {"job_name": queued, "metrics": True})
    assert response.status_code == 200, response.json_body
    assert response.json_body["metrics"] is True


def test_ai_factory_logs_refuse_a_bad_metrics_value(client, api_headers, queued):
    response = logs(client, api_headers, {"job_name": queued, "metrics": "maybe"})
    assert response.status_code == 400
    assert response.json_body == {
        "status": "error",
        "message": "Invalid 'metrics': must be true or false; got 'maybe'",
    }


@pytest.fixture
def v15_job(client, api_headers, queued, tmp_path):
    form = {"task": "classification", "data_dir": str(tmp_path), "algorithm": "resnet18"}
    created = client.http.post("/api/v1.5.0/train", headers=api_headers, body=json.dumps(form))
    return created.json_body["job_id"]


def test_v15_logs_leave_metric_lines_out_by_default(client, api_headers, v15_job):
    response = client.http.get(f"/api/v1.5.0/train/{v15_job}/logs", headers=api_headers)
    assert response.status_code == 200, response.json_body
    assert response.json_body["metrics"] is False


def test_v15_logs_show_metric_lines_with_the_metrics_query_field(client, api_headers, v15_job):
    response = client.http.get(f"/api/v1.5.0/train/{v15_job}/logs?metrics=true", headers=api_headers)
    assert response.status_code == 200, response.json_body
    assert response.json_body["metrics"] is True


def test_v15_logs_refuse_a_bad_metrics_value(client, api_headers, v15_job):
    response = client.http.get(f"/api/v1.5.0/train/{v15_job}/logs?metrics=maybe", headers=api_headers)
    assert response.status_code == 400
    assert response.json_body == {
        "result": "Error",
        "message": "Invalid 'metrics': must be true or false; got 'maybe'",
    }

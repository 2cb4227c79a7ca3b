"""Resource bombs: values the spec's rules allow but no real job needs are a 400 naming the
field and the ceiling, and a stage may lower or raise any ceiling."""

from __future__ import annotations

import json

import pytest

from tests.builders import create_payload, set_path


@pytest.mark.parametrize(
    ("dotted", "value", "field", "ceiling"),
    [
        (
            "training_model.hyperparameters.process.train.steps",
            "1e20",
            "training_model.hyperparameters.process.train.steps",
            10_000_000,
        ),
        (
            "training_model.hyperparameters.process.train.batchsize",
            "1e12",
            "training_model.hyperparameters.process.train.batchsize",
            65_536,
        ),
        (
            "training_model.hyperparameters.model.embeddingSize",
            "1e9",
            "training_model.hyperparameters.model.embeddingSize",
            8_192,
        ),
        (
            "dataset_endpoint.pagination.begin_offset",
            10**30,
            "dataset_endpoint.pagination.begin_offset",
            10**12,
        ),
    ],
)
def test_ai_factory_resource_bombs_are_refused(client, api_headers, dotted, value, field, ceiling):
    payload = create_payload()
    set_path(payload, dotted, value)
    response = client.http.post("/create_training_job", headers=api_headers, body=json.dumps(payload))
    assert response.status_code == 400
    message = response.json_body["message"]
    assert message.startswith(f"Invalid '{field}': must be at most {ceiling} (this stage's ceiling")


@pytest.mark.parametrize(
    ("name", "value", "ceiling"),
    [
        ("batch_size", "1000000000000", 4_096),
        ("image_resized_width", "1000000000", 8_192),
        ("num_epochs_to_finish", "1000000000000000", 100_000),
        ("num_workers", "1000000", 256),
    ],  # fmt: skip
)
def test_v15_resource_bombs_are_refused(client, api_headers, tmp_path, name, value, ceiling):
    form = {"task": "classification", "data_dir": str(tmp_path), "algorithm": "resnet18", name: value}
    if name == "num_epochs_to_finish":
        form["step_lr_sizes"] = "[]"
    response = client.http.post(
        "/api/v1.5.0/train",
        headers={**api_headers, "Content-Type": "application/json"},
        body=json.dumps(form),
    )
    assert response.status_code == 400, response.json_body
    assert response.json_body["message"].startswith(f"Invalid '{name}': must be at most {ceiling}")


def test_a_stage_sets_its_own_ceiling(client, api_headers, tmp_path, monkeypatch):
    from chalicelib import settings

    monkeypatch.setenv("AIFACTORY_CEILINGS", '{"batch_size": 16}')
    settings.reset()
    form = {"task": "classification", "data_dir": str(tmp_path), "algorithm": "resnet18", "batch_size": "32"}
    response = client.http.post("/api/v1.5.0/train", headers=api_headers, body=json.dumps(form))
    assert response.status_code == 400
    assert response.json_body["message"] == (
        "Invalid 'batch_size': must be at most 16 (this stage's ceiling, AIFACTORY_CEILINGS); got 32"
    )

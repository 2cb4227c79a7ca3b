"""AI Factory routes through chalice.test.Client: bad input, API key, error shapes."""

from __future__ import annotations

import json

import pytest

from tests.builders import CALLBACK_SECRET, DATASET_SECRET, DELETE, create_payload


def post(client, path, body, headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.http.post(path, headers=headers, body=data)


def assert_nothing_created(client, headers, home):
    listed = post(client, "/check_trained_job", {}, headers)
    assert listed.json_body == []
    assert not any((home / "artifacts").rglob("*.json")) if (home / "artifacts").exists() else True
    assert not any((home / "secrets").glob("*")) if (home / "secrets").exists() else True


def test_missing_api_key_is_forbidden_like_api_gateway(client):
    response = client.http.post("/create_training_job", body=json.dumps(create_payload()))
    assert response.status_code == 403
    assert response.json_body == {"message": "Forbidden"}


def test_wrong_api_key_is_forbidden(client):
    response = client.http.post("/check_trained_job", headers={"x-api-key": "nope"}, body="{}")
    assert response.status_code == 403


def test_malformed_json_is_rejected(client, api_headers, local_stage):
    response = post(client, "/create_training_job", "{not json", api_headers)
    assert response.status_code == 400
    assert response.json_body["status"] == "error"
    assert "malformed JSON" in response.json_body["message"]
    assert_nothing_created(client, api_headers, local_stage)


BAD_INPUTS = [
    ({"task_def": DELETE}, "task_def", "required"),
    ({"task_def": "ml_vision"}, "task_def", "unknown task 'ml_vision'"),
    ({"creator": 42}, "creator", "must be a non-empty string"),
    ({"callback_url": DELETE}, "callback_url", "required object"),
    ({"callback_url": "http://x"}, "callback_url", "must be an object"),
    ({"callback_url.url": "ftp://127.0.0.1/cb"}, "callback_url.url", "http or https"),
    (
        {"callback_url.url": "http://169.254.169.254/latest/meta-data"},
        "callback_url.url",
        "forbidden address",
    ),
    ({"callback_url.headers": {"x-api-key": 5}}, "callback_url.headers", "string values"),
    ({"dataset_endpoint.type": "s3"}, "dataset_endpoint.type", "unknown type 's3'"),
    ({"dataset_endpoint.url": "not a url"}, "dataset_endpoint.url", "http or https"),
    ({"dataset_endpoint.pagination.page_size": 0}, "dataset_endpoint.pagination.page_size", "[1, 100000]"),
    (
        {"dataset_endpoint.pagination.begin_offset": -1},
        "dataset_endpoint.pagination.begin_offset",
        "[0, Inf]",
    ),
    ({"dataset_endpoint.pagination.max_pages": "many"}, "dataset_endpoint.pagination.max_pages", "integer"),
    ({"training_model.image": "docker.io/evil/miner:latest"}, "training_model.image", "not allowed"),
    (
        {"training_model.resource.InstanceType": "ml.x99.huge"},
        "training_model.resource.InstanceType",
        "not an allowed",
    ),
    ({"training_model.resource.InstanceCount": 0}, "training_model.resource.InstanceCount", "integer in [1,"),
    ({"training_model.resource.VolumeSizeInGB": "big"}, "training_model.resource.VolumeSizeInGB", "integer"),
    ({"training_model.hyperparameters.process.train.steps": "-5"}, "process.train.steps", ">= 1"),
    ({"training_model.hyperparameters.process.train.initLearningRate": "fast"}, "initLearningRate", "number"),
    ({"training_model.hyperparameters.process.train.batchsize": "12.5"}, "batchsize", "integer"),
    ({"training_model.hyperparameters.model.dropoutRate": "1.5"}, "model.dropoutRate", "[0, 1)"),
    ({"training_model.hyperparameters.model.numClasses": "-3"}, "model.numClasses", "or -1"),
    ({"training_model.hyperparameters.process.train.using_gpu": "maybe"}, "using_gpu", "True or False"),
    (
        {"training_model.hyperparameters.model.finetuneFrom": DATASET_SECRET},
        "hyperparameters.model.finetuneFrom",
        "must not contain a header",
    ),
    ({"training_model.resource": DELETE}, "training_model.resource", "required object"),
]


@pytest.mark.parametrize(
    ("overrides", "field", "problem"), BAD_INPUTS, ids=[b[1] + ":" + b[2] for b in BAD_INPUTS]
)
def test_bad_input_is_rejected_naming_the_field(client, api_headers, local_stage, overrides, field, problem):
    response = post(client, "/create_training_job", create_payload(**overrides), api_headers)
    assert response.status_code == 400, response.json_body
    message = response.json_body["message"]
    assert field in message and problem in message, message
    assert CALLBACK_SECRET not in message and DATASET_SECRET not in message
    assert_nothing_created(client, api_headers, local_stage)


def test_foreign_image_without_docker_engine_gets_a_clear_error(
    client, api_headers, local_stage, monkeypatch
):
    monkeypatch.setenv("AIFACTORY_ALLOWED_IMAGES", "chappieai-sagemaker,my-team/custom-trainer")
    from chalicelib import settings

    settings.reset()
    payload = create_payload(**{"training_model.image": "my-team/custom-trainer:1.0"})
    response = post(client, "/create_training_job", payload, api_headers)
    assert response.status_code == 503
    assert "needs a Docker engine" in response.json_body["message"]
    assert_nothing_created(client, api_headers, local_stage)


def test_status_of_unknown_job_is_not_found(client, api_headers):
    response = post(client, "/status", {"job_name": "nope"}, api_headers)
    assert response.status_code == 404
    assert response.json_body == {"status": "error", "message": "Job nope not found."}


def test_status_requires_job_name(client, api_headers):
    response = post(client, "/status", {}, api_headers)
    assert response.status_code == 400
    assert "'job_name'" in response.json_body["message"]


def test_created_job_is_listed_and_queued_then_stopped(client, api_headers, local_stage, monkeypatch):
    monkeypatch.setenv("AIFACTORY_MAX_CONCURRENT_JOBS", "0")  # queue only: nothing launches
    from chalicelib import settings, wiring

    settings.reset()
    wiring.reset()
    created = post(client, "/create_training_job", create_payload(), api_headers)
    assert created.status_code == 200
    assert created.json_body["status"] == "success"
    name = created.json_body["job_name"]
    listed = post(client, "/check_trained_job", {}, api_headers).json_body
    assert [(j["TrainingJobName"], j["TrainingJobStatus"]) for j in listed] == [(name, "InProgress")]
    assert post(client, "/status", {"job_name": name}, api_headers).json_body == {"status": "InProgress"}
    stopped = post(client, "/stop_training_job", {"job_name": name}, api_headers)
    assert stopped.json_body["status"] == "success"
    assert post(client, "/status", {"job_name": name}, api_headers).json_body == {"status": "Stopped"}
    again = post(client, "/stop_training_job", {"job_name": name}, api_headers)
    assert again.status_code == 409
    assert again.json_body == {
        "status": "error",
        "message": "An error occurred (ValidationException) when calling the StopTrainingJob operation: "
        "The request was rejected because the training job is in status Stopped.",
    }
    for path in local_stage.rglob("*"):
        if path.is_file() and path.parent.name != "secrets":
            text = path.read_bytes()
            assert CALLBACK_SECRET.encode() not in text and DATASET_SECRET.encode() not in text, path


def test_form_encoded_json_body_is_accepted(client, local_stage):
    response = client.http.post(
        "/status",
        headers={"x-api-key": "test-api-key", "Content-Type": "application/x-www-form-urlencoded"},
        body='{"job_name": "nope"}',
    )
    assert response.status_code == 404

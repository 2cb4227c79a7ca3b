"""Train and create refuse a name no task knows (issue 18): a typo must not start a job with
defaults. The 400 names every unknown name and the closest known one; an argument of another
task is accepted and named in `ignored_arguments`. Through the Chalice test client."""

from __future__ import annotations

import json

import pytest

from tests.builders import create_payload

TRAIN = "/api/v1.5.0/train"


@pytest.fixture
def queue_only(client, monkeypatch):
    """Jobs are accepted and queued, none launches (nothing runs the trainer)."""
    from chalicelib import settings, wiring

    monkeypatch.setenv("AIFACTORY_MAX_CONCURRENT_JOBS", "0")
    settings.reset()
    wiring.reset()
    return client


def train(client, api_headers, tmp_path, **fields):
    form = {"task": "classification", "data_dir": str(tmp_path), "algorithm": "resnet18", **fields}
    return client.http.post(TRAIN, headers=api_headers, body=json.dumps(form))


def jobs_listed(client, api_headers):
    return client.http.get(TRAIN, headers=api_headers).json_body.get("jobs", [])


def test_v15_train_refuses_a_typo_naming_the_closest_argument(queue_only, api_headers, tmp_path):
    response = train(queue_only, api_headers, tmp_path, num_epoch="3")
    assert response.status_code == 400
    assert response.json_body == {
        "result": "Error",
        "message": "Invalid 'num_epoch': unknown argument; did you mean num_epochs_to_finish?",
    }


def test_v15_train_refuses_a_name_close_to_none_without_a_guess(queue_only, api_headers, tmp_path):
    response = train(queue_only, api_headers, tmp_path, foo="bar")
    assert response.status_code == 400
    assert response.json_body["message"] == "Invalid 'foo': unknown argument"


def test_v15_train_names_every_unknown_argument(queue_only, api_headers, tmp_path):
    response = train(queue_only, api_headers, tmp_path, learningrate="0.1", foo="bar")
    assert response.status_code == 400
    assert response.json_body["message"] == (
        "Invalid 'learningrate': unknown argument; did you mean learning_rate?; "
        "Invalid 'foo': unknown argument"
    )


def test_v15_train_refused_for_a_typo_starts_no_job(queue_only, api_headers, tmp_path):
    assert train(queue_only, api_headers, tmp_path, num_epoch="3").status_code == 400
    assert jobs_listed(queue_only, api_headers) == []


def test_v15_train_refuses_a_typo_in_the_query_string(queue_only, api_headers, tmp_path):
    form = {"task": "classification", "data_dir": str(tmp_path), "algorithm": "resnet18"}
    response = queue_only.http.post(TRAIN + "?batchsize=4", headers=api_headers, body=json.dumps(form))
    assert response.status_code == 400
    assert response.json_body["message"] == "Invalid 'batchsize': unknown argument; did you mean batch_size?"


def test_v15_train_accepts_another_tasks_argument_and_lists_it_as_ignored(queue_only, api_headers, tmp_path):
    response = train(queue_only, api_headers, tmp_path, backbone="resnet50", anchor_sizes="[64]")
    assert response.status_code == 200, response.json_body
    assert response.json_body["result"] == "OK"
    assert response.json_body["ignored_arguments"] == ["backbone", "anchor_sizes"]


def test_v15_train_answers_an_empty_ignored_list_when_every_argument_is_used(
    queue_only, api_headers, tmp_path
):
    response = train(queue_only, api_headers, tmp_path, num_epochs_to_finish="3", step_lr_sizes="[]")
    assert response.status_code == 200, response.json_body
    assert response.json_body["ignored_arguments"] == []


def test_v15_train_takes_the_spot_and_warm_pool_fields(queue_only, api_headers, tmp_path):
    response = train(queue_only, api_headers, tmp_path, use_spot="false", keep_alive_seconds="0")
    assert response.status_code == 200, response.json_body
    assert response.json_body["ignored_arguments"] == []


def test_v15_missing_backbone_lists_the_allowed_backbones(queue_only, api_headers, tmp_path):
    response = train(queue_only, api_headers, tmp_path, task="detection", algorithm="fpn")
    assert response.status_code == 400
    message = response.json_body["message"]
    assert message.startswith("Invalid 'backbone': required; one of: resnet18, resnet34, resnet50,")
    assert message.endswith("resnest269")


def test_v15_an_unknown_backbone_lists_the_allowed_backbones(queue_only, api_headers, tmp_path):
    response = train(queue_only, api_headers, tmp_path, task="detection", algorithm="fpn", backbone="resnet")
    assert response.status_code == 400
    message = response.json_body["message"]
    assert message.startswith("Invalid 'backbone': must be one of: resnet18, resnet34,")
    assert message.endswith("; got 'resnet'")


def create(client, api_headers, **hyperparameters):
    payload = create_payload()
    payload["training_model"]["hyperparameters"].update(hyperparameters)
    return client.http.post("/create_training_job", headers=api_headers, body=json.dumps(payload))


def test_create_refuses_a_hyperparameter_typo_naming_the_closest_key(queue_only, api_headers):
    response = create(queue_only, api_headers, **{"process.train.step": "3"})
    assert response.status_code == 400
    assert response.json_body == {
        "status": "error",
        "message": "Invalid 'training_model.hyperparameters.process.train.step': "
        "unknown hyper-parameter; did you mean process.train.steps?",
    }


def test_create_refuses_an_unknown_hyperparameter_without_a_guess(queue_only, api_headers):
    response = create(queue_only, api_headers, foo="bar")
    assert response.status_code == 400
    assert (
        response.json_body["message"]
        == "Invalid 'training_model.hyperparameters.foo': unknown hyper-parameter"
    )


def test_create_accepts_the_specs_example_hyperparameters(queue_only, api_headers):
    spec_example = {
        "process.train.using_gpu": "True",
        "process.train.initLearningRate": "0.2",
        "process.train.decayLearningSteps": "500",
        "process.train.decayRate": "0.95",
        "process.train.saveCheckpointSteps": "200",
        "process.train.keepCheckpointMax": "3",
        "process.train.momentum": "0.9",
        "process.train.steps": "400",
        "process.train.batchsize": "128",
        "process.eval.using_gpu": "True",
        "process.eval.steps": "100",
        "process.eval.batchsize": "15",
        "model.numClasses": "-1",
        "model.vocabSize": "-1",
        "model.embeddingSize": "50",
        "model.nHiddenGate": "50",
        "model.nHiddenTag": "50",
        "model.dropoutRate": "0.2",
        "model.add_start_end_words": "True",
    }
    response = create(queue_only, api_headers, **spec_example)
    assert response.status_code == 200, response.json_body
    assert response.json_body["status"] == "success"


def test_status_still_tolerates_extra_fields(queue_only, api_headers):
    name = create(queue_only, api_headers).json_body["job_name"]
    body = json.dumps({"job_name": name, "task": "whatever"})
    response = queue_only.http.post("/status", headers=api_headers, body=body)
    assert response.status_code == 200
    assert response.json_body["status"] == "InProgress"

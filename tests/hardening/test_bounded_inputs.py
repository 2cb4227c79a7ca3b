"""Bounded inputs: deep JSON, control characters, header and URL checks at submit time,
`data_dir` outside the state directory, the image allow-list. Every refusal is a 400
naming the field, and leaves no job behind."""

from __future__ import annotations

import json

import pytest

from chalicelib.images import image_allowed, is_builtin_trainer, parse_image
from tests.builders import create_payload

DEEP_LIST = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000
JSON_ROUTES = ["/create_training_job", "/status", "/stop_training_job", "/api/v1.5.0/train"]
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def message(response) -> str:
    return response.json_body["message"]


def post(client, headers, path, body, content_type="application/json"):
    return client.http.post(path, headers={**headers, "Content-Type": content_type}, body=body)


def no_jobs_left(local_stage) -> bool:
    from chalicelib.wiring import adapters

    artifacts = local_stage / "artifacts" / "jobs"
    return adapters().jobs.list() == [] and not (artifacts.exists() and any(artifacts.iterdir()))


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize(
    "body", [DEEP_LIST, DEEP_OBJECT, '{"job_name": ' + DEEP_LIST + "}"], ids=["list", "object", "field"]
)
def test_deep_json_body_is_400(client, api_headers, path, body):
    response = post(client, api_headers, path, body)
    assert response.status_code == 400
    assert message(response) == "Invalid 'body': JSON nested deeper than 32 levels"


@pytest.mark.parametrize("path", JSON_ROUTES[:3])
@pytest.mark.parametrize("field", ["task_def", "job_name", "callback_url"])
def test_deep_form_field_is_400_naming_it(client, api_headers, path, field):
    response = post(
        client, api_headers, path, f"{field}={DEEP_LIST}&creator=x", "application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert message(response) == f"Invalid '{field}': JSON nested deeper than 32 levels"


def test_deep_v15_literal_is_400_naming_it(client, api_headers, tmp_path):
    form = f"task=classification&algorithm=resnet18&data_dir={tmp_path}&image_resized_width={DEEP_LIST}"
    response = post(client, api_headers, "/api/v1.5.0/train", form, "application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "image_resized_width" in message(response)


def test_nesting_a_real_payload_needs_is_accepted(client, api_headers, local_stage):
    payload = create_payload()
    payload["training_model"]["hyperparameters"] = {"model.embeddingSize": "50"}
    response = post(client, api_headers, "/create_training_job", json.dumps(payload))
    assert response.status_code == 200, response.json_body


@pytest.mark.parametrize("creator", ["bad\x00name", "esc\x1b[31m", "rtl\u202eevil", "line\nbreak", "\ud800"])
def test_creator_with_control_characters_is_400(client, api_headers, local_stage, creator):
    response = post(client, api_headers, "/create_training_job", json.dumps(create_payload(creator=creator)))
    assert response.status_code == 400
    assert message(response).startswith("Invalid 'creator': must not contain control characters (found U+")
    assert no_jobs_left(local_stage)


def test_creator_too_long_is_400(client, api_headers, local_stage):
    response = post(
        client, api_headers, "/create_training_job", json.dumps(create_payload(creator="x" * 257))
    )
    assert (response.status_code, message(response)) == (
        400,
        "Invalid 'creator': must be at most 256 characters",
    )


def test_job_name_with_control_characters_is_400(client, api_headers):
    response = post(client, api_headers, "/status", json.dumps({"job_name": "aif-\x07"}))
    assert response.status_code == 400 and message(response).startswith(
        "Invalid 'job_name': must not contain"
    )


@pytest.mark.parametrize(
    ("field", "headers", "problem"),
    [
        ("callback_url.headers", {"a:b": "x"}, "header name 'a:b' is not a valid HTTP token"),
        ("callback_url.headers", {"x": "é€"}, "header 'x' has a character outside latin-1"),
        (
            "dataset_endpoint.headers",
            {f"h{i}": "v" for i in range(51)},
            "at most 50 headers are allowed; got 51",
        ),
        ("dataset_endpoint.headers", {"Host": "evil"}, "header 'Host' is set by the sender"),
        ("dataset_endpoint.headers", ["x"], "must be an object of header names"),
    ],
)
def test_headers_are_checked_by_the_senders_parser(client, api_headers, local_stage, field, headers, problem):
    payload = create_payload(**{f"{field}": headers})
    response = post(client, api_headers, "/create_training_job", json.dumps(payload))
    assert response.status_code == 400
    assert message(response).startswith(f"Invalid '{field}': {problem}")
    assert no_jobs_left(local_stage)


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("callback_url.url", "http://127.0.0.1:9\\@93.184.216.34/"),
        ("dataset_endpoint.url", "http://127.0.0.1:9/a\tb"),
        ("callback_url.url", "http://user:pw@127.0.0.1:9/"),
    ],
)
def test_urls_are_checked_by_the_senders_parser(client, api_headers, local_stage, field, url):
    response = post(client, api_headers, "/create_training_job", json.dumps(create_payload(**{field: url})))
    assert response.status_code == 400 and message(response).startswith(f"Invalid '{field}': ")
    assert no_jobs_left(local_stage)


def test_data_dir_inside_the_state_directory_is_400(client, api_headers, local_stage):
    inside = local_stage / "secrets"
    inside.mkdir(parents=True, exist_ok=True)
    form = f"task=classification&algorithm=resnet18&pretrained=False&data_dir={inside}"
    response = post(client, api_headers, "/api/v1.5.0/train", form, "application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert message(response) == f"Invalid 'data_dir': '{inside}' is inside the service's state directory"
    form = f"task=classification&algorithm=resnet18&pretrained=False&data_dir={local_stage}"
    response = post(client, api_headers, "/api/v1.5.0/train", form, "application/x-www-form-urlencoded")
    assert response.status_code == 400 and "inside the service's state directory" in message(response)
    assert no_jobs_left(local_stage)


@pytest.mark.parametrize(
    "image",
    [
        f"{ECR}/aifactory-trainer-evil:latest",
        "evil.example/chappieai-sagemaker:slot_tagger",
        "evil.example:5000/aifactory-trainer",
        "library/chappieai-sagemaker",
        f"{ECR}.evil.example/chappieai-sagemaker",
    ],
)
def test_image_allow_list_compares_repository_and_registry(client, api_headers, local_stage, image):
    response = post(
        client, api_headers, "/create_training_job", json.dumps(create_payload(training_model__image=image))
    )
    assert response.status_code == 400
    assert message(response).startswith(f"Invalid 'training_model.image': image '{image}' is not allowed")
    assert no_jobs_left(local_stage)


def test_image_allow_list_entries():
    allowed = ("chappieai-sagemaker", f"{ECR}/aifactory-trainer")
    assert image_allowed(f"{ECR}/chappieai-sagemaker:slot_tagger", allowed, local=False)
    assert image_allowed("chappieai-sagemaker:1", allowed, local=True)
    assert not image_allowed("chappieai-sagemaker:1", allowed, local=False)  # AWS: a registry is required
    assert image_allowed(f"{ECR}/aifactory-trainer@sha256:ab", allowed, local=False)
    assert not image_allowed(f"{ECR}/aifactory-trainer-evil", allowed, local=False)
    assert not image_allowed(
        "999999999999.dkr.ecr.us-east-1.amazonaws.com/aifactory-trainer", allowed, local=False
    )
    other = "999999999999.dkr.ecr.eu-west-1.amazonaws.com/chappieai-sagemaker"
    assert not image_allowed(other, allowed, local=False, trainer_image=f"{ECR}/aifactory-trainer:1")


def test_parse_image_and_builtin_trainer():
    assert parse_image("localhost:5000/a/b:1") == ("localhost:5000", "a/b", "1")
    assert parse_image("aifactory-trainer") == (None, "aifactory-trainer", "")
    assert is_builtin_trainer(f"{ECR}/aifactory-trainer:latest")
    assert not is_builtin_trainer("evil/aifactory-trainer")


@pytest.mark.parametrize("data_dir", ["{" * 5000, "a/" * 3000, "x" * 300])
def test_unusable_data_dir_is_400_not_500(client, api_headers, local_stage, data_dir):
    """Found by the fuzz test: a path component over NAME_MAX made os.stat raise (500)."""
    form = f"task=classification&algorithm=resnet18&pretrained=False&data_dir={data_dir}"
    response = post(client, api_headers, "/api/v1.5.0/train", form, "application/x-www-form-urlencoded")
    assert response.status_code == 400 and "data_dir" in message(response)
    assert no_jobs_left(local_stage)

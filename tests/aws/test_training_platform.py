from __future__ import annotations

import datetime as dt
import io
import json
import re

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.aws.training_platform import (
    DEFAULT_METRIC_NAMES,
    SageMakerTrainingPlatform,
    default_metric_definitions,
    model_artifact_key,
)
from chalicelib.errors import Conflict, NotFound, ValidationError
from chalicelib.ports import COMPLETED, TrainingRequest
from tests.aws.conftest import REGION

ROLE = "arn:aws:iam::123456789012:role/aifactory-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/aifactory-trainer:1.0"
ARTIFACTS = "s3://aifactory-artifacts/dev/jobs/20261122194501-8c0c"
SECRET_HEADERS = {"Authorization": "Bearer very-secret-token", "X-Api-Key": "k-123-secret"}
COMPLETED_TEXT = (
    "An error occurred (ValidationException) when calling the StopTrainingJob operation: "
    "The request was rejected because the training job is in status Completed."
)


def make_request(**overrides) -> TrainingRequest:
    """What the job service hands over: the headers went to the secret store, only strings here."""
    fields = dict(
        job_id="20261122194501-8c0c",
        training_job_name="aif-20261122-194501-8c0c1d2e",
        image=IMAGE,
        hyperparameters={"batch_size": "8", "epochs": "2", "process.train.initLearningRate": "0.001"},
        instance_type="ml.g5.xlarge",
        instance_count=2,
        volume_size_gb=50,
        artifact_uri=ARTIFACTS + "/",
        data_uri="s3://customer-data/voc/",
        max_runtime_s=7200,
        tags={"aifactory:job_id": "20261122194501-8c0c", "aifactory:api": "v1.5"},
    )
    fields.update(overrides)
    return TrainingRequest(**fields)


def expected_create_params(spot: bool = False) -> dict:
    params = {
        "TrainingJobName": "aif-20261122-194501-8c0c1d2e",
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": default_metric_definitions(),
        },
        "RoleArn": ROLE,
        "HyperParameters": {"batch_size": "8", "epochs": "2", "process.train.initLearningRate": "0.001"},
        "InputDataConfig": [
            {
                "ChannelName": "config",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": ARTIFACTS + "/job.json",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/json",
            },
            {
                "ChannelName": "training",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://customer-data/voc/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            },
        ],
        "OutputDataConfig": {"S3OutputPath": ARTIFACTS + "/output"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "CheckpointConfig": {"S3Uri": ARTIFACTS + "/checkpoints", "LocalPath": "/opt/ml/checkpoints"},
        "Tags": [
            {"Key": "aifactory:job_id", "Value": "20261122194501-8c0c"},
            {"Key": "aifactory:api", "Value": "v1.5"},
        ],
    }
    if spot:
        params["EnableManagedSpotTraining"] = True
        params["StoppingCondition"]["MaxWaitTimeInSeconds"] = 14400
    return params


@pytest.fixture
def offline_client():
    """A real SageMaker client that only ever talks to a Stubber."""
    return boto3.client("sagemaker", region_name=REGION)


def test_start_then_describe_with_moto(sagemaker):
    platform = SageMakerTrainingPlatform(sagemaker, ROLE)
    platform.start(make_request())
    description = platform.describe("aif-20261122-194501-8c0c1d2e")
    assert description.status == COMPLETED  # moto finishes training at once
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", description.creation_time)
    stored = sagemaker.describe_training_job(TrainingJobName="aif-20261122-194501-8c0c1d2e")
    assert stored["RoleArn"] == ROLE
    assert stored["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert stored["HyperParameters"] == make_request().hyperparameters
    assert stored["CheckpointConfig"]["S3Uri"] == ARTIFACTS + "/checkpoints"


def test_describe_missing_job_is_not_found(sagemaker):
    with pytest.raises(NotFound, match="aif-missing"):
        SageMakerTrainingPlatform(sagemaker, ROLE).describe("aif-missing")


def test_create_request_is_exact_and_free_of_secrets(offline_client):
    platform = SageMakerTrainingPlatform(offline_client, ROLE)
    with Stubber(offline_client) as stubber:
        stubber.add_response(
            "create_training_job",
            {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x"},
            expected_params=expected_create_params(),
        )
        platform.start(make_request())
        stubber.assert_no_pending_responses()
    sent = json.dumps(platform.build_request(make_request()))
    for header, value in SECRET_HEADERS.items():
        assert value not in sent and header not in sent
    assert "Environment" not in platform.build_request(make_request())


def test_spot_request_waits_for_capacity(offline_client):
    platform = SageMakerTrainingPlatform(offline_client, ROLE, spot=True)
    with Stubber(offline_client) as stubber:
        stubber.add_response(
            "create_training_job",
            {"TrainingJobArn": "arn:x"},
            expected_params=expected_create_params(spot=True),
        )
        platform.start(make_request())
        stubber.assert_no_pending_responses()


def test_optional_parts_are_left_out_or_passed_through():
    vpc = {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}
    metrics = [{"Name": "train:loss", "Regex": "#metric train:loss=([-+0-9.eE]+);"}]
    platform = SageMakerTrainingPlatform(object(), ROLE, vpc_config=vpc, metric_definitions=metrics)
    params = platform.build_request(make_request(data_uri=None, tags={}))
    assert [c["ChannelName"] for c in params["InputDataConfig"]] == ["config"]
    assert "Tags" not in params and "EnableManagedSpotTraining" not in params
    assert params["VpcConfig"] == vpc
    assert params["AlgorithmSpecification"]["MetricDefinitions"] == metrics


def test_rejects_locations_sagemaker_cannot_read():
    platform = SageMakerTrainingPlatform(object(), ROLE)
    with pytest.raises(ValidationError, match="data_dir"):
        platform.build_request(make_request(data_uri="/home/me/data"))
    with pytest.raises(ValidationError, match="artifact_uri"):
        platform.build_request(make_request(artifact_uri="/tmp/jobs/x"))
    with pytest.raises(ValueError, match="epochs"):
        platform.build_request(make_request(hyperparameters={"epochs": 2}))


def test_metric_regexes_match_the_trainer_lines():
    from trainer.reporting import emit_metric  # the trainer's own formatter

    for definition in default_metric_definitions():
        out = io.StringIO()
        emit_metric(definition["Name"], -2.5e-7, stream=out)
        match = re.search(definition["Regex"], "noise\n" + out.getvalue())
        assert match and float(match.group(1)) == pytest.approx(-2.5e-7)
    assert {d["Name"] for d in default_metric_definitions()} == set(DEFAULT_METRIC_NAMES)
    # SageMaker's limits: 40 definitions, regexes of at most 500 characters.
    assert len(DEFAULT_METRIC_NAMES) <= 40
    assert all(len(d["Regex"]) <= 500 for d in default_metric_definitions())


def test_describe_maps_failure_and_formats_times_in_utc(offline_client):
    tz = dt.timezone(dt.timedelta(hours=-5))
    with Stubber(offline_client) as stubber:
        stubber.add_response(
            "describe_training_job",
            {
                "TrainingJobName": "aif-x",
                "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/aif-x",
                "ModelArtifacts": {"S3ModelArtifacts": ""},
                "TrainingJobStatus": "Failed",
                "SecondaryStatus": "Failed",
                "FailureReason": "AlgorithmError: RuntimeError: CUDA out of memory",
                "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
                "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
                "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
                "CreationTime": dt.datetime(2018, 12, 20, 10, 57, 12, tzinfo=tz),
                "TrainingEndTime": dt.datetime(2018, 12, 20, 11, 5, 59, tzinfo=tz),
            },
            expected_params={"TrainingJobName": "aif-x"},
        )
        description = SageMakerTrainingPlatform(offline_client, ROLE).describe("aif-x")
    assert description.status == "Failed"
    assert description.secondary_status == "Failed"
    assert description.failure_reason == "AlgorithmError: RuntimeError: CUDA out of memory"
    assert description.creation_time == "2018-12-20 15:57:12"
    assert description.end_time == "2018-12-20 16:05:59"


def test_stop_calls_sagemaker(offline_client):
    with Stubber(offline_client) as stubber:
        stubber.add_response("stop_training_job", {}, expected_params={"TrainingJobName": "aif-x"})
        SageMakerTrainingPlatform(offline_client, ROLE).stop("aif-x")
        stubber.assert_no_pending_responses()


def test_stop_finished_job_conflicts_with_botocores_text(offline_client):
    with Stubber(offline_client) as stubber:
        stubber.add_client_error(
            "stop_training_job",
            service_error_code="ValidationException",
            service_message="The request was rejected because the training job is in status Completed.",
            http_status_code=400,
            expected_params={"TrainingJobName": "aif-x"},
        )
        with pytest.raises(Conflict) as caught:
            SageMakerTrainingPlatform(offline_client, ROLE).stop("aif-x")
    assert caught.value.message == COMPLETED_TEXT
    assert caught.value.status_code == 409


def test_stop_missing_job_is_not_found(offline_client):
    with Stubber(offline_client) as stubber:
        stubber.add_client_error(
            "stop_training_job",
            service_error_code="ValidationException",
            service_message="Requested resource not found.",
            http_status_code=400,
        )
        with pytest.raises(NotFound):
            SageMakerTrainingPlatform(offline_client, ROLE).stop("aif-x")


def test_duplicate_name_conflicts(offline_client):
    with Stubber(offline_client) as stubber:
        stubber.add_client_error(
            "create_training_job", service_error_code="ResourceInUse", service_message="Training job exists"
        )
        with pytest.raises(Conflict, match="already exists"):
            SageMakerTrainingPlatform(offline_client, ROLE).start(make_request())


def test_model_artifact_key_matches_sagemakers_output_layout():
    assert model_artifact_key("dev/jobs/j1/", "aif-j1-1") == "dev/jobs/j1/output/aif-j1-1/output/model.tar.gz"
    assert model_artifact_key("jobs/j1", "n") == "jobs/j1/output/n/output/model.tar.gz"


# -- SageMaker's limits, and requests its service model accepts ------------------------------

MAX_RUNTIME_LIMIT_S = 28 * 24 * 3600


def test_the_runtime_limit_is_sagemakers_28_days():
    from chalicelib.adapters.aws.training_platform import MAX_RUNTIME_LIMIT_S as limit

    assert limit == MAX_RUNTIME_LIMIT_S


@pytest.mark.parametrize("spot", [False, True])
def test_a_runtime_beyond_28_days_is_a_400_before_anything_is_created(offline_client, spot):
    platform = SageMakerTrainingPlatform(offline_client, ROLE, spot=spot)
    with Stubber(offline_client):  # no response queued: any call would fail the test
        with pytest.raises(ValidationError) as caught:
            platform.start(make_request(max_runtime_s=MAX_RUNTIME_LIMIT_S + 1))
    assert caught.value.status_code == 400
    assert caught.value.field == "max_runtime"
    assert f"(1 to {MAX_RUNTIME_LIMIT_S} s, 28 days)" in caught.value.message


def test_spot_wait_defaults_to_twice_the_runtime_capped_at_the_limit(offline_client):
    platform = SageMakerTrainingPlatform(offline_client, ROLE, spot=True)
    stopping = platform.build_request(make_request(max_runtime_s=MAX_RUNTIME_LIMIT_S))["StoppingCondition"]
    assert stopping == {
        "MaxRuntimeInSeconds": MAX_RUNTIME_LIMIT_S,
        "MaxWaitTimeInSeconds": MAX_RUNTIME_LIMIT_S,
    }
    stopping = platform.build_request(make_request(max_runtime_s=20 * 86400))["StoppingCondition"]
    assert stopping["MaxWaitTimeInSeconds"] == MAX_RUNTIME_LIMIT_S


@pytest.mark.parametrize("max_wait_s", [7199, MAX_RUNTIME_LIMIT_S + 1])
def test_a_configured_spot_wait_outside_its_bounds_is_a_400(offline_client, max_wait_s):
    platform = SageMakerTrainingPlatform(offline_client, ROLE, spot=True, max_wait_s=max_wait_s)
    with pytest.raises(ValidationError) as caught:
        platform.build_request(make_request(max_runtime_s=7200))
    assert caught.value.field == "max_wait"
    assert "between MaxRuntimeInSeconds (7200 s)" in caught.value.message


@pytest.mark.parametrize("spot", [False, True])
def test_every_request_validates_against_the_service_model(sagemaker, spot):
    from tests.aws.service_model import record_requests

    sent = record_requests(sagemaker)
    platform = SageMakerTrainingPlatform(sagemaker, ROLE, spot=spot)
    longest = make_request(max_runtime_s=MAX_RUNTIME_LIMIT_S, training_job_name="a" * 63)
    platform.start(longest)
    platform.describe(longest.training_job_name)
    assert [name for name, _ in sent] == ["CreateTrainingJob", "DescribeTrainingJob"]


def test_stop_validates_against_the_service_model(offline_client):
    from tests.aws.service_model import record_requests

    sent = record_requests(offline_client)  # moto has no StopTrainingJob: a Stubber answers
    with Stubber(offline_client) as stub:
        stub.add_response("stop_training_job", {}, {"TrainingJobName": "a" * 63})
        SageMakerTrainingPlatform(offline_client, ROLE).stop("a" * 63)
    assert sent == [("StopTrainingJob", {"TrainingJobName": "a" * 63})]

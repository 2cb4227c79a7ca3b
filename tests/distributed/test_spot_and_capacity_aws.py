"""Spot, warm pools and the capacity queue on AWS: the CreateTrainingJob requests (checked
against botocore's model), BillableTimeInSeconds, and ResourceLimitExceeded queueing a job
that the scheduled handler launches later (botocore Stubber; DynamoDB and S3 on moto)."""

from __future__ import annotations

import dataclasses

import boto3
import pytest
from botocore.stub import ANY, Stubber

from chalicelib.adapters.aws.artifact_store import S3ArtifactStore
from chalicelib.adapters.aws.job_store import DynamoJobStore
from chalicelib.adapters.aws.secret_store import SecretsManagerStore
from chalicelib.adapters.aws.training_platform import MAX_KEEP_ALIVE_S, SageMakerTrainingPlatform
from chalicelib.errors import Conflict, ValidationError
from chalicelib.ports import IN_PROGRESS, STOPPED, Adapters
from chalicelib.services import events, jobs
from contracts.job_config import JobConfig
from tests.aws.conftest import BUCKET, REGION, TABLE, aws, dynamodb, fake_credentials, s3  # noqa: F401
from tests.aws.service_model import record_requests
from tests.aws.test_training_platform import ROLE, make_request

LIMIT_MESSAGE = (
    "The account-level service limit 'ml.g5.xlarge for training job usage' is 0 Instances, "
    "with current utilization of 0 Instances and a request delta of 2 Instances."
)


@pytest.fixture
def offline_client():
    return boto3.client("sagemaker", region_name=REGION)


# --- the request ------------------------------------------------------------------------------
def test_a_spot_job_asks_for_managed_spot_with_its_own_wait(offline_client):
    platform = SageMakerTrainingPlatform(offline_client, ROLE)  # the stage default: on demand
    params = platform.build_request(make_request(use_spot=True, max_wait_s=9000))
    assert params["EnableManagedSpotTraining"] is True
    assert params["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 9000}
    assert params["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"  # where the trainer resumes
    on_demand = platform.build_request(make_request())
    assert "EnableManagedSpotTraining" not in on_demand
    assert on_demand["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}


def test_a_jobs_wait_shorter_than_its_runtime_is_a_400(offline_client):
    with pytest.raises(ValidationError) as caught:
        SageMakerTrainingPlatform(offline_client, ROLE).build_request(
            make_request(use_spot=True, max_wait_s=60)
        )
    assert caught.value.field == "max_wait"
    assert "between MaxRuntimeInSeconds (7200 s)" in caught.value.message


def test_a_warm_pool_keeps_the_instances_alive(offline_client):
    params = SageMakerTrainingPlatform(offline_client, ROLE).build_request(make_request(keep_alive_s=1800))
    assert params["ResourceConfig"] == {
        "InstanceType": "ml.g5.xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 50,
        "KeepAlivePeriodInSeconds": 1800,
    }


@pytest.mark.parametrize(
    "spot, keep_alive, message",
    [
        (True, 600, "warm pools cannot be used with managed spot training"),
        (False, MAX_KEEP_ALIVE_S + 1, f"outside SageMaker's warm pool limit (0 to {MAX_KEEP_ALIVE_S} s)"),
    ],
)
def test_an_impossible_warm_pool_is_a_400(offline_client, spot, keep_alive, message):
    with pytest.raises(ValidationError) as caught:
        SageMakerTrainingPlatform(offline_client, ROLE, spot=spot).build_request(
            make_request(keep_alive_s=keep_alive)
        )
    assert caught.value.field == "keep_alive" and message in caught.value.message


def test_spot_and_warm_pool_requests_validate_against_the_service_model(offline_client):
    sent = record_requests(offline_client)
    platform = SageMakerTrainingPlatform(offline_client, ROLE)
    with Stubber(offline_client) as stub:
        for _ in range(2):
            stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"})
        platform.start(make_request(use_spot=True, max_wait_s=86400))
        platform.start(make_request(keep_alive_s=MAX_KEEP_ALIVE_S))
    assert [name for name, _ in sent] == ["CreateTrainingJob", "CreateTrainingJob"]


def test_billable_seconds_come_from_describe(offline_client):
    with Stubber(offline_client) as stub:
        stub.add_response(
            "describe_training_job",
            {
                "TrainingJobName": "j",
                "TrainingJobArn": "arn:x",
                "ModelArtifacts": {"S3ModelArtifacts": "s3://b/k"},
                "TrainingJobStatus": "Completed",
                "SecondaryStatus": "Completed",
                "AlgorithmSpecification": {"TrainingInputMode": "File"},
                "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 50},
                "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
                "CreationTime": 0,
                "TrainingTimeInSeconds": 1000,
                "BillableTimeInSeconds": 312,
            },
        )
        assert SageMakerTrainingPlatform(offline_client, ROLE).describe("j").billable_seconds == 312


# --- the capacity queue -----------------------------------------------------------------------
@pytest.fixture
def svc(dynamodb, s3, offline_client):  # noqa: F811 - moto fixtures imported above
    return Adapters(
        jobs=DynamoJobStore(dynamodb, TABLE),
        artifacts=S3ArtifactStore(s3, BUCKET, "dev"),
        platform=SageMakerTrainingPlatform(offline_client, ROLE),
        secrets=SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION)),
    )


def submit(svc: Adapters) -> tuple[dict, dict]:
    """A v1.5 job as `start_training` builds it; returns (record, the CreateTrainingJob params)."""
    job_id, job_name = jobs.new_ids("v15", svc.settings.stage)
    record = jobs.base_record(
        job_id,
        job_name,
        "v1.5",
        "classification",
        hyperparameters={"task": "classification", "num_epochs_to_finish": 3},
        resource={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        artifact_uri=svc.artifacts.job_uri(job_id),
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/aifactory-trainer:1.0",
        data_dir="s3://customer-data/voc/",
    )
    request = jobs.training_request(svc.settings, record, record["image"], record["data_dir"])
    config = JobConfig(job_id=job_id, task="classification", artifact_uri=record["artifact_uri"])
    # The queued request comes back from DynamoDB, whose maps keep no order: the tags are
    # compared as a set (test_queued_request_keeps_every_tag), the rest exactly.
    return jobs.launch(svc, record, config, None, request), {
        **svc.platform.build_request(request),
        "Tags": ANY,
    }


def limit_exceeded(stub: Stubber, params: dict) -> None:
    stub.add_client_error(
        "create_training_job",
        service_error_code="ResourceLimitExceeded",
        service_message=LIMIT_MESSAGE,
        http_status_code=400,
        expected_params=params,
    )


def test_resource_limit_exceeded_queues_the_job_and_the_schedule_launches_it(
    svc, offline_client, monkeypatch
):
    from chalicelib import settings

    monkeypatch.setenv("AIFACTORY_CAPACITY_BACKOFF_SECONDS", "0")  # each sweep may try again
    settings.reset()
    svc = dataclasses.replace(svc, settings=settings.current())  # the stage's settings, as changed
    with Stubber(offline_client) as stub:
        limit_exceeded(stub, None)
        record, params = submit(svc)
        stub.assert_no_pending_responses()
        job = jobs.get(svc, record["job_id"])
        assert (job["status"], job["secondary_status"]) == (IN_PROGRESS, jobs.WAITING_FOR_CAPACITY)
        assert job["status_message"].startswith("ResourceLimitExceeded: The account-level service limit")
        assert svc.artifacts.get_json(f"jobs/{job['job_id']}/job.json")["job_id"] == job["job_id"]  # kept

        limit_exceeded(stub, params)  # the first sweep: still no capacity
        assert events.launch_queued(svc) == 0
        job = svc.jobs.get(record["job_id"])
        assert job["queued_request"]["tries"] == 2 and job["secondary_status"] == jobs.WAITING_FOR_CAPACITY

        stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, expected_params=params)
        assert events.launch_queued(svc) == 1  # capacity came back
        stub.assert_no_pending_responses()
    job = svc.jobs.get(record["job_id"])
    assert job["queued_request"] is None and job["status"] == IN_PROGRESS, job.get("failure_reason")
    assert (job["secondary_status"], job["status_message"]) == ("Starting", "")
    assert events.launch_queued(svc) == 0  # launched once


def test_queued_request_keeps_every_tag(svc, offline_client):
    sent = record_requests(offline_client)
    with Stubber(offline_client) as stub:
        limit_exceeded(stub, None)
        record, _ = submit(svc)
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"})
        assert events.launch_queued(svc) == 1
    first, again = (params["Tags"] for _, params in sent)
    assert sorted(first, key=lambda t: t["Key"]) == sorted(again, key=lambda t: t["Key"])
    assert {"Key": "aifactory:job_id", "Value": record["job_id"]} in again


def test_a_queued_job_stops_without_asking_sagemaker(svc, offline_client):
    with Stubber(offline_client) as stub:
        limit_exceeded(stub, None)
        record, _ = submit(svc)
        job = jobs.stop(svc, jobs.get(svc, record["job_id"]))  # no response queued: no call is made
    assert (job["status"], job["secondary_status"], job["queued_request"]) == (STOPPED, "Stopped", None)
    assert events.launch_queued(svc) == 0


def test_a_queued_job_that_can_never_start_fails(svc, offline_client):
    with Stubber(offline_client) as stub:
        limit_exceeded(stub, None)
        record, params = submit(svc)
        stub.add_client_error(
            "create_training_job",
            service_error_code="ValidationException",
            service_message="Role is not authorized",
            http_status_code=400,
        )
        assert events.launch_queued(svc) == 0
    job = svc.jobs.get(record["job_id"])
    assert job["status"] == "Failed" and job["settled"]
    assert (
        "ValidationException" in job["failure_reason"] and "Role is not authorized" in job["failure_reason"]
    )


def test_a_job_being_launched_cannot_be_stopped_yet(svc, offline_client):
    with Stubber(offline_client) as stub:
        limit_exceeded(stub, None)
        record, _ = submit(svc)
    job = svc.jobs.update(record["job_id"], {"queued_request": None, "secondary_status": "Starting"})
    with Stubber(offline_client) as stub:
        stub.add_client_error(
            "stop_training_job",
            service_error_code="ValidationException",
            service_message=f"Requested resource not found: {record['job_name']}",
            http_status_code=400,
        )
        with pytest.raises(Conflict, match="being launched"):
            jobs.stop(svc, job)

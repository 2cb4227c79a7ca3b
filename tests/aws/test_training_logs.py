"""Training logs on AWS: CloudWatch Logs streams of a SageMaker training job, paged by line."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from chalicelib.adapters.aws.training_platform import SageMakerTrainingPlatform

GROUP = "/aws/sagemaker/TrainingJobs"
ROLE = "arn:aws:iam::123456789012:role/sm"


def platform_with(events_by_stream: dict[str, list[list[str]]], status: str = "InProgress"):
    logs = boto3.client("logs", region_name="us-east-1")
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    log_stub, sm_stub = Stubber(logs), Stubber(sagemaker)
    log_stub.add_response(
        "describe_log_streams",
        {"logStreams": [{"logStreamName": name} for name in events_by_stream]},
        {"logGroupName": GROUP, "logStreamNamePrefix": "job-1/"},
    )
    for stream, pages in events_by_stream.items():
        token = None
        for number, page in enumerate([*pages, []]):
            params = {"logGroupName": GROUP, "logStreamName": stream, "startFromHead": True}
            if token:
                params["nextToken"] = token
            token = f"f/{stream}/{number}"
            log_stub.add_response(
                "get_log_events",
                {
                    "events": [{"timestamp": 1, "message": m, "ingestionTime": 1} for m in page],
                    "nextForwardToken": token,
                },
                params,
            )
    sm_stub.add_response(
        "describe_training_job",
        {
            "TrainingJobName": "job-1",
            "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/job-1",
            "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m"},
            "TrainingJobStatus": status,
            "SecondaryStatus": "Training",
            "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "i"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
            "CreationTime": "2026-11-30T00:00:00Z",
        },
        {"TrainingJobName": "job-1"},
    )
    log_stub.activate()
    sm_stub.activate()
    return SageMakerTrainingPlatform(sagemaker, ROLE, logs_client=logs), log_stub


def test_lines_of_every_host_in_order_from_an_offset():
    platform, stub = platform_with(
        {"job-1/algo-1-1": [["a", "b"], ["c"]], "job-1/algo-2-1": [["d"]]}, "Completed"
    )
    lines, more = platform.logs("job-1", 1, 10)
    assert lines == ["b", "c", "d"] and more is False
    stub.assert_no_pending_responses()


def test_a_page_of_lines_says_more_may_come():
    platform, _ = platform_with({"job-1/algo-1-1": [["a", "b", "c"]]})
    assert platform.logs("job-1", 0, 2) == (["a", "b"], True)

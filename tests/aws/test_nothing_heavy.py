"""Nothing heavy through the API Lambda, on the AWS adapters (moto): checkpoints are copied
server-side, the job list reads the records the state-change handler wrote (no SageMaker call
per job) and pages, and a missing model is the API's own 404."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.adapters.aws.artifact_store import S3ArtifactStore
from chalicelib.adapters.aws.job_store import DynamoJobStore
from chalicelib.adapters.aws.secret_store import SecretsManagerStore
from chalicelib.adapters.aws.training_platform import SageMakerTrainingPlatform
from chalicelib.ai_factory import service as ai_factory
from chalicelib.errors import NotFound, ValidationError
from chalicelib.job_record import Job
from chalicelib.ports import COMPLETED, IN_PROGRESS, Adapters
from chalicelib.services import jobs
from chalicelib.v15 import service as v15
from contracts import layout
from tests.aws.conftest import BUCKET, REGION, TABLE
from tests.aws.service_model import record_requests

ROLE = "arn:aws:iam::123456789012:role/aifactory-sagemaker-dev"
WEIGHTS = b"\x00" * 4096  # stands for a checkpoint of hundreds of MB


@pytest.fixture
def svc(dynamodb, s3, sagemaker, secretsmanager):
    yield Adapters(
        jobs=DynamoJobStore(dynamodb, TABLE),
        artifacts=S3ArtifactStore(s3, BUCKET, "dev"),
        platform=SageMakerTrainingPlatform(sagemaker, ROLE),
        secrets=SecretsManagerStore(secretsmanager, "aifactory/dev/jobs/"),
    )


@pytest.fixture
def sent(svc):
    """Every S3 and SageMaker request the adapters make, checked against the service models."""
    return {
        "s3": record_requests(svc.artifacts._s3),
        "sagemaker": record_requests(svc.platform._sagemaker),
    }


def _record(job_id: str, name: str, created_at: str, status: str = IN_PROGRESS, api: str = "ai_factory"):
    return jobs.base_record(job_id, name, api, "tagger").with_changes(
        {"created_at": created_at, "status": status}
    )


# -- resume: CopyObject only ----------------------------------------------------------------


def test_v15_resume_copies_checkpoints_inside_s3(svc, sent):
    source = Job(job_id="20261122194501-src")
    for epoch in (1, 2, 3):
        for name in (layout.WEIGHTS, layout.MODEL_JSON):
            svc.artifacts.put_bytes(
                layout.job_key(source.job_id, f"{layout.epoch_dir(epoch)}/{name}"), WEIGHTS
            )
    sent["s3"].clear()
    v15._copy_resume_point(svc, source, 2, "20261122194501-new")
    operations = [name for name, _ in sent["s3"]]
    assert "PutObject" not in operations  # nothing re-uploaded from the Lambda's memory
    bodies = [params["Key"] for name, params in sent["s3"] if name == "GetObject"]
    assert not [key for key in bodies if "/checkpoints/" in key], bodies  # no checkpoint read
    copies = sorted(params["Key"] for name, params in sent["s3"] if name == "CopyObject")
    assert copies == [
        "dev/jobs/20261122194501-new/checkpoints/epoch-1/model.json",
        "dev/jobs/20261122194501-new/checkpoints/epoch-2/model.json",
        "dev/jobs/20261122194501-new/checkpoints/epoch-2/model.safetensors",
    ]
    copied = svc.artifacts.get_bytes("jobs/20261122194501-new/checkpoints/epoch-2/model.safetensors")
    assert copied == WEIGHTS


# -- check_trained_job: the records, not DescribeTrainingJob ----------------------------------


@pytest.fixture
def five_jobs(svc):
    for i in range(5):
        status = COMPLETED if i % 2 else IN_PROGRESS
        svc.jobs.create(
            _record(f"job-{i}", f"aif-2026112{i}-000000-0000000{i}", f"2026-11-2{i} 10:00:00", status)
        )
    svc.jobs.create(_record("v15-job", "v15-20261125-000000-00000000", "2026-11-25 10:00:00", api="v1.5"))


def test_the_job_list_never_asks_sagemaker(svc, sent, five_jobs):
    listed = ai_factory.list_training_jobs(svc)
    assert sent["sagemaker"] == []
    assert [item["TrainingJobName"][:12] for item in listed] == [f"aif-2026112{i}" for i in (4, 3, 2, 1, 0)]
    assert [item["TrainingJobStatus"] for item in listed] == [
        IN_PROGRESS,
        COMPLETED,
        IN_PROGRESS,
        COMPLETED,
        IN_PROGRESS,
    ]
    assert set(listed[0]) == {"TrainingJobStatus", "TrainingJobName", "CreationTime"}  # the spec's shape


def test_the_job_list_pages_with_next_token(svc, sent, five_jobs):
    pages, token = [], None
    while True:
        page = ai_factory.list_training_jobs(svc, {"limit": "2", **({"next_token": token} if token else {})})
        pages.append([item["TrainingJobName"][:12] for item in page["jobs"]])
        token = page["next_token"]
        if token is None:
            break
    assert pages == [["aif-20261124", "aif-20261123"], ["aif-20261122", "aif-20261121"], ["aif-20261120"]]
    assert sent["sagemaker"] == []


def test_a_job_created_while_paging_does_not_shift_the_pages(svc, five_jobs):
    first = ai_factory.list_training_jobs(svc, {"limit": 2})
    svc.jobs.create(_record("job-9", "aif-20261129-000000-00000009", "2026-11-29 10:00:00"))
    second = ai_factory.list_training_jobs(svc, {"limit": 2, "next_token": first["next_token"]})
    assert [item["TrainingJobName"][:12] for item in second["jobs"]] == ["aif-20261122", "aif-20261121"]


@pytest.mark.parametrize(
    "params, field, message",
    [
        ({"limit": 0}, "limit", "must be an integer in [1, 1000]"),
        ({"limit": "many"}, "limit", "must be an integer in [1, 1000]"),
        ({"limit": True}, "limit", "must be an integer in [1, 1000]"),
        ({"next_token": "not-a-token"}, "next_token", "is not a token this API gave"),
    ],
)
def test_bad_paging_is_a_400(svc, params, field, message):
    with pytest.raises(ValidationError) as caught:
        ai_factory.list_training_jobs(svc, params)
    assert caught.value.field == field and message in caught.value.message


# -- the model route --------------------------------------------------------------------------


def test_a_missing_model_is_the_apis_404_not_a_redirect(svc, sent):
    svc.jobs.create(_record("job-1", "aif-20261122-000000-00000001", "2026-11-22 10:00:00", COMPLETED))
    with pytest.raises(NotFound, match="Job aif-20261122-000000-00000001 has no model artifact"):
        ai_factory.model_artifact(svc, "aif-20261122-000000-00000001")
    assert [name for name, _ in sent["s3"]] == ["ListObjectsV2"]


def test_an_existing_model_is_a_presigned_url_without_reading_it(svc, sent, call_counter):
    svc.jobs.create(_record("job-1", "aif-20261122-000000-00000001", "2026-11-22 10:00:00", COMPLETED))
    key = layout.job_key("job-1", layout.model_output("aif-20261122-000000-00000001"))
    svc.artifacts.put_bytes(key, WEIGHTS)
    sent["s3"].clear()
    reads = call_counter(svc.artifacts._s3, "GetObject")
    found, data, url = ai_factory.model_artifact(svc, "aif-20261122-000000-00000001")
    assert (found, data) == (key, None)
    assert url.startswith(f"https://{BUCKET}.s3.amazonaws.com/dev/{key}?")
    # Presigning builds a GetObject request but sends nothing: the body goes S3 -> caller.
    assert [name for name, _ in sent["s3"]] == ["ListObjectsV2", "GetObject"] and reads == []
    assert (
        boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=f"dev/{key}")["Body"].read()
        == WEIGHTS
    )

"""How a job asks for spot and a warm pool (AI Factory `resource`, v1.5 form fields), and what
monitor shows of a job waiting for capacity."""

from __future__ import annotations

import dataclasses
import json

import pytest
from trainer.vision import synthetic

from chalicelib import settings
from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.adapters.local.training_platform import LocalTrainingPlatform
from chalicelib.ai_factory.request import parse_create
from chalicelib.errors import ValidationError
from chalicelib.ports import Adapters, CapacityError, TrainingRequest
from chalicelib.services import events, jobs
from chalicelib.v15 import service as v15
from tests.builders import create_payload


def resource_payload(**resource) -> dict:
    payload = create_payload()
    payload["training_model"]["resource"].update(resource)
    return payload


def test_the_ai_factory_resource_takes_create_training_jobs_spelling(local_stage):
    request = parse_create(
        resource_payload(
            EnableManagedSpotTraining=True, MaxWaitTimeInSeconds=90000, KeepAlivePeriodInSeconds=0
        ),
        settings.current(),
    )
    assert request.capacity == {
        "EnableManagedSpotTraining": True,
        "MaxWaitTimeInSeconds": 90000,
        "KeepAlivePeriodInSeconds": 0,
    }
    assert parse_create(create_payload(), settings.current()).capacity == {}  # absent: the stage decides


@pytest.mark.parametrize(
    "resource, field, message",
    [
        (
            {"EnableManagedSpotTraining": "yes"},
            "EnableManagedSpotTraining",
            'must be true or false; got "yes"',
        ),
        ({"KeepAlivePeriodInSeconds": 21601}, "KeepAlivePeriodInSeconds", "must be an integer in [0, 21600]"),
        ({"MaxWaitTimeInSeconds": 0}, "MaxWaitTimeInSeconds", "must be an integer in [1, 2419200]"),
    ],
)
def test_a_bad_capacity_option_names_its_field(local_stage, resource, field, message):
    with pytest.raises(ValidationError) as caught:
        parse_create(resource_payload(**resource), settings.current())
    assert caught.value.field == f"training_model.resource.{field}"
    assert message in caught.value.message


@pytest.mark.parametrize(
    "stage_spot, given, expected",
    [("true", None, True), ("true", False, False), ("", True, True), ("", None, False)],
)
def test_a_jobs_own_spot_choice_wins_over_the_stages(local_stage, monkeypatch, stage_spot, given, expected):
    monkeypatch.setenv("AIFACTORY_SPOT", stage_spot)
    settings.reset()
    resource = {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 1,
        "VolumeSizeInGB": 5,
        "KeepAlivePeriodInSeconds": 600,
    }
    if given is not None:
        resource["EnableManagedSpotTraining"] = given
    job = jobs.base_record("j", "n", "ai_factory", "ml_tagger", resource=resource, artifact_uri="/a")
    request = jobs.training_request(settings.current(), job, "aifactory-trainer:latest", None)
    assert (request.use_spot, request.keep_alive_s, request.max_wait_s) == (expected, 600, None)


def test_v15_takes_the_options_as_form_fields():
    assert v15.capacity({"use_spot": "True", "max_wait_seconds": "7200", "keep_alive_seconds": ""}, settings.current()) == {
        "EnableManagedSpotTraining": True,
        "MaxWaitTimeInSeconds": 7200,
    }
    with pytest.raises(ValidationError) as caught:
        v15.capacity({"use_spot": "maybe"}, settings.current())
    assert caught.value.field == "use_spot" and caught.value.message.endswith(
        "must be true or false; got 'maybe'"
    )
    with pytest.raises(ValidationError) as caught:
        v15.capacity({"keep_alive_seconds": "-1"}, settings.current())
    assert caught.value.field == "keep_alive_seconds" and "in [0, 21600]" in caught.value.message


class NoCapacityYet(LocalTrainingPlatform):
    """The local platform answering as SageMaker does when an account's instance quota is used up."""

    refusals = 1

    def start(self, request: TrainingRequest) -> None:
        if self.refusals:
            self.refusals -= 1
            raise CapacityError("ResourceLimitExceeded: no ml.g5.xlarge left for training job usage")
        super().start(request)


def test_monitor_shows_a_queued_job_initializing_and_why(local_stage, tmp_path):
    data = synthetic.generate(tmp_path / "data", "classification", num_images=8, image_size=32, num_classes=2)
    platform = NoCapacityYet(local_stage, max_concurrent=0)  # launched jobs stay in the platform's queue
    svc = Adapters(
        jobs=SqliteJobStore(tmp_path / "jobs.sqlite3"),
        artifacts=DirectoryArtifactStore(tmp_path / "artifacts"),
        platform=platform,
        secrets=None,
    )
    form = {"task": "classification", "data_dir": str(data), "algorithm": "resnet18", "use_spot": "true"}
    job_id = v15.start_training(svc, form)["job_id"]
    body = v15.monitor(svc, job_id)
    assert (body["status"], body["secondary_status"]) == ("initializing", "WaitingForCapacity")
    assert body["status_message"].startswith("ResourceLimitExceeded: no ml.g5.xlarge left")
    assert body["billable_seconds"] is None

    assert events.launch_queued(svc) == 1
    body = v15.monitor(svc, job_id)
    assert (body["status"], body["secondary_status"]) == ("initializing", "Starting")
    assert "status_message" not in body
    name = svc.jobs.get(job_id)["job_name"]
    assert json.loads((platform.job_dir(name) / "request.json").read_text())["use_spot"] is True
    jobs.stop(svc, svc.jobs.get(job_id))  # never launched by the platform: stops at once
    assert v15.monitor(svc, job_id)["status"] == "stopped"


def queued_service(local_stage, tmp_path, refusals: int):
    data = synthetic.generate(tmp_path / "data", "classification", num_images=8, image_size=32, num_classes=2)
    platform = NoCapacityYet(local_stage, max_concurrent=0)
    platform.refusals = refusals
    svc = Adapters(
        jobs=SqliteJobStore(tmp_path / "jobs.sqlite3"),
        artifacts=DirectoryArtifactStore(tmp_path / "artifacts"),
        platform=platform,
        secrets=None,
    )
    form = {"task": "classification", "data_dir": str(data), "algorithm": "resnet18"}
    return svc, v15.start_training(svc, form)["job_id"]


def test_the_queue_backs_off_after_the_first_try_again(local_stage, tmp_path, monkeypatch):
    monkeypatch.setenv("AIFACTORY_CAPACITY_BACKOFF_SECONDS", "600")
    settings.reset()
    svc, job_id = queued_service(local_stage, tmp_path, refusals=3)
    assert events.launch_queued(svc) == 0  # the first try again is at once: refused again
    queued = svc.jobs.get(job_id)["queued_request"]
    assert queued["tries"] == 2 and queued["not_before"] > queued["since_ts"] + 590
    assert events.launch_queued(svc) == 0 and svc.platform.refusals == 1  # not tried before its time


def test_a_queued_job_gives_up_after_the_stages_wait(local_stage, tmp_path, monkeypatch):
    svc, job_id = queued_service(local_stage, tmp_path, refusals=5)
    monkeypatch.setenv("AIFACTORY_CAPACITY_MAX_WAIT_SECONDS", "0")
    settings.reset()
    svc = dataclasses.replace(svc, settings=settings.current())  # the stage restarted with the new wait
    assert events.launch_queued(svc) == 0
    job = svc.jobs.get(job_id)
    assert job["status"] == "Failed" and job["queued_request"] is None
    assert job["failure_reason"].startswith("No capacity for 1 x ml.g5.xlarge after 0.0 h of tries")
    assert v15.monitor(svc, job_id)["status"] == "exception"


@pytest.mark.parametrize(
    ("count", "message"),
    [
        ("0", "Invalid 'instance_count': must be an integer in [1, 4] (AIFACTORY_MAX_INSTANCE_COUNT); got 0"),
        ("5", "Invalid 'instance_count': must be an integer in [1, 4] (AIFACTORY_MAX_INSTANCE_COUNT); got 5"),
        (
            "two",
            "Invalid 'instance_count': must be an integer in [1, 4] (AIFACTORY_MAX_INSTANCE_COUNT); got 'two'",
        ),
        (
            "inf",
            "Invalid 'instance_count': must be an integer in [1, 4] (AIFACTORY_MAX_INSTANCE_COUNT); got 'inf'",
        ),
    ],
)
def test_a_v15_instance_count_outside_the_stages_range_is_named(local_stage, tmp_path, count, message):
    with pytest.raises(ValidationError) as refused:
        v15.capacity({"instance_count": count}, settings.current())
    assert refused.value.message == message


def test_a_v15_job_asks_for_several_hosts(local_stage, tmp_path):
    data = synthetic.generate(tmp_path / "data", "classification", num_images=8, image_size=32, num_classes=2)
    platform = LocalTrainingPlatform(local_stage, max_concurrent=0)  # queued: nothing trains
    svc = Adapters(
        jobs=SqliteJobStore(tmp_path / "jobs.sqlite3"),
        artifacts=DirectoryArtifactStore(tmp_path / "artifacts"),
        platform=platform,
        secrets=None,
    )
    form = {"task": "classification", "data_dir": str(data), "algorithm": "resnet18", "instance_count": "2"}
    job_id = v15.start_training(svc, form)["job_id"]
    job = svc.jobs.get(job_id)
    assert job["resource"]["InstanceCount"] == 2
    assert json.loads((platform.job_dir(job["job_name"]) / "request.json").read_text())["instance_count"] == 2

"""Fixes the contract drift caused: statuses move forward, a lost race is a 409."""

from __future__ import annotations

import pytest

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.errors import Conflict
from chalicelib.ports import COMPLETED, IN_PROGRESS, STOPPED, Adapters, ConflictError, TrainingDescription
from chalicelib.services import jobs
from chalicelib.v15 import service as v15
from chalicelib.web.envelopes import v15_errors
from contracts import layout, statuses
from contracts.job_config import JobConfig

JOB_ID = "20261130000000-monitor"


class Platform:
    def __init__(self, status):
        self.status = status
        self.started = []

    def describe(self, name):
        return TrainingDescription(self.status, "Training")

    def start(self, request):
        self.started.append(request)


@pytest.fixture
def svc(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    artifacts = DirectoryArtifactStore(tmp_path / "artifacts")
    record = jobs.base_record(JOB_ID, "v15-monitor", "v1.5", "classification", hyperparameters={})
    store.create(record)
    config = JobConfig(job_id=JOB_ID, task="classification", artifact_uri=artifacts.job_uri(JOB_ID))
    artifacts.put_json(layout.job_key(JOB_ID, layout.JOB_FILE), config.to_dict())
    yield Adapters(jobs=store, artifacts=artifacts, platform=Platform(IN_PROGRESS), secrets=None)


@pytest.mark.parametrize(
    ("heartbeat", "shown"),
    [
        (None, "initializing"),
        ("initializing", "initializing"),
        ("initialized", "initialized"),
        ("running", "running"),
        ("finished", "running"),
        ("stopped", "running"),
        ("exception", "running"),
    ],
)
def test_a_running_job_never_reads_an_earlier_status(svc, heartbeat, shown):
    if heartbeat:
        svc.artifacts.put_json(layout.job_key(JOB_ID, layout.PROGRESS), {"status": heartbeat, "attempt": 1})
    assert v15.monitor(svc, JOB_ID)["status"] == shown


def test_after_the_last_epoch_the_job_goes_from_running_to_finished(svc):
    svc.artifacts.put_json(layout.job_key(JOB_ID, layout.PROGRESS), {"status": "finished", "attempt": 1})
    seen = [v15.monitor(svc, JOB_ID)["status"]]
    svc.platform.status = COMPLETED
    seen.append(v15.monitor(svc, JOB_ID)["status"])
    assert seen == ["running", "finished"]
    order = [*statuses.V15_ORDER, statuses.FINISHED]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)


def test_a_conflicting_write_is_a_409():
    assert issubclass(ConflictError, Conflict) and ConflictError("x").status_code == 409


def test_a_restore_that_loses_the_race_answers_409(svc):
    svc.jobs.update(JOB_ID, {"status": STOPPED, "settled": True})
    stale = svc.jobs.get(JOB_ID)
    svc.jobs.update(JOB_ID, {"status": IN_PROGRESS})  # another restore won meanwhile

    @v15_errors
    def view():
        jobs.restore(svc, stale, "aifactory-trainer:latest", None)

    response = view()
    assert response.status_code == 409
    assert response.body == {"result": "Error", "message": "Job is not stopped."}
    assert svc.platform.started == []


def test_a_validation_pass_shows_the_evaluating_phase(svc):
    heartbeat = {"status": "running", "attempt": 1, "batch": 20, "total_batch": 20, "eta_hr": -1}
    svc.artifacts.put_json(layout.job_key(JOB_ID, layout.PROGRESS), {**heartbeat, "phase": "evaluating"})
    body = v15.monitor(svc, JOB_ID)
    assert (body["status"], body["phase"], body["eta_hr"]) == ("running", "evaluating", -1)


def test_a_stopped_job_shows_no_eta(svc):
    heartbeat = {"status": "running", "attempt": 1, "eta_hr": 0.25, "phase": "training"}
    svc.artifacts.put_json(layout.job_key(JOB_ID, layout.PROGRESS), heartbeat)
    svc.platform.status = STOPPED
    body = v15.monitor(svc, JOB_ID)
    assert (body["status"], body["eta_hr"], body["phase"]) == ("stopped", -1, None)

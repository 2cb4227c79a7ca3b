"""`make run` prints one line per job event, from what the sweep sees change."""

from __future__ import annotations

import pytest

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.ports import COMPLETED, FAILED, IN_PROGRESS, Adapters, TrainingDescription
from chalicelib.services import jobs
from chalicelib.services.job_events import JobEventLog
from contracts import layout


class Platform:
    def __init__(self):
        self.state = {}

    def describe(self, name):
        status, secondary, reason = self.state[name]
        return TrainingDescription(status, secondary, reason)


@pytest.fixture
def svc(tmp_path):
    return Adapters(
        jobs=SqliteJobStore(tmp_path / "jobs.sqlite3"),
        artifacts=DirectoryArtifactStore(tmp_path / "artifacts"),
        platform=Platform(),
        secrets=None,
    )


def submit(svc, job_id, name, api="v1.5", task="classification"):
    svc.platform.state[name] = (IN_PROGRESS, "Starting", "")
    svc.jobs.create(jobs.base_record(job_id, name, api, task))


def heartbeat(svc, job_id, epoch, total=3):
    svc.artifacts.put_json(layout.job_key(job_id, layout.PROGRESS), {"epoch": epoch, "total_epoch": total})


def test_a_job_is_narrated_from_queue_to_end(svc):
    printed = []
    events = JobEventLog(printed.append)
    assert events.poll(svc) == []  # the first look only remembers
    submit(svc, "j1", "v15-a")
    events.poll(svc)
    svc.platform.state["v15-a"] = (IN_PROGRESS, "Training", "")
    heartbeat(svc, "j1", 1)
    events.poll(svc)
    heartbeat(svc, "j1", 3)
    events.poll(svc)
    svc.platform.state["v15-a"] = (COMPLETED, "Completed", "")
    events.poll(svc)
    events.poll(svc)  # nothing new: nothing printed
    assert printed == [
        "v1.5 job j1 (classification): queued",
        "v1.5 job j1 (classification): started",
        "v1.5 job j1 (classification): epoch 1/3 done",
        "v1.5 job j1 (classification): epoch 2/3 done",
        "v1.5 job j1 (classification): finished",
    ]


def test_a_failure_says_why_and_the_callback_outcome_is_told(svc):
    events = JobEventLog(lambda line: None)
    events.poll(svc)
    submit(svc, "j2", "aif-b", api="ai_factory", task="ml_topic")
    events.poll(svc)
    svc.platform.state["aif-b"] = (FAILED, "Failed", "E03 ValueError: bad value\n\ntraceback")
    lines = events.poll(svc)
    assert lines == [
        "ai_factory job aif-b (ml_topic): started",
        "ai_factory job aif-b (ml_topic): failed: E03 ValueError: bad value",
    ]
    svc.jobs.update("j2", {"callback_outbox": {"state": "failed", "attempts": 18, "last_error": "HTTP 500"}})
    assert events.poll(svc) == [
        "ai_factory job aif-b (ml_topic): callback failed after 18 attempt(s): HTTP 500"
    ]


def test_jobs_that_existed_before_the_server_started_are_not_replayed(svc):
    submit(svc, "old", "v15-old")
    svc.platform.state["v15-old"] = (COMPLETED, "Completed", "")
    assert JobEventLog(lambda line: None).poll(svc) == []

"""chalicelib.job_record.Job: what both job stores keep, versioned, and rows from before it."""

from __future__ import annotations

import json
import sqlite3

import pytest

from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.job_record import RECORD_VERSION, Job, RecordVersionError

OLD_AI_FACTORY_ROW = {
    "job_id": "20261122194501-8c0c1d2e",
    "job_name": "aif-20261122-194501-8c0c1d2e",
    "api": "ai_factory",
    "task": "ml_tagger",
    "task_def": "ml_tagger",
    "status": "Completed",
    "secondary_status": "Completed",
    "failure_reason": "",
    "created_at": "2026-11-22 19:45:01",
    "ended_at": "2026-11-22 19:50:00",
    "attempts": [{"attempt": 1, "training_job_name": "aif-20261122-194501-8c0c1d2e"}],
    "hyperparameters": {"process.train.steps": "40"},
    "callback_outbox": {"state": "delivered", "attempts": 1},
    "some_later_field": {"kept": True},
}


def test_a_row_written_before_the_record_reads_with_one_task():
    job = Job.from_item(OLD_AI_FACTORY_ROW)
    assert (job.task, job.status, job.hyperparameters) == (
        "ml_tagger",
        "Completed",
        {"process.train.steps": "40"},
    )
    assert "task_def" not in job and "task_def" not in job.to_item()
    assert job.extra == {"some_later_field": {"kept": True}}
    assert job.to_item()["record_version"] == RECORD_VERSION
    # fields the row never had are not stored as nulls
    assert "queued_request" not in job.to_item() and job.queued_request is None


def test_an_old_row_that_kept_only_task_def_reads_it_as_task():
    row = {k: v for k, v in OLD_AI_FACTORY_ROW.items() if k != "task"}
    assert Job.from_item(row).task == "ml_tagger"


def test_round_trip_and_read_only_mapping_view():
    job = Job.from_item(OLD_AI_FACTORY_ROW)
    again = Job.from_item(json.loads(json.dumps(job.to_item())))
    assert again == job  # Mapping equality: the same fields and values
    assert job["status"] == job.status and job.get("settled") is None and job.get("nope", 1) == 1
    assert dict(job) == {k: v for k, v in OLD_AI_FACTORY_ROW.items() if k != "task_def"}
    with pytest.raises(TypeError):
        job["status"] = "Stopped"  # a change is a new record: with_changes


def test_with_changes_adds_and_replaces_fields():
    job = Job.from_item(OLD_AI_FACTORY_ROW)
    changed = job.with_changes({"status": "Stopped", "capacity_tries": 2, "another": 1})
    assert (changed.status, changed.capacity_tries, changed.extra["another"]) == ("Stopped", 2, 1)
    assert job.status == "Completed"  # the original is untouched
    with pytest.raises(ValueError, match="cannot change"):
        job.with_changes({"job_id": "other"})


def test_a_newer_record_version_is_refused():
    with pytest.raises(RecordVersionError, match="record_version 2; this API reads up to 1"):
        Job.from_item({**OLD_AI_FACTORY_ROW, "record_version": RECORD_VERSION + 1})


def test_a_record_needs_its_job_id():
    with pytest.raises(ValueError, match="needs a 'job_id'"):
        Job.from_item({"status": "InProgress"})


def test_the_sqlite_store_reads_rows_written_before_the_record(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as conn:  # as the store wrote rows before Job
        conn.execute(
            "INSERT INTO jobs (job_id, job_name, api, status, created_at, doc, sweep, tenant)"
            " VALUES (?,?,?,?,?,?,NULL,'default')",
            (
                OLD_AI_FACTORY_ROW["job_id"],
                OLD_AI_FACTORY_ROW["job_name"],
                "ai_factory",
                "Completed",
                OLD_AI_FACTORY_ROW["created_at"],
                json.dumps(OLD_AI_FACTORY_ROW),
            ),
        )
    job = store.get(OLD_AI_FACTORY_ROW["job_id"])
    assert isinstance(job, Job) and job.task == "ml_tagger"
    updated = store.update(job.job_id, {"settled": True})
    assert updated.settled is True and store.get_by_name(job.job_name).settled is True
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as conn:
        doc = json.loads(conn.execute("SELECT doc FROM jobs").fetchone()[0])
    assert doc["record_version"] == RECORD_VERSION and "task_def" not in doc

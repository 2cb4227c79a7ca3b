"""job.json through contracts.job_config: the one writer and reader both sides use."""

from __future__ import annotations

import dataclasses
import json

import pytest

from contracts import layout
from contracts.job_config import VERSION, DataSource, JobConfig, JobConfigError

FETCH_JOB = JobConfig(
    job_id="20261207140000-3f0b",
    job_name="aif-20261207-140000-3f0b",
    api="ai_factory",
    task="ml_topic",
    artifact_uri="s3://bucket/jobs/20261207140000-3f0b",
    attempt=2,
    format_version=layout.FORMAT_VERSION,
    hyperparameters={"process.train.steps": "40"},
    data=DataSource(
        type="fetch",
        url="https://data.example/api",
        pagination={"begin_offset": 0, "page_size": 50, "max_pages": 0},
        secret={"kind": "file", "ref": "/secrets/x.json"},
    ),
    finetune={"checkpoint_uri": "s3://bucket/jobs/old", "step": 30, "job_name": "aif-old"},
)


def test_round_trip_keeps_every_field():
    text = FETCH_JOB.to_json()
    assert JobConfig.from_json(text) == FETCH_JOB
    raw = json.loads(text)
    assert raw["version"] == VERSION
    # The shape job.json always had: older trainer images read it unchanged.
    assert raw["artifacts"] == {"uri": FETCH_JOB.artifact_uri}
    assert raw["data"]["secret"] == {"kind": "file", "ref": "/secrets/x.json"}


def test_data_dir_job_writes_only_the_set_data_fields():
    config = dataclasses.replace(
        FETCH_JOB, api="v1.5", task="classification", data=DataSource("data_dir", channel="training")
    )
    assert config.to_dict()["data"] == {"type": "data_dir", "channel": "training"}
    assert JobConfig.from_dict(config.to_dict()).data.channel == "training"


def test_a_file_written_before_the_class_reads_with_defaults():
    """Jobs launched before JobConfig (no `version`, fields missing) still restore and run."""
    old = {
        "format_version": 1,
        "job_id": "20261122194501-8c0c1d2e",
        "task": "classification",
        "hyperparameters": {"batch_size": 4, "visible_devices": [0]},
        "artifacts": {"uri": "/tmp/a"},
        "resume_note": "kept",
    }
    config = JobConfig.from_dict(old)
    assert (config.attempt, config.api, config.job_name, config.finetune) == (1, "", "", None)
    assert config.hyperparameters == {"batch_size": 4, "visible_devices": [0]}
    assert config.data == DataSource()
    assert config.format_version == 1
    # Unknown keys survive a read-modify-write (a new attempt).
    rewritten = dataclasses.replace(config, attempt=2).to_dict()
    assert (
        rewritten["resume_note"] == "kept" and rewritten["attempt"] == 2 and rewritten["version"] == VERSION
    )


def test_a_newer_version_is_refused_with_what_to_do():
    raw = {**FETCH_JOB.to_dict(), "version": VERSION + 1}
    with pytest.raises(JobConfigError, match=rf"version {VERSION + 1} is newer .* same release"):
        JobConfig.from_dict(raw)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"task": None}, "'task' is required"),
        ({"job_id": ""}, "'job_id' is required"),
        ({"artifacts": {}}, "'artifacts.uri' is required"),
        ({"hyperparameters": ["a"]}, "'hyperparameters' must be an object"),
        ({"data": "s3://x"}, "'data' must be an object"),
        ({"finetune": "job"}, "'finetune' must be an object"),
        ({"attempt": "two"}, "'attempt'"),
        ({"version": "1"}, "'version' must be a whole number"),
    ],
)
def test_bad_fields_are_named(change, named):
    with pytest.raises(JobConfigError, match=named):
        JobConfig.from_dict({**FETCH_JOB.to_dict(), **change})


def test_not_json_or_not_an_object():
    with pytest.raises(JobConfigError, match="not JSON"):
        JobConfig.from_json("{")
    with pytest.raises(JobConfigError, match="JSON object"):
        JobConfig.from_json("[]")

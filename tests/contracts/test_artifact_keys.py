"""Every artifact key the API reads is one the trainer writes (contracts.layout on both sides)."""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.adapters.local.tool_runner import LocalToolRunner
from chalicelib.ai_factory import service as ai_factory
from chalicelib.ports import COMPLETED, Adapters, Hardware, TrainingDescription
from chalicelib.v15 import plots as routes
from chalicelib.v15 import service as v15
from chalicelib.v15 import tool_jobs
from contracts import layout, plots

WRITTEN_BY_OTHERS = {layout.JOB_FILE}  # the API writes job.json itself


class RecordingStore(DirectoryArtifactStore):
    def __init__(self, root):
        super().__init__(root)
        self.read: set[str] = set()
        self.missing: set[str] = set()  # read while absent
        self.put: set[str] = set()  # written by the API itself

    def get_bytes(self, key):
        self.read.add(key)
        found = super().get_bytes(key)
        if found is None:
            self.missing.add(key)
        return found

    def get_json(self, key, default=None):
        self.read.add(key)
        if super().get_bytes(key) is None:
            self.missing.add(key)
        return super().get_json(key, default)

    def put_bytes(self, key, data):
        self.put.add(key)
        super().put_bytes(key, data)


class FinishedPlatform:
    def describe(self, name):
        return TrainingDescription(COMPLETED, "Completed", "", "2026-11-30 00:00:00", "2026-11-30 00:01:00")

    def hardware(self):
        return Hardware([], None)

    def live_devices(self):
        return None


def _services(tmp_path, ran, job_id, api, task, hyperparameters):
    artifacts = RecordingStore(tmp_path / "artifacts")
    shutil.copytree(ran.artifacts, tmp_path / "artifacts" / layout.job_prefix(job_id))
    jobs = SqliteJobStore(tmp_path / "jobs.sqlite3")
    jobs.create(
        {
            "job_id": job_id,
            "job_name": f"name-{job_id}",
            "api": api,
            "task": task,
            "status": COMPLETED,
            "settled": True,
            "created_at": "2026-11-30 00:00:00",
            "artifact_key": layout.job_prefix(job_id),
            "attempts": [{"attempt": 1, "training_job_name": f"name-{job_id}"}],
            "hyperparameters": hyperparameters,
        }
    )
    services = Adapters(
        jobs=jobs,
        artifacts=artifacts,
        platform=FinishedPlatform(),
        secrets=None,
        tools=LocalToolRunner(artifacts),
    )
    return services, artifacts


def _relative(keys, job_id):
    """Keys under the job's prefix, less the API's own cache of tool answers (tool_jobs)."""
    prefix = layout.job_prefix(job_id) + "/"
    return {
        key[len(prefix) :]
        for key in keys
        if key.startswith(prefix) and not key.startswith(tool_jobs.job_prefix(job_id) + "/")
    }


def test_every_key_the_v15_api_reads_is_written_by_the_vision_trainer(tmp_path, vision_run):
    job_id = "20261130000000-contract"
    hp = vision_run.job.job["hyperparameters"]
    svc, store = _services(tmp_path, vision_run, job_id, "v1.5", "classification", hp)
    assert v15.monitor(svc, job_id)["status"] == "finished"
    assert v15.losses(svc, job_id)["losses"]
    listed = v15.checkpoints(svc, job_id)["checkpoints"]
    assert [c["epoch"] for c in listed] == [1, 2]
    for item in listed:
        assert v15.checkpoint(svc, job_id, str(item["epoch"]))["checkpoint"]["base64_metric_plot"]
    v15.environment(svc)
    read = _relative(store.read, job_id)
    drawn = _relative(store.put, job_id)  # plots the API had drawn from the trainer's numbers
    assert read and read <= vision_run.written() | WRITTEN_BY_OTHERS | drawn, read - vision_run.written()
    missing = {key for key in store.missing if not key.startswith(tool_jobs.job_prefix(job_id) + "/")}
    assert missing <= store.put, missing - store.put


def test_the_trainers_plot_numbers_draw_every_plot_the_v15_api_serves(tmp_path, vision_run):
    """The API's `plot` tool requests (contracts.plots) against the real tool and the
    numbers a real trainer run kept: every plot of every class, drawn once and then stored."""
    job_id = "20261130000000-plots"
    svc, store = _services(tmp_path, vision_run, job_id, "v1.5", "classification", {})
    classes = len(
        json.loads((vision_run.artifacts / layout.epoch_file(2, layout.MODEL_JSON)).read_text())[
            "class_names"
        ]
    )
    answers = [routes.confusion_matrix(svc, job_id, "2")["base64_confusion_matrix_plot"]]
    answers += [
        routes.threshold(svc, job_id, "2", str(k))["base64_threshold_plot"] for k in range(classes + 1)
    ]
    assert all(base64.b64decode(a)[:3] == b"\xff\xd8\xff" for a in answers)
    assert len(set(answers)) == len(answers)  # each class its own curves
    drawn = {layout.epoch_file(2, plots.plot_key(plots.THRESHOLD, k)) for k in range(classes + 1)}
    assert drawn | {layout.epoch_file(2, layout.CONFUSION_MATRIX_PLOT)} == _relative(store.put, job_id)
    assert (
        routes.threshold(svc, job_id, "2", "1")["base64_threshold_plot"] == answers[2]
    )  # stored, not redrawn


def test_every_key_the_ai_factory_api_reads_is_written_by_the_text_trainer(tmp_path, text_run):
    job_id = "20261130000000-textcontract"
    svc, store = _services(tmp_path, text_run, job_id, "ai_factory", "ml_topic", {})
    job = svc.jobs.get(job_id)
    status = ai_factory.training_status(svc, {"job_name": job["job_name"]})
    assert status["progress"]["step"] == status["progress"]["total_steps"] == 12
    result = svc.artifacts.get_json(layout.job_key(job_id, layout.RESULT))
    assert result["log"]["avg"]
    read = _relative(store.read, job_id)
    assert read <= text_run.written() | WRITTEN_BY_OTHERS, read - text_run.written()


@pytest.mark.parametrize("name", [layout.PROGRESS, layout.LOSSES, layout.RESULT, layout.ENVIRONMENT])
def test_the_text_trainer_writes_the_job_files(text_run, name):
    assert name in text_run.written()


def test_each_checkpoint_directory_is_self_contained(vision_run):
    for epoch in (1, 2):
        for name in (layout.WEIGHTS, layout.MODEL_JSON, layout.METRICS_JSON, layout.SUMMARY_JSON):
            assert layout.epoch_file(epoch, name) in vision_run.written()
    assert all(layout.parse_epoch_key(k) for k in vision_run.written() if k.startswith("checkpoints/"))

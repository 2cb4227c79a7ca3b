"""What the v1.5 API shows of the trainer's checkpoints: the starred best keeps its weights."""

from __future__ import annotations

import pytest

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.ports import COMPLETED, Services, TrainingDescription
from chalicelib.services import jobs
from chalicelib.v15 import service as v15
from contracts import layout, metrics

JOB_ID = "20261207000000-space"
ACCURACIES = [0.5, 0.6, 0.7, 0.99] + [0.8] * 11  # 15 epochs, the best at 4


class Platform:
    def describe(self, name):
        return TrainingDescription(COMPLETED, "Completed")


@pytest.fixture
def svc(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    artifacts = DirectoryArtifactStore(tmp_path / "artifacts")
    record = jobs.base_record(JOB_ID, "v15-space", "v1.5", "classification", hyperparameters={})
    store.create(record)
    store.update(JOB_ID, {"status": COMPLETED})
    artifacts.put_json(layout.job_key(JOB_ID, layout.JOB_FILE), {"attempt": 1})
    yield Services(jobs=store, artifacts=artifacts, platform=Platform(), secrets=None)


def write_pruned_job(artifacts, max_num_checkpoints=5):
    """The files the trainer leaves: every epoch's metrics, weights where pruning kept them."""
    scores = dict(enumerate(ACCURACIES, start=1))
    kept = metrics.checkpoints_to_keep(scores, max_num_checkpoints)
    for epoch, accuracy in scores.items():
        record = {"epoch": epoch, "avg_loss": 0.1, "metrics": {"overall": {"accuracy": accuracy}}}
        artifacts.put_json(layout.job_key(JOB_ID, layout.epoch_file(epoch, layout.METRICS_JSON)), record)
        if epoch in kept:
            artifacts.put_bytes(layout.job_key(JOB_ID, layout.epoch_file(epoch, layout.WEIGHTS)), b"w" * 1000)
    newest = max(scores)
    artifacts.put_bytes(layout.job_key(JOB_ID, layout.epoch_file(newest, layout.TRAIN_STATE)), b"s" * 1000)


def test_the_starred_best_is_available(svc):
    write_pruned_job(svc.artifacts)
    listed = v15.checkpoints(svc, JOB_ID)["checkpoints"]
    best = [c for c in listed if c["is_best"]]
    assert [(c["epoch"], c["is_available"]) for c in best] == [(4, 1)]
    assert [c["epoch"] for c in listed if c["is_available"]] == [4, 11, 12, 13, 14, 15]

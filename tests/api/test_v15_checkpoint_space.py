"""What the v1.5 API shows of the trainer's checkpoints: the starred best keeps its weights, each
job's footprint, and reclaiming a finished job's space."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.errors import Conflict
from chalicelib.ports import COMPLETED, STOPPED, Adapters, TrainingDescription
from chalicelib.services import jobs
from chalicelib.v15 import disk_space
from chalicelib.v15 import service as v15
from contracts import layout, metrics

JOB_ID = "20261207000000-space"
ACCURACIES = [0.5, 0.6, 0.7, 0.99] + [0.8] * 11  # 15 epochs, the best at 4


class Platform:
    status = COMPLETED

    def describe(self, name):
        return TrainingDescription(self.status, self.status)

    def logs(self, name, offset, limit):
        return [], True


@pytest.fixture
def svc(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    artifacts = DirectoryArtifactStore(tmp_path / "artifacts")
    record = jobs.base_record(JOB_ID, "v15-space", "v1.5", "classification", hyperparameters={})
    store.create(record)
    store.update(JOB_ID, {"status": COMPLETED})
    artifacts.put_json(layout.job_key(JOB_ID, layout.JOB_FILE), {"attempt": 1})
    yield Adapters(jobs=store, artifacts=artifacts, platform=Platform(), secrets=None)


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


def test_the_listing_shows_each_checkpoints_bytes_and_the_jobs_footprint(svc):
    write_pruned_job(svc.artifacts)
    body = v15.checkpoints(svc, JOB_ID)
    by_epoch = {c["epoch"]: c["bytes"] for c in body["checkpoints"]}

    def metrics_bytes(epoch):
        return len(
            svc.artifacts.get_bytes(layout.job_key(JOB_ID, layout.epoch_file(epoch, layout.METRICS_JSON)))
        )

    assert by_epoch[1] == metrics_bytes(1)  # pruned: its metrics alone
    assert by_epoch[4] == metrics_bytes(4) + 1000 and by_epoch[15] == metrics_bytes(15) + 2000
    job_json = len(svc.artifacts.get_bytes(layout.job_key(JOB_ID, layout.JOB_FILE)))
    assert body["disk_bytes"] == sum(by_epoch.values()) + job_json


def test_reclaim_keeps_only_the_best_weights_of_a_finished_job(svc):
    write_pruned_job(svc.artifacts)
    before = v15.checkpoints(svc, JOB_ID)["disk_bytes"]
    answer = disk_space.reclaim(svc, JOB_ID)
    assert answer["freed_bytes"] == 6 * 1000 and answer["disk_bytes"] == before - 6000
    listed = v15.checkpoints(svc, JOB_ID)["checkpoints"]
    assert [c["epoch"] for c in listed if c["is_available"]] == [4]
    assert not list(svc.artifacts.list_keys(layout.job_key(JOB_ID, "checkpoints/epoch-15/train_state.pt")))


def test_reclaim_refuses_a_job_that_may_be_restored(svc):
    svc.jobs.update(JOB_ID, {"status": STOPPED})
    svc.platform.status = STOPPED
    with pytest.raises(Conflict):
        disk_space.reclaim(svc, JOB_ID)


def test_the_disk_budget_reclaims_the_oldest_finished_job_first(svc):
    write_pruned_job(svc.artifacts)
    assert disk_space.enforce_budget(svc, 10**9) == []  # under the budget: nothing
    assert disk_space.enforce_budget(svc, 1) == [JOB_ID]
    assert [c["epoch"] for c in v15.checkpoints(svc, JOB_ID)["checkpoints"] if c["is_available"]] == [4]


def test_reclaim_keeps_a_deployed_checkpoints_weights(svc):
    write_pruned_job(svc.artifacts)
    deployed = SimpleNamespace(job_id=JOB_ID, epoch=12)
    svc = dataclasses.replace(svc, hosting=SimpleNamespace(list=lambda: [deployed]))
    disk_space.reclaim(svc, JOB_ID)
    assert [c["epoch"] for c in v15.checkpoints(svc, JOB_ID)["checkpoints"] if c["is_available"]] == [4, 12]

"""The dashboard's download routes without a browser: a checkpoint's weights come back whole
from parts that each fit Lambda's answer, only a checkpoint's own safe files are offered, a
pruned or missing one is a 404, and a store that presigns answers a link instead of bytes."""

from __future__ import annotations

import pytest

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.aws_limits import LAMBDA_MAX_RESPONSE_BYTES
from chalicelib.dashboard import downloads
from chalicelib.errors import NotFound, ValidationError
from chalicelib.ports import COMPLETED, Adapters, TrainingDescription
from chalicelib.services import jobs
from contracts import layout

JOB_ID = "20261207000000-downloads"
WEIGHTS = bytes(range(256)) * (7 * 1024 * 1024 // 256 + 3)  # over two parts, not a multiple of one


class Platform:
    def describe(self, name):
        return TrainingDescription(COMPLETED, COMPLETED)

    def logs(self, name, offset, limit):
        return [], True


class PresigningStore(DirectoryArtifactStore):
    def download_url(self, key):
        return f"https://bucket.s3.amazonaws.com/{key}?X-Amz-Signature=abc"


def adapters(tmp_path, store_class=DirectoryArtifactStore) -> Adapters:
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    artifacts = store_class(tmp_path / "artifacts")
    store.create(jobs.base_record(JOB_ID, "v15-downloads", "v1.5", "classification", hyperparameters={}))
    store.update(JOB_ID, {"status": COMPLETED})
    artifacts.put_json(layout.job_key(JOB_ID, layout.JOB_FILE), {"attempt": 1})
    artifacts.put_bytes(layout.job_key(JOB_ID, layout.epoch_file(2, layout.WEIGHTS)), WEIGHTS)
    artifacts.put_json(
        layout.job_key(JOB_ID, layout.epoch_file(2, layout.MODEL_JSON)), {"task": "classification"}
    )
    artifacts.put_json(layout.job_key(JOB_ID, layout.epoch_file(1, layout.METRICS_JSON)), {"epoch": 1})
    return Adapters(jobs=store, artifacts=artifacts, platform=Platform(), secrets=None)


def test_the_weights_come_back_whole_from_parts_that_fit_lambdas_answer(tmp_path):
    svc = adapters(tmp_path)
    parts, offset = [], None
    while True:
        part = downloads.checkpoint_file(svc, JOB_ID, "2", layout.WEIGHTS, offset)
        assert part["total"] == len(WEIGHTS) and part["start"] == int(offset or 0)
        assert len(part["data"]) * 4 / 3 < LAMBDA_MAX_RESPONSE_BYTES  # base64 in the proxy answer
        parts.append(part["data"])
        if part["end"] + 1 >= part["total"]:
            break
        offset = str(part["end"] + 1)
    assert len(parts) == 3 and b"".join(parts) == WEIGHTS


def test_only_a_checkpoints_own_files_and_real_offsets_are_accepted(tmp_path):
    svc = adapters(tmp_path)
    assert downloads.checkpoint_file(svc, JOB_ID, "2", "model.json")["data"].startswith(b"{")
    for epoch, name, offset, field in (
        ("2", layout.TRAIN_STATE, None, "name"),  # the trainer's resume state is not handed out
        ("2", "../../job.json", None, "name"),
        ("two", layout.WEIGHTS, None, "epoch"),
        ("2", layout.WEIGHTS, "-1", "offset"),
        ("2", layout.WEIGHTS, "x", "offset"),
        ("2", layout.WEIGHTS, str(len(WEIGHTS)), "offset"),
    ):
        with pytest.raises(ValidationError) as error:
            downloads.checkpoint_file(svc, JOB_ID, epoch, name, offset)
        assert error.value.field == field


def test_a_pruned_checkpoint_or_another_apis_job_is_not_found(tmp_path):
    svc = adapters(tmp_path)
    with pytest.raises(NotFound, match="pruned"):
        downloads.checkpoint_file(svc, JOB_ID, "1", layout.WEIGHTS)  # metrics kept, weights pruned
    with pytest.raises(NotFound):
        downloads.checkpoint_file(svc, "20261207000000-nothing", "2", layout.WEIGHTS)
    with pytest.raises(NotFound):
        downloads.model_file(svc, "v15-downloads")  # a v1.5 job is no AI Factory model


def test_a_store_that_presigns_answers_a_link_not_bytes(tmp_path):
    svc = adapters(tmp_path, PresigningStore)
    found = downloads.checkpoint_file(svc, JOB_ID, "2", layout.WEIGHTS)
    assert set(found) == {"url"} and "X-Amz-Signature" in found["url"]

"""A v1.5 job resumed or fine-tuned from another: the source's record (a Job) feeds job.json."""

from __future__ import annotations

import pytest

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.errors import ValidationError
from chalicelib.ports import COMPLETED, Adapters
from chalicelib.services import jobs
from chalicelib.v15 import service as v15
from contracts import layout


class Platform:
    def __init__(self):
        self.started = []

    def start(self, request):
        self.started.append(request)


@pytest.fixture
def svc(local_stage, tmp_path):
    return Adapters(
        jobs=SqliteJobStore(tmp_path / "jobs.sqlite3"),
        artifacts=DirectoryArtifactStore(tmp_path / "artifacts"),
        platform=Platform(),
        secrets=None,
    )


@pytest.fixture
def source(svc, tmp_path):
    """A finished classification job with epoch 1's weights and its losses."""
    data = tmp_path / "data"
    data.mkdir()
    form = {"task": "classification", "data_dir": str(data), "algorithm": "resnet18", "batch_size": "4"}
    job_id = v15.start_training(svc, form)["job_id"]
    svc.jobs.update(job_id, {"status": COMPLETED, "settled": True})
    for name in (layout.WEIGHTS, layout.METRICS_JSON):
        svc.artifacts.put_bytes(layout.job_key(job_id, layout.epoch_file(1, name)), b"{}")
    svc.artifacts.put_json(layout.job_key(job_id, layout.LOSSES), [1.0, 0.5])
    return svc.jobs.get(job_id)


def test_resume_copies_the_resume_point_and_inherits_the_hyperparameters(svc, source):
    job_id = v15.start_training(svc, {"resume_job_id_and_epoch": f'("{source.job_id}", 1)'})["job_id"]
    config = jobs.read_config(svc, job_id)
    assert config.hyperparameters["batch_size"] == 4 and config.finetune is None
    assert svc.artifacts.get_json(layout.job_key(job_id, layout.LOSSES)) == [1.0, 0.5]
    assert svc.artifacts.get_bytes(layout.job_key(job_id, layout.epoch_file(1, layout.WEIGHTS))) == b"{}"
    record = svc.jobs.get(job_id)
    assert record.resume == {"job_id": source.job_id, "epoch": 1} and record.data_dir == source.data_dir
    assert svc.platform.started[-1].hyperparameters == {}  # they travel in job.json only


def test_finetune_names_the_source_checkpoint_in_job_json(svc, source):
    job_id = v15.start_training(svc, {"finetune_job_id_and_epoch": f'("{source.job_id}", 1)'})["job_id"]
    assert jobs.read_config(svc, job_id).finetune == {"checkpoint_uri": source.artifact_uri, "epoch": 1}


def test_a_source_without_that_epoch_is_named(svc, source):
    with pytest.raises(ValidationError, match="no available checkpoint of epoch 3"):
        v15.start_training(svc, {"resume_job_id_and_epoch": f'("{source.job_id}", 3)'})

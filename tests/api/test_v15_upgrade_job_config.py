"""v1.5 upgrade rewrites job.json through JobConfig: the new layout version, nothing else lost."""

from __future__ import annotations

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.ports import COMPLETED, Adapters
from chalicelib.services import jobs
from chalicelib.v15 import tools
from contracts import layout
from contracts.job_config import DATA_DIR, DataSource, JobConfig

JOB_ID = "20261122194501-6a1f"


def test_upgrade_writes_the_new_format_version_into_job_json(tmp_path):
    svc = Adapters(
        jobs=SqliteJobStore(tmp_path / "jobs.sqlite3"),
        artifacts=DirectoryArtifactStore(tmp_path / "artifacts"),
        platform=None,
        secrets=None,
    )
    record = jobs.base_record(JOB_ID, "v15-upgrade", "v1.5", "detection", hyperparameters={"batch_size": 2})
    svc.jobs.create(record.with_changes({"status": COMPLETED, "settled": True, "format_version": 1}))
    old = JobConfig(
        job_id=JOB_ID,
        task="detection",
        artifact_uri=svc.artifacts.job_uri(JOB_ID),
        api="v1.5",
        format_version=1,
        hyperparameters={"batch_size": 2, "anchor_sizes": [16, 32]},
        data=DataSource(type=DATA_DIR, channel="training"),
    )
    jobs.write_config(svc, old)
    svc.artifacts.put_json(
        layout.job_key(JOB_ID, layout.epoch_file(1, layout.MODEL_JSON)), {"hyperparameters": {}}
    )

    assert tools.upgrade(svc, JOB_ID, {"task": "detection"})["upgraded"] is True
    upgraded = jobs.read_config(svc, JOB_ID)
    assert upgraded.format_version == layout.FORMAT_VERSION
    assert upgraded.hyperparameters == old.hyperparameters and upgraded.data == old.data
    assert svc.jobs.get(JOB_ID).format_version == layout.FORMAT_VERSION
    model = svc.artifacts.get_json(layout.job_key(JOB_ID, layout.epoch_file(1, layout.MODEL_JSON)))
    assert model["hyperparameters"]["rcnn_norm"] == "batch"

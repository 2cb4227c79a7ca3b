"""One tiny real vision job and one tiny real text job, shared by the contract tests.

The contracts are only as good as their agreement with what the containers really do, so
these tests read what a real trainer run printed and wrote.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dataset_fetcher.loopback import DatasetServer
from tests.trainer.test_text_training import KEY, SMALL_MODEL, topic_records
from tests.trainer.test_text_training import Job as TextJob
from tests.trainer.test_vision_train import CLASSIFICATION
from tests.trainer.test_vision_train import Job as VisionJob


@dataclass
class Ran:
    stdout: str
    artifacts: Path
    job: object

    def written(self) -> set[str]:
        """Every artifact key (relative to the job's prefix) the trainer wrote."""
        return {str(p.relative_to(self.artifacts)) for p in self.artifacts.rglob("*") if p.is_file()}


def _run(job, monkeypatch) -> Ran:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert job.run(monkeypatch) == 0, job.failure[:500]
    return Ran(out.getvalue(), job.artifacts, job)


@pytest.fixture(scope="module")
def vision_run(tmp_path_factory) -> Ran:
    with pytest.MonkeyPatch.context() as monkeypatch:
        root = tmp_path_factory.mktemp("vision")
        hp = {**CLASSIFICATION, "num_epochs_to_finish": 2, "num_batches_to_display": 50}
        return _run(VisionJob(root, "classification", hp, num_images=8, image_size=32), monkeypatch)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Ran:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("AIFACTORY_ALLOW_PRIVATE_URLS", "true")
        root = tmp_path_factory.mktemp("text")
        hps = {**SMALL_MODEL, "process.train.steps": "12", "process.train.saveCheckpointSteps": "6"}
        with DatasetServer(topic_records(60), header=KEY) as server:
            return _run(TextJob(root, "ml_topic", server.url, hps), monkeypatch)

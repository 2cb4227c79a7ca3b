"""The CLI shows what a job holds on disk and frees a finished job's space (issue 18), against
the scripted server: no training."""

from __future__ import annotations

import pytest

from aifactory.cli import main
from tests.cli.fake_api import FakeApi

JOB = "20240101120000-0f8fad5b-d9cb-469f-a165-70867728950e"
V = "/api/v1.5.0"


@pytest.fixture
def fake():
    with FakeApi() as server:
        yield server


@pytest.fixture
def run(fake, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AIFACTORY_URL", fake.url)
    monkeypatch.setenv("AIFACTORY_API_KEY", "k")
    monkeypatch.setenv("AIFACTORY_HOME", str(tmp_path / "state"))

    def invoke(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_checkpoints_show_each_size_and_the_jobs_footprint(fake, run):
    listed = [
        {"epoch": 1, "avg_loss": 0.5, "accuracy": 0.9, "is_best": 1, "is_available": 1, "bytes": 44_800_000},
        {"epoch": 2, "avg_loss": 0.4, "accuracy": 0.8, "is_best": 0, "is_available": 0, "bytes": 2_000},
    ]
    body = {"result": "OK", "checkpoints": listed, "disk_bytes": 134_500_000}
    fake.reply("GET", f"{V}/train/{JOB}/checkpoints", 200, body)
    code, out, _ = run("checkpoints", JOB)
    assert code == 0
    assert "SIZE" in out.splitlines()[0] and "44.8 MB" in out and "0.0 MB" in out
    assert out.rstrip().endswith("job holds 134.5 MB (free a finished job's space: aifactory reclaim JOB)")


def test_reclaim_says_what_it_freed(fake, run):
    body = {"result": "OK", "freed_bytes": 134_400_000, "disk_bytes": 45_000_000, "removed": []}
    fake.reply("POST", f"{V}/train/{JOB}/reclaim", 200, body)
    assert run("reclaim", JOB) == (0, f"freed 134.4 MB; job {JOB} holds 45.0 MB\n", "")

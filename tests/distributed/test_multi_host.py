"""InstanceCount > 1 on the local platform: one trainer process per host, each with its own
`/opt/ml`, DDP over gloo on loopback with `algo-1` as master; rank 0 alone writes."""

from __future__ import annotations

import json
import re

import pytest
from trainer.vision import synthetic

from tests.dataset_fetcher.loopback import DatasetServer
from tests.distributed.conftest import (
    DATASET_HEADER,
    fetch_job,
    submit,
    trainer_logs,
    wait_terminal,
    wait_until,
)
from tests.trainer.test_text_distributed import HPS as TAGGER  # the same two-worker tagger
from tests.trainer.test_text_training import check_result, tagging_records
from tests.trainer.test_vision_train import CLASSIFICATION

CLASSIFIER = {**CLASSIFICATION, "num_epochs_to_finish": 4, "step_lr_sizes": [3]}


@pytest.fixture(autouse=True)
def _loopback_dataset_allowed(monkeypatch):
    monkeypatch.setenv("AIFACTORY_ALLOW_PRIVATE_URLS", "true")


def host_file(platform, name: str, host: str, *parts: str):
    base = platform.job_dir(name) if host == "algo-1" else platform.job_dir(name) / "hosts" / host
    return base.joinpath("opt_ml", *parts)


def train_tagger(platform, root, name: str, hosts: int):
    with DatasetServer(tagging_records(300), header=DATASET_HEADER) as server:
        artifacts = submit(
            platform, root, name, fetch_job(root, name, "ml_tagger", server.url, TAGGER), instance_count=hosts
        )
        description = wait_terminal(platform, name)
        requested = list(server.requests)
    assert description.status == "Completed", (description.failure_reason, trainer_logs(platform, name))
    return artifacts, requested


def test_every_host_gets_its_own_opt_ml_naming_it_and_all_hosts(platform, tmp_path):
    with DatasetServer(tagging_records(300), header=DATASET_HEADER) as server:
        submit(
            platform,
            tmp_path,
            "three",
            fetch_job(tmp_path, "three", "ml_tagger", server.url, TAGGER),
            instance_count=3,
        )
        wait_terminal(platform, "three")
    for host in ("algo-1", "algo-2", "algo-3"):
        config = json.loads(
            host_file(platform, "three", host, "input", "config", "resourceconfig.json").read_text()
        )
        assert config == {
            "current_host": host,
            "hosts": ["algo-1", "algo-2", "algo-3"],
            "network_interface_name": "lo",
        }
        assert (
            host_file(platform, "three", host, "checkpoints").resolve()
            == (tmp_path / "artifacts" / "three" / "checkpoints").resolve()
        )
    state = platform.read_state("three")
    assert [t["host"] for t in state["trainers"]] == ["algo-1", "algo-2", "algo-3"]
    assert len({t["pid"] for t in state["trainers"]}) == 3
    assert state["status"] == "Completed"


def test_two_hosts_train_the_tagger_as_well_as_one_and_write_once(platform, tmp_path):
    alone, _ = train_tagger(platform, tmp_path, "one-host", 1)
    pair, requested = train_tagger(platform, tmp_path, "two-hosts", 2)

    one_f1 = check_result(json.loads((alone / "result.json").read_text()), classes=4)
    two_f1 = check_result(json.loads((pair / "result.json").read_text()), classes=4)
    assert one_f1 > 0.8 and abs(two_f1 - one_f1) <= 0.05
    assert len(requested) == len(set(requested)) and {0, 100, 200} <= set(requested)  # rank 0 alone fetched
    first = host_file(platform, "two-hosts", "algo-1").parent / "trainer.log"
    second = host_file(platform, "two-hosts", "algo-2").parent / "trainer.log"
    assert "Rank 1 of 2 (gloo" in second.read_text() and "Rank 0 of 2 (gloo" in first.read_text()
    assert len(re.findall(r"Saved checkpoint .*step-20\n", first.read_text())) == 1
    assert "Saved checkpoint" not in second.read_text()  # rank 0 alone writes
    assert sorted(p.name for p in (pair / "checkpoints").iterdir()) == ["step-20", "step-40"]
    progress = json.loads((pair / "progress.json").read_text())
    assert progress["status"] == "finished" and progress["batch"] == progress["total_batch"] == 40
    assert len(json.loads((pair / "losses.json").read_text())) == 8  # every 5 steps, once
    assert not any(host_file(platform, "two-hosts", "algo-2", "model").iterdir())  # only algo-1's model
    assert (pair / "output" / "two-hosts" / "output" / "model.tar.gz").stat().st_size > 0
    description = platform.describe("two-hosts")
    assert description.billable_seconds >= 2  # two hosts' wall seconds


def test_two_hosts_train_a_classifier_as_well_as_one(platform, tmp_path):
    data = synthetic.generate(
        tmp_path / "data", "classification", num_images=24, image_size=32, num_classes=2, seed=0
    )
    job = {
        "api": "v1.5",
        "task": "classification",
        "hyperparameters": CLASSIFIER,
        "data": {"type": "data_dir", "channel": "training"},
    }
    results = {}
    for hosts in (1, 2):
        name = f"classifier-{hosts}"
        artifacts = submit(platform, tmp_path, name, job, instance_count=hosts, data_uri=str(data))
        description = wait_terminal(platform, name)
        assert description.status == "Completed", (description.failure_reason, trainer_logs(platform, name))
        epochs = sorted(int(p.name.split("-")[1]) for p in (artifacts / "checkpoints").glob("epoch-*"))
        assert epochs == [1, 2, 3, 4]
        records = [
            json.loads((artifacts / "checkpoints" / f"epoch-{e}" / "metrics.json").read_text())
            for e in epochs
        ]
        progress = json.loads((artifacts / "progress.json").read_text())
        results[hosts] = (max(r["metrics"]["overall"]["accuracy"] for r in records), progress["total_batch"])
        assert len(json.loads((artifacts / "losses.json").read_text())) == 4 * (progress["total_batch"] // 2)
    assert results[1][0] >= 0.8 and results[2][0] >= 0.8, results
    assert results[2][1] * 2 == results[1][1]  # each host trains on its half of every epoch
    second = host_file(platform, "classifier-2", "algo-2").parent / "trainer.log"
    assert "#metric eval:accuracy=" not in second.read_text()  # rank 0 alone evaluates and reports


def test_a_failed_host_fails_the_job_with_its_failure_file(platform, tmp_path):
    data = synthetic.generate(
        tmp_path / "data", "classification", num_images=12, image_size=32, num_classes=2, seed=0
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    job = {
        "api": "v1.5",
        "task": "classification",
        "hyperparameters": CLASSIFIER,
        "data": {"type": "data_dir", "channel": "training"},
    }
    platform.max_concurrent = 0  # queued: algo-2's data channel is broken before it starts
    submit(platform, tmp_path, "broken", job, instance_count=2, data_uri=str(data))
    link = platform.job_dir("broken") / "hosts" / "algo-2" / "opt_ml" / "input" / "data" / "training"
    link.parent.mkdir(parents=True)
    link.symlink_to(empty, target_is_directory=True)
    platform.max_concurrent = 1
    platform.stop_grace_seconds = 5
    platform.schedule()
    description = wait_terminal(platform, "broken")
    assert description.status == "Failed"
    reason = host_file(platform, "broken", "algo-2", "output", "failure").read_text()
    assert reason.startswith("E04 FileNotFoundError")
    # algo-1 failed with it at the same point (agreed, not a hang), naming the host and the cause
    peer = host_file(platform, "broken", "algo-1", "output", "failure").read_text()
    cause = reason.split("\n", 1)[0].removeprefix("E04 FileNotFoundError: ")
    assert peer.startswith(f"E04 FileNotFoundError: algo-2 (rank 1) failed: {cause}")
    assert description.failure_reason in (reason[:1024].strip(), peer[:1024].strip())


def test_stop_reaches_every_host(platform, tmp_path):
    hps = {**TAGGER, "process.train.steps": "100000", "process.train.saveCheckpointSteps": "0"}
    with DatasetServer(tagging_records(200), header=DATASET_HEADER) as server:
        artifacts = submit(
            platform,
            tmp_path,
            "stopped",
            fetch_job(tmp_path, "stopped", "ml_tagger", server.url, hps),
            instance_count=2,
        )
        wait_until(
            lambda: (
                (artifacts / "progress.json").exists()
                and json.loads((artifacts / "progress.json").read_text())["status"] == "running"
            )
        )
        platform.stop("stopped")
        description = wait_terminal(platform, "stopped")
    assert description.status == "Stopped"
    logs = [
        host_file(platform, "stopped", h).parent.joinpath("trainer.log").read_text()
        for h in ("algo-1", "algo-2")
    ]
    steps = [re.search(r"Stop requested at step (\d+):", log).group(1) for log in logs]
    assert steps[0] == steps[1]  # both hosts got SIGTERM and agreed on the step
    assert [p.name for p in (artifacts / "checkpoints").iterdir()] == [f"step-{steps[0]}"]  # saved once
    assert json.loads((artifacts / "progress.json").read_text())["status"] == "stopped"

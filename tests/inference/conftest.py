"""Session fixtures: one tiny trained checkpoint per task, one running server per checkpoint."""

from __future__ import annotations

import pytest

from tests.inference.harness import InferenceServer, train_checkpoint

TASKS = ("classification", "detection", "instance_segmentation")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """task -> (checkpoint dir, data_dir), trained on first use."""
    cache: dict = {}

    def get(task: str):
        if task not in cache:
            cache[task] = train_checkpoint(tmp_path_factory.mktemp(f"train-{task}"), task)
        return cache[task]

    return get


@pytest.fixture(scope="session")
def servers(trained, tmp_path_factory):
    """task -> a running server on that task's checkpoint (default batching settings)."""
    running: dict = {}

    def get(task: str) -> InferenceServer:
        if task not in running:
            checkpoint, _ = trained(task)
            running[task] = InferenceServer(checkpoint, tmp_path_factory.mktemp("logs") / f"{task}.log")
        return running[task]

    yield get
    for server in running.values():
        server.stop()

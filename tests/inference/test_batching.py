"""Concurrent requests share a forward pass: the batcher in process, then the server over HTTP."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from inference.batching import DynamicBatcher

from tests.inference.harness import InferenceServer
from tests.inference.test_server import first_image


class Gate:
    """A batch function that records its batches and holds the first one until released."""

    def __init__(self):
        self.batches: list[list] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, items):
        self.batches.append(list(items))
        self.started.set()
        assert self.release.wait(30)
        return [item * 10 for item in items]


@pytest.fixture
def gate():
    return Gate()


def test_requests_queued_during_a_forward_go_together_without_waiting(gate):
    batcher = DynamicBatcher(gate, max_batch_size=8, max_wait_ms=0)
    first = batcher.submit(1)
    assert gate.started.wait(30)
    rest = [batcher.submit(i) for i in (2, 3, 4)]
    gate.release.set()
    assert [f.result(30) for f in [first, *rest]] == [10, 20, 30, 40]
    assert gate.batches == [[1], [2, 3, 4]]
    assert batcher.stats()["batch_sizes"] == {"1": 1, "3": 1}
    batcher.close()


def test_batches_never_exceed_the_max_batch_size(gate):
    batcher = DynamicBatcher(gate, max_batch_size=2, max_wait_ms=0)
    first = batcher.submit(0)
    assert gate.started.wait(30)
    rest = [batcher.submit(i) for i in range(1, 6)]
    gate.release.set()
    assert [f.result(30) for f in [first, *rest]] == [0, 10, 20, 30, 40, 50]
    assert gate.batches == [[0], [1, 2], [3, 4], [5]]
    assert batcher.stats() == {
        "batches": 4,
        "requests": 6,
        "batch_sizes": {"1": 2, "2": 2},
        "max_batch_size": 2,
        "max_wait_ms": 0.0,
    }
    batcher.close()


def test_a_failed_batch_fails_every_request_in_it():
    def broken(items):
        raise RuntimeError("CUDA out of memory")

    batcher = DynamicBatcher(broken, max_batch_size=4, max_wait_ms=0)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        batcher(1)
    batcher.close()


def test_invalid_batcher_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch_size must be >= 1, got 0"):
        DynamicBatcher(lambda items: items, max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_ms must be >= 0, got -1"):
        DynamicBatcher(lambda items: items, max_wait_ms=-1)


@pytest.fixture(scope="module")
def batching_server(trained, tmp_path_factory):
    """Batches of 4 with a wait long enough that only a full batch closes one."""
    checkpoint, _ = trained("classification")
    server = InferenceServer(
        checkpoint,
        tmp_path_factory.mktemp("logs") / "batching.log",
        AIFACTORY_MAX_BATCH_SIZE="4",
        AIFACTORY_MAX_BATCH_WAIT_MS="60000",
    )
    yield server
    server.stop()


def test_concurrent_requests_are_served_in_one_forward_pass(batching_server, servers, trained):
    image = base64.b64encode(first_image(trained, "classification").read_bytes()).decode()
    payload = {"base64_image": image, "lower_prob_thresh": 0.0, "returns_images": False}
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: batching_server.post(json=payload), range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    stats = batching_server.get("/stats").json()
    assert stats["batch_sizes"] == {"4": 2} and stats["requests"] == 8
    single = servers("classification").post(json=payload).json()["classification"]
    for response in responses:
        answer = response.json()["classification"]
        assert answer["category"] == single["category"]
        assert answer["prob"] == pytest.approx(single["prob"], abs=1e-5)

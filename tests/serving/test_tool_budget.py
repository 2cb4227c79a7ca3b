"""Tool work inside the synchronous budget (chalicelib/v15/tool_jobs.py), with an injected cold
start: the tool child is started through a wrapper that sleeps before it execs Python (the test
harness's doing, not a product setting), and AIFACTORY_SYNC_BUDGET_SECONDS is cut to ~1.5 s."""

from __future__ import annotations

import base64
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chalicelib import settings, wiring
from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.tool_runner import LocalToolRunner
from chalicelib.errors import StillComputing, Unavailable
from chalicelib.ports import Adapters
from chalicelib.v15 import tool_jobs
from chalicelib.v15.tools import ToolError
from contracts import plots, tools

pytestmark = pytest.mark.serial  # wall-clock deadlines: run alone (make test)

BUDGET_S = "1.5"
COLD_START_S = 2.5
GRAPH = tools.request(tools.PLOT, plot=plots.MODEL_GRAPH, data=plots.model_graph(["resnet18: ResNet"]))


def cold_python(tmp_path: Path, sleep_s: float) -> tuple[str, Path]:
    """A `python` that sleeps `sleep_s` first (a cold start), counting its starts in a file."""
    starts = tmp_path / f"starts-{sleep_s}"
    wrapper = tmp_path / f"cold-python-{sleep_s}"
    wrapper.write_text(
        f'#!/bin/sh\necho started >> "{starts}"\nsleep {sleep_s}\nexec "{sys.executable}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper), starts


def started(starts: Path) -> int:
    return len(starts.read_text().splitlines()) if starts.exists() else 0


def until_answered(call, timeout=30.0):
    """Retries `call` while it answers "retry", as a client honouring Retry-After would (sooner)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except StillComputing:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def budget(monkeypatch):
    monkeypatch.setenv("AIFACTORY_SYNC_BUDGET_SECONDS", BUDGET_S)
    settings.reset()


@pytest.fixture
def store(tmp_path):
    return DirectoryArtifactStore(tmp_path / "artifacts")


def services(store, runner) -> Adapters:
    return Adapters(jobs=None, artifacts=store, platform=None, secrets=None, tools=runner)


def test_aug_preview_over_http_answers_retry_then_the_synchronous_body(
    client, local_stage, tmp_path, monkeypatch
):
    """The route's envelope: 503, Retry-After, a message saying what is computed; no second
    child for a quick retry; then 200 with the body the synchronous path gives, and nothing left."""
    from trainer.vision.synthetic import generate

    from contracts import v15_arguments as params

    monkeypatch.setenv("AIFACTORY_SYNC_BUDGET_SECONDS", BUDGET_S)
    settings.reset()
    data_dir = str(
        generate(
            local_stage / "uploads" / "cls", "classification", num_images=2, image_size=32, num_classes=2
        )
    )
    fields = {"task": "classification", "data_dir": data_dir, "index": "0", "seed": "3"}
    request = tools.request(
        tools.AUG_PREVIEW,
        data_uri=data_dir,
        task="classification",
        index=0,
        hyperparameters=params.resolve_preview_args("classification", fields),
        seed=3,
    )
    with ThreadPoolExecutor(1) as pool:  # the synchronous path's answer, meanwhile
        synchronous = pool.submit(LocalToolRunner(python=sys.executable).run, request)
        python, starts = cold_python(tmp_path, COLD_START_S)
        artifacts = DirectoryArtifactStore(local_stage / "artifacts")
        wiring.adapters().tools = LocalToolRunner(artifacts, python=python)
        headers = {"x-api-key": "test-api-key", "Content-Type": "application/json"}
        form = json.dumps(fields)

        began = time.monotonic()
        first = client.http.post("/api/v1.5.0/aug", headers=headers, body=form)
        took = time.monotonic() - began
        assert first.status_code == 503, first.body
        assert json.loads(first.body) == {
            "result": "Error",
            "message": "The augmentation preview is still being computed; retry in 5 s.",
        }
        assert first.headers["Retry-After"] == "5"
        assert float(BUDGET_S) <= took < float(BUDGET_S) + 1.5

        second = client.http.post("/api/v1.5.0/aug", headers=headers, body=form)
        assert second.status_code == 503 and started(starts) == 1  # it waited for the same work

        deadline = time.monotonic() + 30
        while (answer := client.http.post("/api/v1.5.0/aug", headers=headers, body=form)).status_code == 503:
            assert time.monotonic() < deadline, answer.body
            time.sleep(0.2)
        assert answer.status_code == 200, answer.body
        assert started(starts) == 1
        body = json.loads(answer.body)
        assert body == {"result": "OK", "base64_aug_image": synchronous.result()["base64_aug_image"]}
    assert base64.b64decode(body["base64_aug_image"])[:3] == b"\xff\xd8\xff"
    assert not list(artifacts.list_keys(tool_jobs.STAGE_PREFIX))  # served once: a directory may change


def test_a_kept_answer_is_served_again_without_the_tool(tmp_path, store, budget):
    python, starts = cold_python(tmp_path, 0)
    svc = services(store, LocalToolRunner(store, python=python))
    first = until_answered(lambda: tool_jobs.run(svc, GRAPH, tool_jobs.job_prefix("j"), keep=True))
    assert base64.b64decode(first["base64_image"])[:3] == b"\xff\xd8\xff"
    assert tool_jobs.run(svc, GRAPH, tool_jobs.job_prefix("j"), keep=True) == first
    assert started(starts) == 1


def test_a_stale_start_is_started_again_and_a_dead_one_reported(tmp_path, store, budget):
    """Work whose answer never came (a crash writes nothing) is started again once its marker
    is older than the runner's timeout plus the grace; after MAX_STARTS it is reported."""
    python, starts = cold_python(tmp_path, 0)
    runner = LocalToolRunner(store, python=python, timeout=1)
    svc = services(store, runner)
    entry = tool_jobs.entry_key(tool_jobs.STAGE_PREFIX, GRAPH)
    old = time.time() - runner.timeout_s - tool_jobs.STALE_GRACE_S - 1
    store.put_json(f"{entry}/{tool_jobs.PENDING}", {"tool": "plot", "started_at": time.time(), "starts": 1})
    with pytest.raises(StillComputing):  # fresh: waited for, not started again
        tool_jobs.run(svc, GRAPH, tool_jobs.STAGE_PREFIX, until=time.monotonic() + 0.2)
    assert started(starts) == 0
    store.put_json(f"{entry}/{tool_jobs.PENDING}", {"tool": "plot", "started_at": old, "starts": 1})
    assert until_answered(lambda: tool_jobs.run(svc, GRAPH, tool_jobs.STAGE_PREFIX))["base64_image"]
    assert started(starts) == 1
    store.put_json(f"{entry}/{tool_jobs.PENDING}", {"tool": "plot", "started_at": old, "starts": 3})
    with pytest.raises(Unavailable, match="started 3 times and never answered"):
        tool_jobs.run(svc, GRAPH, tool_jobs.STAGE_PREFIX)
    assert not list(store.list_keys(entry)) and started(starts) == 1


def test_a_failed_answer_is_served_once_and_not_kept(tmp_path, store, budget):
    python, _ = cold_python(tmp_path, 0)
    svc = services(store, LocalToolRunner(store, python=python))
    broken = tools.request(tools.PLOT, plot="no-such-plot", data={})
    with pytest.raises(ToolError) as caught:
        until_answered(lambda: tool_jobs.run(svc, broken, tool_jobs.job_prefix("j"), keep=True))
    assert caught.value.status_code in (400, 500)
    assert not list(store.list_keys(tool_jobs.job_prefix("j")))


def test_a_child_that_dies_is_an_answer_not_a_wait(tmp_path, store, budget):
    """The supervisor writes a failure when the tool child crashes: no retry loop until stale."""
    dead = tmp_path / "dead-python"
    dead.write_text("#!/bin/sh\necho 'Segmentation fault' >&2\nexit 139\n")
    dead.chmod(0o755)
    svc = services(store, LocalToolRunner(store, python=str(dead)))
    with pytest.raises(ToolError) as caught:
        until_answered(lambda: tool_jobs.run(svc, GRAPH, tool_jobs.STAGE_PREFIX))
    assert caught.value.status_code == 503 and "Segmentation fault" in caught.value.message

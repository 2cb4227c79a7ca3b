"""The text trainer through its real entrypoint, against a loopback dataset endpoint."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.dataset_fetcher.loopback import DatasetServer
from tests.trainer.opt_ml import OptMlJob

ROOT = Path(__file__).resolve().parents[2]
KEY = ("x-api-key", "dataset-key-9f2e")
TAG_WORDS = {
    "O": ["the", "a", "to", "from", "on", "please", "book", "me", "flight", "for"],
    "B-city": ["paris", "london", "tokyo", "hanoi", "berlin", "lima"],
    "B-date": ["monday", "tuesday", "friday", "today", "tomorrow"],
    "B-airline": ["vietjet", "delta", "lufthansa", "qantas"],
}
TOPIC_WORDS = {
    "sports": ["goal", "match", "team", "coach", "league", "score", "striker", "season"],
    "weather": ["rain", "sunny", "storm", "forecast", "wind", "cloudy", "snow", "humid"],
    "finance": ["stock", "market", "bank", "shares", "profit", "bond", "price", "loan"],
}
FILLER = ["the", "a", "of", "today", "new", "big"]


@pytest.fixture(autouse=True)
def _loopback_dataset_allowed(monkeypatch):
    """The dataset endpoint is on 127.0.0.1: allow private URLs, as the local stage does."""
    monkeypatch.setenv("AIFACTORY_ALLOW_PRIVATE_URLS", "true")


SMALL_MODEL = {
    "process.train.using_gpu": "True",
    "process.train.initLearningRate": "0.2",
    "process.train.decayLearningSteps": "50",
    "process.train.decayRate": "0.95",
    "process.train.momentum": "0.9",
    "process.train.batchsize": "16",
    "process.eval.using_gpu": "True",
    "process.eval.steps": "0",
    "process.eval.batchsize": "15",
    "model.numClasses": "-1",
    "model.vocabSize": "-1",
    "model.embeddingSize": "16",
    "model.nHiddenGate": "16",
    "model.nHiddenTag": "16",
    "model.dropoutRate": "0.1",
    "model.add_start_end_words": "True",
}


def tagging_records(n: int, seed: int = 1) -> list[dict]:
    """Each tag has its own words, so a token's tag is learnable from the token."""
    rng = random.Random(seed)
    tags = list(TAG_WORDS)
    records = []
    for i in range(n):
        seq = rng.choices(tags, weights=[0.55, 0.15, 0.15, 0.15], k=rng.randint(4, 9))
        words = [rng.choice(TAG_WORDS[t]) for t in seq]
        records.append({"text": " ".join(words), "tags": seq} if i % 2 else {"tokens": words, "tags": seq})
    return records


def topic_records(n: int, seed: int = 2) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        label = rng.choice(list(TOPIC_WORDS))
        words = [
            rng.choice(TOPIC_WORDS[label] if rng.random() < 0.5 else FILLER)
            for _ in range(rng.randint(6, 10))
        ]
        words[0] = rng.choice(TOPIC_WORDS[label])
        records.append({"text": " ".join(words), "label": label})
    return records


class Job(OptMlJob):
    """An ai_factory job fetching from `url`, its dataset header in a secret file."""

    def __init__(self, root: Path, task: str, url: str, hyperparameters: dict, page_size: int = 50):
        secret = root / "secrets" / "job.json"
        secret.parent.mkdir(parents=True)
        secret.write_text(json.dumps({"dataset_headers": {KEY[0]: KEY[1]}, "callback_headers": {"x": "y"}}))
        data = {
            "type": "fetch",
            "url": url,
            "pagination": {"begin_offset": 0, "page_size": page_size, "max_pages": 0},
            "secret": {"kind": "file", "ref": str(secret)},
        }
        super().__init__(root, {"api": "ai_factory", "task": task, "data": data})
        self.write(hyperparameters)

    def set_hyperparameters(self, hyperparameters: dict) -> None:
        self.write(hyperparameters)

    def steps_saved(self) -> list[int]:
        found = (int(p.name.split("-")[1]) for p in (self.base / "checkpoints").glob("step-*"))
        return sorted(found)


TWO_DECIMALS = re.compile(r"^[01]\.\d\d$")


def check_result(result: dict, classes: int) -> float:
    log = result["log"]
    assert set(log) - {"entities"} == {"avg", "details"}  # entities: B-/I- taggers (test_text_quality.py)
    assert [d["no"] for d in log["details"]] == [str(i) for i in range(classes)]
    for entry_ in [log["avg"], *log["details"]]:
        assert set(entry_) - {"no"} == {"precision", "recall", "f1-score", "support"}
        assert all(TWO_DECIMALS.match(entry_[k]) for k in ("precision", "recall", "f1-score"))
        assert entry_["support"].isdigit()
    assert int(log["avg"]["support"]) == sum(int(d["support"]) for d in log["details"])
    weighted = sum(float(d["f1-score"]) * int(d["support"]) for d in log["details"]) / int(
        log["avg"]["support"]
    )
    assert abs(weighted - float(log["avg"]["f1-score"])) < 0.01
    return float(log["avg"]["f1-score"])


def test_tagger_trains_checkpoints_and_reports(tmp_path, monkeypatch, capsys):
    records = tagging_records(300)
    hps = {
        **SMALL_MODEL,
        "process.train.steps": "60",
        "process.train.saveCheckpointSteps": "20",
        "process.train.keepCheckpointMax": "2",
        "process.train.displaySteps": "5",
    }
    with DatasetServer(records, header=KEY) as server:
        job = Job(tmp_path, "ml_tagger", server.url, hps)
        assert job.run(monkeypatch) == 0
    f1 = check_result(job.read("result.json"), classes=4)
    assert f1 > 0.8
    # Held-out only: 20% of 300 sentences, <s>/</s> excluded from the support.
    heldout_tokens = int(job.read("result.json")["log"]["avg"]["support"])
    assert 0 < heldout_tokens < sum(len(r["tags"]) for r in records) * 0.35
    assert job.steps_saved() == [40, 60]
    step = job.base / "checkpoints" / "step-60"
    assert {p.name for p in step.iterdir()} == {
        "model.safetensors",
        "model.json",
        "metrics.json",
        "train_state.pt",
    }
    meta = json.loads((job.base / "model" / "model.json").read_text())
    assert meta["classes"] == ["B-airline", "B-city", "B-date", "O"]
    assert meta["vocab"][:4] == ["<pad>", "<unk>", "<s>", "</s>"] and "paris" in meta["vocab"]
    assert meta["model"]["hidden_gate"] == 16 and meta["model"]["add_start_end_words"] is True
    assert (job.base / "model" / "model.safetensors").stat().st_size > 1000
    progress = job.read("progress.json")
    assert progress["status"] == "finished" and progress["batch"] == 60 and progress["total_batch"] == 60
    losses = job.read("losses.json")
    assert len(losses) == 12 and losses[-1] < losses[0]
    out = capsys.readouterr().out
    assert re.search(r"#metric train:loss=[-+0-9.eE]+;", out)
    assert len(re.findall(r"#metric eval:f1=([0-9.eE+-]+);", out)) == 3  # steps 20, 40 and the end


def test_topic_trains_and_reports(tmp_path, monkeypatch):
    hps = {
        **SMALL_MODEL,
        "process.train.steps": "50",
        "process.train.saveCheckpointSteps": "0",
        "process.train.keepCheckpointMax": "3",
    }
    with DatasetServer(topic_records(240), header=KEY, reply="data") as server:
        job = Job(tmp_path, "ml_topic", server.url, hps, page_size=32)
        assert job.run(monkeypatch) == 0
    result = job.read("result.json")
    assert check_result(result, classes=3) > 0.8
    assert result["log"]["avg"]["support"] == "48"  # 20% of 240 records held out
    assert job.steps_saved() == [50]
    assert json.loads((job.base / "model" / "model.json").read_text())["classes"] == [
        "finance",
        "sports",
        "weather",
    ]
    assert job.read("progress.json")["status"] == "finished"


def sigterm_once_running(
    job, cwd: Path, extra_env: dict | None = None, timeout: float = 60
) -> tuple[int, str]:
    """`python -m trainer` over `job` as a real process, SIGTERM once its heartbeat says
    running; (exit code, stderr)."""
    env = {
        **os.environ,
        "AIFACTORY_OPT_ML": str(job.base),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "containers" / "trainer")]),
        **(extra_env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            progress = job.artifacts / "progress.json"
            if progress.exists() and json.loads(progress.read_text())["status"] == "running":
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        stderr = proc.communicate(timeout=timeout / 2)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, stderr


def test_sigterm_saves_then_restore_resumes(tmp_path, monkeypatch, caplog):
    hps = {
        **SMALL_MODEL,
        "process.train.steps": "100000",
        "process.train.saveCheckpointSteps": "0",
        "process.train.displaySteps": "5",
    }
    with DatasetServer(tagging_records(200), header=KEY) as server:
        job = Job(tmp_path, "ml_tagger", server.url, hps)
        returncode, stderr = sigterm_once_running(job, tmp_path)
        assert returncode == 0, stderr
        assert job.read("progress.json")["status"] == "stopped"
        assert not (job.base / "model" / "model.json").exists()
        [stopped_at] = job.steps_saved()
        assert stopped_at > 0
        losses_at_stop = stopped_at // 5

        # Restore: the same job again with the checkpoint directory in place, now 20 more steps.
        job.set_hyperparameters({**hps, "process.train.steps": str(stopped_at + 20)})
        with caplog.at_level("INFO", logger="trainer.text"):
            assert job.run(monkeypatch) == 0
    assert f"at step {stopped_at}" in caplog.text
    assert job.steps_saved() == [stopped_at, stopped_at + 20]
    assert job.read("progress.json")["status"] == "finished"
    assert len(job.read("losses.json")) == losses_at_stop + (stopped_at + 20) // 5 - stopped_at // 5
    check_result(job.read("result.json"), classes=4)


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("process.train.steps", "-5", "a positive integer"),
        ("process.train.initLearningRate", "fast", "a positive number"),
        ("model.dropoutRate", "1.5", "[0, 1)"),
        ("process.train.using_gpu", "maybe", "True or False"),
    ],
)
def test_bad_hyperparameter_fails_with_e03(tmp_path, monkeypatch, key, value, rule):
    job = Job(tmp_path, "ml_tagger", "http://127.0.0.1:9/unused", {**SMALL_MODEL, key: value})
    assert job.run(monkeypatch) == 1
    assert job.failure.startswith(f"E03 ValueError: Invalid hyper-parameter {key}={value!r}: expected")
    assert rule in job.failure.splitlines()[0]
    progress = job.read("progress.json")
    assert progress["status"] == "exception" and progress["exception"]["code"] == "E03"


def test_num_classes_smaller_than_data_fails(tmp_path, monkeypatch):
    with DatasetServer(tagging_records(40), header=KEY) as server:
        job = Job(tmp_path, "ml_tagger", server.url, {**SMALL_MODEL, "model.numClasses": "3"})
        assert job.run(monkeypatch) == 1
    assert job.failure.startswith(
        "E03 ValueError: Invalid hyper-parameter model.numClasses=3: the data has 4"
    )


def test_dataset_failure_names_offset_and_hides_headers(tmp_path, monkeypatch):
    with DatasetServer(tagging_records(200), header=KEY, failures={100: [403]}, echo_headers=True) as server:
        job = Job(tmp_path, "ml_tagger", server.url, {**SMALL_MODEL, "process.train.steps": "5"})
        assert job.run(monkeypatch) == 1
    first_line = job.failure.splitlines()[0]
    assert first_line.startswith("E03 DatasetError: Dataset page at offset 100 failed: HTTP 403 Forbidden")
    assert KEY[1] not in job.failure
    assert KEY[1] not in (job.artifacts / "progress.json").read_text()

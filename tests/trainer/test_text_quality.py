"""Entity-level scores (seqeval's span rules) and a tagger that learns a slot-filling set."""

from __future__ import annotations

import random
import re

import pytest
import torch
from trainer.text.entities import EntityCounts, callback_entry, is_span_scheme, spans

from tests.dataset_fetcher.loopback import DatasetServer
from tests.trainer.test_text_training import KEY, SMALL_MODEL, Job, check_result, topic_records

# --- span reading, on seqeval's own documented examples ----------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),  # seqeval's get_entities doc
        (["O", "I-PER", "I-PER"], [("PER", 1, 2)]),  # IOB1: an I- after O starts a span
        (["B-PER", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 1)]),  # a type change ends one
        (["B-PER", "B-PER"], [("PER", 0, 0), ("PER", 1, 1)]),
        (["S-PER", "B-LOC", "I-LOC", "E-LOC", "O"], [("PER", 0, 0), ("LOC", 1, 3)]),  # IOBES
        (["B-MISC", "I-MISC", "I-MISC"], [("MISC", 0, 2)]),
        (["O", "O"], []),
    ],
)
def test_spans_follow_seqeval(tags, expected):
    assert spans(tags) == expected


def test_scores_match_seqevals_readme_example():
    """seqeval README: f1_score(y_true, y_pred) == 0.50 (one of two entities exact)."""
    counts = EntityCounts()
    counts.add(
        ["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"],
        ["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"],
    )
    counts.add(["B-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"])
    report = counts.scores()
    assert (report["precision"], report["recall"], report["f1-score"], report["support"]) == (
        0.5,
        0.5,
        0.5,
        2,
    )
    assert report["types"]["PER"]["f1-score"] == 1.0 and report["types"]["MISC"]["f1-score"] == 0.0
    assert callback_entry(report) == {
        "precision": "0.50",
        "recall": "0.50",
        "f1-score": "0.50",
        "support": "2",
    }


def test_no_prediction_and_no_truth_score_zero():
    counts = EntityCounts()
    counts.add(["O"], ["O"])
    assert counts.scores() == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0, "types": {}}


@pytest.mark.parametrize(
    ("classes", "scheme"),
    [
        (["B-city", "I-city", "O"], True),
        (["B-city", "O", "S-date", "E-city"], True),
        (["O"], False),
        (["0", "1", "2"], False),
        (["city", "O"], False),
        (["B-city", "PER"], False),
    ],
)
def test_span_scheme_is_recognised(classes, scheme):
    assert is_span_scheme(classes) is scheme


# --- a learnable slot-filling set ---------------------------------------------------------------

CITIES = [
    "new york",
    "new orleans",
    "san francisco",
    "los angeles",
    "salt lake city",
    "kansas city",
    "boston",
    "denver",
    "las vegas",
    "st louis",
    "dallas",
    "seattle",
]
AIRLINES = ["delta", "united airlines", "american airlines", "air canada", "jet blue", "alaska airlines"]
DATES = ["tomorrow", "next monday", "this friday", "next week", "on sunday", "the day after tomorrow"]
TIMES = ["noon", "5 pm", "7 am", "midnight", "early in the morning"]
TEMPLATES = [
    "i want to fly from {fromloc} to {toloc} {date}",
    "show me flights from {fromloc} to {toloc} on {airline}",
    "book a {airline} flight to {toloc} leaving {date} at {time}",
    "what flights go from {fromloc} to {toloc}",
    "list {airline} flights arriving in {toloc} {date}",
    "i need a ticket to {toloc} from {fromloc} at {time}",
    "is there a flight from {fromloc} {date}",
]
SLOTS = {"fromloc": CITIES, "toloc": CITIES, "airline": AIRLINES, "date": DATES, "time": TIMES}


def slot_records(n: int, seed: int) -> list[dict]:
    """ATIS-like sentences: from- and to-cities share words, so a span's type needs its context."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        tokens, tags = [], []
        for part in re.split(r"(\{\w+\})", rng.choice(TEMPLATES)):
            if part.startswith("{"):
                slot = part[1:-1]
                words = rng.choice(SLOTS[slot]).split()
                tokens += words
                tags += [f"B-{slot}"] + [f"I-{slot}"] * (len(words) - 1)
            else:
                tokens += part.split()
                tags += ["O"] * len(part.split())
        records.append({"tokens": tokens, "tags": tags})
    return records


@pytest.fixture(autouse=True)
def _loopback_dataset_allowed(monkeypatch):
    monkeypatch.setenv("AIFACTORY_ALLOW_PRIVATE_URLS", "true")


@pytest.fixture
def one_thread():
    """One intra-op thread, as torchrun gives each worker: on a shared, oversubscribed 2-core
    machine a small LSTM's backward took 0.42 s per step with 2 threads and 0.017 s with 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_slot_tagger_reaches_entity_f1_of_0_9(tmp_path, monkeypatch, one_thread):
    hps = {
        **SMALL_MODEL,
        "process.train.steps": "120",
        "process.train.batchsize": "32",
        "process.train.saveCheckpointSteps": "0",
        "model.embeddingSize": "32",
        "model.nHiddenGate": "32",
        "model.nHiddenTag": "32",
    }
    records = slot_records(400, seed=5)
    with DatasetServer(records, header=KEY) as server:
        job = Job(tmp_path, "ml_tagger", server.url, hps, page_size=200)
        assert job.run(monkeypatch) == 0, job.failure
    result = job.read("result.json")
    check_result(result, classes=11)  # B- and I- of five slots, and O
    entities = result["log"]["entities"]
    assert set(entities) == {"precision", "recall", "f1-score", "support"}
    assert all(re.match(r"^[01]\.\d\d$", entities[k]) for k in ("precision", "recall", "f1-score"))
    # 20% of 400 sentences held out, each with two to four entities
    assert 160 <= int(entities["support"]) <= 320
    assert float(entities["f1-score"]) >= 0.9


def test_a_topic_log_has_no_entities(tmp_path, monkeypatch, one_thread):
    hps = {**SMALL_MODEL, "process.train.steps": "5", "process.train.saveCheckpointSteps": "0"}
    with DatasetServer(topic_records(60), header=KEY, reply="data") as server:
        job = Job(tmp_path, "ml_topic", server.url, hps)
        assert job.run(monkeypatch) == 0
    assert set(job.read("result.json")["log"]) == {"avg", "details"}

"""Fine-tuning a text model from another job's model: `model.finetuneFrom` resolved by the API
into job.json's `finetune`, then the trainer's extended vocabulary and checked labels."""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import load_file

from tests.builders import create_payload
from tests.dataset_fetcher.loopback import DatasetServer
from tests.trainer.test_text_quality import one_thread  # noqa: F401 - the fixture
from tests.trainer.test_text_training import KEY, SMALL_MODEL, TAG_WORDS, Job, check_result, topic_records

pytestmark = pytest.mark.usefixtures("one_thread")

SOURCE_NAME = "aif-20261122-194501-5a5a5a5a"
NEW_WORDS = {
    "O": ["kindly", "reserve"],
    "B-city": ["rome", "oslo", "quito"],
    "B-date": ["sunday", "saturday"],
    "B-airline": ["emirates", "ryanair"],
}
HPS = {
    **SMALL_MODEL,
    "process.train.steps": "40",
    "process.train.saveCheckpointSteps": "0",
    "process.train.displaySteps": "1",
}


@pytest.fixture(autouse=True)
def _loopback_dataset_allowed(monkeypatch):
    monkeypatch.setenv("AIFACTORY_ALLOW_PRIVATE_URLS", "true")


def tag_records(n: int, seed: int, new_share: float = 0.0, extra_tag: str | None = None) -> list[dict]:
    """Learnable tagging records; `new_share` of the words come from NEW_WORDS."""
    rng = random.Random(seed)
    tags = list(TAG_WORDS) + ([extra_tag] if extra_tag else [])
    weights = [0.55, 0.15, 0.15, 0.15] + ([0.1] if extra_tag else [])
    records = []
    for _ in range(n):
        seq = rng.choices(tags, weights=weights, k=rng.randint(4, 9))
        words = [
            rng.choice(
                NEW_WORDS[t] if t in NEW_WORDS and rng.random() < new_share else TAG_WORDS.get(t, ["$9"])
            )
            for t in seq
        ]
        records.append({"tokens": words, "tags": seq})
    return records


def finetune_of(source: Job, step: int) -> dict:
    # The trainer's checkpoints live in /opt/ml/checkpoints, which the platform syncs to
    # `<artifacts>/checkpoints/`: here the source's /opt/ml base stands for its artifacts.
    return {"checkpoint_uri": str(source.base), "step": step, "job_name": SOURCE_NAME}


def run_job(root, monkeypatch, task, records, hps, finetune=None, reply="items") -> Job:
    with DatasetServer(records, header=KEY, reply=reply) as server:
        job = Job(root, task, server.url, hps)
        if finetune is not None:
            job.write(finetune=finetune)
        job.status = job.run(monkeypatch)
    return job


@pytest.fixture(scope="module")
def source_tagger(tmp_path_factory):
    """A trained tagger (one per module: the tests only read it)."""
    monkeypatch = pytest.MonkeyPatch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as one_thread does, for this module-scoped fixture
    try:
        monkeypatch.setenv("AIFACTORY_ALLOW_PRIVATE_URLS", "true")
        hps = {**HPS, "process.train.steps": "60"}
        job = run_job(tmp_path_factory.mktemp("source"), monkeypatch, "ml_tagger", tag_records(300, 1), hps)
    finally:
        monkeypatch.undo()
        torch.set_num_threads(threads)
    assert job.status == 0, job.failure
    return job


def test_finetuned_tagger_starts_better_and_reaches_the_same_quality(tmp_path, monkeypatch, source_tagger):
    records = tag_records(300, seed=7, new_share=0.1)
    scratch = run_job(tmp_path / "scratch", monkeypatch, "ml_tagger", records, HPS)
    tuned = run_job(
        tmp_path / "tuned", monkeypatch, "ml_tagger", records, HPS, finetune=finetune_of(source_tagger, 60)
    )
    assert scratch.status == 0 and tuned.status == 0, tuned.failure
    scratch_losses, tuned_losses = scratch.read("losses.json"), tuned.read("losses.json")
    assert len(tuned_losses) == len(scratch_losses) == 40
    assert tuned_losses[0] < 0.5 * scratch_losses[0]  # the first step's loss
    scratch_f1 = check_result(scratch.read("result.json"), classes=4)
    tuned_f1 = check_result(tuned.read("result.json"), classes=4)
    assert scratch_f1 > 0.8 and tuned_f1 >= scratch_f1 - 0.02


def test_finetuned_vocabulary_extends_the_source_and_keeps_its_classes(tmp_path, monkeypatch, source_tagger):
    records = tag_records(120, seed=8, new_share=0.3)
    hps = {**HPS, "process.train.steps": "3", "model.dropoutRate": "0.0", "model.embeddingSize": "32"}
    job = run_job(tmp_path, monkeypatch, "ml_tagger", records, hps, finetune=finetune_of(source_tagger, 60))
    assert job.status == 0, job.failure
    source_meta = json.loads((source_tagger.base / "model" / "model.json").read_text())
    meta = json.loads((job.base / "model" / "model.json").read_text())
    known = source_meta["vocab"]
    assert meta["vocab"][: len(known)] == known
    new = meta["vocab"][len(known) :]
    assert new and set(new) <= {w for words in NEW_WORDS.values() for w in words}
    assert meta["classes"] == source_meta["classes"]
    assert meta["model"]["embedding_size"] == 16  # the source's size, not the 32 asked for
    assert meta["model"]["vocab_size"] == len(meta["vocab"]) and meta["model"]["dropout"] == 0.0
    assert meta["finetuned_from"]["job_name"] == SOURCE_NAME and meta["finetuned_from"]["vocab_size"] == len(
        known
    )
    weights = load_file(str(job.base / "model" / "model.safetensors"))
    source_weights = load_file(str(source_tagger.base / "model" / "model.safetensors"))
    embedding = weights["encoder.embedding.weight"]
    assert embedding.shape[0] == len(meta["vocab"])
    # Three small steps move the known words' embeddings only a little away from the source's.
    drift = (embedding[: len(known)] - source_weights["encoder.embedding.weight"]).abs().max()
    assert float(drift) < 0.5


def test_a_different_tag_set_fails_with_e03(tmp_path, monkeypatch, source_tagger):
    records = tag_records(60, seed=9, extra_tag="B-price")
    job = run_job(tmp_path, monkeypatch, "ml_tagger", records, HPS, finetune=finetune_of(source_tagger, 60))
    assert job.status == 1
    first = job.failure.splitlines()[0]
    assert first.startswith(
        f"E03 ValueError: model.finetuneFrom={SOURCE_NAME}: the data's tags B-price are not among the source "
        "model's classes (B-airline, B-city, B-date, O)"
    )
    assert "or train from scratch without model.finetuneFrom" in first
    assert job.read("progress.json")["exception"]["code"] == "E03"


def test_a_topic_job_cannot_start_from_a_tagger(tmp_path, monkeypatch, source_tagger):
    job = run_job(
        tmp_path,
        monkeypatch,
        "ml_topic",
        topic_records(60),
        HPS,
        finetune_of(source_tagger, 60),
        reply="data",
    )
    assert job.status == 1
    assert job.failure.startswith(
        f"E03 ValueError: model.finetuneFrom={SOURCE_NAME}: that job trained a ml_tagger model, not ml_topic"
    )


def test_a_pruned_source_step_fails_with_e04(tmp_path, monkeypatch, source_tagger):
    job = run_job(
        tmp_path, monkeypatch, "ml_tagger", tag_records(60, 10), HPS, finetune=finetune_of(source_tagger, 20)
    )
    assert job.status == 1
    assert job.failure.startswith(
        f"E04 FileNotFoundError: model.finetuneFrom={SOURCE_NAME}: step 20 of {source_tagger.base} has no model"
    )


def test_an_unresolved_finetune_hyperparameter_fails_with_e03(tmp_path, monkeypatch):
    hps = {**HPS, "model.finetuneFrom": SOURCE_NAME}
    job = run_job(tmp_path, monkeypatch, "ml_tagger", tag_records(60, 11), hps)
    assert job.status == 1
    assert job.failure.startswith(
        f"E03 ValueError: model.finetuneFrom={SOURCE_NAME} was not resolved into job.json's finetune"
    )


def test_a_topic_model_finetunes_from_a_topic_model(tmp_path, monkeypatch):
    hps = {**HPS, "process.train.steps": "30"}
    source = run_job(tmp_path / "source", monkeypatch, "ml_topic", topic_records(200, 2), hps, reply="data")
    assert source.status == 0, source.failure
    records = topic_records(200, 3)
    for record in records[::3]:
        record["text"] += " brandnewword"
    job = run_job(tmp_path / "tuned", monkeypatch, "ml_topic", records, hps, finetune_of(source, 30), "data")
    assert job.status == 0, job.failure
    assert check_result(job.read("result.json"), classes=3) > 0.8
    meta = json.loads((job.base / "model" / "model.json").read_text())
    assert meta["vocab"][-1] == "brandnewword" and meta["classes"] == ["finance", "sports", "weather"]


# --- the API resolves model.finetuneFrom at submit time ----------------------------------------

FIELD = "training_model.hyperparameters.model.finetuneFrom"


def post(client, path, body, headers):
    return client.http.post(path, headers=headers, body=json.dumps(body))


@pytest.fixture
def queued(client, api_headers, monkeypatch):
    """`create(task, **hyperparameters)` -> (response, job.json or None); nothing launches."""
    monkeypatch.setenv("AIFACTORY_MAX_CONCURRENT_JOBS", "0")
    from chalicelib import settings, wiring

    settings.reset()
    wiring.reset()

    def create(task="ml_tagger", **hyperparameters):
        payload = create_payload(task_def=task, hyperparameters={**SMALL_MODEL, **hyperparameters})
        response = post(client, "/create_training_job", payload, api_headers)
        if response.status_code != 200:
            return response, None
        svc = wiring.adapters()
        job = svc.jobs.get_by_name(response.json_body["job_name"])
        return response, svc.artifacts.get_json(f"jobs/{job['job_id']}/job.json")

    return create


def save_step(job_config: dict, step: int, with_model_json: bool = True) -> None:
    """What the trainer leaves under a job's artifacts: `checkpoints/step-<N>/` (contents unread by the API)."""
    from chalicelib import wiring

    svc = wiring.adapters()
    prefix = f"jobs/{job_config['job_id']}/checkpoints/step-{step}"
    svc.artifacts.put_bytes(f"{prefix}/model.safetensors", b"weights")
    if with_model_json:
        svc.artifacts.put_json(f"{prefix}/model.json", {"task": job_config["task"]})


def test_api_resolves_the_source_jobs_newest_model(queued):
    _, source = queued()
    for step in (200, 400):
        save_step(source, step)
    save_step(source, 600, with_model_json=False)  # a checkpoint still being written
    response, job = queued(**{"model.finetuneFrom": source["job_name"]})
    assert response.status_code == 200, response.json_body
    assert job["finetune"] == {
        "checkpoint_uri": source["artifacts"]["uri"],
        "step": 400,
        "job_name": source["job_name"],
    }
    assert job["hyperparameters"]["model.finetuneFrom"] == source["job_name"]
    assert queued()[1]["finetune"] is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("aif-20000101-000000-00000000", "job 'aif-20000101-000000-00000000' not found"),
        ("not a name", "must be an AI Factory job name; got 'not a name'"),
    ],
)
def test_api_rejects_an_unknown_source(queued, value, problem):
    response, _ = queued(**{"model.finetuneFrom": value})
    assert response.status_code == 400
    assert response.json_body["status"] == "error"
    assert FIELD in response.json_body["message"] and problem in response.json_body["message"]


def test_api_rejects_a_source_without_a_model(queued):
    _, source = queued()
    response, _ = queued(**{"model.finetuneFrom": source["job_name"]})
    assert response.status_code == 400
    message = response.json_body["message"]
    assert FIELD in message and f"job '{source['job_name']}' has no saved model yet" in message


def test_api_rejects_a_source_of_another_task(queued):
    _, source = queued(task="ml_topic")
    save_step(source, 10)
    response, _ = queued(**{"model.finetuneFrom": source["job_name"]})
    assert response.status_code == 400
    assert (
        f"job '{source['job_name']}' trained a ml_topic model; a ml_tagger job"
        in response.json_body["message"]
    )

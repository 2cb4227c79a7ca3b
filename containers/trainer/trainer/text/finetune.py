"""Starting a text model from another job's model (job.json `finetune`, resolved by the API
from the `model.finetuneFrom` hyper-parameter).

The source is that job's step checkpoint (`checkpoints/step-<N>/`: model.json and
model.safetensors). The new model keeps the source's architecture and classes; its
vocabulary is the source's followed by the new data's unseen words (data.extend_vocab), so
known words keep their trained embeddings and new words start from a fresh initialisation,
as every other tensor of the source is copied unchanged.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from contracts import layout
from trainer.artifacts import ArtifactWriter
from trainer.text.checkpoints import META_FILE, MODEL_FILE
from trainer.text.data import SPECIALS

log = logging.getLogger("trainer.text")

EMBEDDING = "encoder.embedding.weight"


@dataclass
class Source:
    name: str  # the source job's name (or its URI when job.json does not say)
    meta: dict  # its model.json
    weights: dict[str, torch.Tensor]


def load_source(finetune: dict, task: str) -> Source:
    uri, step = finetune["checkpoint_uri"], int(finetune["step"])
    name = finetune.get("job_name") or uri
    missing = FileNotFoundError(
        f"model.finetuneFrom={name}: step {step} of {uri} has no model (pruned by "
        "process.train.keepCheckpointMax?); fine-tune from a job whose model is still saved"
    )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = ArtifactWriter(uri).download_dir(layout.text_step_dir(step), Path(tmp))
        except FileNotFoundError:
            raise missing from None
        if not (path / MODEL_FILE).is_file() or not (path / META_FILE).is_file():
            raise missing
        meta = json.loads((path / META_FILE).read_text())
        weights = load_file(str(path / MODEL_FILE))
    if meta.get("task") != task:
        raise ValueError(
            f"model.finetuneFrom={name}: that job trained a {meta.get('task')} model, not {task}; "
            f"fine-tune from a {task} job"
        )
    return Source(name, meta, weights)


def model_spec(source: Source, vocab_size: int, config) -> dict:
    """The source's architecture with the extended vocabulary; dropout is this job's."""
    spec = {**source.meta["model"], "vocab_size": vocab_size, "dropout": config.dropout}
    asked = {
        "embedding_size": config.embedding_size,
        "hidden_gate": config.hidden_gate,
        "hidden_tag": config.hidden_tag,
        "add_start_end_words": config.add_start_end_words,
    }
    differs = {k: v for k, v in asked.items() if spec.get(k) != v}
    if differs:
        log.warning(
            "Fine-tuning keeps the source model's sizes %s (asked for %s)",
            {k: spec.get(k) for k in differs},
            differs,
        )
    return spec


def load_into(model: torch.nn.Module, source: Source) -> None:
    """Copies every source tensor; the embedding rows of the new words keep their fresh init."""
    own = model.state_dict()
    state = dict(source.weights)
    old = state[EMBEDDING]
    grown = own[EMBEDDING].clone()
    grown[: old.shape[0]] = old
    # New words start at the mean of the known words' embeddings (as transformers'
    # `resize_token_embeddings(mean_resizing=True)` does): a random vector of the init's
    # scale reads as a confident, arbitrary word to the trained LSTM.
    grown[old.shape[0] :] = old[len(SPECIALS) :].mean(0) if old.shape[0] > len(SPECIALS) else 0.0
    state[EMBEDDING] = grown
    mismatched = sorted(k for k in own if k not in state or state[k].shape != own[k].shape)
    if mismatched:
        raise ValueError(
            f"model.finetuneFrom={source.name}: its weights do not fit this model ({', '.join(mismatched[:5])}); "
            "fine-tune from a job of the same task and trainer version"
        )
    model.load_state_dict(state)
    log.info(
        "Fine-tuning from %s: %d embeddings kept, %d new",
        source.name,
        old.shape[0],
        own[EMBEDDING].shape[0] - old.shape[0],
    )

"""The AI Factory dotted hyper-parameters of the text tasks, parsed once at start.

The values are job.json's `hyperparameters` (`TrainingEnvironment.hyperparameters`, the
one source both trainers read; the user's strings as the API received them). The rules,
defaults and meanings are `contracts.text_hyperparameters`, which the API checks requests
with too. A bad value fails the job at start with a ValueError naming the
key, rather than somewhere inside training.

`process.eval.steps` follows tf.estimator's EvalSpec: the number of held-out batches an
evaluation reads (0 = all of them). Evaluations run at every checkpoint and at the end;
the final one is what result.json and the callback report.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.text_hyperparameters import BY_KEY, DEFAULTS, ROWS, parse

log = logging.getLogger("trainer.text")


@dataclass(frozen=True)
class TextConfig:
    """Defaults are the table's (contracts.text_hyperparameters), which are the spec example's."""

    using_gpu: bool = DEFAULTS["using_gpu"]
    init_lr: float = DEFAULTS["init_lr"]
    decay_steps: int = DEFAULTS["decay_steps"]
    decay_rate: float = DEFAULTS["decay_rate"]
    save_steps: int = DEFAULTS["save_steps"]
    keep_max: int = DEFAULTS["keep_max"]
    momentum: float = DEFAULTS["momentum"]
    steps: int = DEFAULTS["steps"]
    batch_size: int = DEFAULTS["batch_size"]
    display_steps: int = DEFAULTS["display_steps"]
    clip_grad_norm: float = DEFAULTS["clip_grad_norm"]
    seed: int = DEFAULTS["seed"]
    eval_using_gpu: bool = DEFAULTS["eval_using_gpu"]
    eval_steps: int = DEFAULTS["eval_steps"]
    eval_batch_size: int = DEFAULTS["eval_batch_size"]
    holdout_fraction: float = DEFAULTS["holdout_fraction"]
    num_classes: int = DEFAULTS["num_classes"]
    vocab_size: int = DEFAULTS["vocab_size"]
    embedding_size: int = DEFAULTS["embedding_size"]
    hidden_gate: int = DEFAULTS["hidden_gate"]
    hidden_tag: int = DEFAULTS["hidden_tag"]
    dropout: float = DEFAULTS["dropout"]
    add_start_end_words: bool = DEFAULTS["add_start_end_words"]
    finetune_from: str = DEFAULTS["finetune_from"]  # resolved by the API into job.json's `finetune`

    @property
    def loss_every(self) -> int:
        return self.display_steps or max(1, self.steps // 100)


def parse_hyperparameters(values: Mapping[str, object]) -> TextConfig:
    fields: dict[str, object] = {}
    unknown = []
    for key, raw in values.items():
        if key not in BY_KEY:
            unknown.append(key)
            continue
        text = str(raw)
        try:
            fields[BY_KEY[key].field] = parse(key, text)
        except ValueError as exc:
            raise ValueError(f"Invalid hyper-parameter {key}={text!r}: {exc}") from None
    if unknown:
        log.warning("Ignoring hyper-parameters the text trainer does not use: %s", ", ".join(sorted(unknown)))
    return TextConfig(**fields)


def as_hyperparameters(config: TextConfig) -> dict[str, object]:
    """The resolved configuration under its dotted names, for model.json and logs."""
    by_field = {row.field: row.key for row in ROWS}
    return {by_field[f.name]: getattr(config, f.name) for f in dataclasses.fields(config)}

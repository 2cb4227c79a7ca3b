"""The AI Factory dotted hyper-parameters of the text tasks, parsed and checked once.

Every value arrives as a string (SageMaker hyper-parameters); a bad one fails the job at
start with a ValueError naming the key, rather than somewhere inside training.
Defaults are the values of the spec's create_training_job example.

`process.eval.steps` follows tf.estimator's EvalSpec: the number of held-out batches an
evaluation reads (0 = all of them). Evaluations run at every checkpoint and at the end;
the final one is what result.json and the callback report.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger("trainer.text")


@dataclass(frozen=True)
class TextConfig:
    using_gpu: bool = True
    init_lr: float = 0.2
    decay_steps: int = 500
    decay_rate: float = 0.95
    save_steps: int = 200
    keep_max: int = 3
    momentum: float = 0.9
    steps: int = 400
    batch_size: int = 128
    display_steps: int = 0  # 0 = about 100 loss points over the run
    clip_grad_norm: float = 5.0
    seed: int = 0
    eval_using_gpu: bool = True
    eval_steps: int = 100
    eval_batch_size: int = 15
    holdout_fraction: float = 0.2
    num_classes: int = -1
    vocab_size: int = -1
    embedding_size: int = 50
    hidden_gate: int = 50
    hidden_tag: int = 50
    dropout: float = 0.2
    add_start_end_words: bool = True

    @property
    def loss_every(self) -> int:
        return self.display_steps or max(1, self.steps // 100)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError("expected True or False")


def _number(kind: type, check: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text.strip())
        except ValueError:
            try:  # "400.0" is an acceptable integer, "4e2" too
                as_float = float(text)
            except ValueError:
                raise ValueError(f"expected {rule}") from None
            if kind is not int or not as_float.is_integer():
                raise ValueError(f"expected {rule}") from None
            value = int(as_float)
        if value != value or not check(value):  # NaN fails every check
            raise ValueError(f"expected {rule}")
        return value

    return parse


POSITIVE_INT = _number(int, lambda v: v > 0, "a positive integer")
NON_NEGATIVE_INT = _number(int, lambda v: v >= 0, "an integer >= 0")
AUTO_OR_POSITIVE = _number(int, lambda v: v == -1 or v > 0, "-1 (infer from the data) or a positive integer")
POSITIVE_FLOAT = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
FRACTION = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
OPEN_FRACTION = _number(float, lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)")
DECAY = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
NON_NEGATIVE_FLOAT = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")

KEYS: dict[str, tuple[str, Callable[[str], object]]] = {
    "process.train.using_gpu": ("using_gpu", _bool),
    "process.train.initLearningRate": ("init_lr", POSITIVE_FLOAT),
    "process.train.decayLearningSteps": ("decay_steps", POSITIVE_INT),
    "process.train.decayRate": ("decay_rate", DECAY),
    "process.train.saveCheckpointSteps": ("save_steps", NON_NEGATIVE_INT),
    "process.train.keepCheckpointMax": ("keep_max", NON_NEGATIVE_INT),
    "process.train.momentum": ("momentum", FRACTION),
    "process.train.steps": ("steps", POSITIVE_INT),
    "process.train.batchsize": ("batch_size", POSITIVE_INT),
    "process.train.displaySteps": ("display_steps", NON_NEGATIVE_INT),
    "process.train.clipGradNorm": ("clip_grad_norm", NON_NEGATIVE_FLOAT),
    "process.train.seed": ("seed", NON_NEGATIVE_INT),
    "process.eval.using_gpu": ("eval_using_gpu", _bool),
    "process.eval.steps": ("eval_steps", NON_NEGATIVE_INT),
    "process.eval.batchsize": ("eval_batch_size", POSITIVE_INT),
    "process.eval.holdoutFraction": ("holdout_fraction", OPEN_FRACTION),
    "model.numClasses": ("num_classes", AUTO_OR_POSITIVE),
    "model.vocabSize": ("vocab_size", AUTO_OR_POSITIVE),
    "model.embeddingSize": ("embedding_size", POSITIVE_INT),
    "model.nHiddenGate": ("hidden_gate", POSITIVE_INT),
    "model.nHiddenTag": ("hidden_tag", NON_NEGATIVE_INT),
    "model.dropoutRate": ("dropout", FRACTION),
    "model.add_start_end_words": ("add_start_end_words", _bool),
}
"""Dotted key → (field, parser). `saveCheckpointSteps` 0 = only at the end;
`keepCheckpointMax` 0 = keep all; `nHiddenTag` 0 = no projection layer."""


def parse_hyperparameters(values: Mapping[str, object]) -> TextConfig:
    fields: dict[str, object] = {}
    unknown = []
    for key, raw in values.items():
        if key not in KEYS:
            unknown.append(key)
            continue
        name, parse = KEYS[key]
        text = str(raw)
        try:
            fields[name] = parse(text)
        except ValueError as exc:
            raise ValueError(f"Invalid hyper-parameter {key}={text!r}: {exc}") from None
    if unknown:
        log.warning("Ignoring hyper-parameters the text trainer does not use: %s", ", ".join(sorted(unknown)))
    return TextConfig(**fields)


def as_hyperparameters(config: TextConfig) -> dict[str, object]:
    """The resolved configuration under its dotted names, for model.json and logs."""
    by_field = {name: key for key, (name, _) in KEYS.items()}
    return {by_field[f.name]: getattr(config, f.name) for f in dataclasses.fields(config)}

"""The AI Factory text tasks' hyper-parameters (`ml_tagger`, `ml_topic`): one table.

Every value arrives as a string (SageMaker hyper-parameters). The API checks a request
with `problem()` before launching; the trainer parses with `parse()`; both read the same
rows, so a value one side accepts the other accepts too. Both tasks read every row. The
API refuses a key not in the table (`contracts.argument_names`: a typo must not start a job
with defaults); the trainer logs that it ignores one in a job written by hand.

`process.eval.steps` follows tf.estimator's EvalSpec: the number of held-out batches an
evaluation reads (0 = all of them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@dataclass(frozen=True)
class Rule:
    kind: str  # "bool" | "int" | "float" | "name" (a string the rule's pattern checks)
    text: str  # the rule in words, as both sides' messages quote it
    ok: Callable[[Any], bool] = lambda value: True


@dataclass(frozen=True)
class Row:
    key: str
    field: str  # the trainer's configuration attribute
    rule: Rule
    default: Any
    meaning: str


BOOL = Rule("bool", "True or False")
POSITIVE_INT = Rule("int", "a positive integer (>= 1)", lambda v: v >= 1)
NON_NEGATIVE_INT = Rule("int", "an integer >= 0", lambda v: v >= 0)
AUTO_OR_POSITIVE = Rule(
    "int", "a positive integer, or -1 to infer it from the data", lambda v: v == -1 or v >= 1
)
POSITIVE_FLOAT = Rule("float", "a positive number", lambda v: 0 < v < math.inf)
NON_NEGATIVE_FLOAT = Rule("float", "a number >= 0", lambda v: 0 <= v < math.inf)
FRACTION = Rule("float", "a number in [0, 1)", lambda v: 0 <= v < 1)
OPEN_FRACTION = Rule("float", "a number in (0, 1)", lambda v: 0 < v < 1)
DECAY = Rule("float", "a number in (0, 1]", lambda v: 0 < v <= 1)
# AI Factory job names (`aif-20261122-194501-8c0c1d2e`): a letter, then letters, digits, hyphens.
JOB_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
JOB_NAME = Rule("name", "an AI Factory job name", lambda v: bool(JOB_NAME_PATTERN.match(v)))

ROWS = (
    Row("process.train.using_gpu", "using_gpu", BOOL, True, "train on a GPU when one is present"),
    Row("process.train.initLearningRate", "init_lr", POSITIVE_FLOAT, 0.2, "initial learning rate"),
    Row(
        "process.train.decayLearningSteps", "decay_steps", POSITIVE_INT, 500, "steps per learning-rate decay"
    ),
    Row("process.train.decayRate", "decay_rate", DECAY, 0.95, "learning-rate factor per decay"),
    Row(
        "process.train.saveCheckpointSteps",
        "save_steps",
        NON_NEGATIVE_INT,
        200,
        "steps between checkpoints; 0 = only at the end",
    ),
    Row("process.train.keepCheckpointMax", "keep_max", NON_NEGATIVE_INT, 3, "checkpoints kept; 0 = keep all"),
    Row("process.train.momentum", "momentum", FRACTION, 0.9, "SGD momentum"),
    Row("process.train.steps", "steps", POSITIVE_INT, 400, "training steps (batches)"),
    Row("process.train.batchsize", "batch_size", POSITIVE_INT, 128, "training batch size"),
    Row(
        "process.train.displaySteps",
        "display_steps",
        NON_NEGATIVE_INT,
        0,
        "steps per loss point; 0 = about 100 points",
    ),
    Row(
        "process.train.clipGradNorm", "clip_grad_norm", NON_NEGATIVE_FLOAT, 5.0, "gradient norm clip; 0 = off"
    ),
    Row("process.train.seed", "seed", NON_NEGATIVE_INT, 0, "random seed"),
    Row("process.eval.using_gpu", "eval_using_gpu", BOOL, True, "evaluate on a GPU when one is present"),
    Row(
        "process.eval.steps", "eval_steps", NON_NEGATIVE_INT, 100, "held-out batches per evaluation; 0 = all"
    ),
    Row("process.eval.batchsize", "eval_batch_size", POSITIVE_INT, 15, "evaluation batch size"),
    Row("process.eval.holdoutFraction", "holdout_fraction", OPEN_FRACTION, 0.2, "share of records held out"),
    Row(
        "model.numClasses",
        "num_classes",
        AUTO_OR_POSITIVE,
        -1,
        "classes (tags or topics); -1 = from the data",
    ),
    Row("model.vocabSize", "vocab_size", AUTO_OR_POSITIVE, -1, "vocabulary size; -1 = from the data"),
    Row("model.embeddingSize", "embedding_size", POSITIVE_INT, 50, "word embedding size"),
    Row("model.nHiddenGate", "hidden_gate", POSITIVE_INT, 50, "LSTM hidden units"),
    Row(
        "model.nHiddenTag",
        "hidden_tag",
        NON_NEGATIVE_INT,
        50,
        "projection units before the tag layer; 0 = none",
    ),
    Row("model.dropoutRate", "dropout", FRACTION, 0.2, "dropout probability"),
    Row("model.add_start_end_words", "add_start_end_words", BOOL, True, "wrap each text in start/end words"),
    Row(
        "model.finetuneFrom",
        "finetune_from",
        JOB_NAME,
        "",
        "start from the model of this earlier job of the same task (vocabulary extended, labels checked); "
        "empty = from scratch",
    ),
)
BY_KEY = {row.key: row for row in ROWS}
DEFAULTS = {row.field: row.default for row in ROWS}


def _convert(rule: Rule, text: str) -> Any:
    stripped = text.strip()
    if rule.kind == "name":
        return stripped
    if rule.kind == "bool":
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise ValueError
    if rule.kind == "int":
        try:
            return int(stripped)
        except ValueError:
            as_float = float(stripped)  # "400.0" and "4e2" are integers too
            if not as_float.is_integer():
                raise ValueError from None
            return int(as_float)
    value = float(stripped)
    if math.isnan(value):
        raise ValueError
    return value


def parse(key: str, text: str) -> Any:
    """The typed value of a known key; ValueError("expected <rule>") when it breaks the rule."""
    rule = BY_KEY[key].rule
    try:
        value = _convert(rule, str(text))
    except (ValueError, OverflowError):
        raise ValueError(f"expected {rule.text}") from None
    if not rule.ok(value):
        raise ValueError(f"expected {rule.text}")
    return value


def problem(key: str, text: str) -> str | None:
    """What is wrong with a value, in the API's words, or None (also for unknown keys)."""
    if key not in BY_KEY:
        return None
    try:
        parse(key, text)
    except ValueError:
        return f"must be {BY_KEY[key].rule.text}; got '{text}'"
    return None

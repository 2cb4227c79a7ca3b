"""Metric lines the trainers print and the SageMaker MetricDefinitions that scrape them.

One format, `#metric <name>=<value>;`, one list of names: the trainers print only names
listed here (`format_line`), and the aws adapter sends `metric_definitions()` built from
the same names, so every printed metric reaches CloudWatch.
"""

from __future__ import annotations

import re

TRAIN_LOSS = "train:loss"
TRAIN_LEARNING_RATE = "train:learning_rate"
TRAIN_SAMPLES_PER_SEC = "train:samples_per_sec"
TRAIN_EPOCH = "train:epoch"
TRAIN_EPOCH_LOSS = "train:epoch_loss"
EVAL_LOSS = "eval:loss"
EVAL_ACCURACY = "eval:accuracy"
EVAL_PRECISION = "eval:precision"
EVAL_RECALL = "eval:recall"
EVAL_F1 = "eval:f1"
EVAL_MAP = "eval:mAP"

NAMES = (
    TRAIN_LOSS,
    TRAIN_LEARNING_RATE,
    TRAIN_SAMPLES_PER_SEC,
    TRAIN_EPOCH,
    TRAIN_EPOCH_LOSS,
    EVAL_LOSS,
    EVAL_ACCURACY,
    EVAL_PRECISION,
    EVAL_RECALL,
    EVAL_F1,
    EVAL_MAP,
)
VALUE_PATTERN = r"([-+0-9.eE]+|nan|inf|-inf)"


def format_line(name: str, value: float) -> str:
    """The line a trainer prints; a name outside `NAMES` is a bug, caught here."""
    if name not in NAMES:
        raise ValueError(f"metric {name!r} is not in contracts.metrics.NAMES")
    return f"#metric {name}={float(value):.6g};"


def regex(name: str) -> str:
    return f"#metric {re.escape(name)}={VALUE_PATTERN};"


def metric_definitions(names: tuple[str, ...] = NAMES) -> list[dict[str, str]]:
    """SageMaker `AlgorithmSpecification.MetricDefinitions` (at most 40, regex <= 500 chars)."""
    return [{"Name": name, "Regex": regex(name)} for name in names]


def parse(text: str) -> dict[str, list[float]]:
    """Every value of every known metric in a log, in order: what SageMaker would scrape."""
    found: dict[str, list[float]] = {}
    for definition in metric_definitions():
        values = re.findall(definition["Regex"], text)
        if values:
            found[definition["Name"]] = [float(v) for v in values]
    return found


# --- which checkpoint is the best: the trainer keeps its weights, the API stars it -------------


def headline(task: str, metrics: dict) -> float:
    """The number `is_best` ranks by: accuracy for classification, mean AP otherwise
    (-1 where a checkpoint's metrics lack it)."""
    if task == "classification":
        return float((metrics.get("overall") or {}).get("accuracy", -1))
    aps = (metrics.get("specific") or {}).get("aps") or [-1]
    return float(aps[0])


def best_epoch(scores: dict[int, float]) -> int | None:
    """The epoch with the highest headline score, the earliest on ties; None without any."""
    if not scores:
        return None
    return max(scores, key=lambda epoch: (scores[epoch], -epoch))


def checkpoints_to_keep(scores: dict[int, float], max_num_checkpoints: int) -> set[int]:
    """The epochs whose weights pruning keeps: the newest `max_num_checkpoints` (at least one)
    and always the best, as Keras' and Lightning's checkpoint callbacks do."""
    newest = sorted(scores)[-max(1, int(max_num_checkpoints)) :]
    best = best_epoch(scores)
    return set(newest) | ({best} if best is not None else set())

"""The trainer keeps numbers; plots are drawn the first time someone asks for them.

A classification checkpoint has C + 3 plots (metric bars, confusion matrix, threshold curves
of the mean and of every class), and a job has a loss curve that changes every epoch and a
model graph. Drawing them while training cost a small job more time than its data pipeline
(matplotlib competes with the training threads for the CPU), and a 1,000-class job would
spend minutes per epoch on pictures nobody opens. So the trainer writes only the numbers and
the API, on a request for a plot, sends just that plot's numbers to the trainer image's
`plot` tool (contracts.tools), stores the JPEG it gets back under the plot's key
(contracts.layout) and serves it from there afterwards:

- checkpoint plots from `metrics.json` and `plot_data.json`; a checkpoint never changes, so
  the stored JPEG never goes stale;
- the model graph from `plots/model-graph.json` (`{"lines": [...]}`), also fixed;
- the loss curve from `losses.json`; it grows while the job trains, so the stored JPEG has a
  record of how many points it shows (`plots/loss.source.json`) and is redrawn when there
  are more.

Jobs written by an older trainer already have their JPEGs and are served as they are.

`plot_data.json` (classification only):
    {"class_names": [C names], "confusion_matrix": C x C counts (rows true, columns predicted),
     "thresholds": [T scores], "precision": C x T, "recall": C x T,
     "mean_precision": [T], "mean_recall": [T]}
A value that does not exist (precision where nothing scores above the threshold) is null, and
a mean is over the classes where it exists.
"""

from __future__ import annotations

import math
from typing import Any

from contracts import layout

METRIC = "metric"
CONFUSION_MATRIX = "confusion_matrix"
THRESHOLD = "threshold"
LOSS = "loss"
MODEL_GRAPH = "model_graph"
CHECKPOINT_KINDS = (METRIC, CONFUSION_MATRIX, THRESHOLD)
KINDS = (*CHECKPOINT_KINDS, LOSS, MODEL_GRAPH)
MEAN_CLASS_NAME = "mean of classes"
DIGITS = 5  # curves are stored rounded: a plot cannot show more, and the file stays small


def plot_data(class_names, confusion_matrix, thresholds, precision, recall) -> dict[str, Any]:
    """What the trainer writes as `plot_data.json`; arguments are nested lists (C x C, T, C x T, C x T)."""
    c = len(class_names)
    if len(confusion_matrix) != c or len(precision) != c or len(recall) != c:
        raise ValueError(f"plot data for {c} classes needs {c} rows in every table")

    def value(v) -> float | None:
        v = float(v)
        return round(v, DIGITS) if math.isfinite(v) else None

    def rounded(rows):
        return [[value(v) for v in row] for row in rows]

    def mean(column) -> float | None:
        defined = [v for v in column if v is not None]
        return round(sum(defined) / len(defined), DIGITS) if defined else None

    precision, recall = rounded(precision), rounded(recall)
    return {
        "class_names": list(class_names),
        "confusion_matrix": [[int(v) for v in row] for row in confusion_matrix],
        "thresholds": [value(t) for t in thresholds],
        "precision": precision,
        "recall": recall,
        "mean_precision": [mean(col) for col in zip(*precision, strict=True)],
        "mean_recall": [mean(col) for col in zip(*recall, strict=True)],
    }


def plot_key(kind: str, class_index: int = 0) -> str:
    """A checkpoint plot's file name in its checkpoint directory (where the drawn JPEG is kept)."""
    if kind == METRIC:
        return layout.METRIC_PLOT
    if kind == CONFUSION_MATRIX:
        return layout.CONFUSION_MATRIX_PLOT
    if kind == THRESHOLD:
        return layout.threshold_plot(class_index)
    raise ValueError(f"unknown checkpoint plot {kind!r}; one of {', '.join(CHECKPOINT_KINDS)}")


def needs_plot_data(kind: str) -> bool:
    return kind != METRIC


def plot_input(
    kind: str, task: str, record: dict[str, Any], data: dict[str, Any] | None, class_index: int = 0
) -> dict[str, Any]:
    """The numbers one checkpoint plot is drawn from: the `data` field of a `plot` tool request.

    `record` is the checkpoint's metrics.json, `data` its plot_data.json (None for a metric
    plot). Only the requested class's curves travel, so a request stays small for any C.
    """
    if kind == METRIC:
        return {"metrics": record["metrics"], "task": task}
    if data is None:
        raise ValueError(f"a {kind} plot needs the checkpoint's {layout.PLOT_DATA_JSON}")
    if kind == CONFUSION_MATRIX:
        return {"matrix": data["confusion_matrix"], "class_names": data["class_names"]}
    if kind == THRESHOLD:
        names = data["class_names"]
        if not 0 <= class_index <= len(names):
            raise ValueError(f"class {class_index} is not in [0, {len(names)}]")
        if class_index == 0:
            precision, recall, name = data["mean_precision"], data["mean_recall"], MEAN_CLASS_NAME
        else:
            k = class_index - 1
            precision, recall, name = data["precision"][k], data["recall"][k], names[k]
        return {
            "thresholds": data["thresholds"],
            "precision": [precision],
            "recall": [recall],
            "class_names": [name],
        }
    raise ValueError(f"unknown checkpoint plot {kind!r}; one of {', '.join(CHECKPOINT_KINDS)}")


def loss_input(
    losses: list[float], num_batches_to_display: int, steps: list[int] | None = None
) -> dict[str, Any]:
    """The loss curve's numbers: each point at the batch it ends at, counted over all epochs
    (`loss_steps.json`, the trainer's record: an epoch's leftover batches make no point, and
    an epoch shorter than `num_batches_to_display` makes one at its end). Without that record
    (an older trainer) the points are drawn every `num_batches_to_display` batches."""
    losses = [float(v) for v in losses]
    if not steps or len(steps) != len(losses):
        steps = [(i + 1) * int(num_batches_to_display) for i in range(len(losses))]
    return {"losses": losses, "display": int(num_batches_to_display), "steps": [int(s) for s in steps]}


def loss_step(epoch: int, batch: int, batches_per_epoch: int) -> int:
    """The batch a loss point ends at, counted over all epochs (epochs count from 1)."""
    return (int(epoch) - 1) * int(batches_per_epoch) + int(batch)


def loss_source(losses: list[float], num_batches_to_display: int) -> dict[str, int]:
    """What a stored loss JPEG shows (`plots/loss.source.json`): redrawn when this differs."""
    return {"points": len(losses), "display": int(num_batches_to_display)}


def model_graph(lines: list[str]) -> dict[str, Any]:
    """`plots/model-graph.json`, written by the trainer once the model is built; also the
    model graph plot's input."""
    return {"lines": [str(line) for line in lines]}

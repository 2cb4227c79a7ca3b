"""The JPEG plots the API serves, drawn by the `plot` tool from the numbers the trainer
kept (contracts.plots); the trainer itself never draws, and the Lambda never renders.

Each function returns JPEG bytes and uses its own matplotlib Figure (no pyplot state),
so drawing is safe from any thread and leaks nothing between calls.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure

from contracts import plots as kinds

# A 1,000-class job must not ask for a 600-inch figure or a million cell labels: figures stop
# growing at MAX_INCHES, cells carry their counts and axes their class names only up to a size
# where they can still be read.
MAX_INCHES = 24
MAX_ANNOTATED_CLASSES = 30
MAX_LABELLED_CLASSES = 60


def _jpeg(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="jpg", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def loss_plot(losses: list[float], num_batches_to_display: int = 1, steps: list[int] | None = None) -> bytes:
    """`steps`: the batch each point ends at (contracts.plots.loss_input); else one every
    `num_batches_to_display`."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    steps = kinds.loss_input(losses, num_batches_to_display, steps)["steps"]
    ax.plot(steps, losses, color="tab:blue", linewidth=1.2, marker="." if len(losses) < 50 else None)
    ax.set_xlabel("batch (all epochs)")
    ax.set_ylabel("loss")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    return _jpeg(fig)


def metric_plot(metrics: dict, task: str) -> bytes:
    """Grouped bars of the per-class metrics of a checkpoint ("mean" first)."""
    specific = metrics["specific"]
    categories = specific["categories"]
    series = {k: v for k, v in specific.items() if k != "categories"}
    fig = Figure(figsize=(min(MAX_INCHES, max(6, 1.2 * len(categories) * max(1, len(series)) / 2)), 4.5))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [c + i * width for c in range(len(categories))]
        ax.bar(xs, [max(v, 0) for v in values], width=width, label=name)
    if len(categories) <= MAX_LABELLED_CLASSES + 1:
        ax.set_xticks([c + width * (len(series) - 1) / 2 for c in range(len(categories))])
        ax.set_xticklabels(categories, rotation=30, ha="right")
    else:
        ax.set_xlabel("class index (0 is the mean)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize="small")
    title = f"accuracy {metrics['overall'].get('accuracy')}" if task == "classification" else "per class"
    ax.set_title(title)
    return _jpeg(fig)


def confusion_matrix_plot(matrix, class_names: list[str]) -> bytes:
    n = len(class_names)
    size = min(MAX_INCHES, max(4, 0.6 * n + 2))
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    data = matrix.tolist() if hasattr(matrix, "tolist") else matrix
    ax.imshow(data, cmap="Blues")
    if n <= MAX_LABELLED_CLASSES:
        ax.set_xticks(range(n), class_names, rotation=45, ha="right")
        ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted" if n <= MAX_LABELLED_CLASSES else "predicted (class index)")
    ax.set_ylabel("true" if n <= MAX_LABELLED_CLASSES else "true (class index)")
    peak = max((max(row) for row in data), default=0)
    for r, row in enumerate(data if n <= MAX_ANNOTATED_CLASSES else []):
        for c, value in enumerate(row):
            ax.text(
                c,
                r,
                str(int(value)),
                ha="center",
                va="center",
                color="white" if value > peak / 2 else "black",
            )
    ax.set_title("Confusion matrix")
    return _jpeg(fig)


def threshold_plot(thresholds, precision, recall, class_names: list[str]) -> bytes:
    """Precision and recall versus the score threshold, one panel per class."""
    n = len(class_names)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4 * cols, 3 * rows))
    xs = list(thresholds)
    for k, name in enumerate(class_names):
        ax = fig.add_subplot(rows, cols, k + 1)  # a null (undefined) value leaves a gap
        ax.plot(xs, [math.nan if v is None else v for v in precision[k]], label="precision")
        ax.plot(xs, [math.nan if v is None else v for v in recall[k]], label="recall")
        ax.set_title(name)
        ax.set_xlabel("threshold")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return _jpeg(fig)


def model_graph_plot(lines: list[str]) -> bytes:
    """`models.module_tree`'s lines as text in a picture."""
    fig = Figure(figsize=(9, 0.2 * len(lines) + 0.6))
    fig.text(0.01, 0.99, "\n".join(lines), family="monospace", fontsize=8, va="top")
    return _jpeg(fig)


def draw(kind: str, data: dict) -> bytes:
    """One plot from the numbers `contracts.plots` selected for it."""
    if kind == kinds.METRIC:
        return metric_plot(data["metrics"], data["task"])
    if kind == kinds.CONFUSION_MATRIX:
        return confusion_matrix_plot(data["matrix"], data["class_names"])
    if kind == kinds.THRESHOLD:
        return threshold_plot(data["thresholds"], data["precision"], data["recall"], data["class_names"])
    if kind == kinds.LOSS:
        return loss_plot(data["losses"], data["display"], data.get("steps"))
    if kind == kinds.MODEL_GRAPH:
        return model_graph_plot(data["lines"])
    raise ValueError(f"Unknown plot {kind!r}; one of {', '.join(kinds.KINDS)}")

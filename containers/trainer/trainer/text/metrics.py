"""Per-class precision/recall/F1 in the AI Factory callback shape, computed by torchmetrics.

The evaluation loop accumulates one confusion matrix over its batches (that matrix is all
the scores need, and it keeps no per-token lists); ``scores`` hands torchmetrics the
(prediction, target) pairs the matrix counts, so the definitions are torchmetrics' own,
which match sklearn's classification_report: zero where undefined, ``avg`` weighted by
support. Strings carry two decimals, as the callback example does.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

_SCORES = {"precision": multiclass_precision, "recall": multiclass_recall, "f1-score": multiclass_f1_score}


def confusion_matrix(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted; positions with a negative target are skipped."""
    keep = target >= 0
    preds, target = preds[keep].long().cpu(), target[keep].long().cpu()
    if target.numel() == 0:
        return torch.zeros((num_classes, num_classes), dtype=torch.long)
    return multiclass_confusion_matrix(preds, target, num_classes, validate_args=False).long()


def _pairs(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(preds, target) with one entry per count in ``matrix`` (rows true, columns predicted)."""
    n = matrix.shape[0]
    cells = torch.arange(n * n).repeat_interleave(matrix.flatten().long().cpu())
    return cells % n, cells // n


def scores(matrix: torch.Tensor, num_named: int | None = None) -> dict:
    """Floats: per class (the first `num_named` classes) and the support-weighted average."""
    n = matrix.shape[0]
    support = matrix.long().sum(1)
    total = int(support.sum())
    count = n if num_named is None else num_named
    if total == 0:
        per_class = {key: torch.zeros(n) for key in _SCORES}
        average = dict.fromkeys(_SCORES, 0.0)
    else:
        preds, target = _pairs(matrix)
        per_class = {
            key: fn(preds, target, n, average="none", zero_division=0) for key, fn in _SCORES.items()
        }
        average = {
            key: float(fn(preds, target, n, average="weighted", zero_division=0))
            for key, fn in _SCORES.items()
        }
    return {
        "avg": {**average, "support": total},
        "accuracy": float(matrix.diagonal().sum()) / total if total else 0.0,
        "details": [
            {
                "precision": float(per_class["precision"][i]),
                "recall": float(per_class["recall"][i]),
                "f1-score": float(per_class["f1-score"][i]),
                "support": int(support[i]),
                "no": i,
            }
            for i in range(count)
        ],
    }


def _strings(entry: dict) -> dict:
    out = {key: f"{entry[key]:.2f}" for key in ("precision", "recall", "f1-score")}
    out["support"] = str(entry["support"])
    if "no" in entry:
        out["no"] = str(entry["no"])
    return out


def callback_log(report: dict) -> dict:
    """`{"avg": {...}, "details": [...]}` with the spec's string formatting."""
    return {"avg": _strings(report["avg"]), "details": [_strings(d) for d in report["details"]]}

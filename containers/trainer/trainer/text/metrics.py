"""Per-class precision/recall/F1 from a confusion matrix, in the AI Factory callback shape.

Matches sklearn's classification_report (zero when undefined; `avg` weighted by support)
without depending on sklearn. Strings carry two decimals, as the callback example does.
"""

from __future__ import annotations

import torch


def confusion_matrix(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted; positions with a negative target are skipped."""
    keep = target >= 0
    preds, target = preds[keep].long().cpu(), target[keep].long().cpu()
    counts = torch.bincount(target * num_classes + preds, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def scores(matrix: torch.Tensor, num_named: int | None = None) -> dict:
    """Floats: per class (the first `num_named` classes) and the support-weighted average."""
    matrix = matrix.double()
    tp = matrix.diagonal()
    predicted, support = matrix.sum(0), matrix.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    total = float(support.sum())
    weights = support / total if total else torch.zeros_like(support)
    count = matrix.shape[0] if num_named is None else num_named
    return {
        "avg": {
            "precision": float((precision * weights).sum()),
            "recall": float((recall * weights).sum()),
            "f1-score": float((f1 * weights).sum()),
            "support": int(total),
        },
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "details": [
            {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1-score": float(f1[i]),
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

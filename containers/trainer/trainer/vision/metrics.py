"""Validation metrics in the v1.5 checkpoint shape, computed with torchmetrics.

Conventions (the same for every task, so `is_best` comparisons stay meaningful):

- A per-class value that is undefined on this validation set (no ground truth of that
  class, so no AP, recall or AUC exists) is reported as -1, pycocotools' convention.
- "mean" comes first and averages the defined (not -1) per-class values; -1 if none is.
- Detection and segmentation AP is VOC-style AP at IoU 0.5 (torchmetrics
  MeanAveragePrecision, 101-point interpolation, `iou_thresholds=[0.5]`).
- Detection precision / recall / F1 / accuracy count detections scoring >= 0.5, matched
  greedily (highest score first) to the unmatched ground truth box of the same class with
  the highest IoU >= 0.5. accuracy = TP / (TP + FP + FN); precision is 0 when a class with
  ground truth got no detection.
- Everything is rounded to 4 decimals; NaN or inf never reaches JSON (they become -1).
"""

from __future__ import annotations

import importlib
import math
import warnings
from typing import TYPE_CHECKING

import torch
from torchvision.ops import box_iou

if TYPE_CHECKING:
    from torchmetrics.detection import MeanAveragePrecision

# torchmetrics takes longer to import (~0.6 s) than a small job's epoch takes to validate, and
# a job needs only its task's half: each half is imported where it is used, and the trainer
# imports it in the background while the first epoch trains (`warm_imports`).
CLASSIFICATION_MODULE = "torchmetrics.functional.classification"
DETECTION_MODULE = "torchmetrics.detection"


def warm_imports(task: str) -> None:
    importlib.import_module(CLASSIFICATION_MODULE if task == "classification" else DETECTION_MODULE)


UNDEFINED = -1.0
IOU_THRESHOLD = 0.5
SCORE_THRESHOLD = 0.5
DIGITS = 4


def clean(value) -> float:
    value = float(value)
    return UNDEFINED if math.isnan(value) or math.isinf(value) else round(value, DIGITS)


def with_mean(values: list[float]) -> list[float]:
    defined = [v for v in values if v != UNDEFINED]
    mean = sum(defined) / len(defined) if defined else UNDEFINED
    return [clean(mean)] + [clean(v) for v in values]


def _per_class(tensor: torch.Tensor, defined: torch.Tensor) -> list[float]:
    return [float(v) if ok else UNDEFINED for v, ok in zip(tensor.tolist(), defined.tolist(), strict=True)]


# --- classification -------------------------------------------------------------------------


def classification_metrics(probs: torch.Tensor, targets: torch.Tensor, class_names: list[str]) -> dict:
    """`probs` (N, C) softmax scores, `targets` (N,) class indices."""
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_auroc,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
        multiclass_specificity,
    )

    probs, targets = probs.float().cpu(), targets.long().cpu()
    c = len(class_names)
    support = torch.bincount(targets, minlength=c)
    has_positive, has_negative = support > 0, support < len(targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchmetrics warns about absent classes
        overall = {
            "accuracy": clean(multiclass_accuracy(probs, targets, c, average="micro")),
            "avg_recall": clean(multiclass_recall(probs, targets, c, average="macro")),
            "avg_precision": clean(multiclass_precision(probs, targets, c, average="macro")),
            "avg_f1_score": clean(multiclass_f1_score(probs, targets, c, average="macro")),
        }
        aucs = multiclass_auroc(probs, targets, c, average=None, thresholds=None)
        recalls = multiclass_recall(probs, targets, c, average=None)
        specificities = multiclass_specificity(probs, targets, c, average=None)
    return {
        "overall": overall,
        "specific": {
            "categories": ["mean", *class_names],
            "aucs": with_mean(_per_class(aucs, has_positive & has_negative)),
            "sensitivities": with_mean(_per_class(recalls, has_positive)),
            "specificities": with_mean(_per_class(specificities, has_negative)),
        },
    }


def confusion_matrix(probs: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted classes."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    return multiclass_confusion_matrix(probs.float().cpu(), targets.long().cpu(), num_classes)


def precision_recall_vs_threshold(
    probs: torch.Tensor, targets: torch.Tensor, num_classes: int, steps: int = 101
):
    """(thresholds (T,), precision (C, T), recall (C, T)), one-vs-rest per class."""
    from torchmetrics.functional.classification import multiclass_precision_recall_curve

    thresholds = torch.linspace(0, 1, steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        precision, recall, _ = multiclass_precision_recall_curve(
            probs.float().cpu(), targets.long().cpu(), num_classes, thresholds=thresholds
        )
    # torchmetrics appends the (precision 1, recall 0) end point: drop it to align with thresholds.
    return thresholds, precision[:, :steps], recall[:, :steps]


# --- detection and instance segmentation ------------------------------------------------


def _average_precisions(map_metric: MeanAveragePrecision, num_classes: int) -> list[float]:
    """AP per foreground class 1..num_classes-1 (index 0 is background)."""
    result = map_metric.compute()
    if "map_per_class" not in result:
        # torchmetrics leaves the per-class keys out when nothing at all was predicted (seen with
        # iou_type="segm"): every class then has AP 0; callers mark classes without ground truth.
        return [0.0] * (num_classes - 1)
    classes = result["classes"].reshape(-1).tolist()
    values = result["map_per_class"].reshape(-1).tolist()
    found = dict(zip(classes, values, strict=False)) if len(values) == len(classes) else {}
    return [float(found.get(k, UNDEFINED)) for k in range(1, num_classes)]


def _greedy_counts(preds: list[dict], targets: list[dict], num_classes: int) -> torch.Tensor:
    """(num_classes, 3) true positives, false positives, false negatives at the score/IoU thresholds."""
    counts = torch.zeros(num_classes, 3, dtype=torch.long)
    for pred, target in zip(preds, targets, strict=True):
        keep = pred["scores"] >= SCORE_THRESHOLD
        p_boxes, p_labels, p_scores = pred["boxes"][keep], pred["labels"][keep], pred["scores"][keep]
        for k in range(1, num_classes):
            pb = p_boxes[p_labels == k][p_scores[p_labels == k].argsort(descending=True)]
            gb = target["boxes"][target["labels"] == k]
            matched = torch.zeros(len(gb), dtype=torch.bool)
            tp = 0
            if len(pb) and len(gb):
                ious = box_iou(pb.float(), gb.float())
                for row in ious:
                    row = row.masked_fill(matched, -1)
                    best = int(row.argmax())
                    if row[best] >= IOU_THRESHOLD:
                        matched[best] = True
                        tp += 1
            counts[k] += torch.tensor([tp, len(pb) - tp, len(gb) - tp])
    return counts


def detection_metrics(preds: list[dict], targets: list[dict], class_names: list[str]) -> dict:
    """`preds`: torchvision detector outputs; `targets`: boxes XYXY + labels; class_names[0] is background."""
    from torchmetrics.detection import MeanAveragePrecision

    num_classes = len(class_names)
    preds, targets = _to_cpu(preds), _to_cpu(targets)
    ap_metric = MeanAveragePrecision(
        box_format="xyxy", iou_type="bbox", iou_thresholds=[IOU_THRESHOLD], class_metrics=True
    )
    ap_metric.update(
        [{"boxes": p["boxes"].float(), "scores": p["scores"], "labels": p["labels"]} for p in preds],
        [{"boxes": t["boxes"].float(), "labels": t["labels"]} for t in targets],
    )
    aps = _average_precisions(ap_metric, num_classes)
    counts = _greedy_counts(preds, targets, num_classes)
    precisions, recalls, f1s, accuracies = [], [], [], []
    for k in range(1, num_classes):
        tp, fp, fn = (int(v) for v in counts[k])
        if tp + fn == 0:  # no ground truth of this class
            precisions.append(UNDEFINED), recalls.append(UNDEFINED), f1s.append(UNDEFINED)
            accuracies.append(UNDEFINED)
            aps[k - 1] = UNDEFINED
            continue
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn)
        precisions.append(p), recalls.append(r)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
        accuracies.append(tp / (tp + fp + fn))
    return {
        "overall": {},
        "specific": {
            "categories": ["mean", *class_names[1:]],
            "aps": with_mean(aps),
            "f1_scores": with_mean(f1s),
            "precisions": with_mean(precisions),
            "recalls": with_mean(recalls),
            "accuracies": with_mean(accuracies),
        },
    }


def segmentation_metrics(preds: list[dict], targets: list[dict], class_names: list[str]) -> dict:
    """Mask AP per class; predicted masks are Mask R-CNN's (N, 1, H, W) probabilities, cut at 0.5."""
    from torchmetrics.detection import MeanAveragePrecision

    num_classes = len(class_names)
    preds, targets = _to_cpu(preds), _to_cpu(targets)
    ap_metric = MeanAveragePrecision(iou_type="segm", iou_thresholds=[IOU_THRESHOLD], class_metrics=True)
    ap_metric.update(
        [{"masks": _bool_masks(p["masks"]), "scores": p["scores"], "labels": p["labels"]} for p in preds],
        [{"masks": _bool_masks(t["masks"]), "labels": t["labels"]} for t in targets],
    )
    aps = _average_precisions(ap_metric, num_classes)
    gt_classes = {int(v) for t in targets for v in t["labels"]}
    aps = [ap if k in gt_classes else UNDEFINED for k, ap in enumerate(aps, start=1)]
    return {"overall": {}, "specific": {"categories": ["mean", *class_names[1:]], "aps": with_mean(aps)}}


def _bool_masks(masks: torch.Tensor) -> torch.Tensor:
    if masks.dim() == 4:
        masks = masks[:, 0]
    return masks > 0.5 if masks.is_floating_point() else masks.bool()


def _to_cpu(items: list[dict]) -> list[dict]:
    return [{k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in item.items()} for item in items]

"""Validation metrics on hand-made predictions whose answers are known."""

from __future__ import annotations

import json

import pytest
import torch
from trainer.vision import metrics

NAMES = ["background", "cat", "dog"]


def test_classification_metrics_known_answers():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    targets = torch.tensor([0, 0, 1, 1])
    result = metrics.classification_metrics(probs, targets, ["cat", "dog"])
    assert result["overall"] == {
        "accuracy": 0.75,
        "avg_recall": 0.75,
        "avg_precision": 0.8333,
        "avg_f1_score": 0.7333,
    }
    specific = result["specific"]
    assert specific["categories"] == ["mean", "cat", "dog"]
    assert specific["sensitivities"] == [0.75, 1.0, 0.5]
    assert specific["specificities"] == [0.75, 0.5, 1.0]
    assert specific["aucs"] == [1.0, 1.0, 1.0]  # the scores rank every pair correctly


def test_classification_class_without_samples_is_minus_one_and_left_out_of_the_mean():
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    result = metrics.classification_metrics(probs, torch.tensor([0, 1]), ["a", "b", "c"])
    assert result["specific"]["sensitivities"] == [1.0, 1.0, 1.0, -1]
    assert result["specific"]["aucs"][3] == -1
    json.dumps(result, allow_nan=False)


def _pred(boxes, scores, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float),
        "scores": torch.tensor(scores),
        "labels": torch.tensor(labels),
    }


def _target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float).reshape(-1, 4), "labels": torch.tensor(labels)}


def test_detection_metrics_greedy_matching():
    targets = [_target([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 2]), _target([[0, 0, 10, 10]], [1])]
    preds = [
        # cat found, a duplicate cat (FP), dog missed at the score threshold
        _pred([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], [0.9, 0.8, 0.3], [1, 1, 2]),
        _pred([[0, 0, 10, 10]], [0.95], [1]),
    ]
    result = metrics.detection_metrics(preds, targets, NAMES)
    specific = result["specific"]
    assert result["overall"] == {}
    assert specific["categories"] == ["mean", "cat", "dog"]
    # cat: TP 2, FP 1, FN 0; dog: TP 0, FP 0, FN 1 (its only box scores 0.3)
    assert specific["precisions"] == [0.3333, 0.6667, 0.0]
    assert specific["recalls"] == [0.5, 1.0, 0.0]
    assert specific["f1_scores"] == [0.4, 0.8, 0.0]
    assert specific["accuracies"] == [0.3333, 0.6667, 0.0]
    # AP at IoU 0.5 ignores the score threshold: both classes are ranked perfectly
    assert specific["aps"] == [1.0, 1.0, 1.0]


def test_detection_class_without_ground_truth_is_minus_one():
    targets = [_target([[0, 0, 10, 10]], [1])]
    preds = [_pred([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.9], [1, 2])]
    specific = metrics.detection_metrics(preds, targets, NAMES)["specific"]
    assert specific["aps"] == [1.0, 1.0, -1]
    assert specific["precisions"] == [1.0, 1.0, -1]
    json.dumps(specific, allow_nan=False)


def test_segmentation_mask_ap():
    gt = torch.zeros(2, 16, 16, dtype=torch.uint8)
    gt[0, :8, :8] = 1
    gt[1, 8:, 8:] = 1
    target = {"masks": gt, "labels": torch.tensor([1, 2]), "boxes": torch.zeros(2, 4)}
    hit = gt[0].float().unsqueeze(0)  # exact cat mask
    wrong = torch.zeros(1, 16, 16)
    wrong[0, :8, 8:] = 1.0  # the dog predicted where nothing is
    pred = {
        "masks": torch.stack([hit, wrong]),
        "scores": torch.tensor([0.9, 0.8]),
        "labels": torch.tensor([1, 2]),
    }
    result = metrics.segmentation_metrics([pred], [target], NAMES)
    assert result == {
        "overall": {},
        "specific": {"categories": ["mean", "cat", "dog"], "aps": [0.5, 1.0, 0.0]},
    }


@pytest.mark.parametrize("value, expected", [(float("nan"), -1), (float("inf"), -1), (0.123456, 0.1235)])
def test_clean_never_lets_nan_through(value, expected):
    assert metrics.clean(value) == expected


def test_threshold_curves_align_with_thresholds():
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.6]])
    thresholds, precision, recall = metrics.precision_recall_vs_threshold(
        probs, torch.tensor([0, 1]), 2, steps=11
    )
    assert thresholds.shape == (11,) and precision.shape == recall.shape == (2, 11)
    assert recall[0, 0] == 1.0 and recall[0, -1] == 0.0


def test_segmentation_with_no_predictions_scores_zero_not_a_crash():
    from trainer.vision.metrics import segmentation_metrics

    masks = torch.zeros(1, 8, 8, dtype=torch.uint8)
    masks[0, 2:6, 2:6] = 1
    preds = [
        {
            "masks": torch.zeros(0, 1, 8, 8),
            "scores": torch.zeros(0),
            "labels": torch.zeros(0, dtype=torch.long),
        }
    ]
    targets = [{"masks": masks, "labels": torch.tensor([1])}]
    specific = segmentation_metrics(preds, targets, ["background", "red", "green"])["specific"]
    assert specific["categories"] == ["mean", "red", "green"]
    assert specific["aps"][1:] == [0.0, -1]  # red has ground truth and no prediction; green has none

"""The plot tool's drawings stay a readable size for any number of classes."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from trainer.vision import plots

from contracts import plots as kinds

DPI = 100


def size_of(jpeg: bytes) -> tuple[int, int]:
    assert jpeg[:3] == b"\xff\xd8\xff"
    return Image.open(io.BytesIO(jpeg)).size


def metrics_of(n: int) -> dict:
    values = [0.5] * (n + 1)
    return {
        "overall": {"accuracy": 0.5},
        "specific": {"categories": ["mean", *map(str, range(n))], "aucs": values, "sensitivities": values},
    }


@pytest.mark.parametrize("classes", [3, 400])
def test_a_confusion_matrix_of_any_size_is_bounded(classes):
    matrix = [[int(r == c) for c in range(classes)] for r in range(classes)]
    data = {"matrix": matrix, "class_names": [f"class {k}" for k in range(classes)]}
    width, height = size_of(plots.draw(kinds.CONFUSION_MATRIX, data))
    assert max(width, height) <= (plots.MAX_INCHES + 1) * DPI


@pytest.mark.parametrize("classes", [3, 400])
def test_a_metric_plot_of_any_size_is_bounded(classes):
    width, _ = size_of(plots.draw(kinds.METRIC, {"metrics": metrics_of(classes), "task": "classification"}))
    assert width <= (plots.MAX_INCHES + 1) * DPI


def test_an_unknown_plot_is_named():
    with pytest.raises(ValueError, match="Unknown plot 'pie'"):
        plots.draw("pie", {})

"""The numbers a checkpoint keeps for its plots, and what one plot request carries."""

from __future__ import annotations

import json
import math

import pytest

from contracts import layout
from contracts import plots as cp

NAMES = ["a", "b"]


def data(precision=None):
    return cp.plot_data(
        NAMES,
        [[3, 1], [0, 4]],
        [0.0, 0.5, 1.0],
        precision or [[0.5, 0.75, math.nan], [0.5, 0.25, 1.0]],
        [[1.0, 0.5, 0.0], [1.0, 0.75, 0.25]],
    )


def test_plot_data_is_plain_json_with_undefined_values_as_null():
    kept = data()
    assert json.loads(json.dumps(kept, allow_nan=False)) == kept
    assert kept["precision"][0] == [0.5, 0.75, None]


def test_means_are_over_the_classes_where_a_value_exists():
    kept = data()
    assert kept["mean_precision"] == [0.5, 0.5, 1.0]
    assert kept["mean_recall"] == [1.0, 0.625, 0.125]


def test_values_are_rounded():
    kept = data(precision=[[1 / 3, 0.5, 0.5], [2 / 3, 0.5, 0.5]])
    assert kept["precision"][0][0] == round(1 / 3, cp.DIGITS)


def test_tables_must_have_a_row_per_class():
    with pytest.raises(ValueError, match="needs 2 rows"):
        cp.plot_data(NAMES, [[1, 0]], [0.0], [[1.0], [1.0]], [[1.0], [1.0]])


@pytest.mark.parametrize(
    ("kind", "index", "name"),
    [
        (cp.METRIC, 0, layout.METRIC_PLOT),
        (cp.CONFUSION_MATRIX, 0, layout.CONFUSION_MATRIX_PLOT),
        (cp.THRESHOLD, 0, layout.THRESHOLD_PLOT),
        (cp.THRESHOLD, 2, "threshold-class-2.jpg"),
    ],
)
def test_a_drawn_plot_is_stored_under_the_layouts_name(kind, index, name):
    assert cp.plot_key(kind, index) == name


def test_a_threshold_request_carries_one_class():
    request = cp.plot_input(cp.THRESHOLD, "classification", {}, data(), 2)
    assert request == {
        "thresholds": [0.0, 0.5, 1.0],
        "precision": [[0.5, 0.25, 1.0]],
        "recall": [[1.0, 0.75, 0.25]],
        "class_names": ["b"],
    }


def test_class_zero_is_the_mean():
    request = cp.plot_input(cp.THRESHOLD, "classification", {}, data(), 0)
    assert request["class_names"] == [cp.MEAN_CLASS_NAME] and request["precision"] == [
        data()["mean_precision"]
    ]


def test_a_class_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"class 3 is not in \[0, 2\]"):
        cp.plot_input(cp.THRESHOLD, "classification", {}, data(), 3)


def test_a_metric_plot_needs_only_the_metrics():
    record = {"metrics": {"overall": {}, "specific": {"categories": ["mean"]}}}
    assert not cp.needs_plot_data(cp.METRIC)
    assert cp.plot_input(cp.METRIC, "detection", record, None) == {
        "metrics": record["metrics"],
        "task": "detection",
    }


def test_other_plots_need_the_numbers():
    with pytest.raises(ValueError, match="plot_data.json"):
        cp.plot_input(cp.CONFUSION_MATRIX, "classification", {}, None)


def test_loss_points_sit_at_the_batches_the_trainer_recorded():
    # a 15-batch job (3 epochs of 5) with num_batches_to_display 20: a point per epoch, at its end
    steps = [cp.loss_step(epoch, 5, 5) for epoch in (1, 2, 3)]
    assert cp.loss_input([2.0, 1.5, 1.1], 20, steps)["steps"] == [5, 10, 15]


def test_without_recorded_steps_points_are_display_batches_apart():
    assert cp.loss_input([2.0, 1.5], 4)["steps"] == [4, 8]
    assert cp.loss_input([2.0, 1.5], 4, [3])["steps"] == [4, 8]  # a record that does not match is not used

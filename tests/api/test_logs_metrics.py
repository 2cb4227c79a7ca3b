"""Logs as people read them (issue 18): `#metric` lines are for SageMaker's metric regexes and
are left out unless `metrics` is true. Offsets count every line, so paging with or without
metric lines never skips or repeats a line."""

from __future__ import annotations

import pytest

from chalicelib.errors import ValidationError
from chalicelib.ports import Adapters
from chalicelib.services import logs
from contracts import metrics

LOG = [
    "epoch 1 batch 1/2 loss 0.9",
    metrics.format_line(metrics.TRAIN_LOSS, 0.9),
    metrics.format_line(metrics.TRAIN_LEARNING_RATE, 0.01),
    "epoch 1 batch 2/2 loss 0.7",
    metrics.format_line(metrics.TRAIN_LOSS, 0.7),
    "evaluating",
    metrics.format_line(metrics.EVAL_ACCURACY, 0.5),
    metrics.format_line(metrics.EVAL_LOSS, 0.6),
    metrics.format_line(metrics.EVAL_F1, 0.4),
    "done",
]
HUMAN = [line for line in LOG if not line.startswith("#metric")]


class Platform:
    def __init__(self, lines):
        self.lines = lines
        self.reads = 0

    def logs(self, name, offset, limit):
        self.reads += 1
        page = self.lines[offset : offset + limit]
        return page, offset + limit < len(self.lines)


def service(lines=LOG):
    return Adapters(jobs=None, artifacts=None, platform=Platform(lines), secrets=None)


JOB = {"job_id": "job-1", "attempts": [{"attempt": 1, "training_job_name": "aif-1"}]}


def read_all(svc, limit, **kwargs):
    pages, offset = [], 0
    while True:
        page = logs.read(svc, JOB, offset, limit, **kwargs)
        pages.append(page)
        offset = page["next_offset"]
        if page["complete"]:
            return pages


def test_metric_lines_are_left_out_by_default():
    body = logs.read(service(), JOB, 0, 100)
    assert body["lines"] == HUMAN
    assert body["metrics"] is False


def test_metric_lines_are_shown_on_request():
    body = logs.read(service(), JOB, 0, 100, metrics="true")
    assert body["lines"] == LOG
    assert body["metrics"] is True


def test_offsets_count_every_line_with_or_without_metrics():
    plain = logs.read(service(), JOB, 0, 100)
    full = logs.read(service(), JOB, 0, 100, metrics=True)
    assert plain["next_offset"] == full["next_offset"] == len(LOG)
    assert plain["complete"] is full["complete"] is True


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7])
def test_paging_without_metrics_never_skips_or_repeats_a_line(limit):
    pages = read_all(service(), limit)
    assert [line for page in pages for line in page["lines"]] == HUMAN
    assert all(len(page["lines"]) <= limit for page in pages)


@pytest.mark.parametrize("limit", [1, 3, 4])
def test_paging_with_metrics_never_skips_or_repeats_a_line(limit):
    pages = read_all(service(), limit, metrics="true")
    assert [line for page in pages for line in page["lines"]] == LOG


def test_a_page_without_metrics_fills_its_limit_past_metric_lines():
    body = logs.read(service(), JOB, 1, 2)  # starts on two metric lines
    assert body["lines"] == ["epoch 1 batch 2/2 loss 0.7", "evaluating"]
    assert body["next_offset"] == 6 and body["complete"] is False


def test_a_page_of_only_metric_lines_moves_past_them():
    only_metrics = [metrics.format_line(metrics.TRAIN_LOSS, 0.1)] * 3
    body = logs.read(service(only_metrics), JOB, 0, 10)
    assert body["lines"] == [] and body["next_offset"] == 3 and body["complete"] is True


def test_a_log_that_is_mostly_metrics_takes_a_bounded_number_of_reads():
    lines = [metrics.format_line(metrics.TRAIN_LOSS, 0.1)] * 10_000 + ["the end"]
    svc = service(lines)
    body = logs.read(svc, JOB, 0, 10)
    assert body["lines"] == [] and body["complete"] is False and 0 < body["next_offset"] < len(lines)
    assert svc.platform.reads == logs.MAX_READS


@pytest.mark.parametrize("raw", ["maybe", "2", "yes please"])
def test_a_bad_metrics_value_is_named(raw):
    with pytest.raises(ValidationError) as caught:
        logs.read(service(), JOB, 0, 10, metrics=raw)
    assert caught.value.message.startswith("Invalid 'metrics': must be true or false; got ")


def test_a_small_page_reads_past_a_long_run_of_metric_lines():
    lines = (
        ["started", "input ready"] + [metrics.format_line(metrics.TRAIN_LOSS, 0.1)] * 1000 + ["epoch 1 done"]
    )
    svc = service(lines)
    body = logs.read(svc, JOB, 0, 3)
    assert body["lines"] == ["started", "input ready", "epoch 1 done"]
    assert body["next_offset"] == len(lines) and svc.platform.reads <= 3

"""What the trainers print is what SageMaker's metric definitions scrape."""

from __future__ import annotations

import re

from chalicelib.adapters.aws.training_platform import SageMakerTrainingPlatform
from contracts import metrics

PRINTED = re.compile(r"^#metric (?P<name>[^=]+)=(?P<value>[^;]*);$", re.M)


def test_the_aws_adapter_sends_the_contract_definitions():
    platform = SageMakerTrainingPlatform(object(), "arn:aws:iam::123456789012:role/sm")
    assert platform.metric_definitions == metrics.metric_definitions()


def test_definitions_fit_sagemaker_limits():
    definitions = metrics.metric_definitions()
    assert len(definitions) <= 40
    for definition in definitions:
        assert len(definition["Regex"]) <= 500 and 1 <= len(definition["Name"]) <= 255
        re.compile(definition["Regex"])


def test_every_vision_metric_line_is_scraped(vision_run):
    printed = PRINTED.findall(vision_run.stdout)
    assert printed, "the vision trainer printed no metric line"
    assert {name for name, _ in printed} <= set(metrics.NAMES)
    scraped = metrics.parse(vision_run.stdout)
    assert sum(len(v) for v in scraped.values()) == len(printed)


def test_vision_training_and_validation_metrics_are_scraped(vision_run):
    scraped = metrics.parse(vision_run.stdout)
    assert len(scraped[metrics.EVAL_ACCURACY]) == 2  # one validation per epoch
    assert 0 <= scraped[metrics.EVAL_ACCURACY][-1] <= 1
    assert scraped[metrics.TRAIN_LOSS] and scraped[metrics.TRAIN_EPOCH] == [1.0, 2.0]


def test_every_text_metric_line_is_scraped(text_run):
    printed = PRINTED.findall(text_run.stdout)
    assert {name for name, _ in printed} <= set(metrics.NAMES)
    scraped = metrics.parse(text_run.stdout)
    assert sum(len(v) for v in scraped.values()) == len(printed)
    assert scraped[metrics.TRAIN_LOSS] and scraped[metrics.EVAL_F1]


def test_an_unknown_metric_name_is_refused():
    try:
        metrics.format_line("val_accuracy", 1.0)
    except ValueError as error:
        assert "contracts.metrics.NAMES" in str(error)
    else:
        raise AssertionError("an unlisted metric name was accepted")

"""The API (Lambda, no torch) and the trainer (container) each list the v1.5 choices; they must agree."""

from __future__ import annotations

from trainer.vision import models

from contracts import v15_arguments as params


def test_classification_algorithms_agree():
    assert set(params.ALGORITHMS["classification"]) == set(models.CLASSIFICATION_ALGORITHMS)


def test_detection_backbones_agree():
    assert set(params.DETECTION_BACKBONES) == set(models.DETECTION_BACKBONES)


def test_detection_and_segmentation_algorithms_agree():
    for task in ("detection", "instance_segmentation"):
        assert set(params.ALGORITHMS[task]) == set(models.ALGORITHMS[task])


def test_every_listed_choice_has_a_builder():
    """The trainer takes its lists from the contract; each name must be something it can build."""
    import torchvision

    for name in models.CLASSIFICATION_ALGORITHMS:
        assert name in models.TIMM_RESNEST or hasattr(torchvision.models, name), name
    for name in models.TORCHVISION_DETECTION_BACKBONES:
        assert hasattr(torchvision.models, name), name

"""Training image names: which repository an image is, and whether it is our trainer."""

from __future__ import annotations

TRAINER_REPOSITORIES = ("chappieai-sagemaker", "aifactory-trainer")


def image_repository(image: str) -> str:
    """`123.dkr.ecr.us-east-1.amazonaws.com/chappieai-sagemaker:slot_tagger` -> `chappieai-sagemaker`."""
    name = image.rsplit("/", 1)[-1]
    return name.split("@", 1)[0].split(":", 1)[0]


def is_builtin_trainer(image: str) -> bool:
    return image_repository(image) in TRAINER_REPOSITORIES

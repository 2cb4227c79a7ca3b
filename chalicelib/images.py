"""Training image names: which registry and repository an image is, whether a stage allows
it, and whether it is our trainer.

An image reference is `[registry/]repository[:tag][@digest]` (Docker's grammar): the first
path component is a registry when it has a `.` or a `:` or is `localhost`. The allow-list
compares whole repositories, never prefixes (`aifactory-trainer-evil` is another
repository), and the registry too: a bare entry (`chappieai-sagemaker`) means that
repository in Amazon ECR (on AWS: the trainer image's own registry) or, on the local
stage, without a registry; an entry with a registry (`<acct>.dkr.ecr.<region>.amazonaws.com/
aifactory-trainer`) means exactly that registry and repository.
"""

from __future__ import annotations

import re
from typing import NamedTuple

TRAINER_REPOSITORIES = ("chappieai-sagemaker", "aifactory-trainer")
ECR_REGISTRY = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


class ImageRef(NamedTuple):
    registry: str | None
    repository: str
    reference: str  # the tag or digest ("" when neither is given)


def parse_image(image: str) -> ImageRef:
    name, _, digest = image.partition("@")
    first, slash, rest = name.partition("/")
    registry = None
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, name = first, rest
    repository, colon, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    return ImageRef(registry, repository, digest or tag)


def is_builtin_trainer(image: str) -> bool:
    """Our trainer's repository, in whatever registry (the local platform runs it in-repo)."""
    return parse_image(image).repository in TRAINER_REPOSITORIES


def image_allowed(image: str, allowed: tuple[str, ...], *, local: bool, trainer_image: str = "") -> bool:
    ref = parse_image(image)
    own_registry = parse_image(trainer_image).registry if trainer_image else None
    for entry in allowed:
        wanted = parse_image(entry)
        if wanted.registry is not None:
            if (ref.registry, ref.repository) == (wanted.registry, wanted.repository):
                return True
            continue
        if ref.repository != wanted.repository:
            continue
        if ref.registry is None:
            if local:
                return True
        elif ECR_REGISTRY.match(ref.registry) and (local or own_registry in (None, ref.registry)):
            return True
    return False

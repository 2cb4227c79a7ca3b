"""The one image tag scheme: what `docker build`/`push` tag and what the stage config names.

The tag is the commit the images are built from (`git-<sha12>`), with `-dirty-<UTC time>`
when the working tree differs from it, so a pushed tag never silently changes meaning.
`IMAGE_TAG` overrides it (a release name, or re-rendering the config for a pushed tag).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TRAINER_REPOSITORY = "aifactory-trainer"
INFERENCE_REPOSITORY = "aifactory-inference"
PLATFORM = "linux/amd64"  # SageMaker and Lambda run x86_64 images
# ECR's tag rule: up to 128 of [a-zA-Z0-9_.-], not starting with . or -.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Image:
    """One image this project builds: its Dockerfile and the ECR repository it goes to."""

    name: str
    dockerfile: str
    repository: str


IMAGES = (
    Image("trainer", "containers/trainer/Dockerfile", TRAINER_REPOSITORY),
    Image("inference", "containers/inference/Dockerfile", INFERENCE_REPOSITORY),
)


def check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise ValueError(f"'{tag}' is not a valid image tag (up to 128 of A-Z a-z 0-9 _ . -)")
    return tag


def image_tag(root: Path = ROOT, override: str | None = None, now: _dt.datetime | None = None) -> str:
    """`IMAGE_TAG`, else `git-<sha12>[-dirty-<YYYYmmddHHMMSS>]` of `root`."""
    override = override if override is not None else os.environ.get("IMAGE_TAG", "")
    if override:
        return check_tag(override)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    tag = f"git-{git('rev-parse', '--short=12', 'HEAD')}"
    if git("status", "--porcelain", "--untracked-files=no"):
        now = now or _dt.datetime.now(_dt.UTC)
        tag += f"-dirty-{now:%Y%m%d%H%M%S}"
    return check_tag(tag)


def image_uri(repository_uri: str, tag: str) -> str:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`."""
    return f"{repository_uri}:{check_tag(tag)}"


def build_command(image: Image, uri: str, build_args: dict[str, str]) -> list[str]:
    """`docker build` for SageMaker/Lambda's platform, from the repository root (the context)."""
    command = ["docker", "build", "--platform", PLATFORM, "-f", image.dockerfile, "-t", uri]
    for name, value in sorted(build_args.items()):
        if value:
            command += ["--build-arg", f"{name}={value}"]
    return [*command, "."]

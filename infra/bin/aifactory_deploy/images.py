"""The images a stage runs: how they are built and pushed, what the stage config names them,
and what ECR must hold before Lambda and SageMaker are pointed at them.

The tag is the commit the images are built from (`git-<sha12>`), with `-dirty-<UTC time>`
when the working tree differs from it, so a pushed tag never silently changes meaning.
`IMAGE_TAG` overrides it (a release name, or re-rendering the config for a pushed tag).

Each image is built and pushed in one `docker buildx build` for linux/amd64 without
provenance or SBOM attestations and with Docker media types: a single-platform Docker v2
manifest. Attestations (buildx's default since 0.10) turn the push into an OCI index, which
Lambda refuses for the tools function ("image manifest ... media type ... is not supported").
`check_manifest` reads what ECR holds after the push, so a build that made an index anyway
fails the deploy there, naming the image, not at the tools function's update.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PLATFORM = "linux/amd64"  # SageMaker and Lambda run x86_64 images
# What a build without attestations pushes; lists and indexes (several manifests) are refused.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SINGLE_MANIFESTS = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
# buildx's switch for the same thing as --provenance=false --sbom=false, for any build it runs.
BUILD_ENV = {"BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}
# ECR's tag rule: up to 128 of [a-zA-Z0-9_.-], not starting with . or -.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Image:
    """One image this project builds: its Dockerfile and the stack output naming its repository
    (`aifactory-<stage>-<name>`: each stage has its own, infra/cloudformation.yaml)."""

    name: str
    dockerfile: str
    output: str


IMAGES = (
    Image("trainer", "containers/trainer/Dockerfile", "TrainerRepositoryUri"),
    Image("inference", "containers/inference/Dockerfile", "InferenceRepositoryUri"),
)
# The tools function's image: the trainer image from the same sources with a CPU-only torch
# (Lambda has no GPU; no CUDA libraries: a smaller image, a faster cold start), pushed to the
# trainer's repository (the one whose policy lets the tools function pull) as `<tag>-tools`.
TOOLS = Image("tools", "containers/trainer/Dockerfile", "TrainerRepositoryUri")
TOOLS_BUILD_ARGS = {"TORCH_VARIANT": "cpu"}


def tools_uri(outputs: dict[str, str], tag: str) -> str:
    return image_uri(outputs[TOOLS.output], f"{tag}-tools")


def repository_name(image: Image, stage: str) -> str:
    """The ECR repository of `image` in `stage` (the template's `aifactory-${Stage}-<name>`)."""
    return f"aifactory-{stage}-{image.name}"


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
    """`docker buildx build` for SageMaker/Lambda's platform, from the repository root (the
    context), pushed to `uri` as one Docker v2 manifest: no attestations, no OCI media types.
    Run it with `BUILD_ENV` in the environment."""
    command = [
        "docker", "buildx", "build", "--platform", PLATFORM,
        "--provenance=false", "--sbom=false",
        "--output", f"type=image,name={uri},push=true,oci-mediatypes=false",
        "-f", image.dockerfile,
    ]  # fmt: skip
    for name, value in sorted(build_args.items()):
        if value:
            command += ["--build-arg", f"{name}={value}"]
    return [*command, "."]


class ManifestError(RuntimeError):
    """ECR holds something Lambda or SageMaker cannot run for a tag the stage would name."""


def check_manifest(ecr, uri: str) -> str:
    """The media type of `uri`'s manifest in ECR, if it is a single image; else ManifestError."""
    repository, tag = uri.split("/", 1)[1].rsplit(":", 1)
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
    except ecr.exceptions.ImageNotFoundException:
        found = []
    except ecr.exceptions.RepositoryNotFoundException:
        raise ManifestError(f"{uri}: no repository {repository} (the stack makes it)") from None
    if not found:
        raise ManifestError(f"{uri} is not in ECR: build and push it (make deploy without --skip-images)")
    media_type = found[0].get("imageManifestMediaType") or DOCKER_MANIFEST  # ECR omits it for schema 2
    if media_type not in SINGLE_MANIFESTS:
        raise ManifestError(
            f"{uri} is a {media_type} (several manifests: attestations or platforms), which Lambda refuses; "
            "rebuild it with `docker buildx build --platform linux/amd64 --provenance=false --sbom=false` "
            "(what make deploy runs)"
        )
    return media_type

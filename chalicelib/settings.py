"""Stage settings from environment variables, read through cached getters.

`.chalice/config.json` sets them per stage; `make run` sets the local ones. Tests call
`reset()` after changing the environment.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

# Every SageMaker training instance type (the spec's ml.m4.4xlarge included); a stage
# narrows it with AIFACTORY_ALLOWED_INSTANCE_TYPES.
SAGEMAKER_TRAINING_INSTANCE_TYPES = tuple(
    f"ml.{family}.{size}"
    for family, sizes in {
        "m4": ["xlarge", "2xlarge", "4xlarge", "10xlarge", "16xlarge"],
        "m5": ["large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge"],
        "m5d": ["large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge"],
        "m6i": [
            "large",
            "xlarge",
            "2xlarge",
            "4xlarge",
            "8xlarge",
            "12xlarge",
            "16xlarge",
            "24xlarge",
            "32xlarge",
        ],
        "c4": ["xlarge", "2xlarge", "4xlarge", "8xlarge"],
        "c5": ["xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge"],
        "c5n": ["xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge"],
        "c6i": ["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge"],
        "r5": ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"],
        "t3": ["medium", "large", "xlarge", "2xlarge"],
        "p2": ["xlarge", "8xlarge", "16xlarge"],
        "p3": ["2xlarge", "8xlarge", "16xlarge"],
        "p3dn": ["24xlarge"],
        "p4d": ["24xlarge"],
        "p4de": ["24xlarge"],
        "p5": ["48xlarge"],
        "p5e": ["48xlarge"],
        "p5en": ["48xlarge"],
        "g4dn": ["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"],
        "g5": ["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"],
        "g6": ["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"],
        "g6e": ["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"],
        "trn1": ["2xlarge", "32xlarge"],
        "trn1n": ["32xlarge"],
    }.items()
    for size in sizes
)
TRAINER_REPOSITORIES = ("chappieai-sagemaker", "aifactory-trainer")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _list(name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    raw = _env(name)
    return tuple(v.strip() for v in raw.split(",") if v.strip()) if raw else default


def _bool(name: str, default: bool) -> bool:
    raw = _env(name)
    return default if not raw else raw.strip().lower() in ("1", "true", "yes", "on")


@functools.cache
def stage() -> str:
    return _env("AIFACTORY_STAGE", "local")


def is_local() -> bool:
    return stage() == "local"


@functools.cache
def home() -> Path:
    return Path(_env("AIFACTORY_HOME", "./.aifactory")).resolve()


@functools.cache
def api_key() -> str:
    """The local stage checks `x-api-key` itself (API Gateway does it on AWS)."""
    key = _env("AIFACTORY_API_KEY")
    if key:
        return key
    path = home() / "api_key"
    if path.exists():
        return path.read_text().strip()
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


@functools.cache
def check_api_key() -> bool:
    return _bool("AIFACTORY_CHECK_API_KEY", is_local())


@functools.cache
def public_url() -> str:
    return _env("AIFACTORY_PUBLIC_URL").rstrip("/")


@functools.cache
def allowed_instance_types() -> tuple[str, ...]:
    return _list("AIFACTORY_ALLOWED_INSTANCE_TYPES", SAGEMAKER_TRAINING_INSTANCE_TYPES)


@functools.cache
def max_instance_count() -> int:
    return int(_env("AIFACTORY_MAX_INSTANCE_COUNT", "1" if is_local() else "8"))


@functools.cache
def allowed_images() -> tuple[str, ...]:
    """Image repositories (or full `registry/repo` prefixes) a job may run."""
    return _list("AIFACTORY_ALLOWED_IMAGES", TRAINER_REPOSITORIES)


@functools.cache
def trainer_image() -> str:
    """The image v1.5 jobs run."""
    return _env("AIFACTORY_TRAINER_IMAGE", "aifactory-trainer:latest")


@functools.cache
def allow_private_urls() -> bool:
    return _bool("AIFACTORY_ALLOW_PRIVATE_URLS", is_local())


@functools.cache
def data_roots() -> tuple[str, ...]:
    return _list("AIFACTORY_DATA_ROOTS")


@functools.cache
def max_concurrent_jobs() -> int:
    return int(_env("AIFACTORY_MAX_CONCURRENT_JOBS", "2"))


@functools.cache
def stop_grace_seconds() -> float:
    return float(_env("AIFACTORY_STOP_GRACE_SECONDS", "120"))


@functools.cache
def table_name() -> str:
    return _env("AIFACTORY_TABLE", "aifactory-jobs")


@functools.cache
def bucket() -> str:
    return _env("AIFACTORY_BUCKET")


@functools.cache
def artifact_prefix() -> str:
    return _env("AIFACTORY_ARTIFACT_PREFIX").strip("/")


@functools.cache
def sagemaker_role_arn() -> str:
    return _env("AIFACTORY_SAGEMAKER_ROLE_ARN")


@functools.cache
def spot_training() -> bool:
    return _bool("AIFACTORY_SPOT", False)


@functools.cache
def max_runtime_seconds() -> int:
    return int(_env("AIFACTORY_MAX_RUNTIME_S", "86400"))


@functools.cache
def docker_enabled() -> bool:
    """Whether the local platform may run foreign images (needs a Docker engine)."""
    raw = _env("AIFACTORY_DOCKER")
    if raw:
        return raw.lower() in ("1", "true", "yes")
    import shutil
    import subprocess

    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def reset() -> None:
    for getter in (
        stage,
        home,
        api_key,
        check_api_key,
        public_url,
        allowed_instance_types,
        max_instance_count,
        allowed_images,
        trainer_image,
        allow_private_urls,
        data_roots,
        max_concurrent_jobs,
        stop_grace_seconds,
        table_name,
        bucket,
        artifact_prefix,
        sagemaker_role_arn,
        spot_training,
        max_runtime_seconds,
        docker_enabled,
        callback_signing_key,
        v15_instance_type,
        callback_attempts,
        callback_backoff_seconds,
    ):
        getter.cache_clear()


@functools.cache
def callback_signing_key() -> str:
    """When set, callbacks carry `X-AIFactory-Signature: sha256=<HMAC of the body>`."""
    return _env("AIFACTORY_CALLBACK_SIGNING_KEY")


@functools.cache
def v15_instance_type() -> str:
    """The instance type v1.5 jobs train on (the v1.5 API has no resource argument)."""
    return _env("AIFACTORY_V15_INSTANCE_TYPE", "ml.g5.xlarge")


@functools.cache
def callback_attempts() -> int:
    return int(_env("AIFACTORY_CALLBACK_ATTEMPTS", "6"))


@functools.cache
def callback_backoff_seconds() -> float:
    return float(_env("AIFACTORY_CALLBACK_BACKOFF_SECONDS", "2"))

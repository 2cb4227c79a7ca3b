"""Stage settings: one table of environment variables, read once into one object.

`.chalice/config.json` sets them per stage; `make run` sets the local ones. Code reads
`settings.current().<name>`; tests call `reset()` after changing the environment.
README's settings table is this table (a test keeps them equal).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chalicelib import aws_limits, key_files
from chalicelib.images import TRAINER_REPOSITORIES

# Every SageMaker training instance type the images can use (the spec's ml.m4.4xlarge
# included); a stage narrows it with AIFACTORY_ALLOWED_INSTANCE_TYPES. No p2 (K80) or p3/p3dn
# (V100): the trainer's CUDA 12.8+/13 torch has no kernels for them (infra/README.md, GPU driver).
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


def _list(raw: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in raw.split(",") if v.strip())


def _bool(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes", "on")


# Reads a stage-wide secret's value by its id. Settings name the secret; how it is read is
# the composition's business (chalicelib.wiring installs the Secrets Manager reader), so this
# module never imports an adapter.
_secret_reader: Callable[[str], str] | None = None


def read_secrets_with(reader: Callable[[str], str]) -> None:
    """Installs the reader of stage secrets (`AIFACTORY_*_SECRET`); the entry points' wiring calls it."""
    global _secret_reader
    _secret_reader = reader


def _secret_value(secret_setting: str) -> Callable[[dict], str]:
    """Default of a key setting: the stage secret `secret_setting` names, read once per process
    at start (aws), or unset when it names none (local)."""

    def default(values: dict) -> str:
        secret_id = values.get(secret_setting) or ""
        if not secret_id:
            return ""
        if _secret_reader is None:
            raise RuntimeError(
                f"{secret_setting} names a stage secret but no secret reader is installed "
                "(import chalicelib.wiring, which installs it, before reading settings)"
            )
        return _secret_reader(secret_id)

    return default


def _json_object(raw: str) -> dict:
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value.values()
    ):
        raise ValueError("AIFACTORY_CEILINGS must be a JSON object of integers")
    return value


@dataclass(frozen=True)
class Setting:
    name: str  # attribute of `Settings`
    env: str
    parse: Callable[[str], object]
    default: object  # a value, or a function of the settings read so far (stage-dependent defaults)
    meaning: str
    secret: bool = False  # a key's value: kept out of every child process that does not use it


TABLE = (
    Setting(
        "stage",
        "AIFACTORY_STAGE",
        str,
        "local",
        "`local` (SQLite, directory, child processes) or `dev`/`prod` (DynamoDB, S3, SageMaker)",
    ),
    Setting(
        "home",
        "AIFACTORY_HOME",
        lambda raw: Path(raw).resolve(),
        Path("./.aifactory").resolve(),
        "local state: jobs database, artifacts, secrets, job directories",
    ),
    Setting(
        "api_key_env",
        "AIFACTORY_API_KEY",
        str,
        "",
        "the key the local stage checks in `x-api-key` (generated into `<home>/api_key` when unset)",
        secret=True,
    ),
    Setting(
        "check_api_key",
        "AIFACTORY_CHECK_API_KEY",
        _bool,
        lambda s: s["stage"] == "local",
        "whether the app checks `x-api-key` itself (API Gateway does on AWS)",
    ),
    Setting(
        "public_url",
        "AIFACTORY_PUBLIC_URL",
        lambda raw: raw.rstrip("/"),
        "",
        "the API's base URL in callbacks (default: the request's own)",
    ),
    Setting(
        "allowed_instance_types",
        "AIFACTORY_ALLOWED_INSTANCE_TYPES",
        _list,
        SAGEMAKER_TRAINING_INSTANCE_TYPES,
        "narrows the training instance types a job may ask for",
    ),
    Setting(
        "max_instance_count",
        "AIFACTORY_MAX_INSTANCE_COUNT",
        int,
        lambda s: 4 if s["stage"] == "local" else 8,
        "instances per job (local: one trainer process per instance, DDP on loopback)",
    ),
    Setting(
        "allowed_images",
        "AIFACTORY_ALLOWED_IMAGES",
        _list,
        TRAINER_REPOSITORIES,
        "image repositories a job may run",
    ),
    Setting(
        "trainer_image", "AIFACTORY_TRAINER_IMAGE", str, "aifactory-trainer:latest", "the image v1.5 jobs run"
    ),
    Setting(
        "allow_private_urls",
        "AIFACTORY_ALLOW_PRIVATE_URLS",
        _bool,
        lambda s: s["stage"] == "local",
        "callback/dataset URLs on loopback or private addresses (true local, false aws)",
    ),
    Setting(
        "data_roots",
        "AIFACTORY_DATA_ROOTS",
        _list,
        (),
        "comma-separated roots (or `s3://` prefixes) a `data_dir` or an image path must be under; unset "
        "on the local stage, images are read only under jobs' data directories and `<home>/uploads`",
    ),
    Setting(
        "max_concurrent_jobs",
        "AIFACTORY_MAX_CONCURRENT_JOBS",
        int,
        2,
        "local jobs running at once; the rest queue",
    ),
    Setting(
        "capacity_backoff_seconds",
        "AIFACTORY_CAPACITY_BACKOFF_SECONDS",
        float,
        60.0,
        "first wait before a job with no capacity is tried again, doubling per try up to 30 min",
    ),
    Setting(
        "capacity_max_wait_seconds",
        "AIFACTORY_CAPACITY_MAX_WAIT_SECONDS",
        float,
        6 * 3600.0,
        "how long a job waits for capacity (at create or after SageMaker failed it for capacity) before it fails",
    ),
    Setting(
        "stop_grace_seconds",
        "AIFACTORY_STOP_GRACE_SECONDS",
        float,
        120.0,
        "SIGTERM, then SIGKILL after this long",
    ),
    Setting("table_name", "AIFACTORY_TABLE", str, "aifactory-jobs", "DynamoDB table of job records (aws)"),
    Setting("bucket", "AIFACTORY_BUCKET", str, "", "S3 bucket of artifacts (aws)"),
    Setting(
        "artifact_prefix",
        "AIFACTORY_ARTIFACT_PREFIX",
        lambda raw: raw.strip("/"),
        "",
        "key prefix inside the bucket (aws)",
    ),
    Setting(
        "sagemaker_role_arn",
        "AIFACTORY_SAGEMAKER_ROLE_ARN",
        str,
        "",
        "execution role of training jobs (aws)",
    ),
    Setting(
        "endpoint_role_arn",
        "AIFACTORY_ENDPOINT_ROLE_ARN",
        str,
        "",
        "execution role of SageMaker endpoints: pulls the inference image, reads the stage's checkpoints, "
        "writes the endpoint's logs (aws: the stack's `EndpointExecutionRoleArn`)",
    ),
    Setting("spot_training", "AIFACTORY_SPOT", _bool, False, "managed spot training (aws)"),
    Setting(
        "max_runtime_seconds", "AIFACTORY_MAX_RUNTIME_S", int, 86400, "MaxRuntimeInSeconds of a training job"
    ),
    Setting(
        "docker",
        "AIFACTORY_DOCKER",
        str,
        "auto",
        "whether the local platform may `docker run` images that are not ours (auto: when an engine answers)",
    ),
    Setting(
        "secret_prefix",
        "AIFACTORY_SECRET_PREFIX",
        str,
        lambda s: f"aifactory/{s['stage']}/",
        "Secrets Manager name prefix of the stage; job secrets are `<prefix>jobs/<job_id>` (aws)",
    ),
    Setting(
        "callback_signing_secret",
        "AIFACTORY_CALLBACK_SIGNING_SECRET",
        str,
        "",
        "Secrets Manager ARN of the callback signing key, read at start (aws: the stack's `CallbackSigningSecretArn`)",
    ),
    Setting(
        "callback_signing_key",
        "AIFACTORY_CALLBACK_SIGNING_KEY",
        str,
        _secret_value("callback_signing_secret"),
        "when set, callbacks carry `X-AIFactory-Signature: sha256=<HMAC>`",
        secret=True,
    ),
    Setting(
        "v15_instance_type",
        "AIFACTORY_V15_INSTANCE_TYPE",
        str,
        "ml.g5.xlarge",
        "the instance type v1.5 jobs train on",
    ),
    Setting(
        "max_image_bytes",
        "AIFACTORY_MAX_IMAGE_BYTES",
        int,
        aws_limits.MAX_IMAGE_BYTES,
        "largest image infer and infer_multiple read by path: it goes to the endpoint as it is, so at most "
        "SageMaker InvokeEndpoint's 6 MB (held to it unless `AIFACTORY_RELAX_AWS_LIMITS`)",
    ),
    Setting(
        "max_base64_image_bytes",
        "AIFACTORY_MAX_BASE64_IMAGE_BYTES",
        int,
        aws_limits.MAX_BASE64_IMAGE_BYTES,
        "largest `base64_image` infer takes, decoded: it comes in the request body, inside Lambda's 6 MB "
        "event, and base64 adds a third (larger images by `path_to_image`)",
    ),
    Setting(
        "max_image_pixels",
        "AIFACTORY_MAX_IMAGE_PIXELS",
        int,
        40_000_000,
        "width x height cap of an image to infer (decompression bombs)",
    ),
    Setting(
        "max_infer_images",
        "AIFACTORY_MAX_INFER_IMAGES",
        int,
        100,
        "images one infer_multiple may expand its patterns to",
    ),
    Setting(
        "infer_concurrency",
        "AIFACTORY_INFER_CONCURRENCY",
        int,
        4,
        "infer_multiple invocations in flight at once",
    ),
    Setting(
        "sync_budget_seconds",
        "AIFACTORY_SYNC_BUDGET_SECONDS",
        float,
        25.0,
        'how long a synchronous route works before it answers 503 "retry" (Retry-After) with its work '
        "going on and cached for the retry: tools, drawn plots, infer_multiple (API Gateway cuts at 29 s)",
    ),
    Setting(
        "relax_aws_limits",
        "AIFACTORY_RELAX_AWS_LIMITS",
        _bool,
        False,
        "local stage, for debugging only: lifts API Gateway's 29 s timeout and the 6 MB Lambda "
        "and InvokeEndpoint payload limits (`chalicelib/aws_limits.py`) that `make run` enforces",
    ),
    Setting(
        "inference_image",
        "AIFACTORY_INFERENCE_IMAGE",
        str,
        "aifactory-inference:latest",
        "the image SageMaker endpoints serve checkpoints with (aws)",
    ),
    Setting(
        "hosting_cpu_instance_type",
        "AIFACTORY_HOSTING_CPU_INSTANCE_TYPE",
        str,
        "ml.m5.large",
        "the endpoint instance type of a deployment on `target_device_id` -1 (aws)",
    ),
    Setting(
        "hosting_gpu_instance_type",
        "AIFACTORY_HOSTING_GPU_INSTANCE_TYPE",
        str,
        "ml.g5.xlarge",
        "the endpoint instance type of a GPU deployment; its GPUs bound `target_device_id` (aws)",
    ),
    Setting(
        "hosting_gpu_ami_version",
        "AIFACTORY_HOSTING_GPU_AMI_VERSION",
        str,
        "al2023-ami-sagemaker-inference-gpu-4-1",
        "`InferenceAmiVersion` of GPU endpoints: its NVIDIA driver (580) runs the image's CUDA build (aws)",
    ),
    Setting(
        "max_deployments",
        "AIFACTORY_MAX_DEPLOYMENTS",
        int,
        lambda s: 4 if s["stage"] == "local" else 8,
        "live deployments (model servers, endpoints) per tenant, today per stage; a deploy past it gets 409",
    ),
    Setting(
        "tools_function",
        "AIFACTORY_TOOLS_FUNCTION",
        str,
        "",
        "the tools Lambda function (summarize, visualize, aug preview) built from the trainer image (aws)",
    ),
    Setting(
        "callback_attempts",
        "AIFACTORY_CALLBACK_ATTEMPTS",
        int,
        18,
        "callback delivery attempts before the callback is marked failed (about 2.7 days with the defaults)",
    ),
    Setting(
        "callback_backoff_seconds",
        "AIFACTORY_CALLBACK_BACKOFF_SECONDS",
        float,
        30.0,
        "wait after a callback's first failed attempt (doubles per failure)",
    ),
    Setting(
        "callback_max_delay_seconds",
        "AIFACTORY_CALLBACK_MAX_DELAY_SECONDS",
        float,
        28800.0,
        "longest wait between two callback attempts",
    ),
    Setting(
        "callback_timeout_seconds",
        "AIFACTORY_CALLBACK_TIMEOUT_SECONDS",
        float,
        15.0,
        "how long one callback attempt waits for the receiver",
    ),
    Setting(
        "callback_lease_seconds",
        "AIFACTORY_CALLBACK_LEASE_SECONDS",
        float,
        60.0,
        "a claimed callback attempt is retried by another sender after this long without an outcome",
    ),
    Setting(
        "callback_workers",
        "AIFACTORY_CALLBACK_WORKERS",
        int,
        4,
        "callbacks sent at once by the local outbox and the scheduled handler",
    ),
    Setting(
        "model_link_secret",
        "AIFACTORY_MODEL_LINK_SECRET",
        str,
        "",
        "Secrets Manager ARN of the model link key, read at start (aws: the stack's `ModelLinkSecretArn`)",
    ),
    Setting(
        "ceilings",
        "AIFACTORY_CEILINGS",
        _json_object,
        {},
        'JSON object overriding the ceilings of chalicelib/limits.py, e.g. `{"batch_size": 512}`',
    ),
    Setting(
        "model_link_key",
        "AIFACTORY_MODEL_LINK_KEY",
        str,
        _secret_value("model_link_secret"),
        "HMAC key of the callback's model download links (local: generated into `<home>/model_link_key`)",
        secret=True,
    ),
    Setting(
        "model_link_days",
        "AIFACTORY_MODEL_LINK_DAYS",
        float,
        7.0,
        "how long a callback's model link works without the API key",
    ),
    Setting(
        "disk_budget_gb",
        "AIFACTORY_DISK_BUDGET_GB",
        float,
        0.0,
        "local: while v1.5 jobs hold more, the sweep reclaims finished jobs' space oldest first "
        "(as `POST .../train/<id>/reclaim`); 0 never",
    ),
)


# The environment variables that hold keys, derived from the table: what `container_env` and
# the runner's environment leave out, and what the sweep of children's environments looks for.
SECRET_ENVIRONMENT = frozenset(setting.env for setting in TABLE if setting.secret)


class Settings:
    """The stage's settings, read once from the environment through `TABLE`."""

    def __init__(self, environ: dict[str, str]):
        values: dict[str, object] = {}
        for setting in TABLE:
            raw = environ.get(setting.env, "")
            if raw:
                values[setting.name] = setting.parse(raw)
            else:
                values[setting.name] = (
                    setting.default(values) if callable(setting.default) else setting.default
                )
        self.__dict__.update(values)

    def __setattr__(self, name, value):
        raise AttributeError("settings are read-only: change the environment and call settings.reset()")

    @property
    def is_local(self) -> bool:
        return self.stage == "local"

    @functools.cached_property
    def api_key(self) -> str:
        """The local stage checks `x-api-key` itself; a key is generated once and kept in the home."""
        if self.api_key_env:
            return self.api_key_env
        return key_files.read_or_create(str(self.home / "api_key"), nbytes=24)  # never an empty key

    @functools.cached_property
    def docker_enabled(self) -> bool:
        """Whether the local platform may run foreign images (needs a Docker engine)."""
        if self.docker != "auto":
            return _bool(self.docker)
        if not shutil.which("docker"):
            return False
        try:
            return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


# cached_property writes through __dict__, which __setattr__ does not guard.
@functools.cache
def current() -> Settings:
    return Settings(dict(os.environ))


def reset() -> None:
    current.cache_clear()


_SHOWN_DEFAULTS = {  # defaults that are functions of the stage, or too long to print
    "home": "`./.aifactory`",
    "api_key_env": "generated",
    "check_api_key": "true local, false aws",
    "max_instance_count": "4 local, 8 aws",
    "max_deployments": "4 local, 8 aws",
    "allow_private_urls": "true local, false aws",
    "allowed_instance_types": "every SageMaker training type",
    "allowed_images": "`chappieai-sagemaker,aifactory-trainer`",
    "secret_prefix": "`aifactory/<stage>/`",
    "callback_signing_key": "the value of `AIFACTORY_CALLBACK_SIGNING_SECRET`, else unset",
    "model_link_key": "the value of `AIFACTORY_MODEL_LINK_SECRET`, else unset",
}


def markdown_table() -> str:
    """README's settings table (`python -m chalicelib.settings` prints it)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in TABLE:
        default = setting.default
        shown = _SHOWN_DEFAULTS.get(setting.name) or ("unset" if default in ("", (), {}) else f"`{default}`")
        rows.append(f"| `{setting.env}` | {shown} | {setting.meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())

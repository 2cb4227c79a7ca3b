"""Validates a `create_training_job` payload into a plain, secret-free job description.

Every problem names its field with a dotted path (`training_model.resource.InstanceType`)
so a caller can fix the request without reading our code.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from chalicelib import limits
from chalicelib.errors import ValidationError
from chalicelib.images import image_allowed
from chalicelib.security import check_headers, check_outbound_url
from chalicelib.settings import Settings
from contracts import argument_names, text_hyperparameters

TASK_DEFS = ("ml_tagger", "ml_topic")
DATASET_TYPES = ("fetch",)
MAX_HYPERPARAMETERS = 100
MAX_VALUE_LENGTH = 256
# Bidirectional overrides and isolates make an echoed string read differently than it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass
class CreateRequest:
    task_def: str
    creator: str
    image: str
    hyperparameters: dict[str, str]
    instance_type: str
    instance_count: int
    volume_size_gb: int
    callback_url: str
    dataset_url: str
    pagination: dict[str, int]
    secret: dict[str, Any] = field(repr=False, default_factory=dict)  # headers: never logged
    capacity: dict[str, Any] = field(default_factory=dict)  # spot and warm pool, as `resource` spells them


def _object(value: Any, name: str, required: bool = True) -> dict:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(
            name, "required object" if value is None else f"must be an object; got {type(value).__name__}"
        )
    return value


def _string(value: Any, name: str, max_len: int = 2048) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            name, "required non-empty string" if value in (None, "") else "must be a non-empty string"
        )
    if len(value) > max_len:
        raise ValidationError(name, f"must be at most {max_len} characters")
    check_printable(value, name)
    return value.strip()


def check_printable(value: str, name: str) -> None:
    """Strings we store and echo back (creator, job names, images) carry no control
    characters, lone surrogates or bidirectional overrides: they reach logs, terminals and
    the caller's callback unchanged."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS:
            raise ValidationError(name, f"must not contain control characters (found U+{ord(char):04X})")


def _headers(value: Any, name: str) -> dict[str, str]:
    """Validated by the sender's own parser (outbound), so whatever is accepted can be sent."""
    if value is None:
        return {}
    return check_headers(name, value)


def _integer(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValidationError(name, f"must be an integer; got {json.dumps(value)}")
    try:
        number = int(value)
    except ValueError:
        raise ValidationError(name, f"must be an integer; got '{value}'") from None
    if number < lo or (hi is not None and number > hi):
        raise ValidationError(
            name, f"must be an integer in [{lo}, {hi if hi is not None else 'Inf'}]; got {number}"
        )
    return number


def check_image_allowed(config: Settings, image: str, name: str = "training_model.image") -> str:
    allowed = config.allowed_images
    if image_allowed(image, allowed, local=config.is_local, trainer_image=config.trainer_image):
        return image
    raise ValidationError(name, f"image '{image}' is not allowed; allowed repositories: {', '.join(allowed)}")


def check_resource(config: Settings, resource: dict, base: str) -> tuple[str, int, int]:
    instance_type = _string(resource.get("InstanceType"), f"{base}.InstanceType", 64)
    if instance_type not in config.allowed_instance_types:
        raise ValidationError(
            f"{base}.InstanceType", f"'{instance_type}' is not an allowed training instance type"
        )
    count = _integer(
        resource.get("InstanceCount", 1), f"{base}.InstanceCount", 1, config.max_instance_count
    )
    volume = _integer(resource.get("VolumeSizeInGB", 5), f"{base}.VolumeSizeInGB", 1, 16384)
    return instance_type, count, volume


def check_capacity(resource: dict, base: str) -> dict[str, Any]:
    """Spot and warm pool options of `resource`, spelled as CreateTrainingJob spells them:
    `EnableManagedSpotTraining` (true/false; the stage's AIFACTORY_SPOT when absent),
    `MaxWaitTimeInSeconds` (spot: at least the runtime) and `KeepAlivePeriodInSeconds`."""
    found: dict[str, Any] = {}
    spot = resource.get("EnableManagedSpotTraining")
    if spot is not None:
        if not isinstance(spot, bool):
            raise ValidationError(
                f"{base}.EnableManagedSpotTraining", f"must be true or false; got {json.dumps(spot)}"
            )
        found["EnableManagedSpotTraining"] = spot
    if resource.get("MaxWaitTimeInSeconds") is not None:
        found["MaxWaitTimeInSeconds"] = _integer(
            resource["MaxWaitTimeInSeconds"], f"{base}.MaxWaitTimeInSeconds", 1, 28 * 24 * 3600
        )
    if resource.get("KeepAlivePeriodInSeconds") is not None:
        found["KeepAlivePeriodInSeconds"] = _integer(
            resource["KeepAlivePeriodInSeconds"], f"{base}.KeepAlivePeriodInSeconds", 0, 21600
        )
    return found


def _hyperparameters(config: Settings, value: Any, name: str, secrets: list[str]) -> dict[str, str]:
    raw = _object(value, name, required=False)
    if len(raw) > MAX_HYPERPARAMETERS:
        raise ValidationError(name, f"at most {MAX_HYPERPARAMETERS} entries are allowed")
    # A key no task knows is a typo: it must not start a job with the default it meant to change.
    argument_names.check_known(
        raw, text_hyperparameters.BY_KEY, what="hyper-parameter", field_prefix=f"{name}."
    )
    result = {}
    for key, item in raw.items():
        field_name = f"{name}.{key}"
        if isinstance(item, bool):
            item = str(item)
        if isinstance(item, (int, float)):
            item = str(item)
        if not isinstance(item, str):
            raise ValidationError(field_name, "must be a string")
        item = item.strip()
        if len(key) > MAX_VALUE_LENGTH or len(item) > MAX_VALUE_LENGTH:
            raise ValidationError(
                field_name, f"keys and values must be at most {MAX_VALUE_LENGTH} characters"
            )
        problem = text_hyperparameters.problem(key, item)
        if problem:
            raise ValidationError(field_name, problem)
        if any(secret and secret in item for secret in secrets):
            raise ValidationError(
                field_name, "must not contain a header value (secrets never go into hyper-parameters)"
            )
        result[key] = item
    limits.check_text_hyperparameters(config, result, name)
    return result


def parse_create(payload: Any, config: Settings) -> CreateRequest:
    """The create request, every field checked against the stage's settings `config`."""
    body = _object(payload, "body")
    task_def = _string(body.get("task_def"), "task_def", 64)
    if task_def not in TASK_DEFS:
        raise ValidationError("task_def", f"unknown task '{task_def}'. Choose one of: {', '.join(TASK_DEFS)}")
    creator = _string(body.get("creator"), "creator", 256)

    callback = _object(body.get("callback_url"), "callback_url")
    allow_private = config.allow_private_urls
    callback_url = check_outbound_url("callback_url.url", callback.get("url"), allow_private)
    callback_headers = _headers(callback.get("headers"), "callback_url.headers")

    dataset = _object(body.get("dataset_endpoint"), "dataset_endpoint")
    kind = dataset.get("type", "fetch")
    if kind not in DATASET_TYPES:
        raise ValidationError(
            "dataset_endpoint.type", f"unknown type '{kind}'. Choose one of: {', '.join(DATASET_TYPES)}"
        )
    dataset_url = check_outbound_url("dataset_endpoint.url", dataset.get("url"), allow_private)
    dataset_headers = _headers(dataset.get("headers"), "dataset_endpoint.headers")
    pagination = _object(dataset.get("pagination"), "dataset_endpoint.pagination", required=False)
    pages = {
        "begin_offset": _integer(
            pagination.get("begin_offset", 0), "dataset_endpoint.pagination.begin_offset", 0
        ),
        "page_size": _integer(
            pagination.get("page_size", 100), "dataset_endpoint.pagination.page_size", 1, 100000
        ),
        "max_pages": _integer(pagination.get("max_pages", 0), "dataset_endpoint.pagination.max_pages", 0),
    }
    for key in ("begin_offset", "max_pages"):
        limits.check(config, pages[key], f"pagination.{key}", f"dataset_endpoint.pagination.{key}")

    model = _object(body.get("training_model"), "training_model")
    image = check_image_allowed(config, _string(model.get("image"), "training_model.image", 512))
    secrets = [v for v in [*callback_headers.values(), *dataset_headers.values()] if len(v) >= 4]
    hyperparameters = _hyperparameters(
        config, model.get("hyperparameters"), "training_model.hyperparameters", secrets
    )
    resource = _object(model.get("resource"), "training_model.resource")
    instance_type, count, volume = check_resource(config, resource, "training_model.resource")
    capacity = check_capacity(resource, "training_model.resource")
    return CreateRequest(
        task_def=task_def,
        creator=creator,
        image=image,
        hyperparameters=hyperparameters,
        instance_type=instance_type,
        instance_count=count,
        volume_size_gb=volume,
        callback_url=callback_url,
        dataset_url=dataset_url,
        pagination=pages,
        secret={"callback_headers": callback_headers, "dataset_headers": dataset_headers},
        capacity=capacity,
    )


def parse_job_name(payload: Any) -> str:
    body = _object(payload, "body")
    return _string(body.get("job_name"), "job_name", 63)

"""Ceilings on what one request may ask for: values valid by the spec's rules but big enough
to be a resource bomb (`process.train.steps=1e20`, `batch_size=1e12`, ...).

Defaults are far above anything a real job needs; a stage changes any of them with
`AIFACTORY_CEILINGS` (a JSON object, e.g. `{"batch_size": 512}`). A value over its ceiling
is a 400 naming the field and the ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.errors import ValidationError
from chalicelib.settings import Settings
from contracts import text_hyperparameters

DEFAULTS: dict[str, int] = {
    # AI Factory text hyper-parameters
    "process.train.steps": 10_000_000,
    "process.train.batchsize": 65_536,
    "process.train.decayLearningSteps": 10_000_000,
    "process.train.saveCheckpointSteps": 10_000_000,
    "process.train.keepCheckpointMax": 10_000,
    "process.train.displaySteps": 10_000_000,
    "process.eval.steps": 10_000_000,
    "process.eval.batchsize": 65_536,
    "model.numClasses": 100_000,
    "model.vocabSize": 10_000_000,
    "model.embeddingSize": 8_192,
    "model.nHiddenGate": 8_192,
    "model.nHiddenTag": 8_192,
    # AI Factory dataset paging
    "pagination.begin_offset": 10**12,
    "pagination.max_pages": 10**9,
    # v1.5 arguments
    "batch_size": 4_096,
    "image_resized_width": 8_192,
    "image_resized_height": 8_192,
    "image_min_side": 8_192,
    "image_max_side": 8_192,
    "num_epochs_to_finish": 100_000,
    "num_epochs_to_validate": 100_000,
    "num_batches_to_display": 10_000_000,
    "max_num_checkpoints": 10_000,
    "num_workers": 256,
    "train_rpn_pre_nms_top_n": 100_000,
    "train_rpn_post_nms_top_n": 100_000,
    "eval_rpn_pre_nms_top_n": 100_000,
    "eval_rpn_post_nms_top_n": 100_000,
    "num_anchor_samples_per_batch": 100_000,
    "num_proposal_samples_per_batch": 100_000,
    "num_detections_per_image": 10_000,
}


def ceilings(config: Settings) -> dict[str, int]:
    """The defaults above with the stage's AIFACTORY_CEILINGS over them."""
    return {**DEFAULTS, **config.ceilings}


def check(config: Settings, value: Any, name: str, field: str) -> None:
    limit = ceilings(config).get(name)
    if limit is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    if value > limit:
        raise ValidationError(
            field, f"must be at most {limit} (this stage's ceiling, AIFACTORY_CEILINGS); got {value:g}"
        )


def check_text_hyperparameters(config: Settings, values: Mapping[str, str], prefix: str) -> None:
    for key, text in values.items():
        if key in DEFAULTS and key in text_hyperparameters.BY_KEY:
            check(config, text_hyperparameters.parse(key, text), key, f"{prefix}.{key}")


def check_v15_arguments(config: Settings, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        check(config, value, name, name)

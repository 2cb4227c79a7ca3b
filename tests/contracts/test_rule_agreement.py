"""The API and the trainer accept and reject the same values (property-based).

Both sides import their rules from `contracts`; these tests hold them to it through each
side's real entry point: the API's request parser and the trainer's configuration parser.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainer.text.config import parse_hyperparameters
from trainer.vision.main import resolve_hyperparameters

from chalicelib import settings as stage_settings
from chalicelib.ai_factory.request import _hyperparameters
from chalicelib.errors import ValidationError
from contracts import text_hyperparameters, v15_arguments

TEXT_KEYS = [row.key for row in text_hyperparameters.ROWS]
VALUES = st.one_of(
    st.integers(-3, 3).map(str),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-2, 2).map(str),
    st.sampled_from(
        ["True", "False", "true", "0", "1", "yes", "no", "maybe", "", " 7 ", "4e2", "400.0", "1e400"]
    ),
    st.text(max_size=8),
)


def api_accepts(key: str, value: str) -> bool:
    """By the rules; a stage's ceiling on resource bombs (chalicelib.limits) is policy, not a rule."""
    try:
        _hyperparameters(stage_settings.current(), {key: value}, "training_model.hyperparameters", [])
    except ValidationError as error:
        return "this stage's ceiling" in error.message
    return True


def trainer_accepts(key: str, value: str) -> bool:
    try:
        parse_hyperparameters({key: value})
    except ValueError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(key=st.sampled_from(TEXT_KEYS), value=VALUES)
def test_text_rules_agree(key, value):
    assert api_accepts(key, value) == trainer_accepts(key, value)


@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [  # the drift the contract ended: the trainer documents these as valid / invalid
        ("process.train.saveCheckpointSteps", "0", True),
        ("process.train.keepCheckpointMax", "0", True),
        ("model.nHiddenTag", "0", True),
        ("process.train.momentum", "1", False),
    ],
)
def test_text_values_that_once_drifted(key, value, accepted):
    assert api_accepts(key, value) is accepted
    assert trainer_accepts(key, value) is accepted


V15_NUMERIC = {
    "batch_size": st.integers(-2, 40),
    "learning_rate": st.floats(-0.5, 1.5),
    "momentum": st.floats(-0.5, 1.5),
    "weight_decay": st.floats(-0.5, 1.5),
    "step_lr_gamma": st.floats(-0.5, 1.5),
    "num_epochs_to_finish": st.integers(-1, 30),
    "num_epochs_to_validate": st.integers(-1, 30),
    "num_batches_to_display": st.integers(-1, 50),
    "max_num_checkpoints": st.integers(-1, 10),
    "num_workers": st.integers(-2, 8),
}
BASE_FORM = {"task": "classification", "data_dir": "/data", "algorithm": "resnet18", "pretrained": "False"}


def api_resolves(form: dict) -> dict | None:
    try:
        return v15_arguments.resolve_train_args(form)["hyperparameters"]
    except ValidationError:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries({}, optional=V15_NUMERIC))
def test_v15_rules_agree(values):
    """What the API resolves, the trainer takes unchanged; what the API refuses, the trainer refuses."""
    form = {**BASE_FORM, **{k: str(v) for k, v in values.items()}}
    resolved = api_resolves(form)
    typed = {"task": "classification", "algorithm": "resnet18", "pretrained": False, **values}
    if resolved is None:
        with pytest.raises(ValueError):
            resolve_hyperparameters("classification", typed)
        return
    taken = resolve_hyperparameters("classification", {"task": "classification", **resolved})
    assert {k: taken[k] for k in resolved if k not in ("num_frozen_levels", "needs_freeze_bn")} == {
        k: v for k, v in resolved.items() if k not in ("num_frozen_levels", "needs_freeze_bn")
    }

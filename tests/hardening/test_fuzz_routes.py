"""Property-based fuzzing of every route's inputs through the real local server.

For any body, form, query string or path value: the answer is never a 500, always comes
(urllib's timeout would fail the example), and a refused request (4xx) leaves the job
store, the artifacts, the secrets and the platform's job directories exactly as they were.
`HYPOTHESIS_PROFILE=deep` runs many more examples (docs/reliability.md)."""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import text_hyperparameters
from contracts.v15_arguments import ARGS
from tests.builders import create_payload

EXAMPLES = {"ci": 40, "deep": 2000}[os.environ.get("HYPOTHESIS_PROFILE", "ci")]
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


V15_NAMES = sorted({arg.name for arg in ARGS})
AIF_NAMES = ["task_def", "creator", "callback_url", "dataset_endpoint", "training_model", "job_name"]
NASTY_TEXT = st.sampled_from(
    [
        "[" * 5000,
        "[" * 5000 + "]" * 5000,
        "{" * 300,
        "1e20",
        "1e999",
        "-0",
        "NaN",
        "\x00",
        "\u202e",
        "../../etc/passwd",
        "/",
        "(0.5, (0, 1))",
        "[6, 8]",
        "' OR 1=1 --",
        "x" * 5000,
        "True",
        "None",
        "__import__('os')",
    ]
)
# Form fields, query strings and paths travel as UTF-8: no lone surrogates there.
TEXT = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=64), NASTY_TEXT)
JSON_TEXT = st.one_of(st.text(max_size=64), NASTY_TEXT, st.just("\ud800"))  # JSON escapes them
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | JSON_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(JSON_TEXT, inner, max_size=4),
    max_leaves=12,
)


def state_of(home: Path) -> tuple:
    """Everything a request could half-make: job rows and every file under the state dirs."""
    rows = ()
    db = home / "jobs.sqlite3"
    if db.exists():
        with sqlite3.connect(db) as conn:
            rows = tuple(conn.execute("SELECT job_id, status, doc FROM jobs ORDER BY job_id").fetchall())
    files = tuple(
        sorted(
            str(p.relative_to(home))
            for sub in ("artifacts", "secrets", "training")
            for p in (home / sub).rglob("*")
        )
    )
    return rows, files


def check(api, method: str, path: str, **kwargs) -> int:
    before = state_of(api.home)
    status, body = api.call(method, path, **kwargs)
    assert status < 500, (method, path, status, body)
    if 400 <= status < 500:
        assert state_of(api.home) == before, (method, path, status, body)
    return status


def mutate(payload: dict, path: list, value):
    """`payload` with the leaf (or branch) at `path` replaced by `value`."""
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return payload


PAYLOAD_PATHS = [
    ["task_def"],
    ["creator"],
    ["callback_url"],
    ["callback_url", "url"],
    ["callback_url", "headers"],
    ["dataset_endpoint", "url"],
    ["dataset_endpoint", "headers"],
    ["dataset_endpoint", "pagination"],
    ["dataset_endpoint", "pagination", "begin_offset"],
    ["dataset_endpoint", "pagination", "page_size"],
    ["training_model", "image"],
    ["training_model", "hyperparameters"],
    ["training_model", "hyperparameters", "process.train.steps"],
    ["training_model", "resource", "InstanceType"],
    ["training_model", "resource", "InstanceCount"],
]


@FUZZ
@given(path=st.sampled_from(PAYLOAD_PATHS), value=JSON_VALUES)
def test_create_training_job_with_one_field_changed(api, path, value):
    check(api, "POST", "/create_training_job", body=mutate(create_payload(), path, value))


@FUZZ
@given(body=JSON_VALUES)
def test_ai_factory_routes_with_any_json(api, body):
    for path in ("/create_training_job", "/status", "/stop_training_job", "/check_trained_job"):
        check(api, "POST", path, body=body)


@FUZZ
@given(form=st.dictionaries(st.sampled_from(AIF_NAMES) | TEXT, TEXT, max_size=6))
def test_ai_factory_routes_with_any_form(api, form):
    for path in ("/create_training_job", "/status", "/stop_training_job"):
        check(api, "POST", path, form=form)


@FUZZ
@given(
    form=st.dictionaries(st.sampled_from(V15_NAMES) | TEXT, TEXT, max_size=8),
    task=st.sampled_from(["classification", "detection", "instance_segmentation"]),
)
def test_v15_train_with_any_form(api, tmp_path_factory, form, task):
    form = {
        "task": task,
        "algorithm": "resnet18",
        "pretrained": "False",
        "data_dir": str(api.home.parent),
        **form,
    }
    check(api, "POST", "/api/v1.5.0/train", form=form)


@FUZZ
@given(query=st.dictionaries(st.sampled_from(V15_NAMES) | TEXT, TEXT, max_size=4))
def test_v15_train_with_any_query_string(api, query):
    check(api, "POST", "/api/v1.5.0/train?" + urllib.parse.urlencode(query), form={})


@FUZZ
@given(job_id=TEXT, epoch=TEXT, method=st.sampled_from(["GET", "PATCH", "PUT", "DELETE"]))
def test_v15_job_routes_with_any_path(api, job_id, epoch, method):
    job = urllib.parse.quote(job_id, safe="") or "x"
    for suffix in ("", "/hyper-parameters", "/losses", "/checkpoints"):
        if method == "GET" or not suffix:
            check(api, method, f"/api/v1.5.0/train/{job}{suffix}")
    check(
        api, "GET", f"/api/v1.5.0/train/{job}/checkpoints/epoch/{urllib.parse.quote(epoch, safe='') or '1'}"
    )


@FUZZ
@given(name=TEXT)
def test_model_download_with_any_name(api, name):
    check(api, "GET", f"/models/{urllib.parse.quote(name, safe='') or 'x'}")


def test_fuzzed_server_still_answers(api):
    assert api.call("GET", "/api/version") == (200, "v1.5.0")


# --- train and create refuse a name no task knows (issue 18) -------------------------------------
TRAIN_FIELDS = frozenset(V15_NAMES) | {"use_spot", "max_wait_seconds", "keep_alive_seconds"}
FIELD_NAME = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def refused_unchanged(api, method: str, path: str, **kwargs) -> str:
    """The request's 400 message; nothing was made (no job row, no file)."""
    before = state_of(api.home)
    status, body = api.call(method, path, **kwargs)
    assert status == 400, (path, status, body)
    assert state_of(api.home) == before, (path, body)
    return body["message"]


@FUZZ
@given(name=FIELD_NAME.filter(lambda name: name not in TRAIN_FIELDS), value=TEXT)
def test_v15_train_refuses_any_name_no_task_knows(api, name, value):
    form = {"task": "classification", "algorithm": "resnet18", "data_dir": str(api.home.parent), name: value}
    message = refused_unchanged(api, "POST", "/api/v1.5.0/train", form=form)
    assert message.startswith(f"Invalid '{name}': unknown argument"), message


@FUZZ
@given(name=FIELD_NAME.filter(lambda name: name not in text_hyperparameters.BY_KEY), value=TEXT)
def test_create_refuses_any_hyperparameter_no_task_knows(api, name, value):
    payload = create_payload()
    payload["training_model"]["hyperparameters"][name] = value
    message = refused_unchanged(api, "POST", "/create_training_job", body=payload)
    assert message.startswith(f"Invalid 'training_model.hyperparameters.{name}': unknown"), message

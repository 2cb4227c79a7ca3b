"""The OpenAPI document: served equal to what the code builds, docs/openapi.json current,
every registered route documented, and request schemas that accept and reject exactly what
the contracts tables accept and reject."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema_rs
import pytest

from chalicelib.openapi import arguments, document
from chalicelib.openapi.__main__ import render
from contracts import text_hyperparameters as text
from contracts import v15_arguments as v15
from contracts.errors import ArgumentError

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture(scope="module")
def app():
    from app import app as chalice_app

    return chalice_app


@pytest.fixture(scope="module")
def built(app):
    return document.build(app)


def accepts(schema: dict, value) -> bool:
    return jsonschema_rs.Draft202012Validator(schema).is_valid(value)


def test_served_document_is_the_built_one(client, api_headers, app):
    response = client.http.get("/openapi.json", headers=api_headers)
    assert response.status_code == 200
    assert response.json_body == json.loads(json.dumps(document.build(app)))


def test_document_needs_the_api_key(client):
    response = client.http.get("/openapi.json", headers={"x-api-key": "wrong"})
    assert (response.status_code, response.json_body) == (403, {"message": "Forbidden"})


def test_docs_openapi_json_is_current(built):
    """`make openapi` rewrites it; a route or table change without the rewrite fails here."""
    assert (ROOT / "docs" / "openapi.json").read_text() == render(built), "run `make openapi`"


def test_every_registered_route_is_documented_and_nothing_else(app, built):
    registered = {(path, method.lower()) for path, methods in app.routes.items() for method in methods}
    documented = {
        (path, method) for path, item in built["paths"].items() for method in item if method in METHODS
    }
    assert documented == registered


def test_document_is_openapi_3_1_with_unique_operation_ids(built):
    assert built["openapi"] == "3.1.0"
    ids = [op["operationId"] for item in built["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_component_schemas_are_valid_json_schema(built):
    for name, schema in built["components"]["schemas"].items():
        resolvable = {**schema, "$defs": built["components"]["schemas"]}
        text_form = json.dumps(resolvable).replace("#/components/schemas/", "#/$defs/")
        jsonschema_rs.Draft202012Validator(json.loads(text_form))  # raises on an invalid schema
        assert name


def test_api_routes_need_the_key_and_dashboard_files_do_not(built):
    for path, item in built["paths"].items():
        for op in item.values():
            dashboard_file = path in ("/", "/favicon.ico") or path == "/dashboard/{name}"
            public = dashboard_file or path.endswith("/signed")
            assert op["security"] == ([] if public else [{"ApiKey": []}]), path
    assert built["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }


def test_each_api_documents_its_own_error_envelope(built):
    for path, item in built["paths"].items():
        for op in item.values():
            if "400" not in op["responses"]:
                continue
            schema = op["responses"]["400"]["content"]["application/json"]["schema"]
            expected = "V15Error" if path.startswith("/api/") else "AiFactoryError"
            assert schema == {"$ref": f"#/components/schemas/{expected}"}, path
    schemas = built["components"]["schemas"]
    assert accepts(schemas["V15Error"], {"result": "Error", "message": "Job not found."})
    assert not accepts(schemas["V15Error"], {"status": "error", "message": "x"})
    assert accepts(schemas["AiFactoryError"], {"status": "error", "message": "x"})


def test_spec_routes_have_spec_shapes(built):
    train = built["paths"]["/api/v1.5.0/train"]["post"]
    form = train["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert len(form["oneOf"]) == 3
    assert "x-shape-from-spec" not in built["paths"]["/api/v1.5.0/train/{job_id}"]["get"]
    monitor = built["paths"]["/api/v1.5.0/train/{job_id}"]["get"]["responses"]["200"]
    assert monitor["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/V15Monitor"}


# ---------------------------------------------------------------- the v1.5 argument table


def _train_property(built, task: str, name: str, kind: str = "Form") -> dict:
    title = "".join(part.title() for part in task.split("_"))
    return built["components"]["schemas"][f"V15Train{title}{kind}"]["properties"][name]


def _validator_accepts(arg: v15.Arg, value) -> bool:
    try:
        arg.validator(arg.name, value)
    except ArgumentError:
        return False
    return True


def _edges(bounds: v15.Interval) -> list[float]:
    points = [0, 1, -1, 0.5, 5, 6, 1000]
    for end in (bounds.low, bounds.high):
        if not math.isinf(end):
            points += [end, end - 1, end + 1, end - 1e-6, end + 1e-6]
    return points


@pytest.mark.parametrize("task", v15.TASKS)
def test_numeric_ranges_agree_with_the_validators(built, task):
    checked = 0
    for arg in v15.arguments_for(task):
        kind = arg.validator.__qualname__.split(".")[0]
        if kind not in ("integer", "number"):
            continue
        schema = _train_property(built, task, arg.name)
        scope = arguments._closure(arg.validator)
        for value in _edges(scope["interval"]):
            if kind == "integer" and not float(value).is_integer():
                continue
            value = int(value) if kind == "integer" else float(value)
            assert accepts(schema, value) == _validator_accepts(arg, value), (arg.name, value, schema)
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("task", v15.TASKS)
def test_choices_are_enums(built, task):
    assert _train_property(built, task, "algorithm")["enum"] == list(v15.ALGORITHMS[task])
    assert _train_property(built, task, "aug_strategy")["enum"] == ["all", "one", "some"]
    assert _train_property(built, task, "task")["enum"] == [task]


@pytest.mark.parametrize("task", v15.TASKS)
def test_defaults_are_the_tables(built, task):
    for arg in v15.arguments_for(task):
        if arg.required:
            continue
        schema = _train_property(built, task, arg.name, "Json")
        defaults = {a: arg.default_for(task, a) for a in v15.ALGORITHMS[task]}
        if len({json.dumps(v) for v in defaults.values()}) == 1:
            assert schema["default"] == next(iter(defaults.values())), arg.name
        else:
            assert schema["x-default-by-algorithm"] == defaults, arg.name


def test_a_literal_argument_documents_its_structure(built):
    anchors = _train_property(built, "detection", "anchor_sizes")
    assert anchors["type"] == "string"
    assert anchors["x-structure"]["maxItems"] == 5 and anchors["x-structure"]["items"]["minimum"] == 2
    crop = _train_property(built, "classification", "aug_crop_prob_and_min_max", "Json")
    structure = crop["anyOf"][1]
    assert accepts(structure, [0.5, [0, 1]]) and not accepts(structure, [1.5, [0, 1]])
    assert _train_property(built, "classification", "step_lr_sizes")["default"] == "[6, 8]"


def test_an_unknown_validator_kind_is_refused():
    def odd(field, raw):
        return raw

    arg = v15.Arg("odd", "str", None, False, True, True, odd)
    with pytest.raises(ValueError, match="no JSON Schema for validator kind 'test_an_unknown"):
        arguments.argument_schema(arg, json_body=False)


# ---------------------------------------------------------------- the text hyper-parameters

SAMPLES = [-2, -1, -1e-9, 0, 1e-9, 0.2, 0.5, 1 - 1e-9, 1, 1 + 1e-9, 2, 500]


@pytest.mark.parametrize("row", text.ROWS, ids=lambda row: row.key)
def test_hyperparameter_rules_agree_with_the_table(built, row):
    schema = built["components"]["schemas"]["AiFactoryHyperParameters"]["properties"][row.key]
    typed = schema["anyOf"][0]
    assert schema["default"] == str(row.default)
    if row.rule.kind == "bool":
        assert typed == {"type": "boolean"}
        return
    for value in SAMPLES:
        if row.rule.kind == "int" and not float(value).is_integer():
            continue
        value = int(value) if row.rule.kind == "int" else float(value)
        assert accepts(typed, value) == (text.problem(row.key, str(value)) is None), (row.key, value)

"""JSON Schemas of the request fields, read from the tables that validate them.

The v1.5 `/train` form comes from `contracts.v15_arguments.ARGS` (each row's validator is a
closure over its Interval or choices; this module reads those closures rather than restating
them) and the AI Factory hyper-parameters from `contracts.text_hyperparameters.ROWS`. A new
validator or rule kind raises here, so the document can never silently fall behind a table.
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Any

from contracts import text_hyperparameters as text
from contracts import v15_arguments as v15

# Arguments whose form value is a Python/JSON literal ("[6, 8]", "(0.5, (0, 1))"): a string in
# a form, a string or the structured value in a JSON body.
_LITERAL_KINDS = {"int_list", "prob_and_pair", "clip_grad", "devices", "job_and_epoch"}
_EXAMPLES = {
    "int_list": "[6, 8]",
    "prob_and_pair": "(0.5, (0, 1))",
    "clip_grad": "('norm', 10)",
    "devices": "[0, 1]",
    "job_and_epoch": '("20200106173410-49c73c67-8e0e-4061-a782-39b8b1cc8d8a", 2)',
}


def interval(bounds: v15.Interval) -> dict[str, float]:
    """`[a, b)` as minimum / exclusiveMaximum; an infinite end is no bound at all."""
    schema: dict[str, float] = {}
    if not math.isinf(bounds.low):
        schema["minimum" if bounds.low_closed else "exclusiveMinimum"] = bounds.low
    if not math.isinf(bounds.high):
        schema["maximum" if bounds.high_closed else "exclusiveMaximum"] = bounds.high
    return {k: int(v) if float(v).is_integer() else v for k, v in schema.items()}


def _kind(validator) -> str:
    return validator.__qualname__.split(".")[0]


def _closure(validator) -> dict[str, Any]:
    return inspect.getclosurevars(validator).nonlocals


def _structure(kind: str, scope: dict[str, Any]) -> dict[str, Any]:
    """The structured value a literal argument stands for."""
    if kind == "int_list":
        count, element = scope["count"], scope["element"]
        schema: dict[str, Any] = {"type": "array", "items": {"type": "integer", **interval(element)}}
        schema["minItems"] = int(count.low)
        if not math.isinf(count.high):
            schema["maxItems"] = int(count.high)
        return schema
    if kind == "prob_and_pair":
        pair = scope["pair"]
        number = "integer" if scope["integers"] else "number"
        inner = {"type": number, **interval(pair)}
        return {
            "type": "array",
            "prefixItems": [
                {"type": "number", **interval(v15.UNIT)},
                {"type": "array", "prefixItems": [inner, inner], "minItems": 2, "maxItems": 2},
            ],
            "minItems": 2,
            "maxItems": 2,
        }
    if kind == "clip_grad":
        return {
            "type": ["array", "null"],
            "prefixItems": [{"enum": ["value", "norm"]}, {"type": "number", **interval(v15.POSITIVE)}],
            "minItems": 2,
            "maxItems": 2,
        }
    if kind == "devices":
        return {"type": ["array", "null"], "items": {"type": "integer", "minimum": 0}, "uniqueItems": True}
    if kind == "job_and_epoch":
        return {
            "type": ["array", "null"],
            "prefixItems": [
                {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"},
                {"type": "integer", "minimum": 1},
            ],
            "minItems": 2,
            "maxItems": 2,
        }
    raise AssertionError(kind)


def argument_schema(arg: v15.Arg, *, json_body: bool) -> dict[str, Any]:
    """One `/train` argument. Form values travel as text; JSON bodies may send the structure."""
    kind, scope = _kind(arg.validator), _closure(arg.validator)
    if kind == "integer":
        schema: dict[str, Any] = {"type": "integer", **interval(scope["interval"])}
        if scope["or_minus_one"]:
            schema = {"anyOf": [schema, {"const": -1}]}
    elif kind == "number":
        schema = {"type": "number", **interval(scope["interval"])}
    elif kind == "choice":
        schema = {"type": "string", "enum": list(scope["values"])}
    elif kind == "boolean":
        schema = {"type": "boolean"}
    elif kind == "path":
        schema = {"type": "string", "minLength": 1, "maxLength": 1024}
    elif kind in _LITERAL_KINDS:
        literal = {"type": "string", "example": _EXAMPLES[kind]}
        structure = _structure(kind, scope)
        schema = {"anyOf": [literal, structure]} if json_body else {**literal, "x-structure": structure}
    else:
        raise ValueError(f"{arg.name}: no JSON Schema for validator kind {kind!r}")
    schema["x-python-type"] = arg.type
    schema["x-overwritable"] = {"resume": arg.overwritable_resume, "finetune": arg.overwritable_finetune}
    return schema


def _literal(value: Any) -> str:
    """A default as a form sends it: `[6, 8]`, `None`."""
    return "None" if value is None else json.dumps(value)


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# The train route's capacity fields beside the argument table (chalicelib.v15.service.capacity).
CAPACITY_SCHEMA = {
    "instance_count": {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": "hosts of the job: 1 to the stage's AIFACTORY_MAX_INSTANCE_COUNT (4 local, 8 aws by default)",
    },
    "use_spot": {
        "type": "boolean",
        "description": "managed spot training (default: the stage's AIFACTORY_SPOT)",
    },
    "max_wait_seconds": {"type": "integer", "minimum": 0, "maximum": 28 * 24 * 3600},
    "keep_alive_seconds": {"type": "integer", "minimum": 0, "maximum": 21600},
}


def train_schema(task: str, *, json_body: bool) -> dict[str, Any]:
    """The `/train` arguments of one task, defaults resolved per task (and per algorithm where
    the spec's default depends on it, in `x-default-by-algorithm`)."""
    properties: dict[str, Any] = {}
    required = []
    algorithms = v15.ALGORITHMS[task]
    for arg in v15.arguments_for(task):
        schema = argument_schema(arg, json_body=json_body)
        if arg.name == "task":
            schema = {**schema, "enum": [task]}
        if not arg.required:
            defaults = {algorithm: _json_value(arg.default_for(task, algorithm)) for algorithm in algorithms}
            values = list(defaults.values())
            if all(value == values[0] for value in values):
                literal = not json_body and schema.get("type") == "string" and "x-structure" in schema
                schema["default"] = _literal(values[0]) if literal else values[0]
            else:
                schema["x-default-by-algorithm"] = defaults
        else:
            required.append(arg.name)
        properties[arg.name] = schema
    properties.update(CAPACITY_SCHEMA)
    return {
        "type": "object",
        "title": f"v1.5 train arguments ({task})",
        "description": (
            "A name no task knows is refused (400, with the closest known name); an argument "
            "of another task is accepted and listed in the answer's `ignored_arguments`. "
            "`task`, `data_dir` and `algorithm` "
            "(and `backbone` for detection) may be omitted when resuming or fine-tuning: they "
            "are inherited from the source job."
        ),
        "properties": properties,
        "required": [name for name in required if name != "task"] + ["task"],
    }


# -------------------------------------------------------------- AI Factory hyper-parameters


def _rule_bounds(rule: text.Rule) -> dict[str, Any]:
    """The rule's range, read by probing its predicate at the edges the table's rules use."""
    if rule.kind == "bool":
        return {"type": "boolean"}
    if rule.kind == "name":  # contracts.text_hyperparameters.JOB_NAME
        return {"type": "string", "pattern": text.JOB_NAME_PATTERN.pattern}
    number = "integer" if rule.kind == "int" else "number"
    ok = rule.ok
    schema: dict[str, Any] = {"type": number}
    if rule.kind == "int":
        if ok(-1) and not ok(0):
            return {"anyOf": [{"type": "integer", "minimum": 1}, {"const": -1}]}
        for low in (0, 1):
            if ok(low) and not ok(low - 1):
                schema["minimum"] = low
        return schema
    if ok(0) and not ok(-1e-9):
        schema["minimum"] = 0
    elif not ok(0) and ok(1e-9):
        schema["exclusiveMinimum"] = 0
    if ok(1) and not ok(1 + 1e-9):
        schema["maximum"] = 1
    elif not ok(1) and ok(1 - 1e-9):
        schema["exclusiveMaximum"] = 1
    return schema


def hyperparameter_schema(row: text.Row) -> dict[str, Any]:
    """A value arrives as text ("0.2") or as a JSON scalar the API turns into text."""
    typed = _rule_bounds(row.rule)
    return {
        "anyOf": [typed, {"type": "string", "maxLength": 256}],
        "default": str(row.default),
        "description": f"{row.meaning}; must be {row.rule.text}",
    }


def hyperparameters_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            "Dotted hyper-parameters, at most 100, keys and values at most 256 characters. Each "
            "key is checked by its rule; a key not listed here is refused (400, with the closest "
            "known key)."
        ),
        "maxProperties": 100,
        "properties": {row.key: hyperparameter_schema(row) for row in text.ROWS},
        "additionalProperties": False,
    }

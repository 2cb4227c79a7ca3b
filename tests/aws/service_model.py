"""Checks a request against botocore's service model, more strictly than boto3 does.

boto3 already runs botocore's `validate_parameters` before sending (types, required
members, minimums); AWS also enforces the model's maximum lengths, patterns and enums,
which moto and Stubber do not. `record_requests` hooks a client so every request it
builds goes through both checks and is kept for the test to inspect.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.model import OperationModel, Shape
from botocore.validate import validate_parameters

# Unicode classes the models use, by their ASCII part (our values are ASCII, so a value
# that passes this passes the real pattern).
_UNICODE_CLASSES = {r"\p{L}": "a-zA-Z", r"\p{Z}": " ", r"\p{N}": "0-9"}


def _python_pattern(pattern: str) -> re.Pattern | None:
    """The model's pattern for `re`, or None where it cannot be translated faithfully."""
    depth, i, converted = 0, 0, []
    while i < len(pattern):
        for unicode_class, ascii_class in _UNICODE_CLASSES.items():
            if pattern.startswith(unicode_class, i):
                if not depth:
                    return None  # outside a [...] the ASCII part would change the meaning
                converted.append(ascii_class)
                i += len(unicode_class)
                break
        else:
            char = pattern[i]
            if char == "\\":
                converted.append(pattern[i : i + 2])
                i += 2
                continue
            if char == "[":
                depth += 1
            elif char == "]" and depth:
                depth -= 1
            converted.append(char)
            i += 1
    if r"\p" in "".join(converted):
        return None
    try:
        return re.compile("".join(converted))
    except re.error:
        return None


def strict_errors(shape: Shape, value: Any, path: str = "") -> list[str]:
    """Maximum lengths, patterns and enums of `value` under `shape` (botocore checks the rest)."""
    errors: list[str] = []
    meta = shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in value.items():
            if name in shape.members:
                errors += strict_errors(shape.members[name], member, f"{path}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} items, more than {meta['max']}")
        for index, item in enumerate(value):
            errors += strict_errors(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} entries, more than {meta['max']}")
        for key, item in value.items():
            errors += strict_errors(shape.key, key, f"{path} key")
            errors += strict_errors(shape.value, item, f"{path}[{key}]")
    elif shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} characters, more than {meta['max']}")
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.enum}")
        pattern = _python_pattern(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value):
            errors.append(f"{path}: {value!r} does not match {meta['pattern']}")
    elif shape.type_name in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if "max" in meta and value > meta["max"]:
            errors.append(f"{path}: {value} is more than {meta['max']}")
    elif shape.type_name == "blob" and isinstance(value, bytes | bytearray):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} bytes, more than {meta['max']}")
    return errors


def validate(operation: OperationModel, params: dict[str, Any]) -> None:
    """Raises botocore's ParamValidationError, or AssertionError naming what AWS would refuse."""
    validate_parameters(params, operation.input_shape)
    errors = strict_errors(operation.input_shape, params, operation.name)
    assert not errors, errors


def record_requests(client) -> list[tuple[str, dict[str, Any]]]:
    """Every request `client` builds, as (operation name, params), each validated first."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def check(params, model, **_):
        validate(model, params)
        sent.append((model.name, params))

    client.meta.events.register("before-parameter-build", check)
    return sent

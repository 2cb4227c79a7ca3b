"""Parsing of form-encoded argument values into typed Python values.

The v1.5 API takes arguments like `(0.5, (0, 1))` or `[6, 8]` as text. They are parsed with
`ast.literal_eval` -- never `eval` -- after a size and nesting check, because the text comes
from the network and a parser fed a megabyte of brackets can exhaust the Lambda's memory or
recursion limit before it ever rejects the input.

Every helper raises `ValidationError(field, "must be <expected>; got '<value>'")`, so the
caller decides how the expectation reads ("an integer in [1, Inf]") and type errors and
range errors read the same way.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

from contracts.errors import ArgumentError as ValidationError

MAX_LITERAL_LENGTH = 2000
MAX_LITERAL_DEPTH = 10
_QUOTE_LIMIT = 40
_INT_RE = re.compile(r"[+-]?\d{1,18}")
_FLOAT_MAX_LENGTH = 64
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def quote(value: Any, limit: int = _QUOTE_LIMIT) -> str:
    """Quotes a user value for an error message, truncated so a huge value cannot flood a log."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return f"'{text}'"


def _as_text(value: Any) -> str:
    """Form values are strings; JSON bodies or inherited values may already be typed."""
    return value.strip() if isinstance(value, str) else repr(value)


def _nesting_depth(text: str) -> int:
    """Counts bracket depth naively (brackets inside strings count too), which only errs on the
    side of rejecting, and runs in linear time before the parser sees the text."""
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def parse_literal(
    field: str, text: str, max_len: int = MAX_LITERAL_LENGTH, max_depth: int = MAX_LITERAL_DEPTH
) -> Any:
    """Parses a Python literal (numbers, strings, tuples, lists, dicts, sets, None, booleans)."""
    if not isinstance(text, str):
        raise ValidationError(field, f"expected a Python literal as text; got {quote(text)}")
    if len(text) > max_len:
        raise ValidationError(
            field, f"too long ({len(text)} characters, at most {max_len}); got {quote(text)}"
        )
    if _nesting_depth(text) > max_depth:
        raise ValidationError(field, f"nested deeper than {max_depth} levels; got {quote(text)}")
    try:
        return ast.literal_eval(text.strip())
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        raise ValidationError(
            field, f"expected a Python literal such as (0.5, (0, 1)); got {quote(text)}"
        ) from None


def is_number(value: Any) -> bool:
    """True for ints and floats but not booleans (`True` is an int in Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_int(field: str, value: Any, expected: str = "an integer") -> int:
    """Accepts `8`, `+8`, `-1`; rejects `8.0`, `1e3`, `True` and absurdly long digit strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value.strip())
    raise ValidationError(field, f"must be {expected}; got {quote(value)}")


def parse_int_in(field: str, value: Any, low: int, high: int | None = None) -> int:
    """An integer in [low, high]: a request's count, offset or page size. `Infinity`, `1e400`
    and `2.5` are refused by name like any other non-integer (int() of an infinite float
    would raise OverflowError, a 500)."""
    expected = f"an integer in [{low}, {high if high is not None else 'Inf'}]"
    number = parse_int(field, value, expected)
    if number < low or (high is not None and number > high):
        raise ValidationError(field, f"must be {expected}; got {number}")
    return number


def parse_float(field: str, value: Any, expected: str = "a number") -> float:
    """Accepts `0.5`, `1`, `1e-3`, `inf`; rejects NaN, which no range comparison can catch."""
    if is_number(value):
        number = float(value)
    elif isinstance(value, str) and 0 < len(value.strip()) <= _FLOAT_MAX_LENGTH:
        try:
            number = float(value.strip())
        except ValueError:
            raise ValidationError(field, f"must be {expected}; got {quote(value)}") from None
    else:
        raise ValidationError(field, f"must be {expected}; got {quote(value)}")
    if math.isnan(number):
        raise ValidationError(field, f"must be {expected}; got {quote(value)}")
    return number


def parse_bool(field: str, value: Any, expected: str = "True or False") -> bool:
    """Accepts True/False/true/false/1/0 (forms send Python's spelling or JavaScript's)."""
    if isinstance(value, bool):
        return value
    text = _as_text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValidationError(field, f"must be {expected}; got {quote(value)}")


def parse_str(field: str, value: Any, expected: str = "a string") -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValidationError(field, f"must be {expected}; got {quote(value)}")


def parse_int_list(field: str, value: Any, expected: str = "a list of integers such as [6, 8]") -> list[int]:
    """Accepts `[6, 8]`, `(6, 8)`, `6, 8`, `6` and `[]`; elements must be integers, not booleans."""
    if isinstance(value, (list, tuple)):
        items = value
    else:
        text = _as_text(value)
        if text in ("", "[]", "()"):
            return []
        try:
            parsed = parse_literal(field, text)
        except ValidationError:
            raise ValidationError(field, f"must be {expected}; got {quote(value)}") from None
        items = parsed if isinstance(parsed, (list, tuple)) else [parsed]
    if not all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        raise ValidationError(field, f"must be {expected}; got {quote(value)}")
    return list(items)


def parse_optional_int_list(
    field: str, value: Any, expected: str = "None or a list of integers such as [0, 1]"
) -> list[int] | None:
    """`None` means "not specified" (e.g. all devices); an empty value means an empty list
    (e.g. no devices, use the CPU) -- the v1.5 `visible_devices` convention."""
    if value is None or (isinstance(value, str) and value.strip() == "None"):
        return None
    return parse_int_list(field, value, expected)


def parse_sequence(field: str, value: Any, length: int, expected: str) -> list[Any]:
    """A tuple or list literal of exactly `length` items, returned as a list (JSON-friendly)."""
    parsed = value if isinstance(value, (list, tuple)) else None
    if parsed is None:
        try:
            parsed = parse_literal(field, _as_text(value))
        except ValidationError:
            raise ValidationError(field, f"must be {expected}; got {quote(value)}") from None
    if not isinstance(parsed, (list, tuple)) or len(parsed) != length:
        raise ValidationError(field, f"must be {expected}; got {quote(value)}")
    return list(parsed)

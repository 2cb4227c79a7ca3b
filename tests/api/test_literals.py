"""Form values are untrusted text: literals must parse without ever being evaluated."""

from __future__ import annotations

import time

import pytest

from chalicelib.errors import ValidationError
from contracts.v15_literals import (
    parse_bool,
    parse_float,
    parse_int,
    parse_int_list,
    parse_literal,
    parse_optional_int_list,
    parse_sequence,
    quote,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(0.5, (0, 1))", (0.5, (0, 1))),
        ("[6, 8]", [6, 8]),
        ("('norm', 10)", ("norm", 10)),
        ("None", None),
        ("  [1, 2]  ", [1, 2]),
        ("['a/*.jpg']", ["a/*.jpg"]),
        ("((((1,),),),)", ((((1,),),),)),
    ],
)
def test_parse_literal_accepts_python_literals(text, expected):
    assert parse_literal("x", text) == expected


def test_parse_literal_never_evaluates_code(tmp_path):
    target = tmp_path / "pwned"
    payloads = [
        "__import__('os').system('x')",
        f"open({str(target)!r}, 'w')",
        f"[open({str(target)!r}, 'w')]",
        "(lambda: 1)()",
        "1 if True else 2",
        "9**9**9",
    ]
    for payload in payloads:
        with pytest.raises(ValidationError) as caught:
            parse_literal("aug_crop_prob_and_min_max", payload)
        assert caught.value.field == "aug_crop_prob_and_min_max"
        assert "expected a Python literal such as (0.5, (0, 1))" in caught.value.message
    assert not target.exists()


def test_parse_literal_rejects_huge_input_before_parsing():
    huge = "[" + "1, " * 500_000 + "1]"
    started = time.perf_counter()
    with pytest.raises(ValidationError) as caught:
        parse_literal("step_lr_sizes", huge)
    assert time.perf_counter() - started < 0.5
    assert caught.value.message.startswith("Invalid 'step_lr_sizes': too long")
    # The value is quoted, but truncated: a megabyte of input must not end up in a log line.
    assert len(caught.value.message) < 200


@pytest.mark.parametrize("depth", [11, 100, 10_000])
def test_parse_literal_rejects_deep_nesting(depth):
    text = "(" * depth + ")" * depth
    with pytest.raises(ValidationError) as caught:
        parse_literal("x", text, max_len=100_000)
    assert "nested deeper than 10 levels" in caught.value.message


def test_parse_literal_respects_custom_limits():
    assert parse_literal("x", "[1, 2]", max_len=6) == [1, 2]
    with pytest.raises(ValidationError, match="at most 5"):
        parse_literal("x", "[1, 2]", max_len=5)
    with pytest.raises(ValidationError, match="nested deeper than 1 levels"):
        parse_literal("x", "[[1]]", max_depth=1)


def test_quote_truncates_long_values():
    assert quote("abc") == "'abc'"
    assert quote("a" * 100) == "'" + "a" * 40 + "...'"
    assert quote([1, 2]) == "'[1, 2]'"


@pytest.mark.parametrize(("text", "expected"), [("8", 8), ("-1", -1), (" 8 ", 8), ("+3", 3), (7, 7)])
def test_parse_int_accepts(text, expected):
    assert parse_int("n", text) == expected


@pytest.mark.parametrize("text", ["8.0", "1e3", "True", "", "abc", "9" * 30, "1_000", True, 2.5, None])
def test_parse_int_rejects(text):
    with pytest.raises(ValidationError) as caught:
        parse_int("batch_size", text, "an integer in [1, Inf]")
    assert caught.value.message.startswith("Invalid 'batch_size': must be an integer in [1, Inf]; got ")


@pytest.mark.parametrize(
    ("text", "expected"), [("0.5", 0.5), ("1", 1.0), ("1e-3", 0.001), ("inf", float("inf")), (2, 2.0)]
)
def test_parse_float_accepts(text, expected):
    assert parse_float("f", text) == expected


@pytest.mark.parametrize("text", ["nan", "NaN", "abc", "", "0x10", "1" * 100, True, None, float("nan")])
def test_parse_float_rejects(text):
    with pytest.raises(ValidationError, match="Invalid 'learning_rate': must be a number"):
        parse_float("learning_rate", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("True", True),
        ("true", True),
        ("1", True),
        ("False", False),
        ("false", False),
        ("0", False),
        (True, True),
    ],
)
def test_parse_bool_accepts(text, expected):
    assert parse_bool("b", text) is expected


@pytest.mark.parametrize("text", ["yes", "", "2", "None", "TRUE!"])
def test_parse_bool_rejects(text):
    with pytest.raises(ValidationError, match="Invalid 'pretrained': must be True or False"):
        parse_bool("pretrained", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("None", None),
        (None, None),
        ("", []),
        ("[]", []),
        ("[0, 1]", [0, 1]),
        ("0,1", [0, 1]),
        ("(2, 3)", [2, 3]),
        ("1", [1]),
    ],
)
def test_parse_optional_int_list(text, expected):
    assert parse_optional_int_list("visible_devices", text) == expected


@pytest.mark.parametrize("text", ["[True]", "[0.5]", "['a']", "[0, None]", "x", "{1: 2}"])
def test_parse_int_list_rejects_non_integers(text):
    with pytest.raises(ValidationError, match="Invalid 'step_lr_sizes': must be a list of integers"):
        parse_int_list("step_lr_sizes", text)


def test_parse_sequence_checks_length():
    assert parse_sequence("s", "(1, 2)", 2, "a pair") == [1, 2]
    assert parse_sequence("s", [1, 2], 2, "a pair") == [1, 2]
    for bad in ["(1, 2, 3)", "1", "'ab'", "((1, 2)"]:
        with pytest.raises(ValidationError, match="Invalid 's': must be a pair"):
            parse_sequence("s", bad, 2, "a pair")

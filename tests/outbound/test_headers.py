"""Header policy: what `validate_headers` (and the API's `check_headers`) accept is what
the sender can put on the wire; messages name the header and never quote its value."""

from __future__ import annotations

import pytest

from chalicelib.errors import ValidationError
from chalicelib.security import check_headers
from outbound import HeadersRefused, merge, validate_headers
from outbound.headers import MAX_HEADERS, MAX_TOTAL_LENGTH, MAX_VALUE_LENGTH

SECRET = "s3cr3t-value-never-quoted"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"x-api-key": SECRET},
        {"Authorization": "Bearer abc.def-ghi_jkl", "X-Trace": "a\tb", "X-Latin": "café ñ"},
        {"!#$%&'*+-.^_`|~09azAZ": "token characters only"},
        {"X-Empty": ""},
        {f"X-{i}": "v" for i in range(MAX_HEADERS)},
        {"X-Long": "v" * MAX_VALUE_LENGTH},
    ],
)
def test_accepted(headers):
    assert validate_headers(headers) == dict(headers or {})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (["x-api-key", SECRET], "must be an object of header names to string values"),
        ("x-api-key: v", "must be an object"),
        ({"x-api-key": 5}, "must map header names to string values"),
        ({5: "v"}, "must map header names to string values"),
        ({"x-api-key": None}, "must map header names to string values"),
        ({"": SECRET}, "header name '' is not a valid HTTP token"),
        ({"X-Bad:Name": SECRET}, "header name 'X-Bad:Name' is not a valid HTTP token"),
        ({"X Bad": SECRET}, "'X Bad' is not a valid HTTP token"),
        ({"X-Bad\r\nInjected": SECRET}, "'X-Bad\\r\\nInjected' is not a valid HTTP token"),
        ({"X-Bad\t": SECRET}, "is not a valid HTTP token"),
        ({"X-Ünï": SECRET}, "is not a valid HTTP token"),
        ({"X-(comment)": SECRET}, "is not a valid HTTP token"),
        ({"x" * 257: SECRET}, "is not a valid HTTP token"),
        ({"X-Key": SECRET + "\r\nX-Injected: 1"}, "header 'X-Key' contains a line break"),
        ({"X-Key": SECRET + "\n"}, "contains a line break or another control character"),
        ({"X-Key": SECRET + "\x00"}, "contains a line break or another control character"),
        ({"X-Key": SECRET + "\x1b[31m"}, "contains a line break or another control character"),
        ({"X-Key": SECRET + "\x7f"}, "contains a line break or another control character"),
        ({"X-Key": SECRET + "€"}, "header 'X-Key' has a character outside latin-1"),
        ({"X-Key": "价值" + SECRET}, "has a character outside latin-1"),
        ({"X-Key": "v" * (MAX_VALUE_LENGTH + 1)}, f"longer than {MAX_VALUE_LENGTH} characters"),
        ({f"X-{i}": "v" for i in range(MAX_HEADERS + 1)}, f"at most {MAX_HEADERS} headers are allowed"),
        ({f"X-{i}": "v" * 8000 for i in range(5)}, f"longer than {MAX_TOTAL_LENGTH} characters in total"),
        ({"X-Key": "a", "x-key": "b"}, "header 'x-key' is given more than once"),
        ({"Host": "evil.example"}, "header 'Host' is set by the sender"),
        ({"content-length": "0"}, "'content-length' is set by the sender"),
        ({"Transfer-Encoding": "chunked"}, "'Transfer-Encoding' is set by the sender"),
        ({"Connection": "close"}, "is set by the sender"),
        ({"Expect": "100-continue"}, "is set by the sender"),
        ({"Upgrade": "h2c"}, "is set by the sender"),
    ],
)
def test_refused_naming_the_header_not_the_value(headers, message):
    with pytest.raises(HeadersRefused) as info:
        validate_headers(headers)
    assert message in info.value.problem
    assert SECRET not in str(info.value)


def test_api_check_names_the_field():
    assert check_headers("callback_url.headers", {"x-api-key": SECRET}) == {"x-api-key": SECRET}
    with pytest.raises(ValidationError) as info:
        check_headers("dataset_endpoint.headers", {"X-Bad:Name": SECRET})
    assert info.value.field == "dataset_endpoint.headers"
    assert str(info.value).startswith("Invalid 'dataset_endpoint.headers': header name 'X-Bad:Name'")
    assert SECRET not in str(info.value)


def test_merge_keeps_one_header_per_name():
    defaults = {"Content-Type": "application/json", "Idempotency-Key": "k"}
    given = {"content-type": "text/plain", "X-Key": "v"}
    assert merge(defaults, given, sender_wins=True) == {
        "Content-Type": "application/json",
        "Idempotency-Key": "k",
        "X-Key": "v",
    }
    assert merge(defaults, given, sender_wins=False) == {
        "Idempotency-Key": "k",
        "content-type": "text/plain",
        "X-Key": "v",
    }

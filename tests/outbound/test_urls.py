"""The SSRF corpus: what `outbound.validate_url` refuses, always or unless private targets
are allowed, and what it accepts. Nothing here connects anywhere: every case is decided
before a socket opens (asserted), and names go to a fake resolver, never to real DNS."""

from __future__ import annotations

import pytest

from chalicelib.errors import ValidationError
from chalicelib.security import check_outbound_url
from outbound import UrlRefused, validate_url
from tests.callbacks.loopback import FakeDns, guard_loopback

NAMES = {
    "example.com": [["93.184.216.34"]],
    "v6.example.com": [["2606:2800:220:1:248:1893:25c8:1946"]],
    "internal.example.com": [["10.0.0.5"]],
    "metadata.example.com": [["169.254.169.254"]],
    "mixed.example.com": [["93.184.216.34", "127.0.0.1"]],
    "cgnat.example.com": [["100.64.1.1"]],
    "localhost": [["127.0.0.1"]],
    "api.localhost": [["127.0.0.1"]],
}

# Refused whatever the stage says: (url, expected words in the message).
ALWAYS_REFUSED = [
    ("http://169.254.169.254/latest/meta-data", "forbidden address (169.254.169.254"),
    ("http://169.254.0.1/", "forbidden address"),
    ("http://[fd00:ec2::254]/latest/meta-data", "forbidden address (fd00:ec2::254"),
    ("http://[fe80::1]/", "forbidden address (fe80::1"),
    ("http://[fe80::1%25eth0]/", "zone id"),
    ("http://[::1%251]/", "zone id"),
    ("http://[2002:a9fe:a9fe::]/", "which is 169.254.169.254"),
    ("http://[::ffff:169.254.169.254]/", "which is 169.254.169.254"),
    ("http://[::ffff:a9fe:a9fe]/", "which is 169.254.169.254"),
    ("http://[64:ff9b::a9fe:a9fe]/", "which is 169.254.169.254"),
    ("http://[64:ff9b::169.254.169.254]/", "which is 169.254.169.254"),
    ("http://metadata.example.com/", "'metadata.example.com', which points to a forbidden address"),
    ("http://0.0.0.0/", "not a unicast destination"),
    ("http://0.1.2.3/", "not a unicast destination"),
    ("http://[::]/", "not a unicast destination"),
    ("http://224.0.0.1/", "not a unicast destination"),
    ("http://255.255.255.255/", "not a unicast destination"),
    ("http://240.0.0.1/", "not a unicast destination"),
    # Credentials, in every spelling.
    ("http://user:pass@93.184.216.34/", "must not contain credentials"),
    ("http://user@93.184.216.34/", "must not contain credentials"),
    ("http://:@93.184.216.34/", "must not contain credentials"),
    ("http://127.0.0.1%2f@93.184.216.34/", "must not contain credentials"),
    ("http://93.184.216.34:80@127.0.0.1/", "must not contain credentials"),
    # Characters parsers disagree on or strip.
    ("http://127.0.0.1:18732\\@93.184.216.34/", "backslash"),
    ("http://93.184.216.34\\@127.0.0.1/", "backslash"),
    ("http://93.184.216.34/\\..\\", "backslash"),
    ("http://93.184.216.34/a\tb", "whitespace or a control character"),
    ("http://93.184\t.216.34/", "whitespace or a control character"),
    ("http://93.184.216.34/a b", "whitespace or a control character"),
    ("http://93.184.216.34/\r\nHost: evil", "whitespace or a control character"),
    ("http://93.184.216.34/\x00", "whitespace or a control character"),
    ("http://93.184.216.34/\x7f", "whitespace or a control character"),
    (" http://93.184.216.34/", "whitespace or a control character"),
    ("http://93.184.216.34/\u00a0", "whitespace or a control character"),
    ("http://exämple.com/", "non-ASCII"),
    ("http://93.184.216.34/ünïcode", "non-ASCII"),
    # Two parsers, two hosts (urllib3 2.x decodes the escape; 1.26 keeps it, an invalid name).
    ("http://%61.example.com/", ("read differently by different URL parsers", "invalid host name")),
    ("http://a%2eexample.com/", ("read differently by different URL parsers", "invalid host name")),
    # Legacy IPv4 spellings that resolvers turn into addresses.
    ("http://2130706433/", "non-standard IPv4 form"),
    ("http://0x7f.1/", "non-standard IPv4 form"),
    ("http://0x7f000001/", "non-standard IPv4 form"),
    ("http://0x7F.0.0.1/", "non-standard IPv4 form"),
    ("http://0177.0.0.1/", "non-standard IPv4 form"),
    ("http://017700000001/", "non-standard IPv4 form"),
    ("http://127.1/", "non-standard IPv4 form"),
    ("http://127.0.1/", "non-standard IPv4 form"),
    ("http://127.000.000.001/", "non-standard IPv4 form"),
    ("http://3627734562/", "non-standard IPv4 form"),
    ("http://1.2.3.4.5/", "non-standard IPv4 form"),
    ("http://2130706433./", "non-standard IPv4 form"),
    # Not http(s), no host, bad port, unparseable, not a string.
    ("ftp://93.184.216.34/", "must be an http or https URL; got scheme 'ftp'"),
    ("file:///etc/passwd", "got scheme 'file'"),
    ("gopher://93.184.216.34:70/_GET", "got scheme 'gopher'"),
    ("javascript:alert(1)", "got scheme 'javascript'"),
    ("not a url", "got scheme ''"),
    ("//93.184.216.34/", "got scheme ''"),
    ("http:///path", "has no host"),
    ("http://:80/", "has no host"),
    ("http://93.184.216.34:0/", "invalid port"),
    ("http://93.184.216.34:99999/", "invalid port"),
    ("http://93.184.216.34:http/", "invalid port"),
    ("http://[::1/", "cannot be parsed"),
    ("http://[v1.x]/", "cannot be parsed"),
    ("http://[93.184.216.34]/", "cannot be parsed"),
    ("http://under..dots/", "invalid host name"),
    ("http://-leading.example.com/", "invalid host name"),
    ("http://" + "a" * 64 + ".com/", "invalid host name"),
    ("http://93.184.216.34/" + "a" * 2048, "longer than 2048 characters"),
    ("", "must be a non-empty URL string"),
    (None, "must be a non-empty URL string"),
    (42, "must be a non-empty URL string"),
    ("http://nowhere.example.com/", "cannot resolve host 'nowhere.example.com'"),
]

# Refused on aws stages (private not allowed), accepted on the local stage.
PRIVATE = [
    "http://127.0.0.1:8080/hook",
    "http://127.0.0.1./",
    "http://127.255.255.254/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # shared address space (CGNAT): is_private says no, is_global says no
    "http://100.127.255.254/",
    "http://198.18.0.1/",  # benchmarking
    "http://198.19.255.254/",
    "http://192.0.2.1/",  # documentation
    "http://[::1]/",
    "http://[::1]:8080/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[2002:a00:1::]/",  # 6to4 of 10.0.0.1
    "http://[2002:c0a8:101::]/",  # 6to4 of 192.168.1.1
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[64:ff9b::127.0.0.1]/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://internal.example.com/",
    "http://mixed.example.com/",  # every address must pass
    "http://cgnat.example.com/",
]

ACCEPTED = [
    ("http://93.184.216.34/", "93.184.216.34", 80, "/"),
    ("https://93.184.216.34:8443/cb?job=1&x=%20y", "93.184.216.34", 8443, "/cb?job=1&x=%20y"),
    ("HTTP://93.184.216.34", "93.184.216.34", 80, "/"),
    ("http://93.184.216.34./a#frag", "93.184.216.34", 80, "/a"),
    ("http://[2606:2800:220:1:248:1893:25c8:1946]:8080/", "2606:2800:220:1:248:1893:25c8:1946", 8080, "/"),
    ("https://example.com/hooks", "example.com", 443, "/hooks"),
    ("https://Example.COM./hooks", "example.com", 443, "/hooks"),
    ("http://v6.example.com/", "v6.example.com", 80, "/"),
    ("http://[2002:5db8:d822::]/", "2002:5db8:d822::", 80, "/"),  # 6to4 of a global address
    ("http://[64:ff9b::5db8:d822]/", "64:ff9b::5db8:d822", 80, "/"),  # NAT64 of a global address
]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Names resolve through FakeDns; a connect attempt fails the test (none may happen)."""
    connected = guard_loopback(monkeypatch)
    FakeDns(monkeypatch, NAMES)
    yield
    assert connected == [], "validation must decide before any connection"


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(("url", "message"), ALWAYS_REFUSED)
def test_always_refused(url, message, allow_private):
    with pytest.raises(UrlRefused) as info:
        validate_url(url, allow_private)
    assert any(m in info.value.problem for m in (message if isinstance(message, tuple) else (message,)))
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_targets_refused_unless_allowed(url):
    with pytest.raises(UrlRefused, match=r"non-global address|\(loopback\), not allowed here"):
        validate_url(url, False)
    assert validate_url(url, True).url == url


@pytest.mark.parametrize(("url", "host", "port", "target"), ACCEPTED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_global_targets_accepted(url, host, port, target, allow_private):
    checked = validate_url(url, allow_private)
    assert (checked.host, checked.port, checked.request_target) == (host, port, target)
    assert checked.addresses and all(a.is_global for a in checked.addresses)


def test_name_is_resolved_unless_asked_not_to():
    assert validate_url("http://internal.example.com/", False, resolve_host=False).addresses == ()
    with pytest.raises(UrlRefused, match="'internal.example.com', which points to a private"):
        validate_url("http://internal.example.com/", False)


def test_api_check_names_the_field_and_keeps_the_url():
    url = "https://example.com/hooks"
    assert check_outbound_url("callback_url.url", url, False) == url
    with pytest.raises(ValidationError) as info:
        check_outbound_url("callback_url.url", "http://[2002:a9fe:a9fe::]/", True)
    assert info.value.field == "callback_url.url"
    assert str(info.value).startswith("Invalid 'callback_url.url': points to a forbidden address")

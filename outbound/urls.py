"""URL policy: one reading of the URL, the same for checking and for sending.

A URL passes only if it is plain enough that every parser reads the same host from it:
printable ASCII without backslashes or whitespace, no credentials, no IPv6 zone id, no
legacy IPv4 spellings (`2130706433`, `0x7f.1`, `0177.0.0.1`) that resolvers turn into
addresses, and the same host and port from `urllib.parse` and urllib3's `parse_url`
(the parser that sends it). Its addresses (the literal, or what the name resolves to now)
must pass `addresses.refusal`; the connection checks again at connect time.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from outbound.addresses import IPAddress, refusal
from outbound.errors import UrlRefused

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG URL: a host whose last label is a number is an IPv4 address in some spelling.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


@dataclass(frozen=True)
class Target:
    """A URL that passed the policy, split the way the sender uses it."""

    url: str
    scheme: str
    host: str  # lower case, no brackets, no trailing dot
    port: int
    request_target: str  # path and query, sent as is
    addresses: tuple[IPAddress, ...]  # what was checked (empty when not resolved)
    literal: bool  # the host is an IP address


def _bad_character(url: str) -> str | None:
    for index, char in enumerate(url):
        if char == "\\":
            return f"contains a backslash at position {index}"
        if char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F:
            return f"contains whitespace or a control character at position {index}"
        if ord(char) > 0x7E:
            return (
                f"contains a non-ASCII character at position {index} (percent-encode it, punycode the host)"
            )
    return None


def _split(url: object) -> tuple[str, SplitResult]:
    if not isinstance(url, str) or not url:
        raise UrlRefused("must be a non-empty URL string")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UrlRefused("cannot be parsed") from None
    scheme = parts.scheme
    if scheme not in DEFAULT_PORTS:
        raise UrlRefused(f"must be an http or https URL; got scheme '{scheme}'")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"is longer than {MAX_URL_LENGTH} characters")
    problem = _bad_character(url)
    if problem:
        raise UrlRefused(problem)
    return scheme, parts


def _host_and_port(url: str, scheme: str, parts: SplitResult) -> tuple[str, int, bool]:
    if "@" in parts.netloc:
        raise UrlRefused("must not contain credentials (user:password@); send them as headers")
    host = parts.hostname
    if not host:
        raise UrlRefused("has no host")
    try:
        port = parts.port
    except ValueError:
        raise UrlRefused("has an invalid port") from None
    if port == 0:
        raise UrlRefused("has an invalid port")
    bracketed = parts.netloc.rsplit("@", 1)[-1].startswith("[")
    if bracketed and "%" in host:
        raise UrlRefused("must not carry an IPv6 zone id")
    try:
        other = parse_url(url)
    except LocationParseError:
        raise UrlRefused("cannot be parsed") from None
    other_host = (other.host or "").strip("[]").lower()
    if other.auth or other_host != host or other.port != port:
        raise UrlRefused(
            f"is read differently by different URL parsers (host '{host}' or '{other_host}'); refused"
        )
    return host, port or DEFAULT_PORTS[scheme], bracketed


def _literal(host: str, bracketed: bool) -> IPAddress | None:
    if bracketed:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UrlRefused(f"has an invalid IPv6 address '{host}'") from None
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        return None


def _check_name(host: str) -> None:
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UrlRefused(f"has an invalid host name '{host}'")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise UrlRefused(
            f"has the host '{host}', a non-standard IPv4 form; write the address as four decimal numbers"
        )


def resolve(host: str, port: int) -> list[tuple]:
    """getaddrinfo's TCP answers for `host` (looked up at call time, so tests can replace it)."""
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)


def address_of(sockaddr: tuple) -> IPAddress:
    address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
    if address.version == 6 and len(sockaddr) > 3 and sockaddr[3]:
        address = ipaddress.IPv6Address(f"{address}%{sockaddr[3]}")
    return address


def address_problem(
    host: str, addresses: list[IPAddress], allow_private: bool, *, literal: bool = False
) -> str | None:
    """Why one of `host`'s addresses may not be reached (all must pass), or None."""
    if not addresses:
        return f"cannot resolve host '{host}'"
    for address in addresses:
        problem = refusal(address, allow_private)
        if problem:
            return problem if literal else f"has the host '{host}', which {problem}"
    return None


def validate_url(url: object, allow_private: bool, *, resolve_host: bool = True) -> Target:
    """The URL as a `Target`, or `UrlRefused` saying why not.

    With `resolve_host`, a host name is looked up now and every address it has must pass;
    the connection checks again when it connects. Credentials and link-local or metadata
    addresses are refused whatever `allow_private` says.
    """
    scheme, parts = _split(url)
    host, port, bracketed = _host_and_port(url, scheme, parts)
    if host.endswith("."):
        host = host[:-1]
    literal = _literal(host, bracketed)
    if literal is None:
        _check_name(host)
        if not allow_private and (host == "localhost" or host.endswith(".localhost")):
            raise UrlRefused(f"points to '{host}' (loopback), not allowed here")
    if literal is not None:
        addresses = [literal]
    elif resolve_host:
        try:
            addresses = [address_of(info[4]) for info in resolve(host, port)]
        except (OSError, UnicodeError):
            raise UrlRefused(f"cannot resolve host '{host}'") from None
    else:
        addresses = []
    problem = (
        address_problem(host, addresses, allow_private, literal=literal is not None) if addresses else None
    )
    if problem:
        raise UrlRefused(problem)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Target(url, scheme, host, port, target, tuple(addresses), literal is not None)

"""urllib3 connections that resolve, check and connect to the checked address.

DNS rebinding: a name that resolved to a public address when the URL was checked can
resolve to 127.0.0.1 a second later. So the connection resolves the name itself when it
connects, checks every address with the policy and opens the socket to one of those very
addresses (no second lookup). `self.host` stays the name, so the Host header, TLS SNI and
the certificate check use it. Works with urllib3 1.26 and 2.x (both connect through
`_new_conn`, and both take `NewConnectionError(conn, message)`).
"""

from __future__ import annotations

import socket
import sys

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from outbound.errors import AddressRefused
from outbound.urls import address_of, address_problem, resolve


class _Checked:
    """Mixin for a urllib3 connection: `allow_private` comes through the pool's conn_kw."""

    allow_private = False

    def __init__(self, *args, allow_private: bool = False, **kwargs):
        self.allow_private = allow_private
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        name = self._dns_host.rstrip(".")
        try:
            infos = resolve(name, self.port)
        except (OSError, UnicodeError) as exc:
            raise NewConnectionError(self, f"Failed to resolve '{name}' ({exc})") from exc
        problem = address_problem(name, [address_of(info[4]) for info in infos], self.allow_private)
        if problem:
            raise AddressRefused(f"refused at connect time: {problem}")
        error: OSError | None = None
        for family, kind, proto, _canonical, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if isinstance(self.timeout, (int, float)):
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
            except TimeoutError as exc:
                sock.close()
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from exc
            except OSError as exc:
                sock.close()
                error = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class CheckedHTTPConnection(_Checked, HTTPConnection):
    pass


class CheckedHTTPSConnection(_Checked, HTTPSConnection):
    pass


class CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


POOLS = {"http": CheckedHTTPConnectionPool, "https": CheckedHTTPSConnectionPool}

"""A scriptable callback receiver on 127.0.0.1, and a guard that keeps tests on loopback.

`Receiver(script)` answers each POST with the next scripted step, then 200: a status, or
`Step(status, headers, delay)`. It records every request (path, headers, raw body) so a
test can check what arrived, or that nothing did.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.servers import LoopbackServer


@dataclass
class Step:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow or hung receiver)


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class Receiver(LoopbackServer):
    def __init__(self, script: list | None = None):
        self.script = [s if isinstance(s, Step) else Step(s) for s in script or []]
        self.calls: list[Received] = []
        self.lock = threading.Lock()
        super().__init__(self._handler(), path="/hooks/training")

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.calls.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    step = receiver.script.pop(0) if receiver.script else Step()
                if step.delay:
                    time.sleep(step.delay)
                reply = b'{"ok": true}' if step.status < 300 else b'{"error": "scripted"}'
                try:
                    self.send_response(step.status)
                    for name, value in step.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:  # the client gave up (timeout) and closed the socket
                    self.close_connection = True

        return Handler


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def guard_loopback(monkeypatch) -> list[tuple]:
    """Every socket connect must go to 127.0.0.1; anything else fails the test before it
    leaves the machine. Returns the list of addresses connected to."""
    connected: list[tuple] = []
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a test tried to connect to {address!r}")
        connected.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return connected


class FakeDns:
    """`socket.getaddrinfo` for made-up names: each name maps to a list of answers, one
    answer (a list of IPs) per lookup in turn, the last repeated. IP literals resolve as
    themselves; any other name fails, so no test ever asks a real resolver."""

    def __init__(self, monkeypatch, names: dict[str, list[list[str]]]):
        self.names = {k: list(v) for k, v in names.items()}
        self.lookups: list[str] = []
        self.real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        host = host.decode() if isinstance(host, bytes) else host
        self.lookups.append(host)
        answers = self.names.get(host)
        if answers is None:
            try:
                socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
            except OSError:
                raise socket.gaierror(socket.EAI_NONAME, f"FakeDns: unknown name {host!r}") from None
            return self.real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        ips = answers.pop(0) if len(answers) > 1 else answers[0]
        result = []
        for ip in ips:
            if ":" in ip:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port or 0, 0, 0)))
            else:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0)))
        return result

"""A scriptable callback receiver on loopback: answers from a script of statuses, can hold
requests until released (a slow or hung receiver), and records every request."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler

from tests.servers import LoopbackServer


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        owner: Receiver = self.server.owner
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        with owner.cond:
            owner.calls.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            owner.cond.notify_all()
        owner.gate.wait(120)
        status = owner.statuses.pop(0) if owner.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


class Receiver(LoopbackServer):
    def __init__(self, port: int = 0, statuses: list[int] | None = None, hold: bool = False):
        self.calls: list[dict] = []
        self.statuses = list(statuses or [])
        self.cond = threading.Condition()
        self.gate = threading.Event()
        if not hold:
            self.gate.set()
        super().__init__(_Handler, path="/callback", port=port)

    def stop(self) -> None:
        self.gate.set()  # a held request answers, so the server can stop
        super().stop()

    def wait(self, count: int = 1, timeout: float = 60) -> list[dict]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.calls) >= count, timeout):
                raise AssertionError(f"expected {count} callbacks, got {len(self.calls)}")
            return list(self.calls)

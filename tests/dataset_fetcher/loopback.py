"""A real dataset endpoint on 127.0.0.1 for tests: pages, auth, latency and scripted failures.

Shared by the fetcher tests, the text-trainer tests and bench/bench_fetcher.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler

from tests.servers import LoopbackServer

DROP = "drop"  # close the connection without answering


class DatasetServer(LoopbackServer):
    """Serves `records` as `POST {"offset", "limit"}` pages.

    `failures[offset]` is a list of what to answer, in turn, before the real page: an HTTP
    status (int), `(status, {header: value})`, or DROP. `always_fail[offset] = status` fails
    every request for that page. `reply` is "list" or a key such as "data". `echo_headers`
    makes scripted failures quote the request headers back, as careless servers do.
    """

    def __init__(
        self,
        records: list,
        *,
        header: tuple[str, str] | None = None,
        latency: float = 0.0,
        reply: str = "list",
        failures: dict | None = None,
        always_fail: dict | None = None,
        raw_pages: dict | None = None,
        echo_headers: bool = False,
    ):
        self.records = records
        self.header = header
        self.latency = latency
        self.reply = reply
        self.failures = {k: list(v) for k, v in (failures or {}).items()}
        self.always_fail = dict(always_fail or {})
        self.raw_pages = dict(raw_pages or {})
        self.echo_headers = echo_headers
        self.requests: list[int] = []
        self.attempts: dict[int, int] = defaultdict(int)
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        super().__init__(self._handler(), path="/v1/ml/datasets/fetch")

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, a kept-alive connection
            # waits for the client's delayed ACK (40 ms) between them. Real servers disable it.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                query = json.loads(self.rfile.read(length) or b"{}")
                offset, limit = int(query["offset"]), int(query["limit"])
                with server.lock:
                    server.requests.append(offset)
                    server.attempts[offset] += 1
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                    scripted = server.failures.get(offset)
                    action = scripted.pop(0) if scripted else None
                try:
                    if server.latency:
                        time.sleep(server.latency)
                    if server.header and self.headers.get(server.header[0]) != server.header[1]:
                        return self._send(401, b'{"message": "missing or wrong api key"}')
                    if action == DROP:
                        self.close_connection = True
                        return
                    if action is not None:
                        status, headers = action if isinstance(action, tuple) else (action, {})
                        body = {"message": "scripted failure"}
                        if server.echo_headers:  # a careless server quoting the request back
                            body["request_headers"] = dict(self.headers)
                        return self._send(status, json.dumps(body).encode(), headers)
                    if offset in server.always_fail:
                        return self._send(server.always_fail[offset], b'{"message": "always failing"}')
                    if offset in server.raw_pages:
                        return self._send(200, server.raw_pages[offset])
                    page = server.records[offset : offset + limit]
                    body = (
                        page if server.reply == "list" else {server.reply: page, "total": len(server.records)}
                    )
                    self._send(200, json.dumps(body).encode())
                finally:
                    with server.lock:
                        server.active -= 1

        return Handler

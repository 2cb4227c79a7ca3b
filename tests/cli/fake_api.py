"""A scripted stand-in for the API on a loopback port, for client behaviour the real server
cannot show on demand: the logs routes' paging shape (`lines`, `offset`, `next_offset`,
`complete`), 503s to retry, redirects to another host, older servers' 200 error bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import LoopbackServer

# (method, path) -> handler(request) -> (status, body, headers)
Handler = Callable[["Request"], tuple[int, Any, dict[str, str]]]


class Request:
    def __init__(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class FakeApi(LoopbackServer):
    def __init__(self):
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Request] = []
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                split = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    self.command,
                    split.path,
                    {k: v[0] for k, v in parse_qs(split.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                owner.requests.append(request)
                handler = owner.routes.get((self.command, split.path))
                if handler is None:
                    status, body, headers = 403, {"message": "Missing Authentication Token"}, {}
                else:
                    status, body, headers = handler(request)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                if not isinstance(body, bytes):
                    self.send_header("Content-Type", "application/json")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        super().__init__(_Handler)

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def reply(self, method: str, path: str, status: int, body: Any, headers: dict | None = None) -> None:
        self.route(method, path, lambda request: (status, body, headers or {}))


class LogBook:
    """A job's log as the logs routes page it; `ended` makes the last page `complete`."""

    def __init__(self, lines: list[str] | None = None):
        self.lines = list(lines or [])
        self.ended = False

    def page(self, offset: int, limit: int | None) -> dict[str, Any]:
        end = len(self.lines) if limit is None else min(len(self.lines), offset + limit)
        chunk = self.lines[offset:end]
        return {
            "lines": chunk,
            "offset": offset,
            "next_offset": end,
            "complete": self.ended and end >= len(self.lines),
        }

    def v15_handler(self, request: Request):
        limit = request.query.get("limit")
        return 200, self.page(int(request.query.get("offset", 0)), int(limit) if limit else None), {}

    def ai_factory_handler(self, request: Request):
        body = request.json()
        return 200, self.page(int(body.get("offset", 0)), body.get("limit")), {}

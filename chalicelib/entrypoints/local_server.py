"""`make run`: the API on the embedded local platform, served by waitress.

The same Chalice app that runs in Lambda is called the way API Gateway calls it: every
HTTP request becomes a REST proxy event (`app(event, context)`), and the proxy response
becomes the HTTP response. waitress is the HTTP server: it parses requests (chunked
bodies included), times out stalled connections (`--channel-timeout`), bounds header and
body sizes and serves requests on a thread pool. Slow clients, which waitress alone lets hold
every connection slot by sending a byte now and then, meet read deadlines
(`--header-timeout`, `--request-timeout`) and are evicted to make room for new connections
(`--connection-limit`, `--client-connection-limit`): see "slow clients" below. Chalice's
own development server does none of that (a stalled connection holds a thread forever, a
chunked body is read as a second request).

Every test runs against this server, so it refuses what API Gateway and Lambda refuse, in
their words (`chalicelib.aws_limits`): a body over 10 MB (413), an event over Lambda's 6 MB
(413 `Request Too Long`), an app call past the 29 s integration timeout (504, while the
call goes on: `--integration-timeout`) and an answer over Lambda's 6 MB (502, logged with
the route and the size). AIFACTORY_RELAX_AWS_LIMITS lifts all but the 10 MB for debugging.

The process prints the base URL and the API key, writes `<home>/url` for the CLI,
settles jobs left over from a previous run, and keeps a background sweep that launches
queued jobs, marks dead ones Failed and hands due callbacks to the outbox.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import errno
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from chalicelib.aws_limits import (
    API_GATEWAY_MAX_REQUEST_BYTES,
    INTEGRATION_TIMEOUT_S,
    INTERNAL_SERVER_ERROR_BODY,
    LAMBDA_MAX_REQUEST_BYTES,
    LAMBDA_MAX_RESPONSE_BYTES,
    RELAX_SETTING,
    REQUEST_TOO_LONG_BODY,
    TIMED_OUT_BODY,
)
from chalicelib.web import envelopes

# The transport's cap on a request body is API Gateway's (10 MB); the app keeps its own,
# stricter one (`chalicelib.web.request_body.MAX_BODY`) and answers it itself, as on AWS.
MAX_BODY = API_GATEWAY_MAX_REQUEST_BYTES
MAX_HEADERS = 100  # request headers; API Gateway allows about as many in its 10 KB
MAX_HEADER_BYTES = 64 * 1024
LAMBDA_TIMEOUT_S = 60  # infra/chalice/config.json's lambda_timeout

log = logging.getLogger("aifactory.server")


def error_body(path: str, status: int, message: str) -> bytes:
    """The API's own envelope (`chalicelib.web.envelopes.error_body`), as the bytes the server sends."""
    return json.dumps(envelopes.error_body(path, message)).encode()


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def _too_long(max_body: int) -> bytes:
    """API Gateway's answer to a body over its 10 MB, measured on AWS: a 413 in plain text,
    before any Lambda runs (not JSON: it comes from the front end)."""
    return f"HTTP content length exceeded {max_body} bytes.".encode()


TOO_LONG_CONTENT_TYPE = "text; charset=utf-8"  # sic: what API Gateway sends with it


class ApiGatewayAdapter:
    """A WSGI application that calls a Chalice app with API Gateway REST proxy events.

    It holds the app to what API Gateway and Lambda allow (`chalicelib.aws_limits`), answered
    in their words, so a route that works here works deployed: a body over 10 MB (`max_body`),
    an event over Lambda's 6 MB (`max_event`), an answer over Lambda's 6 MB (`max_response`)
    and a Lambda slower than API Gateway's 29 s (`integration_timeout`: 504 then, while the
    call goes on in its thread, as the Lambda goes on on AWS). None lifts a limit."""

    def __init__(
        self,
        app,
        *,
        max_body: int = MAX_BODY,
        max_headers: int = MAX_HEADERS,
        max_event: int | None = LAMBDA_MAX_REQUEST_BYTES,
        max_response: int | None = LAMBDA_MAX_RESPONSE_BYTES,
        integration_timeout: float | None = INTEGRATION_TIMEOUT_S,
    ):
        from chalice.local import LocalChalice, RouteMatcher

        # Chalice keeps the current request on the app object; a threaded server needs it
        # per thread. `chalice local` makes the same swap (chalice.local.create_local_server).
        if not isinstance(app, LocalChalice):
            app.__class__ = type("ThreadLocalChalice", (LocalChalice, app.__class__), {})
        self.app = app
        self.matcher = RouteMatcher(list(app.routes))
        self.binary_types = set(app.api.binary_types)
        self.max_body = max_body
        self.max_headers = max_headers
        self.max_event = max_event
        self.max_response = max_response
        self.integration_timeout = integration_timeout

    # --- request -> event -----------------------------------------------------
    @staticmethod
    def _headers(environ: dict[str, Any]) -> dict[str, str]:
        headers = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").lower()] = value
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        return headers

    def event(self, environ: dict[str, Any], path: str, route, body: bytes) -> dict[str, Any]:
        headers = self._headers(environ)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True) or None
        event: dict[str, Any] = {
            "resource": route.route,
            "path": path,
            "httpMethod": environ["REQUEST_METHOD"],
            "headers": headers,
            "multiValueHeaders": {name: [value] for name, value in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
            "multiValueQueryStringParameters": query,
            "pathParameters": route.captured,
            "stageVariables": None,
            "requestContext": {
                "httpMethod": environ["REQUEST_METHOD"],
                "resourcePath": route.route,
                "path": path,
                "requestId": str(uuid.uuid4()),
                "identity": {"sourceIp": environ.get("REMOTE_ADDR", "")},
            },
            "body": None,
            "isBase64Encoded": False,
        }
        if body:
            # API Gateway base64-encodes a body only when its Content-Type is one of the API's
            # binaryMediaTypes; any other body is passed as UTF-8 text, bytes that are not
            # UTF-8 replaced (U+FFFD): a binary upload sent as a form arrives damaged on AWS,
            # and so it does here.
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype in self.binary_types:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
            else:
                event["body"] = body.decode("utf-8", "replace")
        return event

    @staticmethod
    def _gateway_answer(start_response, status: int, body: bytes, error_type: str | None = None):
        """An answer API Gateway makes itself, in its shape (`{"message": ...}`), not the API's."""
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        if error_type:
            headers.append(("x-amzn-ErrorType", error_type))
        start_response(_status_line(status), headers)
        return [body]

    def _call(self, event: dict[str, Any], context, label: str) -> dict[str, Any] | None:
        """The Lambda: `app(event, context)`, or None when it did not answer within the
        integration timeout. It runs in a thread of its own, so the timeout can answer while
        it goes on (a Python thread cannot be stopped; on AWS the Lambda goes on too)."""
        if self.integration_timeout is None:
            return self.app(event, context)
        outcome: dict[str, Any] = {}
        done, lock = threading.Event(), threading.Lock()  # the lock: finished and timed out never both
        started = time.monotonic()

        def lambda_call():
            try:
                outcome["response"] = self.app(event, context)
            except BaseException as exc:
                outcome["error"] = exc
            with lock:
                done.set()
                late = outcome.get("late", False)
            if late:
                log.warning(
                    "%s finished %.1f s after it started; its answer was dropped (504 at %g s)",
                    label,
                    time.monotonic() - started,
                    self.integration_timeout,
                )

        threading.Thread(target=lambda_call, name=f"lambda {label}", daemon=True).start()
        if not done.wait(self.integration_timeout):
            with lock:
                outcome["late"] = not done.is_set()
            if outcome["late"]:
                log.warning(
                    "%s did not answer within API Gateway's %g s integration timeout: 504, "
                    "while it goes on in the background (%s=1 lifts the timeout)",
                    label,
                    self.integration_timeout,
                    RELAX_SETTING,
                )
                return None
        if "error" in outcome:
            raise outcome["error"]
        return outcome["response"]

    # --- WSGI ---------------------------------------------------------------------
    def __call__(self, environ, start_response):
        raw_path = environ.get("PATH_INFO") or "/"
        path = raw_path.encode("latin-1").decode("utf-8", "replace")  # WSGI hands bytes as latin-1

        def error(status: int, message: str, extra: list | None = None):
            body = error_body(path, status, message)
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response(_status_line(status), headers + (extra or []))
            return [body]

        headers_seen = sum(1 for key in environ if key.startswith("HTTP_"))
        if headers_seen > self.max_headers:
            return error(431, f"Too many request headers: at most {self.max_headers}.")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error(400, "Content-Length must be a number.")
        if length > self.max_body:  # waitress refuses it first; kept for any other WSGI server
            data = _too_long(self.max_body)
            start_response(
                _status_line(413),
                [("Content-Type", TOO_LONG_CONTENT_TYPE), ("Content-Length", str(len(data)))],
            )
            return [data]
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            route = self.matcher.match_route(path)
        except ValueError:
            # API Gateway (and `chalice local`) answer an unknown resource this way.
            body = b'{"message": "Missing Authentication Token"}'
            start_response(
                "403 Forbidden",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("x-amzn-ErrorType", "MissingAuthenticationTokenException"),
                ],
            )
            return [body]
        from chalice.local import LambdaContext

        context = LambdaContext("api_handler", 512, max_runtime_ms=LAMBDA_TIMEOUT_S * 1000)
        event = self.event(environ, path, route, body)
        label = f"{environ['REQUEST_METHOD']} {path}"
        if self.max_event is not None and body:
            size = len(json.dumps(event, ensure_ascii=False).encode("utf-8"))
            if size > self.max_event:
                # Lambda refuses the invocation; API Gateway answers it so.
                log.warning(
                    "%s: the Lambda event is %s bytes, over Lambda's %s-byte synchronous limit: "
                    "413 as API Gateway answers (%s=1 lifts it)",
                    label,
                    f"{size:,}",
                    f"{self.max_event:,}",
                    RELAX_SETTING,
                )
                return self._gateway_answer(start_response, 413, REQUEST_TOO_LONG_BODY, "BadRequestException")
        try:
            response = self._call(event, context, label)
        except Exception:
            log.exception("unhandled error for %s %s", environ["REQUEST_METHOD"], path)
            return error(500, "Internal error; the server log has the details.")
        if response is None:
            return self._gateway_answer(start_response, 504, TIMED_OUT_BODY)
        if self.max_response is not None:
            size = self._output_size(response)
            if size > self.max_response:
                log.error(
                    "%s (route %s) answered %s bytes of Lambda proxy output, over Lambda's %s-byte "
                    "synchronous limit: 502 as API Gateway answers, on AWS as here (%s=1 lifts it)",
                    label,
                    route.route,
                    f"{size:,}",
                    f"{self.max_response:,}",
                    RELAX_SETTING,
                )
                return self._gateway_answer(
                    start_response, 502, INTERNAL_SERVER_ERROR_BODY, "InternalServerErrorException"
                )
        return self._respond(response, start_response)

    @staticmethod
    def _output_size(response: Any) -> int:
        """The Lambda's proxy output as its Python runtime sends it (`json.dumps`): the body,
        base64 when binary, the headers and the rest."""
        try:
            return len(json.dumps(response).encode("utf-8"))
        except (TypeError, ValueError):
            return 0  # not JSON: `_respond` turns it into what it can

    @staticmethod
    def _respond(response: dict[str, Any], start_response):
        body = response.get("body")
        if body is None:
            data = b""
        elif response.get("isBase64Encoded"):
            try:
                data = base64.b64decode(body)
            except (binascii.Error, TypeError):
                data = b""
        else:
            data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        headers = []
        given = {name.lower() for name in (response.get("headers") or {})}
        given |= {name.lower() for name in (response.get("multiValueHeaders") or {})}
        if "content-type" not in given:
            headers.append(("Content-Type", "application/json"))  # API Gateway's default
        for name, value in (response.get("headers") or {}).items():
            if name.lower() != "content-length":
                headers.append((name, str(value)))
        for name, values in (response.get("multiValueHeaders") or {}).items():
            if name.lower() != "content-length":
                headers.extend((name, str(v)) for v in values)
        headers.append(("Content-Length", str(len(data))))
        start_response(_status_line(int(response["statusCode"])), headers)
        return [data]


def _envelope_errors():
    """waitress's own 400/413/431 answers, written in the API's JSON envelope."""
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class EnvelopeErrorTask(ErrorTask):
        def execute(self):
            error = self.request.error
            path = getattr(self.request, "path", "") or ""
            if error.code == 413:  # a body over API Gateway's 10 MB: its answer, not the API's
                body = _too_long(self.channel.adj.max_request_body_size)
                self.status = "413 Request Entity Too Large"
                self.response_headers.append(("Content-Type", TOO_LONG_CONTENT_TYPE))
                self.set_close_on_finish()
                self.content_length = len(body)
                self.write(body)
                return
            body = error_body(path, error.code, f"{error.reason}: {error.body}")
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class EnvelopeChannel(HTTPChannel):
        error_task_class = EnvelopeErrorTask

    return EnvelopeChannel


# --- slow clients ---------------------------------------------------------------------------
# waitress closes a connection only after `channel_timeout` of silence, and stops accepting at
# `connection_limit`: a client sending one byte every few seconds on each of 200 connections
# kept the API unanswerable for as long as it liked (issue 16). Two rules end that:
#
# - a deadline from a request's first byte until it is fully read (`header_timeout` for the
#   request line and headers, `request_timeout` for the whole request): past it the
#   connection is answered 408 in the API's envelope and closed, however busy it keeps;
# - a full server (`connection_limit`) or a client address at its cap
#   (`client_connection_limit`) makes room for a new connection by evicting the one stuck
#   longest mid-request, else the longest idle one; a connection whose request is being
#   served, or whose answer is still being sent, is never evicted. Only when nothing is
#   evictable is a new connection refused (503) or left in the listen backlog.
#
# Every check runs on waitress's event-loop thread, which alone reads sockets and starts
# requests, so a channel seen with no request in service cannot start one meanwhile.
HEADER_TIMEOUT_S = 10.0  # request line and headers, from the request's first byte
REQUEST_TIMEOUT_S = 120.0  # the whole request: 10 MB at about 85 KB/s, our 1 MiB at 9 KB/s
CONNECTION_LIMIT = 200
CLIENT_CONNECTION_LIMIT = 100  # per client address; 0: no cap
_EXPIRED_GRACE_S = 5.0  # a 408 the client does not read is given up on after this
_REPORT_EVERY_S = 10.0  # at most one log line this often about slow clients


def _raw_response(status: int, path: str, message: str) -> bytes:
    body = error_body(path, status, message)
    head = (
        f"HTTP/1.1 {_status_line(status)}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nServer: ai-factory\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _request_path(request) -> str:
    """The path of a request still being read: parsed once its headers are, else sniffed from
    its request line (so a 408 for a `/api/...` path is in the v1.5 envelope)."""
    if getattr(request, "headers_finished", False):
        return getattr(request, "path", "") or ""
    first = getattr(request, "header_plus", b"").lstrip().split(b"\r\n", 1)[0].split(b" ")
    if len(first) < 2:
        return ""
    target = first[1].split(b"?", 1)[0]
    if target.startswith((b"http://", b"https://")):
        target = b"/" + target.split(b"/", 3)[-1] if target.count(b"/") >= 3 else b"/"
    return target.decode("utf-8", "replace")


def _client_host(addr) -> str:
    return addr[0] if isinstance(addr, tuple) and addr else str(addr or "")


def _slow_client_classes():
    """(server mixin, channel class): waitress's server and channel with read deadlines,
    per-address caps and eviction of stuck connections."""
    from waitress.server import BaseWSGIServer

    class DeadlineChannel(_envelope_errors()):
        request_started: float | None = None  # monotonic time of the partial request's first byte
        expired_at: float | None = None  # when a 408 was queued for this connection

        def received(self, data):
            before = self.request
            result = super().received(data)
            if self.request is None:
                self.request_started = None
            elif self.request is not before:  # a new request began in `data`
                self.request_started = time.monotonic()
            return result

        def service(self):
            super().service()
            if self.request is not None:  # pipelined behind the one just served: its clock starts now
                self.request_started = time.monotonic()

        def in_service(self) -> bool:
            """A request being served or queued, or an answer still being sent: never evicted."""
            return bool(self.requests or self.total_outbufs_len or self.will_close or self.close_when_flushed)

        def stuck_since(self) -> float | None:
            """When the request being read began, if one is (and none is being served)."""
            if self.request is None or self.in_service():
                return None
            return self.request_started

        def check_deadline(self, now: float) -> bool:
            """Queues a 408 and closes once a request has taken too long to arrive."""
            if self.expired_at is not None:
                if now - self.expired_at > _EXPIRED_GRACE_S:
                    self.will_close = True  # the client does not read its 408 either
                return False
            started = self.stuck_since()
            if started is None:
                return False
            server = self.server
            age = now - started
            if not self.request.headers_finished and age > server.header_timeout:
                message = f"Request Timeout: headers not received within {server.header_timeout:g} s"
            elif age > server.request_timeout:
                message = f"Request Timeout: request not received within {server.request_timeout:g} s"
            else:
                return False
            payload = _raw_response(408, _request_path(self.request), message)
            with self.outbuf_lock:
                self.outbufs[-1].append(payload)
                self.current_outbuf_count += len(payload)
                self.total_outbufs_len += len(payload)
            self.close_when_flushed = True  # handle_write sends it, then closes
            self.expired_at = now
            return True

        def evict(self) -> None:
            """Closed to make room: a best-effort 503, then the socket is closed."""
            payload = _raw_response(
                503, _request_path(self.request) if self.request else "", "Server busy: connection closed"
            )
            try:
                self.socket.send(payload)
            except OSError:
                pass
            if self.request is not None:
                self.request.close()  # a body spooled to a temporary file
            self.handle_close()

    class SlowClientGuard:
        """Mixed into the server waitress created (class swapped after construction)."""

        def init_guard(self, header_timeout, request_timeout, client_connection_limit):
            self.header_timeout = float(header_timeout)
            self.request_timeout = float(request_timeout)
            self.client_connection_limit = int(client_connection_limit)
            self.slow_counts = {"timed out": 0, "evicted": 0, "refused": 0}
            self._reported = dict(self.slow_counts)
            self._next_report = 0.0

        def victim(self, host: str | None = None):
            """The connection to evict: stuck longest mid-request, else idle longest."""
            best, best_key = None, None
            for channel in self.active_channels.values():
                if host is not None and _client_host(channel.addr) != host:
                    continue
                if not isinstance(channel, DeadlineChannel) or channel.in_service():
                    continue
                started = channel.stuck_since()
                key = (0, started) if started is not None else (1, channel.last_activity)
                if best_key is None or key < best_key:
                    best, best_key = channel, key
            return best

        def readable(self):
            now = time.time()
            if now >= self.next_channel_cleanup:
                self.next_channel_cleanup = now + self.adj.cleanup_interval
                self.maintenance(now)
            if not self.accepting:
                return False
            full = len(self.active_channels) >= self.adj.connection_limit
            # Full with nothing to evict: new connections wait in the listen backlog.
            waiting = full and self.victim() is None
            if waiting != self.in_connection_overflow:
                self.in_connection_overflow = waiting
                if waiting:
                    log.warning(
                        "all %s connections are being served: new ones wait", len(self.active_channels)
                    )
                else:
                    log.info("accepting connections again")
            return not waiting

        def handle_accept(self):
            try:
                accepted = self.accept()
                if accepted is None:
                    return
                conn, addr = accepted
                self.set_socket_options(conn)
            except OSError:
                if self.adj.log_socket_errors:
                    self.logger.warning("server accept() threw an exception", exc_info=True)
                return
            addr = self.fix_addr(addr)
            if not self.make_room(_client_host(addr)):
                self.slow_counts["refused"] += 1
                try:
                    conn.setblocking(False)
                    conn.send(_raw_response(503, "", "Server busy: too many connections"))
                except OSError:
                    pass
                conn.close()
                return
            self.channel_class(self, conn, addr, self.adj, map=self._map)

        def make_room(self, host: str) -> bool:
            cap = self.client_connection_limit
            if cap > 0:
                mine = sum(1 for c in self.active_channels.values() if _client_host(c.addr) == host)
                if mine >= cap:
                    victim = self.victim(host)
                    if victim is None:
                        return False
                    self.slow_counts["evicted"] += 1
                    victim.evict()
            while len(self.active_channels) >= self.adj.connection_limit:
                victim = self.victim()
                if victim is None:
                    return False
                self.slow_counts["evicted"] += 1
                victim.evict()
            return True

        def maintenance(self, now):
            super().maintenance(now)  # waitress: idle past channel_timeout
            mono = time.monotonic()
            for channel in list(self.active_channels.values()):
                if isinstance(channel, DeadlineChannel) and channel.check_deadline(mono):
                    self.slow_counts["timed out"] += 1
            if self.slow_counts != self._reported and mono >= self._next_report:
                done = ", ".join(f"{self.slow_counts[k] - self._reported[k]} {k}" for k in self.slow_counts)
                log.warning("slow clients: connections %s since the last report", done)
                self._reported = dict(self.slow_counts)
                self._next_report = mono + _REPORT_EVERY_S

    return SlowClientGuard, DeadlineChannel, BaseWSGIServer


def _raise_open_file_limit(needed: int) -> None:
    """Every connection is a file descriptor: the soft limit (often 1024) is raised to the hard one."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < needed:
            target = hard if hard != resource.RLIM_INFINITY else max(needed, 65536)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        log.warning("could not raise the open-file limit to %s", needed)


def create_server(
    app,
    host: str,
    port: int,
    *,
    threads: int = 8,
    channel_timeout: int = 30,
    header_timeout: float = HEADER_TIMEOUT_S,
    request_timeout: float = REQUEST_TIMEOUT_S,
    connection_limit: int = CONNECTION_LIMIT,
    client_connection_limit: int = CLIENT_CONNECTION_LIMIT,
    integration_timeout: float | None = INTEGRATION_TIMEOUT_S,
    relax_aws_limits: bool = False,
):
    """A waitress server for `app`; raises OSError when the port is taken.

    `channel_timeout`: seconds a connection may stay silent. `header_timeout` and
    `request_timeout`: seconds from a request's first byte until its headers, and all of it,
    are read (408 past them). `connection_limit` open connections in all and
    `client_connection_limit` per client address (0: no cap); reaching either evicts the
    connection stuck longest rather than refusing the new one.

    AWS's limits (`chalicelib.aws_limits`) hold unless `relax_aws_limits`: `integration_timeout`
    seconds for the app to answer (API Gateway's 29 s; a test passes a short one; None: no
    limit), Lambda's 6 MB event and answer; the 10 MB request cap holds either way."""
    from waitress.server import create_server as waitress_server

    _raise_open_file_limit(connection_limit + 256)
    if relax_aws_limits:
        adapter = ApiGatewayAdapter(app, max_event=None, max_response=None, integration_timeout=None)
    else:
        adapter = ApiGatewayAdapter(app, integration_timeout=integration_timeout)
    server = waitress_server(
        adapter,
        host=host,
        port=port,
        threads=threads,
        channel_timeout=channel_timeout,
        cleanup_interval=1,  # also checks the read deadlines: once a second
        max_request_body_size=MAX_BODY,
        max_request_header_size=MAX_HEADER_BYTES,
        connection_limit=connection_limit,
        asyncore_use_poll=True,  # select() fails past descriptor 1024
        ident="ai-factory",
        clear_untrusted_proxy_headers=True,
    )
    guard, channel_class, base = _slow_client_classes()
    # Several listening sockets (a name with IPv4 and IPv6 addresses) come as one wrapper.
    listeners = (
        [server] if isinstance(server, base) else [d for d in server.map.values() if isinstance(d, base)]
    )
    for listener in listeners:
        listener.__class__ = type(f"Guarded{type(listener).__name__}", (guard, type(listener)), {})
        listener.init_guard(header_timeout, request_timeout, client_connection_limit)
        listener.channel_class = channel_class
    return server


DISK_BUDGET_INTERVAL_S = 60.0  # AIFACTORY_DISK_BUDGET_GB is checked this often


def sweep_forever(stop: threading.Event, interval: float, outbox, narrator) -> None:
    """Launches queued jobs, settles dead ones and hands due callbacks to the outbox's
    workers: the sweep never waits on a callback receiver."""
    from chalicelib.wiring import adapters

    sweep_log = logging.getLogger("aifactory.sweep")
    next_budget_check = 0.0
    while not stop.wait(interval):
        try:
            adapters().platform.recover()
        except Exception:
            sweep_log.exception("platform sweep failed")
        try:
            from chalicelib.services import events

            events.launch_queued(adapters())  # jobs that waited for capacity
        except Exception:
            sweep_log.exception("capacity queue sweep failed")
        try:
            if adapters().hosting is not None:
                adapters().hosting.recover()  # restarts model servers that died
        except Exception:
            sweep_log.exception("hosting sweep failed")
        try:
            outbox.submit_due()
        except Exception:
            sweep_log.exception("callback sweep failed")
        try:
            narrator.poll(adapters())
        except Exception:
            sweep_log.exception("job event log failed")
        if time.monotonic() >= next_budget_check:  # sizing every job's files: once a minute at most
            next_budget_check = time.monotonic() + DISK_BUDGET_INTERVAL_S
            try:
                from chalicelib import settings
                from chalicelib.v15 import disk_space

                budget = settings.current().disk_budget_gb
                if budget > 0:
                    disk_space.enforce_budget(adapters(), int(budget * 1e9))
            except Exception:
                sweep_log.exception("disk budget sweep failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--sweep-interval", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=8, help="requests served at once")
    parser.add_argument(
        "--channel-timeout", type=int, default=30, help="seconds a connection may stay silent"
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=HEADER_TIMEOUT_S,
        help="seconds from a request's first byte until its headers are read (then 408)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=REQUEST_TIMEOUT_S,
        help="seconds from a request's first byte until all of it, body included, is read (then 408)",
    )
    parser.add_argument(
        "--connection-limit", type=int, default=CONNECTION_LIMIT, help="open connections in all"
    )
    parser.add_argument(
        "--integration-timeout",
        type=float,
        default=INTEGRATION_TIMEOUT_S,
        help="seconds a request's app call may take before 504, as API Gateway answers (0: no limit)",
    )
    parser.add_argument(
        "--client-connection-limit",
        type=int,
        default=CLIENT_CONNECTION_LIMIT,
        help="open connections per client address (0: no cap)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("AIFACTORY_STAGE", "local")

    from chalicelib import settings
    from chalicelib.adapters.local.source_tree import REPO_ROOT
    from chalicelib.services.job_events import JobEventLog
    from chalicelib.services.outbox import Outbox
    from chalicelib.wiring import adapters

    sys.path.insert(0, str(REPO_ROOT))
    from app import app

    relaxed = settings.current().relax_aws_limits
    if relaxed:
        log.warning(
            "%s is set: API Gateway's timeout and the 6 MB Lambda and InvokeEndpoint limits are lifted; "
            "what works here may fail on AWS",
            RELAX_SETTING,
        )
    try:
        server = create_server(
            app,
            args.host,
            args.port,
            threads=args.threads,
            channel_timeout=args.channel_timeout,
            header_timeout=args.header_timeout,
            request_timeout=args.request_timeout,
            connection_limit=args.connection_limit,
            client_connection_limit=args.client_connection_limit,
            integration_timeout=args.integration_timeout or None,
            relax_aws_limits=relaxed,
        )
    except OSError as exc:
        why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
        print(
            f"aifactory: port {args.port} on {args.host} {why}; pick another with PORT=<n> make run",
            file=sys.stderr,
        )
        return 1
    port = server.effective_port
    os.environ.setdefault("AIFACTORY_PUBLIC_URL", f"http://{args.host}:{port}")
    settings.reset()
    adapters().platform.recover()
    stop = threading.Event()
    outbox = Outbox(adapters)
    narrator = JobEventLog(logging.getLogger("aifactory.jobs").info)  # one console line per job event
    narrator.poll(adapters())  # what existed before this start is remembered, not replayed
    threading.Thread(
        target=sweep_forever, args=(stop, args.sweep_interval, outbox, narrator), daemon=True
    ).start()

    def shutdown(signum, frame):
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    config = settings.current()
    config.home.mkdir(parents=True, exist_ok=True)
    try:
        (config.home / "url").write_text(config.public_url + "\n")  # where the CLI finds this server
    except OSError as exc:  # a full disk: the API still serves reads (the CLI takes --url)
        log.warning(
            "%s/url not written (%s); point the CLI at %s with --url", config.home, exc, config.public_url
        )
    print(f"AI Factory API (stage local) on {config.public_url}", flush=True)
    # A key the user set is theirs already and stays out of the console; a generated one is shown once here.
    shown = "from AIFACTORY_API_KEY" if config.api_key_env else config.api_key
    print(f"API key: {shown}", flush=True)
    print(f"State: {config.home}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.close()
        outbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

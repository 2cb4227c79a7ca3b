"""`make run`: the API on the embedded local platform, served by waitress.

The same Chalice app that runs in Lambda is called the way API Gateway calls it: every
HTTP request becomes a REST proxy event (`app(event, context)`), and the proxy response
becomes the HTTP response. waitress is the HTTP server: it parses requests (chunked
bodies included), times out stalled connections (`--channel-timeout`), bounds header and
body sizes and serves requests on a thread pool. Chalice's own development server does
none of that (a stalled connection holds a thread forever, a chunked body is read as a
second request).

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
import uuid
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from chalicelib.web.request_body import MAX_BODY

MAX_HEADERS = 100  # request headers; API Gateway allows about as many in its 10 KB
MAX_HEADER_BYTES = 64 * 1024
LAMBDA_TIMEOUT_S = 60  # infra/chalice/config.json's lambda_timeout

log = logging.getLogger("aifactory.server")


def error_body(path: str, status: int, message: str) -> bytes:
    """The API's own envelope: v1.5 paths answer `{"result": "Error"}`, the rest AI Factory's."""
    if path.startswith("/api/"):
        return json.dumps({"result": "Error", "message": message}).encode()
    return json.dumps({"status": "error", "message": message}).encode()


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


class ApiGatewayAdapter:
    """A WSGI application that calls a Chalice app with API Gateway REST proxy events."""

    def __init__(self, app, *, max_body: int = MAX_BODY, max_headers: int = MAX_HEADERS):
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
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            try:
                if ctype in self.binary_types:
                    raise UnicodeDecodeError("utf-8", b"", 0, 1, "binary type")
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        return event

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
        if length > self.max_body:
            return error(413, f"Request body too large: at most {self.max_body} bytes.")
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
        try:
            response = self.app(self.event(environ, path, route, body), context)
        except Exception:  # noqa: BLE001 - a bug answers 500 in the envelope, never a traceback
            log.exception("unhandled error for %s %s", environ["REQUEST_METHOD"], path)
            return error(500, "Internal error; the server log has the details.")
        return self._respond(response, start_response)

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
            body = error_body(path, error.code, f"{error.reason}: {error.body}")
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class EnvelopeChannel(HTTPChannel):
        error_task_class = EnvelopeErrorTask

    return EnvelopeChannel


def create_server(app, host: str, port: int, *, threads: int = 8, channel_timeout: int = 30):
    """A waitress server for `app`; raises OSError when the port is taken."""
    from waitress.server import create_server as waitress_server

    server = waitress_server(
        ApiGatewayAdapter(app),
        host=host,
        port=port,
        threads=threads,
        channel_timeout=channel_timeout,
        cleanup_interval=max(1, min(30, channel_timeout)),
        max_request_body_size=MAX_BODY,
        max_request_header_size=MAX_HEADER_BYTES,
        connection_limit=200,
        ident="ai-factory",
        clear_untrusted_proxy_headers=True,
    )
    server.channel_class = _envelope_errors()
    return server


def sweep_forever(stop: threading.Event, interval: float, outbox, narrator) -> None:
    """Launches queued jobs, settles dead ones and hands due callbacks to the outbox's
    workers: the sweep never waits on a callback receiver."""
    from chalicelib.wiring import services

    sweep_log = logging.getLogger("aifactory.sweep")
    while not stop.wait(interval):
        try:
            services().platform.recover()
        except Exception:  # noqa: BLE001 - the sweep must outlive a bad job directory
            sweep_log.exception("platform sweep failed")
        try:
            from chalicelib.services import events

            events.launch_queued(services())  # jobs that waited for capacity
        except Exception:  # noqa: BLE001 - nor a job that cannot start
            sweep_log.exception("capacity queue sweep failed")
        try:
            if services().hosting is not None:
                services().hosting.recover()  # restarts model servers that died
        except Exception:  # noqa: BLE001 - nor a bad deployment directory
            sweep_log.exception("hosting sweep failed")
        try:
            outbox.submit_due()
        except Exception:  # noqa: BLE001 - nor a bad job record
            sweep_log.exception("callback sweep failed")
        try:
            narrator.poll(services())
        except Exception:  # noqa: BLE001 - telling is never worth stopping the sweep
            sweep_log.exception("job event log failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--sweep-interval", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=8, help="requests served at once")
    parser.add_argument(
        "--channel-timeout", type=int, default=30, help="seconds a connection may stay silent"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("AIFACTORY_STAGE", "local")

    from chalicelib import settings
    from chalicelib.adapters.local.source_tree import REPO_ROOT
    from chalicelib.services.job_events import JobEventLog
    from chalicelib.services.outbox import Outbox
    from chalicelib.wiring import services

    sys.path.insert(0, str(REPO_ROOT))
    from app import app

    try:
        server = create_server(
            app, args.host, args.port, threads=args.threads, channel_timeout=args.channel_timeout
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
    services().platform.recover()
    stop = threading.Event()
    outbox = Outbox(services)
    narrator = JobEventLog(logging.getLogger("aifactory.jobs").info)  # one console line per job event
    narrator.poll(services())  # what existed before this start is remembered, not replayed
    threading.Thread(
        target=sweep_forever, args=(stop, args.sweep_interval, outbox, narrator), daemon=True
    ).start()

    def shutdown(signum, frame):  # noqa: ARG001
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    config = settings.current()
    config.home.mkdir(parents=True, exist_ok=True)
    (config.home / "url").write_text(config.public_url + "\n")  # where the CLI finds this server
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

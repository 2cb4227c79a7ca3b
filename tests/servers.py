"""Loopback servers the tests start: `LoopbackServer`, the one in-process HTTP server every
fake endpoint builds on; a callback receiver; and the API itself as a real process (`make
run`'s server) on a free port. The dataset endpoint is
`tests.dataset_fetcher.loopback.DatasetServer`."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TAG_WORDS = {
    "O": ["the", "a", "to", "of", "and", "is", "on", "for", "with", "at"],
    "B-LOC": ["paris", "hanoi", "tokyo", "berlin", "lima", "oslo", "cairo", "delhi", "rome", "quito"],
    "B-PER": ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"],
    "B-ORG": [
        "acme",
        "globex",
        "initech",
        "umbrella",
        "hooli",
        "stark",
        "wayne",
        "wonka",
        "tyrell",
        "cyberdyne",
    ],
}
TOPIC_WORDS = {
    "sports": ["goal", "match", "team", "score", "league", "coach", "player", "win"],
    "finance": ["stock", "market", "bank", "rate", "profit", "loss", "invest", "fund"],
    "weather": ["rain", "sun", "storm", "cloud", "wind", "snow", "forecast", "cold"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tagging_records(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    tags = list(TAG_WORDS)
    records = []
    for _ in range(count):
        chosen = [rng.choice(tags) for _ in range(rng.randint(4, 9))]
        records.append({"tokens": [rng.choice(TAG_WORDS[t]) for t in chosen], "tags": chosen})
    return records


def topic_records(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        label = rng.choice(list(TOPIC_WORDS))
        words = [rng.choice(TOPIC_WORDS[label]) for _ in range(rng.randint(4, 8))]
        records.append({"text": " ".join(words), "label": label})
    return records


class LoopbackServer:
    """An in-process HTTP server on 127.0.0.1 (a free port unless `port` is given), served by a
    daemon thread for the `with` block: every fake endpoint the tests talk to is one of these,
    so binding, the shutdown poll and closing live in one place.

    `handler_cls` reaches the server's state through `self.server.owner`; `path` ends `url`.
    The socket is bound at construction, so a test may wrap it (TLS) before `start`."""

    def __init__(self, handler_cls: type[BaseHTTPRequestHandler], path: str = "", port: int = 0):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler_cls)
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{path}"
        # A short poll interval: `shutdown` waits for the serving loop's next look.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _CallbackHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        server: CallbackServer = self.server.owner
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length))
        with server.cond:
            server.calls.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            server.cond.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


class CallbackServer(LoopbackServer):
    def __init__(self):
        super().__init__(_CallbackHandler)
        self.calls: list[dict] = []
        self.cond = threading.Condition()

    def wait(self, count: int = 1, timeout: float = 240) -> list[dict]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.calls) >= count, timeout):
                raise AssertionError(f"expected {count} callbacks, got {len(self.calls)} in {timeout}s")
            return list(self.calls)


class ApiServer:
    """`python -m chalicelib.entrypoints.local_server` as a real process on a free port."""

    def __init__(
        self,
        home: Path,
        api_key: str = "test-api-key",
        extra_env: dict | None = None,
        args: list[str] | None = None,
        prefix: list[str] | None = None,
    ):
        self.home, self.api_key = home, api_key
        self.args = list(args or [])
        self.prefix = list(prefix or [])  # runs the server under it, e.g. `unshare --mount ...`
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AIFACTORY_STAGE": "local",
            "AIFACTORY_HOME": str(home),
            "AIFACTORY_API_KEY": api_key,
            "AIFACTORY_DOCKER": "0",
            "AIFACTORY_STOP_GRACE_SECONDS": "30",
            **(extra_env or {}),
        }
        self.env.pop("AIFACTORY_PUBLIC_URL", None)
        self.proc: subprocess.Popen | None = None

    def start(self) -> ApiServer:
        log = open(self.home.parent / f"api-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "chalicelib.entrypoints.local_server",
                "--port",
                str(self.port),
                "--sweep-interval",
                "0.5",
                *self.args,
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                self.call("GET", "/api/version")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError("API server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def kill_jobs(self) -> None:
        """Runners are detached on purpose (they outlive the API); a test must not leave them behind."""
        for state_file in self.home.glob("training/*/state.json"):
            state = json.loads(state_file.read_text())
            for pid in (state.get("runner_pid"), state.get("trainer_pid")):
                if pid:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass

    def call(
        self,
        method: str,
        path: str,
        body=None,
        form: dict | None = None,
        key: str | None = None,
        raw: bool = False,
    ):
        headers = {"x-api-key": self.api_key if key is None else key, "Accept": "*/*"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            from urllib.parse import urlencode

            data = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            payload, status = exc.read(), exc.code
        if raw:
            return status, payload
        try:
            return status, json.loads(payload)
        except json.JSONDecodeError:
            return status, payload.decode()

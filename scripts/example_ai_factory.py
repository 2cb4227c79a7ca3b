"""`make example-ai-factory`: the AI Factory API's own example, end to end on this machine.

Starts a loopback dataset endpoint (slot-tagging records, paged as docs/contracts.md says)
and a callback receiver, starts the API on the local platform in a temporary home (or uses
the one `make run` started, with `--use-running`), submits the spec's create_training_job
payload (smaller steps, so it ends in a minute), follows the job and prints the callback.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASET_KEY = "example-dataset-key"
CALLBACK_KEY = "example-callback-key"
WORDS = {
    "O": ["the", "a", "to", "from", "on", "please", "book", "me", "flight", "for"],
    "B-city": ["paris", "london", "tokyo", "hanoi", "berlin", "lima"],
    "B-date": ["monday", "tuesday", "friday", "today", "tomorrow"],
}


def records(count: int) -> list[dict]:
    rng = random.Random(7)
    found = []
    for _ in range(count):
        tags = rng.choices(list(WORDS), weights=[0.6, 0.2, 0.2], k=rng.randint(4, 9))
        found.append({"tokens": [rng.choice(WORDS[t]) for t in tags], "tags": tags})
    return found


def serve(handler) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def dataset_handler(data: list[dict]):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            if self.headers.get("x-api-key") != DATASET_KEY:
                self.send_error(403)
                return
            asked = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            page = data[asked["offset"] : asked["offset"] + asked["limit"]]
            body = json.dumps({"data": page}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def callback_handler(received: queue.Queue):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            received.put(
                {"headers": {k: v for k, v in self.headers.items() if k.lower() != "x-api-key"}, "body": body}
            )
            self.send_response(200)
            self.end_headers()

    return Handler


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base: str, key: str, path: str, payload: dict) -> dict:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(payload).encode(),
        headers={"x-api-key": key, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def start_api(home: Path) -> tuple[subprocess.Popen, str, str]:
    port, key = free_port(), "example-api-key"
    env = {**os.environ, "AIFACTORY_STAGE": "local", "AIFACTORY_HOME": str(home), "AIFACTORY_API_KEY": key}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.entrypoints.local_server", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(
                urllib.request.Request(base + "/api/version", headers={"x-api-key": key}), timeout=1
            )
            return proc, base, key
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the API did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-running", action="store_true", help="use the API `make run` started")
    args = parser.parse_args()
    received: queue.Queue = queue.Queue()
    dataset = serve(dataset_handler(records(400)))
    receiver = serve(callback_handler(received))
    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.use_running:  # where the CLI looks: AIFACTORY_URL/_API_KEY, then `make run`'s home
            os.environ.setdefault("AIFACTORY_HOME", str(REPO / ".aifactory"))
            sys.path.insert(0, str(REPO))
            from aifactory import config

            target = config.resolve()
            if not target.api_key:
                raise SystemExit(
                    "--use-running: no API key found; start the API with `make run` in this directory "
                    "(or set AIFACTORY_URL and AIFACTORY_API_KEY)"
                )
            base, key = target.url, target.api_key
            print(f"using the API at {base} ({target.url_source})", flush=True)
        else:
            proc, base, key = start_api(Path(tmp) / "home")
        try:
            payload = json.loads((REPO / "scripts" / "example_payload.json").read_text())
            payload["callback_url"]["url"] = f"http://127.0.0.1:{receiver.server_port}/callback"
            payload["callback_url"]["headers"] = {"x-api-key": CALLBACK_KEY}
            payload["dataset_endpoint"]["url"] = f"http://127.0.0.1:{dataset.server_port}/fetch"
            payload["dataset_endpoint"]["headers"] = {"x-api-key": DATASET_KEY}
            created = call(base, key, "/create_training_job", payload)
            print("create_training_job ->", json.dumps(created))
            name = created["job_name"]
            last = None
            while received.empty():
                status = call(base, key, "/status", {"job_name": name})
                line = f"{status['status']} {json.dumps(status.get('progress', {}))}"
                if line != last:
                    print("status ->", line, flush=True)
                    last = line
                time.sleep(1)
            print("callback received:")
            print(json.dumps(received.get(), indent=2))
            if not args.use_running:
                print(
                    "this job ran on a temporary API that stops now; to see it in the dashboard, "
                    "start the API with `make run` and run `make example-ai-factory ARGS=--use-running`"
                )
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)
            dataset.shutdown()
            receiver.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

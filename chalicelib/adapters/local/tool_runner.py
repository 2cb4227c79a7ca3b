"""ToolRunner as a child process: `python -m trainer.tools`, the API process never imports torch.

`start` returns at once: a detached supervisor (this module run as `python -m`, in its own
session, so it outlives the request and the API's own 29 s timeout) runs the tool child
under the tool's timeout and writes its answer whole (renamed into place) to the result
key's file in the artifact directory, a failure (crash, timeout, garbage) as a `failed`
answer, so the API reading that key always learns how it ended. The request reaches the
supervisor through an unlinked temporary file, never a pipe the API would wait on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from chalicelib.adapters.local.source_tree import TRAINER_CODE, container_env
from chalicelib.errors import Unavailable

SUPERVISOR = "chalicelib.adapters.local.tool_runner"


class LocalToolRunner:
    """ports.ToolRunner on this machine. `artifacts`: the DirectoryArtifactStore whose keys
    `start` writes answers under; `python`: the interpreter the tool child runs (the test
    harness injects a cold start by naming a wrapper that sleeps, then execs Python)."""

    def __init__(self, artifacts=None, python: str | None = None, timeout: float = 300.0):
        self.artifacts = artifacts
        self.python = python or sys.executable
        self.timeout_s = float(timeout)

    def start(self, request: dict[str, Any], result_key: str) -> None:
        if self.artifacts is None:
            raise Unavailable("The local tool runner has no artifact directory to write answers to.")
        result = self.artifacts.path(result_key)
        command = [
            sys.executable,
            "-m",
            SUPERVISOR,
            "--result",
            str(result),
            "--python",
            self.python,
            "--timeout",
            repr(self.timeout_s),
        ]
        with tempfile.TemporaryFile() as stdin:
            stdin.write(json.dumps(request).encode())
            stdin.seek(0)
            try:
                proc = subprocess.Popen(
                    command,
                    stdin=stdin,
                    stdout=subprocess.DEVNULL,
                    env=container_env(TRAINER_CODE),  # no key: it needs none
                    start_new_session=True,  # the server's signals and its request's end do not reach it
                    close_fds=True,
                )
            except OSError as exc:
                raise Unavailable(f"The {request.get('tool')} tool could not be started: {exc}") from None
        # Reaped when it ends (no zombie); it stays this process's child, so a sweep of the
        # API's descendants (tests/hardening/test_faults.py) still sees it and its tool.
        threading.Thread(target=proc.wait, name=f"tool {request.get('tool')}", daemon=True).start()

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """The tool's answer, waited for (the supervisor's way, and the full-disk fallback)."""
        env = container_env(TRAINER_CODE)
        env["MPLBACKEND"] = "Agg"
        try:
            done = subprocess.run(
                [self.python, "-m", "trainer.tools"],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                env=env,
                timeout=self.timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(
                f"The {request.get('tool')} tool took longer than {self.timeout_s:.0f} s."
            ) from None
        if done.returncode != 0 or not done.stdout.strip():
            tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise Unavailable(f"The {request.get('tool')} tool failed: {tail[0]}")
        return json.loads(done.stdout)


def supervise(argv: list[str] | None = None) -> int:
    """The detached supervisor: the request on stdin, the answer to `--result`, always."""
    from chalicelib.errors import DomainError
    from contracts import atomic, tools

    parser = argparse.ArgumentParser(prog=f"python -m {SUPERVISOR}")
    parser.add_argument("--result", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    try:
        request = json.load(sys.stdin)
        answer = LocalToolRunner(python=args.python, timeout=args.timeout).run(request)
        if not isinstance(answer, dict):
            answer = tools.failed(503, f"The tool answered {type(answer).__name__}, not an object.")
    except DomainError as exc:
        answer = tools.failed(exc.status_code, exc.message)
    except Exception as exc:
        answer = tools.failed(503, f"The tool failed: {type(exc).__name__}: {exc}")
    atomic.write_bytes(Path(args.result), json.dumps(answer).encode())
    return 0


if __name__ == "__main__":
    sys.exit(supervise())

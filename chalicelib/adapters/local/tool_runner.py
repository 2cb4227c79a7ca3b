"""ToolRunner as a child process: `python -m trainer.tools`, the API process never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from chalicelib.adapters.local.source_tree import TRAINER_CODE, container_env
from chalicelib.errors import Unavailable


class LocalToolRunner:
    def __init__(self, python: str | None = None, timeout: float = 300.0):
        self.python = python or sys.executable
        self.timeout = timeout

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        env = container_env(TRAINER_CODE)
        env["MPLBACKEND"] = "Agg"
        try:
            done = subprocess.run(
                [self.python, "-m", "trainer.tools"],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                env=env,
                timeout=self.timeout,
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(
                f"The {request.get('tool')} tool took longer than {self.timeout:.0f} s."
            ) from None
        if done.returncode != 0 or not done.stdout.strip():
            tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise Unavailable(f"The {request.get('tool')} tool failed: {tail[0]}")
        return json.loads(done.stdout)

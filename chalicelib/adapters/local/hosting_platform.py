"""HostingPlatform as child processes: each deployment is the inference server
(`python -m inference.serve`) on a free loopback port, the local stage's SageMaker endpoint.

`<home>/hosting/<name>/` keeps `deployment.json`, `state.json` (pid, start time, port) and
`server.log`. Servers run in their own session, so they outlive an API restart; a server
that died after it served is restarted (up to `max_restarts`), one that never came up is
reported Failed with the end of its log.

Each server holds a model in memory (about 1 GB for a detection model), so `deploy` may be
given a cap: it counts the live deployments under the same lock that makes the new one's
directory, so concurrent deploys (threads or processes) never start more servers than the cap.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil

from chalicelib.adapters.local.disk_full import storage_full_as_domain_error
from chalicelib.adapters.local.file_lock import locked
from chalicelib.adapters.local.source_tree import INFERENCE_CODE, REPO_ROOT, TRAINER_CODE, container_env
from chalicelib.adapters.local.training_platform import pid_alive, process_start_time
from chalicelib.aws_limits import (
    INVOKE_ENDPOINT_MAX_BYTES,
    check_custom_attributes,
    invoke_answer_too_large,
    invoke_request_too_large,
)
from chalicelib.errors import Conflict, NotFound, Unavailable
from chalicelib.ports import (
    CREATING,
    DEPLOY_FAILED,
    IN_SERVICE,
    MEASURED_FIELDS,
    Deployment,
    DeploymentCapReached,
    holds_resources,
    same_tenant,
)
from contracts import atomic

SERVER_MODULE = "inference.serve"
LOG_TAIL = 1500
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"  # as SageMaker hosting forwards it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalHostingPlatform:
    def __init__(
        self,
        home: Path,
        device_count: Callable[[], int] = lambda: 0,
        python: str | None = None,
        max_restarts: int = 3,
        invoke_timeout: float = 120.0,
        payload_limit: int | None = INVOKE_ENDPOINT_MAX_BYTES,
    ):
        """`payload_limit`: InvokeEndpoint's 6 MB on the request and the answer, as on AWS;
        None (AIFACTORY_RELAX_AWS_LIMITS) lifts it for debugging."""
        self.root = Path(home).resolve() / "hosting"
        self.root.mkdir(parents=True, exist_ok=True)
        self._device_count = device_count
        self.python = python or sys.executable
        self.max_restarts = max_restarts
        self.invoke_timeout = invoke_timeout
        self.payload_limit = payload_limit

    # --- files -------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise NotFound(f"Deployment {name} not found.")
        return self.root / name

    def _read(self, name: str) -> tuple[Deployment, dict]:
        directory = self._dir(name)
        try:
            deployment = Deployment(**json.loads((directory / "deployment.json").read_text()))
            state = json.loads((directory / "state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            raise NotFound(f"Deployment {name} not found.") from None
        return deployment, state

    def _write_state(self, name: str, state: dict) -> None:
        if not self._dir(name).is_dir():
            return
        atomic.write_bytes(self._dir(name) / "state.json", json.dumps(state).encode())

    # --- the server process --------------------------------------------------------
    def _spawn(self, deployment: Deployment) -> dict:
        directory = self._dir(deployment.name)
        port = free_port()
        env = container_env(TRAINER_CODE, INFERENCE_CODE)
        env["PYTHONUNBUFFERED"] = "1"
        device = "cpu" if deployment.target_device_id < 0 else f"cuda:{deployment.target_device_id}"
        command = [
            self.python, "-m", SERVER_MODULE, "--model-dir", deployment.model_uri,
            "--host", "127.0.0.1", "--port", str(port), "--device", device,
        ]  # fmt: skip
        with open(directory / "server.log", "ab") as log:
            proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(REPO_ROOT),
                env=env,
                start_new_session=True,
            )
        return {
            "pid": proc.pid,
            "start": process_start_time(proc.pid),
            "port": port,
            "started_at": time.time(),
        }

    def _log_tail(self, name: str) -> str:
        path = self._dir(name) / "server.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-LOG_TAIL:].strip()

    def _ping(self, port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _refresh(self, name: str) -> tuple[Deployment, dict]:
        """Brings the status up to date with the process: the local DescribeEndpoint."""
        deployment, state = self._read(name)
        if deployment.status == DEPLOY_FAILED:
            return deployment, state
        if pid_alive(state.get("pid"), state.get("start")):
            if deployment.status == CREATING and self._ping(state["port"]):
                deployment.status = IN_SERVICE
                self._save(deployment)
            return deployment, state
        if deployment.status == IN_SERVICE and state.get("restarts", 0) < self.max_restarts:
            with self._lock():  # an undeploy in between must not get its server back
                try:
                    deployment, state = self._read(name)
                except NotFound:
                    raise NotFound(f"Deployment {name} not found.") from None
                if pid_alive(state.get("pid"), state.get("start")) or deployment.status != IN_SERVICE:
                    return deployment, state  # another sweep restarted it meanwhile
                state = {**self._spawn(deployment), "restarts": state.get("restarts", 0) + 1}
                self._write_state(name, state)
                deployment.status = CREATING  # back InService once the new server answers /ping
                self._save(deployment)
            return deployment, state
        deployment.status = DEPLOY_FAILED
        deployment.failure_reason = (
            "The inference server exited"
            + (" after too many restarts" if state.get("restarts") else " before it served")
            + f". Its log ends:\n{self._log_tail(name)}"
        )
        self._save(deployment)
        return deployment, state

    def _lock(self):
        return locked(self.root)

    def _save(self, deployment: Deployment) -> None:
        if not self._dir(deployment.name).is_dir():
            return  # undeployed meanwhile: never bring its directory back
        stored = {k: v for k, v in dataclasses.asdict(deployment).items() if k not in MEASURED_FIELDS}
        atomic.write_bytes(self._dir(deployment.name) / "deployment.json", json.dumps(stored).encode())

    def _stored(self) -> list[Deployment]:
        """Every deployment as its file says, without looking at processes (safe under the lock,
        which `_refresh` may take itself)."""
        found = []
        for path in sorted(self.root.iterdir()):
            try:
                found.append(Deployment(**json.loads((path / "deployment.json").read_text())))
            except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
                continue  # the lock file, or a directory being made or removed
        return found

    @staticmethod
    def _memory(state: dict) -> int | None:
        """Resident memory of the server and its children (workers, loaders), or None when it
        is not running: what the deployment holds on this machine right now."""
        if not pid_alive(state.get("pid"), state.get("start")):
            return None
        try:
            server = psutil.Process(state["pid"])
            total = server.memory_info().rss
            children = server.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        for child in children:
            try:
                total += child.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # exited meanwhile
        return total

    def _kill(self, state: dict) -> None:
        pid = state.get("pid")
        if not pid_alive(pid, state.get("start")):
            return
        try:
            os.killpg(pid, signal.SIGTERM)
            psutil.Process(pid).wait(timeout=10)
        except psutil.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass

    # --- port --------------------------------------------------------------------
    def device_count(self) -> int:
        return self._device_count()

    def deploy(self, deployment: Deployment, max_live: int | None = None) -> None:
        directory = self._dir(deployment.name)
        if max_live is not None:
            self.list()  # settle statuses first: a server that died is Failed and no longer counts
        with self._lock():
            if directory.exists():
                raise Conflict(f"Deployment {deployment.name} already exists.")
            if max_live is not None:
                live = [d for d in self._stored() if holds_resources(d) and same_tenant(d, deployment)]
                if len(live) >= max_live:
                    raise DeploymentCapReached(max_live, live)
            try:
                directory.mkdir(parents=True)
            except FileExistsError:
                raise Conflict(f"Deployment {deployment.name} already exists.") from None
            deployment = dataclasses.replace(deployment, status=CREATING, failure_reason="")
            state = None
            try:  # a full disk is a 507 that leaves neither a directory nor a running server
                with storage_full_as_domain_error(self.root):
                    self._save(deployment)
                    state = self._spawn(deployment)
                    self._write_state(deployment.name, state)
            except BaseException:
                if state is not None:
                    self._kill(state)
                shutil.rmtree(directory, ignore_errors=True)
                raise

    def undeploy(self, name: str) -> None:
        with self._lock():
            _, state = self._read(name)
            shutil.rmtree(self._dir(name), ignore_errors=True)
        self._kill(state)

    def describe(self, name: str) -> Deployment:
        deployment, state = self._refresh(name)
        memory = None if deployment.status == DEPLOY_FAILED else self._memory(state)
        return dataclasses.replace(deployment, instance_type=None, memory_bytes=memory)

    def list(self) -> list[Deployment]:
        found = []
        for path in sorted(self.root.iterdir()):
            if path.is_dir() and (path / "deployment.json").exists():
                try:
                    found.append(self.describe(path.name))
                except NotFound:
                    continue  # removed meanwhile
        return found

    def recover(self) -> None:
        """Called by the sweep: restarts servers that died, so deployments outlive anything."""
        self.list()

    def invoke(
        self, name: str, body: bytes, content_type: str, custom_attributes: str | None = None
    ) -> tuple[int, bytes]:
        """The model server's answer, held to InvokeEndpoint's limits: a request over 6 MB is
        refused before it is sent (413, as SageMaker refuses it) and an answer over 6 MB is a
        502 (SageMaker fails such an invocation), so an infer that works here works on AWS.
        `custom_attributes` is sent as SageMaker forwards it, `X-Amzn-SageMaker-Custom-Attributes`."""
        check_custom_attributes(custom_attributes)
        if self.payload_limit is not None and len(body) > self.payload_limit:
            raise invoke_request_too_large(name, len(body))
        deployment, state = self._refresh(name)
        if deployment.status == CREATING:
            raise Unavailable(f"Deployment {name} is still starting (Creating); try again in a few seconds.")
        if deployment.status != IN_SERVICE:
            raise Unavailable(f"Deployment {name} is {deployment.status}: {deployment.failure_reason}")
        request = urllib.request.Request(
            f"http://127.0.0.1:{state['port']}/invocations",
            data=body,
            headers={
                "Content-Type": content_type,
                "Accept": "application/json",
                **({CUSTOM_ATTRIBUTES_HEADER: custom_attributes} if custom_attributes is not None else {}),
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.invoke_timeout) as response:
                return response.status, self._answer(name, response)
        except urllib.error.HTTPError as error:
            return error.code, self._answer(name, error)
        except (urllib.error.URLError, OSError) as error:
            raise Unavailable(f"Deployment {name} did not answer: {error}") from None

    def _answer(self, name: str, response) -> bytes:
        """The answer's body, read no further than one byte past the limit."""
        if self.payload_limit is None:
            return response.read()
        data = response.read(self.payload_limit + 1)
        if len(data) > self.payload_limit:
            told = response.headers.get("Content-Length", "")
            raise invoke_answer_too_large(name, int(told) if told.isdigit() else None)
        return data

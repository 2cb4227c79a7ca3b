"""Runs one training job the way SageMaker would, detached from the API process.

`run(job_dir, platform, on_state_change)`: lays out one `/opt/ml` per instance (`algo-1` ..
`algo-N`, the first one the master, rendezvous on loopback), runs a trainer per instance
(in-repo, or `docker run` for other images), forwards SIGTERM to every one and kills after
the grace period, ends the others when one fails (its failure file is the job's), restarts
them all after an emulated spot interruption (SIGUSR1: the trainers are killed and resume
from the last checkpoint), packs `model.tar.gz`, records the final status and billable
seconds and reports the state change (the local EventBridge rule) through
`on_state_change`. Only this process writes the job's final state, so an API restart in the
middle changes nothing. The process entry point is `chalicelib.entrypoints.job_runner`,
which composes it with the services.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chalicelib.adapters.local.source_tree import TRAINER_CODE, container_env
from chalicelib.adapters.local.training_platform import (
    INTERRUPT_NOTICE,
    INTERRUPT_SIGNAL,
    LocalTrainingPlatform,
    docker_command,
    process_start_time,
)
from chalicelib.images import is_builtin_trainer
from chalicelib.ports import COMPLETED, FAILED, STOPPED, TrainingRequest
from contracts import layout, timeutil
from contracts.job_config import JobConfig
from contracts.statuses import FAILURE_REASON_LIMIT

log = logging.getLogger("aifactory.runner")


PR_SET_PDEATHSIG = 1


def die_with(parent_pid: int) -> Callable[[], None]:
    """A `preexec_fn` that ties the trainer to this runner: Linux sends it SIGKILL when the
    runner dies, however it dies (kill -9 included), so a trainer never outlives its runner
    to write into a job already reported Failed or escape the concurrency limit. The trainer
    also stays in the runner's process group (the runner leads its own session), so the
    platform can kill both with one killpg."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)

    def tie() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the runner died before prctl took effect
            os._exit(1)

    return tie


def load_request(job_dir: Path) -> TrainingRequest:
    """The platform's `request.json` (`dataclasses.asdict` of the request) as the request
    again; keys a newer API added and this one does not know are left out."""
    raw = json.loads((job_dir / "request.json").read_text())
    known = {f.name for f in dataclasses.fields(TrainingRequest)}
    return TrainingRequest(**{k: v for k, v in raw.items() if k in known})


def host_names(request: TrainingRequest) -> list[str]:
    """SageMaker's host names: `algo-1` .. `algo-N`, the first one the master."""
    return [f"algo-{i + 1}" for i in range(max(1, int(request.instance_count or 1)))]


def host_dir(job_dir: Path, host: str) -> Path:
    """Where one host lives: the job directory for `algo-1`, `hosts/<host>/` for the others."""
    return job_dir if host == "algo-1" else job_dir / "hosts" / host


def prepare_opt_ml(job_dir: Path, request: TrainingRequest, host: str = "algo-1") -> Path:
    """One host's own `/opt/ml` (as on SageMaker, every instance has one): its resourceconfig
    names it and every host; checkpoints of all hosts link to the one artifact directory."""
    opt_ml = host_dir(job_dir, host) / "opt_ml"
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    # What SageMaker writes from CreateTrainingJob's HyperParameters (our API sends none:
    # the job's hyper-parameters are in job.json, contracts.job_config).
    (config / "hyperparameters.json").write_text(json.dumps(request.hyperparameters, indent=1))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": host, "hosts": host_names(request), "network_interface_name": "lo"})
    )
    artifacts = Path(request.artifact_uri)
    channel = opt_ml / "input" / "data" / "config"
    channel.mkdir(parents=True, exist_ok=True)
    (channel / layout.JOB_FILE).write_bytes((artifacts / layout.JOB_FILE).read_bytes())
    data_uri = request.data_uri
    training = opt_ml / "input" / "data" / "training"
    if data_uri and not training.exists():
        training.symlink_to(Path(data_uri).resolve(), target_is_directory=True)
    checkpoints = artifacts / layout.CHECKPOINTS
    checkpoints.mkdir(parents=True, exist_ok=True)
    link = opt_ml / "checkpoints"
    if not link.exists():
        link.symlink_to(checkpoints, target_is_directory=True)
    for sub in ("model", "output"):
        (opt_ml / sub).mkdir(exist_ok=True)
    return opt_ml


def secret_file(opt_ml: Path) -> str | None:
    """The host file holding the job's dataset headers, when the local secret store made one."""
    job = JobConfig.from_json((opt_ml / "input" / "data" / "config" / layout.JOB_FILE).read_text())
    secret = job.data.secret
    if isinstance(secret, dict) and secret.get("kind", "file") == "file" and secret.get("ref"):
        return str(Path(secret["ref"]).resolve())
    return None


def container_name(request: TrainingRequest, host: str) -> str:
    """`docker run --name`: the job's name for the first host, `<name>-<host>` for the others."""
    name = request.training_job_name
    return name if host == "algo-1" else f"{name}-{host}"


def trainer_command(
    request: TrainingRequest,
    opt_ml: Path,
    environ: dict[str, str] | None = None,
    host: str = "algo-1",
    extra_env: dict[str, str] | None = None,
) -> list[str]:
    if is_builtin_trainer(request.image):
        return [sys.executable, "-m", "trainer"]
    data_uri = request.data_uri
    return docker_command(
        request.image,
        container_name(request, host),
        opt_ml,
        str(Path(request.artifact_uri).resolve()),
        str(Path(data_uri).resolve()) if data_uri else None,
        secret_file(opt_ml),
        environ,
        extra_env,
    )


MODEL_GZIP_LEVEL = 0


def pack_model(opt_ml: Path, request: TrainingRequest) -> None:
    """SageMaker uploads /opt/ml/model as `<output path>/<name>/output/model.tar.gz`.

    Stored gzip blocks (`MODEL_GZIP_LEVEL` 0, still a .tar.gz any reader opens): weights are
    float noise to deflate, and level 1 saved 7% of a resnet18 (45 MB) in 1.8 s, where the
    job's submit-to-finished waits, against 0.05 s stored (docs/benchmarks.md).

    Then /opt/ml/model is emptied, as SageMaker's instance volume goes away: its files are a
    copy of the best checkpoint, now in model.tar.gz too (a resnet18 job kept 45 MB twice)."""
    name = request.training_job_name
    target = Path(request.artifact_uri) / layout.model_output(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    items = sorted((opt_ml / "model").iterdir())
    with tarfile.open(tmp, "w:gz", compresslevel=MODEL_GZIP_LEVEL) as tar:
        for item in items:
            tar.add(item, arcname=item.name)
    os.replace(tmp, target)
    for item in items:
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def failure_reason(opt_ml: Path, returncode: int) -> str:
    failure = opt_ml / "output" / "failure"
    if failure.exists():
        return failure.read_text()[:FAILURE_REASON_LIMIT].strip()
    return f"AlgorithmError: the trainer exited with code {returncode} without a failure report."


def free_port() -> int:
    """A loopback port for the master's rendezvous, fresh for every run of a job."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Host:
    """One instance of the job: its own `/opt/ml`, log and trainer process (or container)."""

    name: str
    opt_ml: Path
    log: Path
    container: str | None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    ended: float | None = None

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None and self.ended is None:
                self.ended = time.monotonic()
            return False
        return True

    def signal(self, signum: int) -> None:
        if self.alive():
            self.proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL, and `docker kill` for a container: it outlives its `docker run` client."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()
            self.alive()
            if self.container:
                subprocess.run(
                    ["docker", "kill", self.container], capture_output=True, timeout=60, check=False
                )

    def seconds(self) -> float:
        return ((self.ended or time.monotonic()) - self.started) if self.proc is not None else 0.0


class Supervisor:
    """Runs every host of one job, restarts them all after a (emulated) spot interruption, and
    turns their exits into one outcome: SageMaker's view of a multi-instance job."""

    def __init__(self, job_dir: Path, request: TrainingRequest, platform: LocalTrainingPlatform):
        self.job_dir, self.request, self.platform = job_dir, request, platform
        self.name = job_dir.name
        self.hosts: list[Host] = []
        self.stop_event = threading.Event()
        self.interrupt_event = threading.Event()
        self.wake = threading.Event()
        self.billable = 0.0
        self.interruptions = 0

    # --- signals -------------------------------------------------------------------------------
    def on_sigterm(self, signum, frame):
        """Stop: SIGTERM reaches every host; each saves and exits within the grace period."""
        self.stop_event.set()
        self.wake.set()
        for host in self.hosts:
            host.signal(signal.SIGTERM)

    def on_interrupt(self, signum, frame):
        """The spot-interruption emulation (SIGUSR1, `LocalTrainingPlatform.interrupt`)."""
        self.interrupt_event.set()
        self.wake.set()

    def on_child_exit(self, signum, frame):
        """A trainer exited: the job's end is seen now, not on the next half-second tick."""
        self.wake.set()

    # --- hosts ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        builtin = is_builtin_trainer(self.request.image)
        for name in host_names(self.request):
            opt_ml = prepare_opt_ml(self.job_dir, self.request, name)
            log_path = host_dir(self.job_dir, name) / "trainer.log"
            self.hosts.append(
                Host(name, opt_ml, log_path, None if builtin else container_name(self.request, name))
            )

    def start_hosts(self) -> None:
        base = container_env(TRAINER_CODE)
        base["PYTHONUNBUFFERED"] = "1"
        distributed = {}
        if len(self.hosts) > 1:  # `algo-1` is this machine's loopback: every host listens there
            distributed = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
        for host in self.hosts:
            env = {**base, **distributed, "AIFACTORY_OPT_ML": str(host.opt_ml)}
            command = trainer_command(self.request, host.opt_ml, env, host.name, distributed or None)
            with open(host.log, "ab") as out:
                host.proc = subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=str(host.opt_ml),
                    preexec_fn=die_with(os.getpid()) if sys.platform.startswith("linux") else None,
                )
            host.started, host.ended = time.monotonic(), None
        first = self.hosts[0]
        state = self.platform.read_state(self.name)
        state.update(
            secondary_status="Training",
            trainer_pid=first.proc.pid,
            trainer_start=process_start_time(first.proc.pid),
            trainer_container=first.container,
            trainers=[
                {
                    "host": h.name,
                    "pid": h.proc.pid,
                    "start": process_start_time(h.proc.pid),
                    "container": h.container,
                }
                for h in self.hosts
            ],
            run_started_at=time.time(),
            instance_count=len(self.hosts),
        )
        if state.get("stop_requested"):
            self.on_sigterm(signal.SIGTERM, None)
        self.platform.write_state(self.name, state)

    def _end_all(self, first_signal: int | None) -> None:
        """Sends `first_signal` to the hosts still running, then kills what outlives the grace."""
        if first_signal is not None:
            for host in self.hosts:
                host.signal(first_signal)
        deadline = time.monotonic() + self.platform.stop_grace_seconds
        for host in self.hosts:
            if host.proc is None:
                continue
            try:
                host.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                host.alive()
            except subprocess.TimeoutExpired:
                log.warning(
                    "trainer %s ignored SIGTERM for %ss: killing it",
                    host.name,
                    self.platform.stop_grace_seconds,
                )
                host.kill()

    def supervise(self) -> tuple[str, Host | None]:
        """Until every host exited: ("stopped" | "interrupted" | "failed" | "completed", failed host)."""
        failed: Host | None = None
        while any(host.alive() for host in self.hosts):
            self.wake.wait(0.5)
            self.wake.clear()
            if self.interrupt_event.is_set() and not self.stop_event.is_set():
                self.interrupt()
                return "interrupted", None
            if self.stop_event.is_set():
                self._end_all(None)  # SIGTERM was passed on by the handler
                break
            for host in self.hosts:
                if not host.alive() and host.proc.returncode != 0:
                    failed = host  # the first host to fail; the others cannot finish without it
                    log.warning("host %s exited with %s: ending the others", host.name, host.proc.returncode)
                    self._end_all(signal.SIGTERM)
                    break
            if failed:
                break
        if self.stop_event.is_set() or self.platform.read_state(self.name).get("stop_requested"):
            return "stopped", None
        if failed is None:
            failed = next((h for h in self.hosts if h.proc.returncode != 0), None)
        return ("failed", failed) if failed else ("completed", None)

    def interrupt(self) -> None:
        """Ends every host for a spot interruption: at once (the instance is gone: no grace, no
        checkpoint of the epoch in flight), or after a notice (SIGTERM) to the hosts the
        platform named, within the stop grace period, as SageMaker's two-minute warning."""
        state = self.platform.read_state(self.name)
        notice = state.pop(INTERRUPT_NOTICE, None) or []
        self.platform.write_state(self.name, state)
        if notice:
            log.warning("spot interruption notice to %s", ", ".join(notice))
            for host in self.hosts:
                if host.name in notice:
                    host.signal(signal.SIGTERM)
            self._end_all(None)
        for host in self.hosts:
            host.kill()

    def account(self) -> None:
        """Billable seconds: every host's wall time, each run (restarts after interruptions too)."""
        self.billable += sum(host.seconds() for host in self.hosts)
        state = self.platform.read_state(self.name)
        state.update(billable_seconds=math.ceil(self.billable), run_started_at=None)
        self.platform.write_state(self.name, state)

    def run(self) -> tuple[str, str, str]:
        self.prepare()
        while True:
            self.start_hosts()
            outcome, failed = self.supervise()
            self.account()
            if outcome != "interrupted":
                break
            self.interruptions += 1
            self.interrupt_event.clear()
            state = self.platform.read_state(self.name)
            state.update(secondary_status="Interrupted", interruptions=self.interruptions)
            self.platform.write_state(self.name, state)
            log.warning(
                "spot interruption %d: restarting every host from the last checkpoint", self.interruptions
            )
            state.update(secondary_status="Restarting")
            self.platform.write_state(self.name, state)
        if outcome == "stopped":
            return STOPPED, "Stopped", ""
        if outcome == "failed":
            return FAILED, "Failed", failure_reason(failed.opt_ml, failed.proc.returncode)
        state = self.platform.read_state(self.name)
        state["secondary_status"] = "Uploading"
        self.platform.write_state(self.name, state)
        pack_model(self.hosts[0].opt_ml, self.request)  # rank 0 (on algo-1) alone wrote the model
        return COMPLETED, "Completed", ""

    def exit_code(self) -> int | None:
        failed = [h.proc.returncode for h in self.hosts if h.proc is not None and h.proc.returncode]
        if failed:
            return failed[0]
        return self.hosts[0].proc.returncode if self.hosts and self.hosts[0].proc else None


def run(job_dir: Path, platform: LocalTrainingPlatform, on_state_change: Callable[[str, str], None]) -> int:
    name = job_dir.name
    supervisor = Supervisor(job_dir, load_request(job_dir), platform)
    signal.signal(signal.SIGTERM, supervisor.on_sigterm)
    signal.signal(INTERRUPT_SIGNAL, supervisor.on_interrupt)
    signal.signal(signal.SIGCHLD, supervisor.on_child_exit)
    try:
        status, secondary, reason = supervisor.run()
    except Exception as exc:
        log.exception("runner failed")
        for host in supervisor.hosts:
            host.kill()
        status, secondary, reason = FAILED, "Failed", f"InternalServerError: {type(exc).__name__}: {exc}"
    state = platform.read_state(name)
    state.update(
        status=status,
        secondary_status=secondary,
        failure_reason=reason,
        end_time=timeutil.now_str(),
        exit_code=supervisor.exit_code(),
    )
    platform.write_state(name, state)
    try:
        on_state_change(name, status)
    finally:
        platform.schedule()
    return 0

"""TrainingPlatform as child processes: the local stage's SageMaker.

Each training job gets `<home>/training/<name>/` with `request.json`, `state.json` and an
`opt_ml/` tree in SageMaker's layout. A detached runner process
(`chalicelib.adapters.local.runner`, started as `chalicelib.entrypoints.job_runner`) owns the trainer process: it survives an API
restart, enforces the stop grace period, packs `model.tar.gz` and reports the state
change. Jobs beyond `max_concurrent` wait as `InProgress`/`Starting`, like SageMaker
waiting for capacity. A job of `instance_count` N runs N trainer processes (or containers),
each with its own `opt_ml/` (`hosts/algo-N/opt_ml` beside the first host's). A spot job can be
interrupted on purpose (`interrupt`): the runner kills its trainers (after an interruption
notice, SIGTERM, to the hosts named, when asked for one) and starts them again, and they
resume from the last checkpoint, as SageMaker's managed spot training does.

On a full disk `start` raises `StorageFull` (507) and removes the job directory it began;
`state.json` is replaced atomically, so a failed write never leaves a half-written state.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from chalicelib.adapters.local.disk_full import storage_full_as_domain_error
from chalicelib.adapters.local.file_lock import locked
from chalicelib.adapters.local.source_tree import (
    REPO_ROOT,
    RUNNER_NEVER_SEES,
    TRAINER_CODE,
    child_pythonpath,
    container_env,
)
from chalicelib.errors import Conflict, NotFound, StorageFull, Unavailable
from chalicelib.images import TRAINER_REPOSITORIES, is_builtin_trainer
from chalicelib.ports import (
    FAILED,
    IN_PROGRESS,
    STOPPED,
    STOPPING,
    TERMINAL,
    Hardware,
    TrainingDescription,
    TrainingRequest,
)
from contracts import timeutil

log = logging.getLogger("aifactory.platform")
RUNNER_MODULE = "chalicelib.entrypoints.job_runner"
QUEUED = "Starting"
# The runner's spot-interruption emulation: on this signal it kills every trainer of the job
# (no grace, like a reclaimed instance, unless the state names hosts that get a notice first:
# `INTERRUPT_NOTICE`) and starts them again from the last checkpoint.
INTERRUPT_SIGNAL = signal.SIGUSR1
INTERRUPT_NOTICE = "interrupt_notice"


# What SageMaker mounts under /opt/ml: its subdirectories, never /opt/ml itself, which would
# hide what the image keeps there (our trainer's code is /opt/ml/code).
OPT_ML_MOUNTS = ("input", "model", "output", "checkpoints")
# The environment a job's container gets, as CreateTrainingJob's `Environment` gives it:
# only the stage's outbound choice (the trainer reads it through outbound.private_urls_allowed)
# and never a secret. `-e NAME` passes the value from the runner's environment, not argv.
CONTAINER_ENVIRONMENT = ("AIFACTORY_STAGE", "AIFACTORY_ALLOW_PRIVATE_URLS")


def docker_command(
    image: str,
    name: str,
    opt_ml: Path,
    artifact_dir: str,
    data_dir: str | None,
    secret_file: str | None = None,
    environ: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> list[str]:
    """The exact `docker run` the platform makes for an image that is not ours.

    `/opt/ml` links its checkpoints (and the data channel) to host paths, and job.json names
    the artifact directory and the dataset headers' secret file by their host paths: those are
    mounted at the same paths inside, so every link and path resolves in the container as it
    does outside. `train` is the command, as SageMaker runs it; the `docker run` client
    forwards SIGTERM to the container, and the runner `docker kill`s it after the grace period.
    """
    command = ["docker", "run", "--rm", "--name", name, "--network", "host"]
    for sub in OPT_ML_MOUNTS:
        command += ["-v", f"{opt_ml / sub}:/opt/ml/{sub}"]
    command += ["-v", f"{artifact_dir}:{artifact_dir}"]
    if data_dir:
        command += ["-v", f"{data_dir}:{data_dir}:ro"]
    if secret_file:
        command += ["-v", f"{secret_file}:{secret_file}:ro"]
    for variable in CONTAINER_ENVIRONMENT:
        if variable in (os.environ if environ is None else environ):
            command += ["-e", variable]
    command += ["-e", f"TRAINING_JOB_NAME={name}"]
    for variable, value in (extra_env or {}).items():  # a multi-host job's rendezvous: no secrets
        command += ["-e", f"{variable}={value}"]
    return command + [image, "train"]


def process_start_time(pid: int) -> float | None:
    """The kernel's start time of `pid`: with the pid, it names one process."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def pid_alive(pid: int | None, start_time: float | None) -> bool:
    """Alive, not a zombie, and not a later process that reused the pid."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # exited and not yet reaped by its parent
        return start_time is None or process.create_time() == start_time
    except psutil.Error:
        return False


def _trainers(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every host's trainer the runner recorded (`trainer_pid` alone in state written before hosts)."""
    if state.get("trainers"):
        return list(state["trainers"])
    if state.get("trainer_pid") or state.get("trainer_container"):
        return [
            {
                "pid": state.get("trainer_pid"),
                "start": state.get("trainer_start"),
                "container": state.get("trainer_container"),
            }
        ]
    return []


def kill_orphaned_trainer(state: dict[str, Any], wait_s: float = 10.0) -> None:
    """Kills what a dead runner left behind: every host's trainer (checked by start time, so a
    reused pid is never hit), whatever else is in the runner's process group (data-loader
    workers), and the containers of a foreign image. Returns once they are gone."""
    victims = []
    for trainer in _trainers(state):
        pid = trainer.get("pid")
        if pid and pid_alive(pid, trainer.get("start")):
            try:
                victims.append(psutil.Process(pid))
                if os.getpgid(pid) == state["runner_pid"]:  # the runner's group: the trainer's too
                    victims += [p for p in psutil.process_iter() if _pgid(p.pid) == state["runner_pid"]]
            except (psutil.Error, ProcessLookupError):
                pass
    for process in victims:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=wait_s)
    for trainer in _trainers(state):
        if trainer.get("container"):
            try:
                subprocess.run(
                    ["docker", "kill", trainer["container"]], capture_output=True, timeout=60, check=False
                )
            except (OSError, subprocess.TimeoutExpired):
                pass  # no engine left to ask: nothing of ours runs there


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


class LocalTrainingPlatform:
    def __init__(
        self,
        home: Path,
        max_concurrent: int = 2,
        python: str | None = None,
        docker_enabled=lambda: False,
        stop_grace_seconds: float = 120.0,
    ):
        self.root = Path(home).resolve() / "training"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_concurrent = max_concurrent
        self.python = python or sys.executable
        self.docker_enabled = docker_enabled
        self.stop_grace_seconds = stop_grace_seconds

    # --- files ---------------------------------------------------------------
    def job_dir(self, name: str) -> Path:
        return self.root / name

    def read_state(self, name: str) -> dict[str, Any]:
        path = self.job_dir(name) / "state.json"
        if not path.exists():
            raise NotFound(f"Training job {name} not found.")
        return json.loads(path.read_text())

    def write_state(self, name: str, state: dict[str, Any]) -> None:
        path = self.job_dir(name) / "state.json"
        tmp = path.with_suffix(".tmp")
        with storage_full_as_domain_error(self.root):
            try:
                tmp.write_text(json.dumps(state, indent=1))
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def _lock(self):
        return locked(self.root)

    # --- port ----------------------------------------------------------------
    def check_image(self, image: str) -> None:
        if not is_builtin_trainer(image) and not self.docker_enabled():
            raise Unavailable(
                f"Image '{image}' is not the AI Factory trainer ({', '.join(TRAINER_REPOSITORIES)}); "
                "running other images on the local platform needs a Docker engine, and none is reachable."
            )

    def start(self, request: TrainingRequest) -> None:
        self.check_image(request.image)
        job_dir = self.job_dir(request.training_job_name)
        if job_dir.exists():
            raise Conflict(f"Training job {request.training_job_name} already exists.")
        job_dir.mkdir(parents=True)
        try:  # a job directory without its state would be a job no sweep can settle
            with storage_full_as_domain_error(self.root):
                (job_dir / "request.json").write_text(json.dumps(dataclasses.asdict(request), indent=1))
            self.write_state(
                request.training_job_name,
                {
                    "status": IN_PROGRESS,
                    "secondary_status": QUEUED,
                    "failure_reason": "",
                    "creation_time": timeutil.now_str(),
                    "end_time": None,
                    "runner_pid": None,
                    "stop_requested": False,
                    "seq": self._next_seq(),
                },
            )
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        self.schedule()

    def _next_seq(self) -> int:
        return sum(1 for _ in self.root.iterdir())

    def describe(self, name: str) -> TrainingDescription:
        state = self.reconcile_one(name)
        return TrainingDescription(
            state["status"],
            state.get("secondary_status", ""),
            state.get("failure_reason", ""),
            state.get("creation_time"),
            state.get("end_time"),
            billable_seconds=self.billable_seconds(state),
        )

    @staticmethod
    def billable_seconds(state: dict[str, Any]) -> int | None:
        """Wall seconds of the trainer processes, every host counted (SageMaker bills instance
        seconds): the runs that ended, plus the one in progress. None before any trainer ran."""
        ended = state.get("billable_seconds")
        started = state.get("run_started_at")
        if ended is None and started is None:
            return None
        running = (time.time() - started) * int(state.get("instance_count") or 1) if started else 0.0
        return int((ended or 0) + running)

    def interrupt(self, name: str, notice: list[str] | None = None) -> None:
        """Emulates a spot interruption of a running spot job: its trainers are killed mid-step
        and started again, resuming from the last checkpoint (SageMaker's `Interrupted`).

        `notice`: hosts (`algo-N`) that get the interruption notice first, a SIGTERM, as a
        reclaimed spot instance's container does; the runner then waits the stop grace period
        for every host to exit before it kills the rest. The hosts that got no notice learn of
        it from the others (the trainers agree on a stop step)."""
        request = json.loads((self.job_dir(name) / "request.json").read_text())
        if not request.get("use_spot"):
            raise Conflict(f"Training job {name} does not use spot capacity: it cannot be interrupted.")
        hosts = [f"algo-{i + 1}" for i in range(max(1, int(request.get("instance_count", 1))))]
        unknown = sorted(set(notice or ()) - set(hosts))
        if unknown:
            raise Conflict(f"Invalid notice {unknown}: training job {name} runs on {', '.join(hosts)}.")
        with self._lock():
            state = self.read_state(name)
            if state["status"] != IN_PROGRESS or not state.get("trainers"):
                raise Conflict(
                    f"Training job {name} has no running trainer to interrupt (status {state['status']})."
                )
            state[INTERRUPT_NOTICE] = list(notice or [])
            self.write_state(name, state)
        os.kill(state["runner_pid"], INTERRUPT_SIGNAL)

    def stop(self, name: str) -> None:
        with self._lock():
            state = self.read_state(name)
            if state["status"] in TERMINAL:
                raise Conflict(
                    "An error occurred (ValidationException) when calling the StopTrainingJob operation: "
                    f"The request was rejected because the training job is in status {state['status']}."
                )
            state["stop_requested"] = True
            if state.get("runner_pid") is None:
                # Never launched: nothing to signal. The sweep reports it like any other end.
                state.update(status=STOPPED, secondary_status="Stopped", end_time=timeutil.now_str())
                self.write_state(name, state)
                return
            state.update(status=STOPPING, secondary_status="Stopping")
            self.write_state(name, state)
            try:
                os.kill(state["runner_pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass

    # --- scheduling and recovery ----------------------------------------------
    def _running(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if p.is_dir() and self._is_active(p.name)]

    def _is_active(self, name: str) -> bool:
        try:
            state = self.read_state(name)
        except (NotFound, json.JSONDecodeError):
            return False
        return state["status"] in (IN_PROGRESS, STOPPING) and state.get("runner_pid") is not None

    def schedule(self) -> list[str]:
        """Launches queued jobs while fewer than `max_concurrent` run. Safe across processes."""
        launched = []
        with self._lock():
            running = len(self._running())
            queued = []
            for path in self.root.iterdir():
                if not path.is_dir():
                    continue
                try:
                    state = self.read_state(path.name)
                except (NotFound, json.JSONDecodeError):
                    continue
                if state["status"] == IN_PROGRESS and state.get("runner_pid") is None:
                    queued.append((state.get("seq", 0), state["creation_time"], path.name))
            for _seq, _created, name in sorted(queued):
                if running >= self.max_concurrent:
                    break
                self._launch(name)
                running += 1
                launched.append(name)
        return launched

    def _launch(self, name: str) -> None:
        job_dir = self.job_dir(name)
        log = open(job_dir / "runner.log", "ab")
        env = {k: v for k, v in os.environ.items() if k not in RUNNER_NEVER_SEES}
        env["PYTHONPATH"] = child_pythonpath()
        env["AIFACTORY_STOP_GRACE_SECONDS"] = str(self.stop_grace_seconds)
        proc = subprocess.Popen(
            [self.python, "-m", RUNNER_MODULE, str(job_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(REPO_ROOT),
            env=env,
            start_new_session=True,
        )
        log.close()
        state = self.read_state(name)
        state.update(
            runner_pid=proc.pid,
            runner_start=process_start_time(proc.pid),
            secondary_status="Starting",
            started_time=timeutil.now_str(),
        )
        self.write_state(name, state)

    def reconcile_one(self, name: str) -> dict[str, Any]:
        """A job whose runner is gone is marked Failed, never left InProgress; its trainer
        is killed first, so nothing writes into a job reported Failed."""
        state = self.read_state(name)
        if state["status"] in (IN_PROGRESS, STOPPING) and state.get("runner_pid"):
            if not pid_alive(state["runner_pid"], state.get("runner_start")):
                with self._lock():
                    state = self.read_state(name)
                    if state["status"] not in (IN_PROGRESS, STOPPING):
                        return state
                    kill_orphaned_trainer(state)
                    if state.get("stop_requested"):
                        state.update(status=STOPPED, secondary_status="Stopped")
                    else:
                        state.update(
                            status=FAILED,
                            secondary_status="Failed",
                            failure_reason=(
                                "InternalServerError: the training process ended unexpectedly "
                                f"(runner pid {state['runner_pid']} is gone)."
                            ),
                        )
                    state["end_time"] = timeutil.now_str()
                    try:
                        self.write_state(name, state)
                    except StorageFull as exc:  # a read must not fail: the next one settles it again
                        log.warning("%s settled as %s but not saved: %s", name, state["status"], exc)
        return state

    def recover(self) -> None:
        """Called when the API starts and periodically: settle dead jobs, launch queued ones."""
        for path in sorted(self.root.iterdir()):
            if path.is_dir() and (path / "state.json").exists():
                try:
                    self.reconcile_one(path.name)
                except (NotFound, json.JSONDecodeError):
                    continue
        self.schedule()

    def log_files(self, name: str) -> list[Path]:
        """Each host's trainer log, `algo-1` first (SageMaker: one CloudWatch stream per host)."""
        job_dir = self.job_dir(name)
        others = sorted(
            (job_dir / "hosts").glob("algo-*/trainer.log"), key=lambda p: int(p.parent.name.split("-")[1])
        )
        return [job_dir / "trainer.log", *others]

    def logs(self, name: str, offset: int, limit: int) -> tuple[list[str], bool]:
        """Host by host, as one numbered list of lines (as the SageMaker adapter reads streams)."""
        state = self.read_state(name)
        lines: list[str] = []
        number = 0
        for path in self.log_files(name):
            if not path.exists():
                continue
            with open(path, errors="replace") as handle:
                for line in handle:
                    if number >= offset + limit:
                        break
                    if number >= offset:
                        lines.append(line.rstrip("\n"))
                    number += 1
        return lines, state["status"] not in TERMINAL or len(lines) == limit

    # --- the machine ---------------------------------------------------------------
    @functools.cache  # noqa: B019 - the hardware does not change while the API runs
    def _probe(self) -> dict[str, Any]:
        """Runs the trainer's probe in a child process: the API process never imports torch."""
        out = subprocess.run(
            [self.python, "-m", "trainer.probe"],
            capture_output=True,
            text=True,
            env=container_env(TRAINER_CODE),
            timeout=120,
            check=True,
        ).stdout
        return json.loads(out)

    def hardware(self) -> Hardware:
        probe = self._probe()
        devices = [
            {"id": d["id"], "name": d["name"], "memory_in_mb": d["memory_in_mb"]} for d in probe["devices"]
        ]
        software = {k: probe["software"][k] for k in ("python_version", "cuda_version", "cudnn_version")}
        return Hardware(devices, software)

    def live_devices(self) -> list[dict[str, Any]]:
        out = subprocess.run(
            [self.python, "-m", "trainer.probe", "--devices"],
            capture_output=True,
            text=True,
            env=container_env(TRAINER_CODE),
            timeout=60,
            check=True,
        ).stdout
        return json.loads(out)

"""Runs one training job the way SageMaker would, detached from the API process.

`run(job_dir, platform, on_state_change)`: lays out `/opt/ml`, runs the trainer
(in-repo, or `docker run` for other images), forwards SIGTERM and kills after the grace
period, packs `model.tar.gz`, records the final status and reports the state change
(the local EventBridge rule) through `on_state_change`. Only this process writes the
job's final state, so an API restart in the middle changes nothing. The process entry
point is `chalicelib.entrypoints.job_runner`, which composes it with the services.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import signal
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

from chalicelib import timeutil
from chalicelib.adapters.local.source_tree import TRAINER_CODE, child_pythonpath
from chalicelib.adapters.local.training_platform import (
    LocalTrainingPlatform,
    docker_command,
    process_start_time,
)
from chalicelib.images import is_builtin_trainer
from chalicelib.ports import COMPLETED, FAILED, STOPPED
from contracts import layout
from contracts.statuses import FAILURE_REASON_LIMIT

log = logging.getLogger("aifactory.runner")
# The trainer needs no secret of the API's: never the API key or the callback signing key.
TRAINER_NEVER_SEES = frozenset({"AIFACTORY_API_KEY", "AIFACTORY_CALLBACK_SIGNING_KEY"})


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


def prepare_opt_ml(job_dir: Path, request: dict) -> Path:
    opt_ml = job_dir / "opt_ml"
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(request["hyperparameters"], indent=1))
    hosts = [f"algo-{i + 1}" for i in range(max(1, int(request.get("instance_count", 1))))]
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": hosts[0], "hosts": hosts, "network_interface_name": "lo"})
    )
    artifacts = Path(request["artifact_uri"])
    channel = opt_ml / "input" / "data" / "config"
    channel.mkdir(parents=True, exist_ok=True)
    (channel / layout.JOB_FILE).write_bytes((artifacts / layout.JOB_FILE).read_bytes())
    data_uri = request.get("data_uri")
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
    job = json.loads((opt_ml / "input" / "data" / "config" / layout.JOB_FILE).read_text())
    secret = (job.get("data") or {}).get("secret")
    if isinstance(secret, dict) and secret.get("kind", "file") == "file" and secret.get("ref"):
        return str(Path(secret["ref"]).resolve())
    return None


def trainer_command(request: dict, opt_ml: Path, environ: dict[str, str] | None = None) -> list[str]:
    if is_builtin_trainer(request["image"]):
        return [sys.executable, "-m", "trainer"]
    data_uri = request.get("data_uri")
    return docker_command(
        request["image"],
        request["training_job_name"],
        opt_ml,
        str(Path(request["artifact_uri"]).resolve()),
        str(Path(data_uri).resolve()) if data_uri else None,
        secret_file(opt_ml),
        environ,
    )


def pack_model(opt_ml: Path, request: dict) -> None:
    """SageMaker uploads /opt/ml/model as `<output path>/<name>/output/model.tar.gz`."""
    name = request["training_job_name"]
    target = Path(request["artifact_uri"]) / layout.model_output(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for item in sorted((opt_ml / "model").iterdir()):
            tar.add(item, arcname=item.name)
    os.replace(tmp, target)


def failure_reason(opt_ml: Path, returncode: int) -> str:
    failure = opt_ml / "output" / "failure"
    if failure.exists():
        return failure.read_text()[:FAILURE_REASON_LIMIT].strip()
    return f"AlgorithmError: the trainer exited with code {returncode} without a failure report."


def run(job_dir: Path, platform: LocalTrainingPlatform, on_state_change: Callable[[str, str], None]) -> int:
    name = job_dir.name
    request = json.loads((job_dir / "request.json").read_text())
    stop_event = threading.Event()
    proc: subprocess.Popen | None = None

    def on_sigterm(signum, frame):  # noqa: ARG001
        stop_event.set()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        opt_ml = prepare_opt_ml(job_dir, request)
        env = {k: v for k, v in os.environ.items() if k not in TRAINER_NEVER_SEES}
        env["AIFACTORY_OPT_ML"] = str(opt_ml)
        env["PYTHONPATH"] = child_pythonpath(TRAINER_CODE)
        env["PYTHONUNBUFFERED"] = "1"
        with open(job_dir / "trainer.log", "ab") as out:
            proc = subprocess.Popen(
                trainer_command(request, opt_ml, env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(opt_ml),
                preexec_fn=die_with(os.getpid()) if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            )
        state = platform.read_state(name)
        state.update(
            secondary_status="Training",
            trainer_pid=proc.pid,
            trainer_start=process_start_time(proc.pid),
            trainer_container=None if is_builtin_trainer(request["image"]) else name,
        )
        if state.get("stop_requested"):
            stop_event.set()
            proc.send_signal(signal.SIGTERM)
        platform.write_state(name, state)
        while proc.poll() is None:
            if stop_event.wait(0.5):
                try:
                    proc.wait(timeout=platform.stop_grace_seconds)
                except subprocess.TimeoutExpired:
                    log.warning("trainer ignored SIGTERM for %ss: killing it", platform.stop_grace_seconds)
                    proc.kill()
                    proc.wait()
                    if not is_builtin_trainer(request["image"]):  # the container outlives its client
                        subprocess.run(["docker", "kill", name], capture_output=True, timeout=60, check=False)
        returncode = proc.returncode
        state = platform.read_state(name)
        if stop_event.is_set() or state.get("stop_requested"):
            status, secondary, reason = STOPPED, "Stopped", ""
        elif returncode == 0:
            state["secondary_status"] = "Uploading"
            platform.write_state(name, state)
            pack_model(opt_ml, request)
            status, secondary, reason = COMPLETED, "Completed", ""
        else:
            status, secondary, reason = FAILED, "Failed", failure_reason(opt_ml, returncode)
    except Exception as exc:  # noqa: BLE001 - the runner must always settle the job
        log.exception("runner failed")
        status, secondary, reason = FAILED, "Failed", f"InternalServerError: {type(exc).__name__}: {exc}"
        state = platform.read_state(name)
    state.update(
        status=status,
        secondary_status=secondary,
        failure_reason=reason,
        end_time=timeutil.now_str(),
        exit_code=proc.returncode if proc else None,
    )
    platform.write_state(name, state)
    try:
        on_state_change(name, status)
    finally:
        platform.schedule()
    return 0

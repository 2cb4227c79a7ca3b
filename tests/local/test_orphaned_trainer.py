"""A trainer never outlives its runner: kill -9 of the runner takes the trainer with it, and
the platform kills whatever a dead runner left before it marks the job Failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from chalicelib.adapters.local.training_platform import LocalTrainingPlatform, process_start_time
from tests.local.test_local_platform import request, wait_terminal
from tests.polling import wait_until as wait_for


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """A `docker` whose `run` trains forever and ignores SIGTERM; `kill` is recorded."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    started, killed = tmp_path / "started", tmp_path / "docker-kill"
    (bin_dir / "docker").write_text(
        f'#!/bin/sh\nif [ "$1" = kill ]; then echo "$@" > {killed}; exit 0; fi\n'
        f"echo $$ > {started}\ntrap '' TERM\nwhile true; do sleep 0.1; done\n"
    )
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return started, killed


def reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # the runner is our child in tests
    except ChildProcessError:
        pass


def test_kill_9_of_the_runner_takes_the_trainer_with_it(local_stage, tmp_path, fake_docker):
    started, killed = fake_docker
    platform = LocalTrainingPlatform(local_stage, max_concurrent=1, docker_enabled=lambda: True)
    platform.start(request(tmp_path, "orphan", image="my-team/custom-trainer:1.0"))
    wait_for(lambda: started.exists() and started.read_text().strip(), timeout=30, interval=0.1)
    trainer = psutil.Process(int(started.read_text()))
    runner_pid = platform.read_state("orphan")["runner_pid"]
    assert os.getpgid(trainer.pid) == runner_pid  # in the runner's process group
    os.kill(runner_pid, signal.SIGKILL)  # the runner alone, not its group
    reap(runner_pid)
    psutil.wait_procs([trainer], timeout=30)
    assert not trainer.is_running() or trainer.status() == psutil.STATUS_ZOMBIE
    description = wait_terminal(platform, "orphan")
    assert description.status == "Failed" and "ended unexpectedly" in description.failure_reason
    assert killed.read_text().split() == ["kill", "orphan"]  # and the container is killed too


def test_a_dead_runners_trainer_is_killed_before_the_job_is_failed(local_stage, tmp_path):
    platform = LocalTrainingPlatform(local_stage, max_concurrent=0)  # nothing launches by itself
    platform.start(request(tmp_path, "left"))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    watched = psutil.Process(trainer.pid)
    try:
        state = platform.read_state("left")
        state.update(
            runner_pid=gone.pid,
            runner_start=None,
            trainer_pid=trainer.pid,
            trainer_start=process_start_time(trainer.pid),
        )
        platform.write_state("left", state)
        assert platform.describe("left").status == "Failed"
        assert not watched.is_running()  # gone (and reaped) by the time Failed was written
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()


def test_a_reused_trainer_pid_is_never_killed(local_stage, tmp_path):
    platform = LocalTrainingPlatform(local_stage, max_concurrent=0)
    platform.start(request(tmp_path, "reused"))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        state = platform.read_state("reused")
        state.update(runner_pid=gone.pid, trainer_pid=bystander.pid, trainer_start=1.0)  # another start time
        platform.write_state("reused", state)
        assert platform.describe("reused").status == "Failed"
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()

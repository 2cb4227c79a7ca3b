"""Issue 16, a full disk: the real server with its state directory on a small tmpfs that the
test fills. Creates on both APIs answer 507 in their own envelope and leave nothing behind;
reads (status, lists, monitor) keep answering 200 with the jobs made before; once space is
freed a create works again.

The tmpfs is mounted in a private mount namespace (`unshare --mount`) around the server's
command, so nothing is mounted on the host; the test reaches the server's view of it through
`/proc/<pid>/root`. Where mount namespaces are not permitted the test skips, saying why.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.builders import create_payload
from tests.servers import ApiServer

pytestmark = pytest.mark.e2e
TMPFS_SIZE = "4m"
MOUNT = 'mount -t tmpfs -o size={size},mode=0700 tmpfs "$0" && exec "$@"'


def namespace_prefix(mountpoint: Path, size: str) -> list[str]:
    """`unshare` that mounts a tmpfs of `size` on `mountpoint`, then execs the command after it."""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [
        "unshare",
        *user,
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        MOUNT.format(size=size),
        str(mountpoint),
    ]


def tmpfs_or_skip(probe_dir: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip(f"mount namespaces are Linux only (this is {sys.platform})")
    if shutil.which("unshare") is None:
        pytest.skip("`unshare` (util-linux) is not installed: cannot mount a private tmpfs")
    probe_dir.mkdir()
    command = [*namespace_prefix(probe_dir, "64k"), "true"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs in a mount namespace here ({shlex.join(command)}): {exc}")
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs in a mount namespace here ({shlex.join(command)} exited "
            f"{done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def fill(path: Path) -> int:
    """Writes `path` until the disk refuses even one byte; returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    written = 0
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            while True:
                try:
                    written += os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return written


def v15_form(api) -> dict:
    return {
        "task": "classification",
        "algorithm": "resnet18",
        "pretrained": "False",
        "data_dir": str(api.home.parent),
    }


def assert_disk_full(status, body, envelope: dict, home: Path) -> None:
    assert status == 507, (status, body)
    assert {k: body[k] for k in envelope} == envelope, body
    assert "disk is full" in body["message"] and str(home) in body["message"], body


def test_a_full_disk_answers_507_leaves_nothing_and_reads_go_on(tmp_path):
    tmpfs_or_skip(tmp_path / "probe")
    home = tmp_path / "home"
    home.mkdir()
    api = ApiServer(
        home,
        extra_env={"AIFACTORY_MAX_CONCURRENT_JOBS": "0"},  # jobs queue, nothing trains
        prefix=namespace_prefix(home, TMPFS_SIZE),
    )
    with api:
        state = Path(f"/proc/{api.proc.pid}/root") / home.relative_to("/")  # the server's tmpfs
        names = []
        for _ in range(2):
            status, body = api.call("POST", "/create_training_job", create_payload())
            assert status == 200, body
            names.append(body["job_name"])
        status, body = api.call("POST", "/api/v1.5.0/train", form=v15_form(api))
        assert status == 200, body
        job_id = body["job_id"]
        assert len(list((state / "secrets").iterdir())) == 2

        before = listing(state)
        assert fill(state / "fill") > 0

        # creates: 507 in each API's envelope, naming the state directory; nothing left behind
        for _ in range(3):
            status, body = api.call("POST", "/create_training_job", create_payload())
            assert_disk_full(status, body, {"status": "error"}, home)
            status, body = api.call("POST", "/api/v1.5.0/train", form=v15_form(api))
            assert_disk_full(status, body, {"result": "Error"}, home)
        assert listing(state) == before | {"fill"}

        # reads: every earlier job, 200, while the sweep goes on writing nothing
        time.sleep(1.5)  # three sweeps
        for name in names:
            status, body = api.call("POST", "/status", {"job_name": name})
            assert (status, body["status"]) == (200, "InProgress"), body
            status, body = api.call("POST", "/logs", {"job_name": name})
            assert status == 200, body
        status, body = api.call("GET", "/check_trained_job")
        assert status == 200, body
        assert set(names) <= {item["TrainingJobName"] for item in body}, body
        status, body = api.call("GET", "/api/v1.5.0/train")
        assert status == 200 and [j["job_id"] for j in body["jobs"]] == [job_id], body
        status, body = api.call("GET", f"/api/v1.5.0/train/{job_id}")
        assert (status, body["status"]) == (200, "initializing"), body
        for suffix in ("/hyper-parameters", "/losses", "/checkpoints"):
            status, body = api.call("GET", f"/api/v1.5.0/train/{job_id}{suffix}")
            assert status == 200, (suffix, body)
        # a model link is checked without making a key (none was ever signed): 403, not 500
        status, body = api.call("GET", f"/models/{names[0]}/signed?expires=9999999999&signature=00")
        assert status == 403, body
        assert listing(state) == before | {"fill"}
        assert api.proc.poll() is None

        # space freed: creates work again
        (state / "fill").unlink()
        status, body = api.call("POST", "/create_training_job", create_payload())
        assert status == 200, body
        status, body = api.call("POST", "/api/v1.5.0/train", form=v15_form(api))
        assert status == 200, body

"""`make gpu-check` (scripts/gpu_check.py) run as the GPU machine runs it: a child process of a
plain interpreter, here the venv's, on the CPU at the tiny size.

One run of every path (the docker path made to fail on purpose) shows each path's real code
runs, the table is printed and a failing path fails the command; a second, short run shows a
clean exit and the one no-CUDA line. The bundled wheels are checked to import with no
site-packages at all, as on the GPU machine, and to carry the containers' pins.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.py"
WHEELS = REPO / "scripts" / "gpu_checks" / "wheels"
ROWS = ("classification", "detection", "segmentation", "inference", "devices", "docker", "imports")


def gpu_check(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def table_rows(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in ROWS:
            rows[cells[0]] = cells
    return rows


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "rows.json"
    done = gpu_check("--device", "cpu", "--tiny", "--inject-failure", "docker", "--json", str(out))
    return done, out


def test_every_path_runs_on_the_cpu_and_the_failing_one_fails_the_command(tiny_run):
    done, _ = tiny_run
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    rows = table_rows(done.stdout)
    assert set(rows) == set(ROWS), done.stdout
    for name in ("classification", "detection", "segmentation", "inference", "devices", "imports"):
        assert rows[name][1] == "OK", (name, rows[name], done.stderr[-3000:])
    assert rows["docker"][1] == "FAIL" and "InjectedFailure" in rows["docker"][4]
    assert "gpu-check: 1 path(s) failed: docker" in done.stdout


def test_the_rows_carry_measurements_from_the_real_code(tiny_run):
    import json

    _, out = tiny_run
    rows = {r["path"]: r for r in json.loads(out.read_text())["rows"]}
    cls = rows["classification"]["numbers"]
    assert cls["samples_per_s"] > 0 and cls["compute_limit_samples_per_s"] > 0
    assert 0 <= cls["data_wait_share"] < 1 and cls["batch_size"] == 8
    assert "decode+augment on cpu" in rows["classification"]["note"]  # device_input's path, forced on
    for name in ("detection", "segmentation"):
        assert rows[name]["numbers"]["samples_per_s"] > 0
    inference = rows["inference"]["numbers"]
    assert (
        0 < inference["raw_p50_ms"] <= inference["raw_p99_ms"] and inference["p50_ms"] <= inference["p99_ms"]
    )
    assert inference["images_per_s"] > 0 and inference["raw_images_per_s"] > 0
    # the server's own record of the batches it ran: every request of the run went through it
    assert sum(int(size) * n for size, n in inference["batch_sizes"].items()) >= 16
    assert rows["devices"]["numbers"]["devices"] == [] or not torch.cuda.is_available()
    assert rows["imports"]["measured"] == "none outside the image"


def test_a_clean_run_exits_zero_says_when_there_is_no_cuda_and_skips_a_missing_image():
    absent = "aifactory-gpu-check-absent:none"
    done = gpu_check("--device", "auto", "--only", "devices", "--only", "docker", "--trainer-image", absent)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    rows = table_rows(done.stdout)
    assert set(rows) == {"devices", "docker", "imports"} and rows["devices"][1] == "OK"
    assert rows["docker"][1] == "SKIPPED" and re.search(
        r"no Docker engine|no trainer image", rows["docker"][4]
    )
    if not torch.cuda.is_available():
        first = done.stdout.splitlines()[0]
        assert first.startswith("no CUDA device: torch ") and first.endswith("at tiny size")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_a_device_exits_2():
    done = gpu_check("--device", "cuda", "--only", "devices")
    assert done.returncode == 2 and done.stdout.startswith("no CUDA device:")


def _trainer_image() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    for image in ("local/aifactory-trainer:latest", "aifactory-trainer:latest"):
        found = subprocess.run([docker, "image", "inspect", image], capture_output=True, timeout=60)
        if found.returncode == 0:
            return image
    return None


def test_the_docker_path_runs_the_trainer_images_probe():
    image = _trainer_image()
    if image is None:
        pytest.skip("no Docker engine or trainer image here (make docker-trainer-image builds it)")
    done = gpu_check("--device", "cpu", "--tiny", "--only", "docker")
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    row = table_rows(done.stdout)["docker"]
    assert row[1] == "OK" and row[2].startswith("torch ") and image in row[4]


def test_the_bundled_wheels_import_without_site_packages_and_carry_the_pins():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import gpu_check; used = gpu_check.add_missing_wheels(); "
        "import waitress.server, defusedxml.ElementTree; print(len(used), waitress.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(REPO / "scripts")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 ") and ".whl" in done.stdout  # imported from the wheel itself
    pins = {}
    for name in ("trainer", "inference"):
        for line in (REPO / "containers" / name / "requirements.txt").read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                package, version = line.split("==")
                pins[package.strip().lower()] = version.strip()
    wheels = sorted(WHEELS.glob("*.whl"))
    assert {w.name.split("-")[0] for w in wheels} == {"defusedxml", "waitress"}
    for wheel in wheels:
        package, version = wheel.name.split("-")[:2]
        assert pins[package] == version, f"{wheel.name} differs from the containers' pin {pins[package]}"
        assert wheel.name.endswith("-none-any.whl")  # pure Python: imports from the zip on any machine


def test_the_devices_row_holds_readings_to_the_specs_fields():
    from scripts.gpu_checks.devices import SPEC_FIELDS, shape_problems

    good = {
        "id": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "utilization_in_percent": 0,
        "memory_total_in_mb": 81559,
        "memory_used_in_mb": 1,
        "memory_free_in_mb": 81558,
        "power_limit_in_watt": 700,
        "power_usage_in_watt": 70,
    }
    assert set(good) == set(SPEC_FIELDS) and shape_problems([good]) == []
    missing = {k: v for k, v in good.items() if k != "memory_free_in_mb"}
    assert shape_problems([good, missing]) == ["device 1 lacks memory_free_in_mb"]
    assert shape_problems([{**good, "power_usage_in_watt": True}]) == [
        "device 0: power_usage_in_watt is bool, not int"
    ]

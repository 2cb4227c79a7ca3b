"""Every script in bench/ still runs, at toy sizes: docs/benchmarks.md quotes their commands,
and two of them (bench_trainer, bench_api) had stopped working unnoticed when the code they
drive changed under them. Only that they run and print their result is checked here; what
they measure is for docs/benchmarks.md, never for a timed test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NO_WAIT = ["--quiet-load", "100", "--max-wait", "0"]  # the small-job bench waits for a quiet machine

RUNS = {
    # --api --with-direct runs all three ways (API, python -m trainer, plain loop) in one round:
    # the direct-only mode is the same code without the API, so one run covers the script.
    "small_job_api": (
        ["bench_small_job.py", "--api", "--with-direct", "--images", "60", "--epochs", "1", *NO_WAIT],
        "api / plain per round",
    ),
    "trainer": (
        ["bench_trainer.py", "--images", "64", "--rounds", "1", "--workers", "0"],
        "Trainer (A) vs plain",
    ),
    "transforms": (
        [
            "bench_transforms.py",
            "--images",
            "40",
            "--rounds",
            "1",
            "--image-size",
            "32",
            "--resize",
            "32",
            "--batch-size",
            "8",
        ],
        "cache: resized",
    ),  # fmt: skip
    "side_work": (
        ["bench_side_work.py", "--images", "60", "--epochs", "1", "--rounds", "1"],
        "round 1 inline",
    ),
    "rcnn_scratch": (
        [
            "bench_rcnn_scratch.py",
            "--epochs",
            "1",
            "--images",
            "6",
            "--size",
            "64",
            "--backbone",
            "resnet18",
            "--proposals",
            "16",
            "--small-rpn",
            "--models",
            "faster_rcnn",
        ],
        "| 1 |",
    ),  # fmt: skip
    "tasks": (
        ["bench_tasks.py", "--images", "12", "--epochs", "1", "--workers", "0", "--image-size", "32"],
        "| classification |",
    ),
    "inference": (
        [
            "bench_inference.py",
            "--requests",
            "4",
            "--rounds",
            "1",
            "--image-size",
            "32",
            "--concurrency",
            "2",
        ],
        "server batch sizes",
    ),
    "deploy": (["bench_deploy.py", "--rounds", "1", "--image-size", "32"], "| median |"),
    "fetcher": (
        [
            "bench_fetcher.py",
            "--pages",
            "3",
            "--repeat",
            "1",
            "--concurrency",
            "1",
            "2",
            "--latency",
            "0.001",
        ],
        "1.00x",
    ),
    "api": (
        ["bench_api.py", "--iterations", "3", "--warmup", "1", "--imports", "1", "--jobs", "3"],
        "GET /api/version without x-api-key",
    ),
    "sweeps": (
        ["bench_sweeps.py", "--jobs", "300", "--active", "4", "--page", "10"],
        "sweeps read at most the 4 active jobs: yes",
    ),
    "answer_sizes": (
        [
            "bench_answer_sizes.py",
            "--width",
            "400",
            "--height",
            "300",
            "--images",
            "3",
            "--instances",
            "3",
            "--classes",
            "20",
        ],
        "| threshold plot, class 1 | classification, 20 classes | 200 |",
    ),  # fmt: skip
}


def test_every_benchmark_script_is_covered():
    assert {args[0] for args, _ in RUNS.values()} == {p.name for p in (REPO / "bench").glob("bench_*.py")}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_benchmark_runs_at_toy_size(name):
    args, marker = RUNS[name]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "containers" / "trainer"), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / args[0]), *args[1:]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert marker in proc.stdout, proc.stdout[-3000:]

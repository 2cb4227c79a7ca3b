"""API cold start and per-route latency on the local stage, with the training platform stubbed.

Run: `.venv/bin/python bench/bench_api.py [--iterations 300] [--imports 10] [--warmup 20]`.

Lambda pays the cold import of `app.py` on every new container, so the first table is what a
cold start costs (and proves torch, numpy and matplotlib stay out of it). The route table sends
requests through `chalice.test.Client`, with the real SQLite job store, directory artifact
store and file secret store in a temp dir; only the TrainingPlatform is a stub (start, stop and
describe do nothing and report InProgress), so the numbers are the API's own cost without
SageMaker or a child process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

API_KEY = "test-api-key"
HEAVY_MODULES = ("torch", "numpy", "matplotlib")
JSON_HEADERS = {"x-api-key": API_KEY, "Content-Type": "application/json"}
FORM_HEADERS = {"x-api-key": API_KEY, "Content-Type": "application/x-www-form-urlencoded"}


def stage_env(home: Path) -> dict[str, str]:
    return {
        "AIFACTORY_STAGE": "local",
        "AIFACTORY_HOME": str(home),
        "AIFACTORY_API_KEY": API_KEY,
        "AIFACTORY_DOCKER": "0",
        "AIFACTORY_ALLOW_PRIVATE_URLS": "1",
    }


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


# --- 1. cold import ----------------------------------------------------------------------
def _run_python(code: str, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *flags, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )


def _wall_times(code: str, env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        _run_python(code, env)
        times.append(time.perf_counter() - start)
    return sorted(times)


def cold_import(runs: int, home: Path) -> None:
    env = {**os.environ, **stage_env(home)}
    env.pop("PYTHONPATH", None)
    _run_python("import app", env)  # fill the .pyc cache so every timed run is a warm-disk cold start
    baseline = _wall_times("pass", env, runs)
    cold = _wall_times("import app", env, runs)
    print(f'## Cold import of app.py ({runs} fresh `python -c "import app"` processes)\n')
    print("| process | min ms | median ms | p90 ms |")
    print("|---|---:|---:|---:|")
    for label, times in (
        ("`python -c pass` (interpreter only)", baseline),
        ('`python -c "import app"`', cold),
    ):
        print(
            f"| {label} | {times[0] * 1000:.0f} | {statistics.median(times) * 1000:.0f} "
            f"| {percentile(times, 90) * 1000:.0f} |"
        )
    extra = statistics.median(cold) - statistics.median(baseline)
    print(f"\nimport app adds {extra * 1000:.0f} ms (median) over a bare interpreter.\n")

    check = f"import sys, json, app; print(json.dumps({{m: m in sys.modules for m in {HEAVY_MODULES!r}}}))"
    loaded = json.loads(_run_python(check, env).stdout)
    print(
        "Heavy modules in sys.modules after `import app`: "
        + ", ".join(f"{name}={'LOADED' if present else 'no'}" for name, present in loaded.items())
    )
    assert not any(loaded.values()), f"import app pulled in {[m for m, p in loaded.items() if p]}"

    rows = []
    for line in _run_python("import app", env, "-X", "importtime").stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line[len("import time:") :].split("|"))
        rows.append((int(cumulative_us), int(self_us), name))
    print('\n`python -X importtime -c "import app"`, top 10 by cumulative time:\n')
    print("| module | cumulative ms | self ms |")
    print("|---|---:|---:|")
    for cumulative_us, self_us, name in sorted(rows, reverse=True)[:10]:
        print(f"| `{name}` | {cumulative_us / 1000:.1f} | {self_us / 1000:.1f} |")
    print()


# --- 2. route latency ----------------------------------------------------------------------
class StubPlatform:
    """SageMaker stand-in: accepts everything, every job stays InProgress."""

    def start(self, request) -> None:
        pass

    def describe(self, training_job_name: str):
        from chalicelib.ports import IN_PROGRESS, TrainingDescription

        return TrainingDescription(status=IN_PROGRESS, secondary_status="Training")

    def stop(self, training_job_name: str) -> None:
        pass

    def check_image(self, image: str) -> None:
        pass

    def recover(self) -> None:
        pass

    def logs(self, training_job_name: str, offset: int, limit: int):
        return [], False

    def hardware(self):
        from chalicelib.ports import Hardware

        return Hardware(devices=[])

    def live_devices(self):
        return None


def local_services(home: Path):
    from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
    from chalicelib.adapters.local.job_store import SqliteJobStore
    from chalicelib.adapters.local.secret_store import FileSecretStore
    from chalicelib.wiring import Adapters

    return Adapters(
        jobs=SqliteJobStore(home / "jobs.sqlite3"),
        artifacts=DirectoryArtifactStore(home / "artifacts"),
        platform=StubPlatform(),
        secrets=FileSecretStore(home / "secrets"),
    )


class AdaptersSwitch:
    """Replaces `wiring.adapters` everywhere it was imported; `use()` picks which home answers."""

    def __init__(self, services):
        self.current = services

    def __call__(self):
        return self.current

    def install(self) -> None:
        import app
        from chalicelib import wiring
        from chalicelib.ai_factory import routes as ai_factory_routes
        from chalicelib.v15 import routes as v15_routes

        for module in (wiring, ai_factory_routes, v15_routes, app):
            module.adapters = self


def measure(
    client,
    method: str,
    path: str,
    body: str | bytes,
    headers: dict,
    expect: int,
    iterations: int,
    warmup: int,
) -> tuple[list[float], float]:
    for _ in range(warmup):
        response = client.http.request(method, path, headers=headers, body=body)
        assert response.status_code == expect, (path, response.status_code, response.body[:300])
    times = []
    statuses = set()
    total_start = time.perf_counter()
    for _ in range(iterations):
        start = time.perf_counter()
        response = client.http.request(method, path, headers=headers, body=body)
        times.append(time.perf_counter() - start)
        statuses.add(response.status_code)
    total = time.perf_counter() - total_start
    assert statuses == {expect}, f"{method} {path}: expected {expect}, got {statuses}"
    return sorted(times), total


def seed_v15_job(client, artifacts_root: Path, data_dir: Path, epochs: int = 5, losses: int = 500) -> str:
    """A v1.5 job made by the real POST /train, plus what its trainer would have written."""
    from urllib.parse import urlencode

    form = urlencode(
        {
            "task": "classification",
            "data_dir": str(data_dir),
            "algorithm": "resnet18",
            "num_epochs_to_finish": "10",
        }
    )
    response = client.http.post("/api/v1.5.0/train", headers=FORM_HEADERS, body=form)
    assert response.status_code == 200, response.body
    job_id = response.json_body["job_id"]
    job_dir = artifacts_root / "jobs" / job_id
    progress = {
        "status": "running",
        "datetime": "2026-01-01 00:00:00",
        "epoch": epochs,
        "total_epoch": 10,
        "batch": 40,
        "total_batch": 100,
        "avg_loss": 0.42,
        "learning_rate": 0.01,
        "samples_per_sec": 123.4,
        "eta_hr": 0.5,
        "exception": None,
        "attempt": 1,
        "devices": ["cpu"],
    }
    (job_dir / "progress.json").write_text(json.dumps(progress))
    (job_dir / "losses.json").write_text(json.dumps([1.0 / (1 + i) for i in range(losses)]))
    for epoch in range(1, epochs + 1):
        epoch_dir = job_dir / "checkpoints" / f"epoch-{epoch}"
        epoch_dir.mkdir(parents=True)
        metrics = {
            "epoch": epoch,
            "avg_loss": 1.0 / epoch,
            "metrics": {"overall": {"accuracy": 0.5 + epoch / 20}, "specific": {"precisions": [0.5, 0.6]}},
        }
        (epoch_dir / "metrics.json").write_text(json.dumps(metrics))
        (epoch_dir / "model.safetensors").write_bytes(b"\0" * 4096)
    return job_id


def route_latency(iterations: int, warmup: int, jobs_present: int, base: Path) -> None:
    from chalice.test import Client

    from app import app
    from chalicelib import settings, wiring
    from tests.builders import create_payload

    read_home, write_home, data_dir = base / "read", base / "write", base / "data"
    data_dir.mkdir(parents=True)
    os.environ.update(stage_env(read_home))
    read_svc, write_svc = local_services(read_home), local_services(write_home)
    switch = AdaptersSwitch(read_svc)
    with Client(app, stage_name="local") as client:
        settings.reset()  # the Client applied the stage's environment variables
        wiring.reset()
        switch.install()

        create_body = json.dumps(create_payload())
        names = []
        for _ in range(jobs_present):
            response = client.http.post("/create_training_job", headers=JSON_HEADERS, body=create_body)
            assert response.status_code == 200, response.body
            names.append(response.json_body["job_name"])
        job_name = json.dumps({"job_name": names[len(names) // 2]})
        v15_id = seed_v15_job(client, read_home / "artifacts", data_dir)
        job_path = f"/api/v1.5.0/train/{v15_id}"
        v15_form = "task=classification&algorithm=resnet18&data_dir=" + str(data_dir)
        rejected = json.dumps(create_payload(task_def="ml_vision"))

        # (label, services, method, path, body, headers, expected status)
        routes = [
            ("GET /api/version", read_svc, "GET", "/api/version", b"", {"x-api-key": API_KEY}, 200),
            (
                "POST /create_training_job",
                write_svc,
                "POST",
                "/create_training_job",
                create_body,
                JSON_HEADERS,
                200,
            ),
            (
                "POST /create_training_job (400: bad task_def)",
                write_svc,
                "POST",
                "/create_training_job",
                rejected,
                JSON_HEADERS,
                400,
            ),
            (
                f"POST /check_trained_job ({jobs_present} jobs)",
                read_svc,
                "POST",
                "/check_trained_job",
                "{}",
                JSON_HEADERS,
                200,
            ),
            ("POST /status", read_svc, "POST", "/status", job_name, JSON_HEADERS, 200),
            ("POST /stop_training_job", read_svc, "POST", "/stop_training_job", job_name, JSON_HEADERS, 200),
            ("POST /api/v1.5.0/train", write_svc, "POST", "/api/v1.5.0/train", v15_form, FORM_HEADERS, 200),
            (
                "GET /api/v1.5.0/train/<id> (monitor)",
                read_svc,
                "GET",
                job_path,
                b"",
                {"x-api-key": API_KEY},
                200,
            ),
            (
                "GET .../hyper-parameters",
                read_svc,
                "GET",
                job_path + "/hyper-parameters",
                b"",
                {"x-api-key": API_KEY},
                200,
            ),
            (
                "GET .../losses (500 values)",
                read_svc,
                "GET",
                job_path + "/losses",
                b"",
                {"x-api-key": API_KEY},
                200,
            ),
            (
                "GET .../checkpoints (5 epochs)",
                read_svc,
                "GET",
                job_path + "/checkpoints",
                b"",
                {"x-api-key": API_KEY},
                200,
            ),
            ("GET /api/version without x-api-key (403)", read_svc, "GET", "/api/version", b"", {}, 403),
        ]
        print(
            f"## Route latency through chalice.test.Client ({iterations} requests per route after "
            f"{warmup} warm-up, one thread)\n"
        )
        print("| route | p50 ms | p99 ms | mean ms | req/s |")
        print("|---|---:|---:|---:|---:|")
        for label, svc, method, path, body, headers, expect in routes:
            switch.current = svc
            times, total = measure(client, method, path, body, headers, expect, iterations, warmup)
            print(
                f"| {label} | {percentile(times, 50) * 1000:.2f} | {percentile(times, 99) * 1000:.2f} "
                f"| {statistics.fmean(times) * 1000:.2f} | {iterations / total:.0f} |"
            )
        listed = len(read_svc.jobs.list("ai_factory"))
        assert listed == jobs_present, f"the read home should still hold {jobs_present} jobs, has {listed}"
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="timed requests per route")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per route first")
    parser.add_argument("--imports", type=int, default=10, help="fresh processes timing `import app`")
    parser.add_argument("--jobs", type=int, default=50, help="AI Factory jobs present for /check_trained_job")
    args = parser.parse_args()

    print(f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]} ({sys.platform})\n")
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        base = Path(tmp)
        cold_import(args.imports, base / "import-home")
        route_latency(args.iterations, args.warmup, args.jobs, base)


if __name__ == "__main__":
    main()

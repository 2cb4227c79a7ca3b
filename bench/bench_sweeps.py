"""Sweeps and list pages against a job table with a long history (issue 17, section 4).

Run: `.venv/bin/python bench/bench_sweeps.py [--jobs 100000] [--active 10] [--page 100]`.

Seeds `--jobs` finished jobs (half AI Factory with their callback delivered, half v1.5) and
`--active` running ones into an emulated DynamoDB table (moto, in process, BatchWriteItem),
then measures, one call at a time: the two scheduled sweeps (`launch_queued`,
`deliver_pending`), a `check_trained_job` page and a `GET /api/v1.5.0/train` page, each the
way the code does it now (the `lane-index` GSI) and the way it did before (a Scan of the whole
table, `JobStore.list`, which both sweeps and both list routes called first). For each: items
DynamoDB read (the responses' ScannedCount, summed by a botocore hook), calls made, and the
Python heap's peak (tracemalloc) during the call. moto runs in this process, so the peak
includes moto's own copies of what it returns: compare rows with each other, not with a Lambda's
512 MB. Times are moto's (a Query there filters the whole table in Python), not DynamoDB's.
Exits 1 when a sweep reads more than the active jobs or a page more than three lanes of a page.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ[_name] = _value
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib.adapters.aws.artifact_store import S3ArtifactStore, make_s3_client  # noqa: E402
from chalicelib.adapters.aws.job_store import DynamoJobStore, table_definition  # noqa: E402
from chalicelib.ai_factory import service as ai_factory  # noqa: E402
from chalicelib.errors import NotFound  # noqa: E402
from chalicelib.job_record import Job  # noqa: E402
from chalicelib.ports import COMPLETED, IN_PROGRESS, Adapters, TrainingDescription  # noqa: E402
from chalicelib.services import events, jobs  # noqa: E402
from chalicelib.v15 import service as v15  # noqa: E402

TABLE, BUCKET = "aifactory-jobs-bench", "aifactory-artifacts-bench"


class Platform:
    """Every active job is running as its record says (a sweep's steady state: nothing to write
    back); nothing else is known (as SageMaker after its retention)."""

    def __init__(self, running: set[str]):
        self.running = running

    def describe(self, name: str) -> TrainingDescription:
        if name not in self.running:
            raise NotFound(name)
        return TrainingDescription(IN_PROGRESS, "Starting")


def record(n: int, active: bool) -> Job:
    """A record as the routes write it: about 1.3 KB of JSON."""
    api = "ai_factory" if n % 2 else "v1.5"
    stamp = f"2025-{1 + n // 2_000_000 % 12:02d}-01 {n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}"
    job_id, job_name = f"2025{n:010d}-{n:032x}", f"aif-{n:010d}"
    job = jobs.base_record(
        job_id,
        job_name,
        api,
        "ml_tagger" if api == "ai_factory" else "classification",
        creator="bench",
        image="111122223333.dkr.ecr.us-east-1.amazonaws.com/aifactory-trainer:2025.1",
        hyperparameters={f"process.train.param{i}": str(i * 0.001) for i in range(10)},
        resource={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        artifact_uri=f"s3://{BUCKET}/prod/jobs/{job_id}",
        callback={"url": "https://hooks.example.com/aifactory/callback"},
        dataset={"url": "https://data.example.com/pages", "pagination": {"page_size": 100}},
    )
    changes = {"created_at": stamp, "attempts": [{**job.attempts[0], "created_at": stamp}]}
    if not active:
        changes.update(status=COMPLETED, secondary_status="Completed", ended_at=stamp, settled=True)
        changes["billable_seconds"] = 1800
        if api == "ai_factory":
            changes["callback_outbox"] = {
                "state": "delivered",
                "status": COMPLETED,
                "attempts": 1,
                "next_attempt_at": 0,
                "lease_until": None,
                "lease_owner": None,
                "last_error": "",
                "delivered_at": 1.0,
            }
    return job.with_changes(changes)


def seed(client, store: DynamoJobStore, finished: int, active: int) -> set[str]:
    running, batch = set(), []
    for n in range(finished + active):
        is_active = n >= finished
        job = record(n, is_active)
        if is_active:
            running.add(job.job_name)
        batch.append({"PutRequest": {"Item": store._item(job, 1)}})
        if len(batch) == 25 or n == finished + active - 1:
            pending = {TABLE: batch}
            while pending:
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            batch = []
    return running


class Meter:
    """Calls and items read per DynamoDB/S3 operation, from botocore's after-call hook."""

    def __init__(self, *clients):
        self.calls: Counter[str] = Counter()
        self.items = 0
        for client in clients:
            client.meta.events.register("after-call.*.*", self._count)

    def _count(self, parsed, model, **_):
        self.calls[model.name] += 1
        if model.name in ("Scan", "Query"):
            self.items += parsed.get("ScannedCount", 0)
        elif model.name in ("GetItem", "BatchGetItem"):
            self.items += 1 if parsed.get("Item") else len(parsed.get("Responses", {}).get(TABLE, []))

    def measure(self, call):
        self.calls.clear()
        self.items = 0
        tracemalloc.start()
        started = time.perf_counter()
        result = call()
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return result, {
            "items": self.items,
            "calls": dict(self.calls),
            "peak_mb": peak / 2**20,
            "seconds": elapsed,
        }


def old_read(svc: Adapters) -> int:
    """Before: what each sweep and each list route read first, every record of the table (a
    paginated Scan; `list("ai_factory")` filtered it, which reads the same items). The sweeps
    then kept the queued or unsettled ones, the routes sorted and sliced a page off."""
    return len(svc.jobs.list())


def records_heap_mb(finished: int, active: int) -> float:
    """What the records `JobStore.list()` returns hold once parsed, on the client alone (no
    moto): the same records as seeded, read back as the stores do (`Job.from_item`) under
    tracemalloc."""
    docs = [
        json.dumps(record(n, n >= finished).to_item(), separators=(",", ":"), sort_keys=True)
        for n in range(finished + active)
    ]
    tracemalloc.start()
    held = [Job.from_item(json.loads(doc)) for doc in docs]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del held
    return peak / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="finished jobs in the table")
    parser.add_argument("--active", type=int, default=10, help="running jobs in the table")
    parser.add_argument("--page", type=int, default=100, help="jobs per list page")
    parser.add_argument("--no-old", action="store_true", help="skip the full-Scan rows")
    args = parser.parse_args()

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**table_definition(TABLE))
        s3 = make_s3_client(region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        store = DynamoJobStore(client, TABLE)
        started = time.perf_counter()
        running = seed(client, store, args.jobs, args.active)
        seeding = time.perf_counter() - started
        svc = Adapters(store, S3ArtifactStore(s3, BUCKET, "prod"), Platform(running), None)
        meter = Meter(client, s3)

        print(
            f"{args.jobs:,} finished jobs + {args.active} active in moto's DynamoDB "
            f"(seeded with BatchWriteItem in {seeding:.1f} s); list pages of {args.page}"
        )
        print()
        print("| operation | path | items read | calls | peak heap MB | moto s |")
        print("|---|---|---:|---|---:|---:|")
        rows = [
            ("sweep: launch_queued", "lane-index Query", lambda: events.launch_queued(svc)),
            ("sweep: deliver_pending", "lane-index Query", lambda: events.deliver_pending(svc)),
            (
                "page: check_trained_job",
                "lane-index Query",
                lambda: ai_factory.list_training_jobs(svc, {"limit": args.page}),
            ),
            (
                "page: GET /api/v1.5.0/train",
                "lane-index Query",
                lambda: v15.list_jobs(svc, {"limit": args.page}),
            ),
        ]
        if not args.no_old:  # one Scan: each old sweep and list route read exactly this first
            rows.append(
                ("each sweep or page before", "old: full Scan (JobStore.list)", lambda: old_read(svc))
            )
        figures = {}
        for operation, path, call in rows:
            _, got = meter.measure(call)
            figures[(operation, path)] = got
            calls = ", ".join(f"{name} {count:,}" for name, count in sorted(got["calls"].items()))
            print(
                f"| {operation} | {path} | {got['items']:,} | {calls} | {got['peak_mb']:.1f} | {got['seconds']:.2f} |"
            )
        sweeps_ok = all(
            figures[(op, "lane-index Query")]["items"] <= args.active
            for op in ("sweep: launch_queued", "sweep: deliver_pending")
        )
        pages_ok = all(
            figures[(op, "lane-index Query")]["items"] <= 3 * (args.page + 2)
            for op in ("page: check_trained_job", "page: GET /api/v1.5.0/train")
        )
        print()
        if not args.no_old:
            print(
                f"the records a full read returns, parsed, hold {records_heap_mb(args.jobs, args.active):.0f} MB "
                "on the client alone (json.loads of the seeded records under tracemalloc, no moto)"
            )
        print(f"sweeps read at most the {args.active} active jobs: {'yes' if sweeps_ok else 'NO'}")
        print(
            f"a page reads at most 3 x (page + 2) = {3 * (args.page + 2)} items: {'yes' if pages_ok else 'NO'}"
        )
        return 0 if sweeps_ok and pages_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

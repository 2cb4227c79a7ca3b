"""Concurrent page prefetch vs one page at a time, against a loopback endpoint with latency.

Run: `.venv/bin/python bench/bench_fetcher.py [--pages 50] [--latency 0.02] [--page-size 100]`.
Each page costs `latency` seconds on the server, as a remote dataset API would; the table
shows how much of that the prefetch hides.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_fetcher import fetch_all
from tests.dataset_fetcher.loopback import DatasetServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    records = [
        {"tokens": [f"w{i}", "flight"], "tags": ["B-x", "O"]} for i in range(args.pages * args.page_size)
    ]
    print(
        f"{args.pages} pages x {args.page_size} records, {args.latency * 1000:.0f} ms server latency per page"
    )
    print(f"{'concurrency':>11} | {'best s':>7} | {'pages/s':>8} | {'speed-up':>8}")
    print(f"{'-' * 11}-+-{'-' * 7}-+-{'-' * 8}-+-{'-' * 8}")
    baseline = None
    with DatasetServer(records, latency=args.latency) as server:
        for concurrency in args.concurrency:
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                got = fetch_all(
                    server.url,
                    {},
                    0,
                    args.page_size,
                    0,
                    "ml_tagger",
                    concurrency=concurrency,
                    allow_private=True,
                )
                best = min(best, time.perf_counter() - start)
                assert len(got) == len(records)
            baseline = baseline or best
            pages = args.pages + 1  # the closing empty page
            print(f"{concurrency:>11} | {best:>7.3f} | {pages / best:>8.1f} | {baseline / best:>7.2f}x")


if __name__ == "__main__":
    main()

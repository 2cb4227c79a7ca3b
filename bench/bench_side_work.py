"""Per-epoch times of the small job with the epoch's side work on a thread, inline, or off.

Why `background.has_spare_core` decides: on a machine where torch's intra-op threads take
every core, a background thread that serialises a checkpoint takes a core from them, and each
parallel op then waits for its slowest thread. This runs the real trainer (`trainer.entry.main`
over the same /opt/ml tree as bench_small_job.py) in a fresh process per mode and prints the
wall time of every `train_one_epoch` and `evaluate`, so the cost shows epoch by epoch:

    thread  checkpoints written on the background thread (what a GPU or a spare core gets)
    inline  written between epochs in the training thread (what a CPU-bound machine gets)
    off     not written at all (the floor: what the side work costs is the difference)

    .venv/bin/python bench/bench_side_work.py [--images 1800] [--epochs 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("thread", "inline", "off")


def child(mode: str, data: Path, epochs: int) -> None:
    """One trainer run in this process, with the mode forced; prints a JSON line of timings."""
    started = time.perf_counter()
    sys.path[:0] = [str(REPO / "bench"), str(REPO / "containers" / "trainer"), str(REPO)]
    import bench_small_job as small

    args = argparse.Namespace(batch_size=32, epochs=epochs, workers=-1)
    scratch = tempfile.TemporaryDirectory(prefix="side-work-")  # removed when this process exits
    base = small.opt_ml_tree(Path(scratch.name), data, args)
    os.environ["AIFACTORY_OPT_ML"] = str(base)
    from trainer import entry
    from trainer.vision import background, engine
    from trainer.vision import main as vision_main

    if mode == "off":
        vision_main._write_checkpoint = lambda *a, **k: None
    else:
        background.BackgroundWork.for_device = classmethod(lambda cls, device: cls(inline=mode == "inline"))
    epochs_s, evals_s = [], []

    def timed(fn, into):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                into.append(round(time.perf_counter() - start, 2))

        return wrapper

    engine.train_one_epoch = timed(engine.train_one_epoch, epochs_s)
    engine.evaluate = timed(engine.evaluate, evals_s)
    with contextlib.redirect_stdout(io.StringIO()):
        code = entry.main()
    total = round(time.perf_counter() - started, 2)
    print(json.dumps({"mode": mode, "exit": code, "total": total, "epochs": epochs_s, "evaluate": evals_s}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1800)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.epochs)
        return
    sys.path[:0] = [str(REPO / "bench")]
    import bench_small_job as small

    scratch = tempfile.TemporaryDirectory(prefix="side-work-data-")
    data = small.build_data(Path(scratch.name) / "data", args.images)
    print(f"{args.images} images, {args.epochs} epochs, {os.cpu_count()} CPUs; seconds per epoch")
    for r in range(args.rounds):
        for mode in MODES if r % 2 == 0 else tuple(reversed(MODES)):
            command = [sys.executable, __file__, "--epochs", str(args.epochs), "--child", mode, str(data)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"round {r + 1} {mode:6s} total {result['total']:6.2f} s  epochs {result['epochs']}  "
                f"evaluate {result['evaluate']}",
                flush=True,
            )


if __name__ == "__main__":
    main()

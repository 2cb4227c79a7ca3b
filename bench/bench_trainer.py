"""Trainer overhead: our classification epoch against a plain torchvision-style loop, and data wait.

Run: `.venv/bin/python bench/bench_trainer.py [--device cpu|cuda] [--images 512] [--image-size 32]
[--batch-size 32] [--rounds 5] [--workers 0,2]`.

(A) is `trainer.vision.engine.train_one_epoch` with the real heartbeat hook
(`trainer.vision.main.Progress` over a `Reporter` writing progress.json and losses.json to a
temporary `ArtifactWriter`); (B) is the loop of torchvision's classification reference with
nothing around it. Both share one resnet18 (from scratch), one SGD optimizer, the same AMP setup
and one DataLoader built by the trainer's own `_loaders`, so the only difference is the loop.
Rounds alternate and flip their order (AB, BA, ...) so warm-up and thermal drift hit both.

Data wait is the time an epoch of (A) spends in the loader's `next()`: from the end of step i
(on CUDA after a synchronize, so queued compute is not counted as waiting) until batch i+1 is in
hand. With 0 workers that synchronize also stops the CPU from loading while the GPU still runs
the backward pass, so on CUDA the number is an upper bound for that case.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "containers" / "trainer")]

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from trainer.artifacts import ArtifactWriter  # noqa: E402
from trainer.reporting import Reporter  # noqa: E402
from trainer.vision import data as vision_data  # noqa: E402
from trainer.vision import engine  # noqa: E402
from trainer.vision.models import build_model  # noqa: E402
from trainer.vision.synthetic import generate  # noqa: E402

try:  # the real heartbeat hook and loader settings; main pulls in matplotlib and safetensors too
    from trainer.vision import main as vision_main
except ImportError as exc:  # pragma: no cover - only on machines missing a trainer dependency
    vision_main = None
    print(f"WARNING: trainer.vision.main not importable ({exc}); using a reporter-only hook\n")

TASK = "classification"


class BenchContext:
    """The slice of entry.RunContext that Progress reads: a reporter and the stop flag."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def should_stop(self) -> bool:
        return False


class ReporterHook:
    """Fallback when trainer.vision.main cannot be imported: heartbeat and loss points only."""

    def __init__(self, reporter: Reporter, display: int):
        self.reporter, self.display = reporter, display

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.window = epoch, []

    def on_batch(self, batch: int, loss: float, batch_size: int) -> None:
        self.window.append(loss)
        if len(self.window) >= self.display:
            self.reporter.add_loss(sum(self.window) / len(self.window))
            self.window = []
        self.reporter.update(status="running", epoch=self.epoch, batch=batch)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_loader(train_ds, val_ds, hp: dict, device: torch.device) -> DataLoader:
    if vision_main is not None:
        return vision_main._loaders(train_ds, val_ds, TASK, hp, device, 1, 0)[0]
    bs, workers = int(hp["batch_size"]), int(hp["num_workers"])
    return DataLoader(
        train_ds,
        batch_size=bs,
        shuffle=True,
        num_workers=workers,
        collate_fn=vision_data.classification_collate,
        pin_memory=device.type == "cuda",
        drop_last=bs > 1 and len(train_ds) % bs == 1,
        persistent_workers=workers > 0,
    )


class TimedLoader:
    """Wraps a loader and records, per epoch, how long each `next()` kept the step waiting."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device
        self.waits: list[float] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.waits = []
        sync(self.device)
        start = time.perf_counter()
        iterator = iter(self.loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                self.waits.append(time.perf_counter() - start)
                return
            self.waits.append(time.perf_counter() - start)
            yield batch
            sync(self.device)  # the step that used this batch is finished on the device, too
            start = time.perf_counter()


class Bench:
    def __init__(self, args, device: torch.device, root: Path, artifacts: Path):
        self.args, self.device = args, device
        self.hp = {
            **(vision_main.resolve_hyperparameters(TASK, {"algorithm": "resnet18"}) if vision_main else {}),
            "algorithm": "resnet18",
            "pretrained": False,
            "batch_size": args.batch_size,
            "image_resized_width": args.image_size,
            "image_resized_height": args.image_size,
            "learning_rate": 0.008,
            "momentum": 0.9,
            "weight_decay": 0.0005,
            "num_batches_to_display": args.display,
        }
        self.train_ds, self.val_ds = vision_data.load_data(root, TASK, self.hp)
        torch.manual_seed(0)
        self.model = build_model(TASK, self.hp, len(self.train_ds.class_names)).to(device)
        self.optimizer = torch.optim.SGD(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=self.hp["learning_rate"],
            momentum=self.hp["momentum"],
            weight_decay=self.hp["weight_decay"],
        )
        self.amp_dtype, self.scaler = engine.amp_setup(device)
        self.criterion = nn.CrossEntropyLoss()
        self.reporter = Reporter(ArtifactWriter(str(artifacts)), total_epoch=1)
        self.epoch = 0
        self.stdout = io.StringIO()  # '#metric' lines the heartbeat prints, kept off the tables

    def progress(self, loader):
        if vision_main is None:
            return ReporterHook(self.reporter, self.hp["num_batches_to_display"])
        monitor = vision_main.DeviceMonitor(self.device)
        return vision_main.Progress(
            BenchContext(self.reporter), self.hp, 10**6, len(loader), 1, self.optimizer, monitor
        )

    def trainer_epoch(self, loader, progress) -> tuple[int, float, float]:
        """(A): what trainer.vision.main runs per epoch."""
        self.epoch += 1
        self.stdout.seek(0)
        self.stdout.truncate()
        sync(self.device)
        start, cpu = time.perf_counter(), time.process_time()
        progress.start_epoch(self.epoch)
        with contextlib.redirect_stdout(self.stdout):
            result = engine.train_one_epoch(
                self.model,
                self.optimizer,
                loader,
                self.device,
                self.epoch,
                TASK,
                amp_dtype=self.amp_dtype,
                scaler=self.scaler,
                clip_grad_base_and_max=None,
                on_batch=progress.on_batch,
                should_stop=lambda: False,
            )
        sync(self.device)
        return result.num_samples, time.perf_counter() - start, time.process_time() - cpu

    def plain_epoch(self, loader) -> tuple[int, float, float]:
        """(B): torchvision's references/classification train_one_epoch, minus its logger."""
        model, optimizer, scaler, device = self.model, self.optimizer, self.scaler, self.device
        samples = 0
        sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        model.train()
        for images, targets in loader:
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss = self.criterion(model(images), targets)
            optimizer.zero_grad()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            samples += images.shape[0]
        sync(device)
        return samples, time.perf_counter() - start, time.process_time() - cpu

    def compare(self, workers: int) -> dict:
        self.hp["num_workers"] = workers
        loader = make_loader(self.train_ds, self.val_ds, self.hp, self.device)
        progress = self.progress(loader)
        self.trainer_epoch(loader, progress)  # warm-up: workers, allocator, cuDNN heuristics
        self.plain_epoch(loader)
        rates: dict[str, list[float]] = {"A": [], "B": []}
        cpu_ms: dict[str, list[float]] = {"A": [], "B": []}  # process CPU time per sample
        for round_index in range(self.args.rounds):
            order = ("A", "B") if round_index % 2 == 0 else ("B", "A")
            for which in order:
                run = self.trainer_epoch(loader, progress) if which == "A" else self.plain_epoch(loader)
                n, seconds, cpu = run
                rates[which].append(n / seconds)
                cpu_ms[which].append(1000 * cpu / n)
        timed = TimedLoader(loader, self.device)
        waits, epochs, firsts = [], [], []
        for _ in range(self.args.rounds):
            _, seconds, _ = self.trainer_epoch(timed, progress)
            waits.append(sum(timed.waits))
            firsts.append(timed.waits[0])
            epochs.append(seconds)
        batches = len(loader)
        del timed, loader  # ends the persistent workers before the next worker count starts its own
        return {
            "workers": workers,
            "batches": batches,
            "A": rates["A"],
            "B": rates["B"],
            "overhead": [b / a - 1 for a, b in zip(rates["A"], rates["B"], strict=True)],
            "cpu_A": cpu_ms["A"],
            "cpu_B": cpu_ms["B"],
            "cpu_overhead": [a / b - 1 for a, b in zip(cpu_ms["A"], cpu_ms["B"], strict=True)],
            "wait": waits,
            "first": firsts,
            "epoch": epochs,
        }


def spread(values: list[float], fmt: str = "{:.1f}", scale: float = 1.0) -> str:
    med = statistics.median(values) * scale
    lo, hi = min(values) * scale, max(values) * scale
    return f"{fmt.format(med)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def load_average() -> str:
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    return (
        f"device {device} ({name}); {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}; "
        f"torch {torch.__version__}, python {platform.python_version()}"
    )


def report(results: list[dict], args, bench: Bench, device: torch.device) -> None:
    amp = (
        "off"
        if bench.amp_dtype is None
        else f"{bench.amp_dtype} autocast" + (" + GradScaler" if bench.scaler is not None else "")
    )
    print(f"\n{machine(device)}; load average {load_average()} at the end")
    print(
        f"resnet18 from scratch, {len(bench.train_ds.class_names)} classes, {len(bench.train_ds)} train images "
        f"of {args.image_size} px, batch {args.batch_size}, {results[0]['batches']} batches/epoch, AMP {amp}, "
        f"{args.rounds} rounds; values are median [min, max]\n"
    )
    print("### Trainer (A) vs plain torchvision loop (B), samples/s\n")
    print("| workers | A trainer | B plain | overhead B/A-1 (paired) | within 5% |")
    print("|---:|---:|---:|---:|:---:|")
    for r in results:
        met = "yes" if statistics.median(r["overhead"]) <= 0.05 else "NO"
        print(
            f"| {r['workers']} | {spread(r['A'])} | {spread(r['B'])} "
            f"| {spread(r['overhead'], '{:+.1f}%', 100)} | {met} |"
        )
    if device.type == "cpu":
        print("\n### The same epochs in process CPU time (workers excluded), ms/sample\n")
        print("| workers | A trainer | B plain | overhead A/B-1 (paired) | within 5% |")
        print("|---:|---:|---:|---:|:---:|")
        for r in results:
            met = "yes" if statistics.median(r["cpu_overhead"]) <= 0.05 else "NO"
            print(
                f"| {r['workers']} | {spread(r['cpu_A'])} | {spread(r['cpu_B'])} "
                f"| {spread(r['cpu_overhead'], '{:+.1f}%', 100)} | {met} |"
            )
    print("\n### Data wait in the trainer's epoch (A)\n")
    print("| workers | epoch s | wait s | wait % of epoch | first batch s |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        share = [w / e for w, e in zip(r["wait"], r["epoch"], strict=True)]
        print(
            f"| {r['workers']} | {spread(r['epoch'], '{:.2f}')} | {spread(r['wait'], '{:.3f}')} "
            f"| {spread(share, '{:.1f}%', 100)} | {spread(r['first'], '{:.3f}')} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--images", type=int, default=512, help="synthetic images (90%% train)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", default="0,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--display", type=int, default=20, help="num_batches_to_display (trainer default 20)")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch")
    device = engine.select_device(None if args.device == "cuda" else [], {})  # no instance type: this machine
    if device.type == "cuda":
        torch.cuda.set_device(device)

    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        start = time.perf_counter()
        root = generate(
            Path(tmp) / "data", TASK, args.images, args.image_size, args.classes, splits=(0.9, 0.1)
        )
        print(
            f"generated {args.images} images in {time.perf_counter() - start:.1f} s; "
            f"load average {load_average()} (1/5/15 min): other work on the machine skews wall-clock rates"
        )
        bench = Bench(args, device, root, Path(tmp) / "artifacts")
        results = []
        for w in workers:
            start = time.perf_counter()
            results.append(bench.compare(w))
            r = results[-1]
            print(
                f"workers {w}: {time.perf_counter() - start:.1f} s; samples/s A {statistics.median(r['A']):.1f} "
                f"B {statistics.median(r['B']):.1f}; data wait {statistics.median(r['wait']):.3f} s/epoch",
                flush=True,
            )
        report(results, args, bench, device)
        progress = (Path(tmp) / "artifacts" / "progress.json").is_file()
        print(
            f"\nheartbeats written: progress.json {'yes' if progress else 'NO'}, "
            f"{len(bench.reporter.losses)} loss points"
        )


if __name__ == "__main__":
    main()

"""`run(ctx)` for classification, detection and instance segmentation.

Data -> model -> (resume | finetune) -> epochs with heartbeats -> checkpoint every
`num_epochs_to_validate` epochs and at the last -> best checkpoint into the model dir.

Resume: the newest `epoch-<N>/` that still has weights and `train_state.pt` is the
resume point; training continues at N+1 (a partly trained epoch is discarded, never
half-counted) and the loss history is cut back to what epoch N had recorded. The
learning-rate schedule is replayed from the current `step_lr_sizes`/`step_lr_gamma`, so
overriding them (or `num_epochs_to_finish`) on restore takes effect.

Distributed: under torchrun (WORLD_SIZE > 1) or on several SageMaker hosts (one process
per host), DDP over NCCL/gloo (trainer.distributed). The ranks agree before every step and at
every epoch's end (`Group.agree_stop`), so a stop, a spot-interruption notice or a failure on
any host stops every host at the same step; rank 0 alone evaluates, checkpoints, writes plots
data and the model, and the others wait for it. A resume loads on every rank the checkpoint
rank 0 chose (its newest complete one), so all continue at the same next epoch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from contracts import layout, metrics, plots, statuses, v15_arguments
from contracts.errors import ArgumentError
from contracts.metrics import headline
from trainer import distributed
from trainer.artifacts import ArtifactWriter
from trainer.reporting import emit_metric
from trainer.vision import background, device_input, engine
from trainer.vision import checkpoint as ckpt
from trainer.vision import data as vision_data
from trainer.vision.metrics import warm_imports
from trainer.vision.models import build_model, describe_model, input_size, module_tree

log = logging.getLogger(__name__)

DEVICE_REFRESH_SECONDS = 10.0


def resolve_hyperparameters(task: str, job_hp: dict) -> dict:
    """The job's typed v1.5 arguments, checked again by the API's own table before any work
    (contracts.v15_arguments); a bad one fails the job with E03 naming the argument."""
    try:
        hp = v15_arguments.resolve_job_hyperparameters(task, job_hp or {})
    except ArgumentError as exc:
        raise ValueError(exc.message) from None
    return from_scratch_adjustments(task, hp)


def from_scratch_adjustments(task: str, hp: dict) -> dict:
    """Freezing keeps pretrained features; with no pretrained weights there is nothing to keep.

    Frozen random levels never learn, so a job that trains from scratch trains every level.
    The R-CNN tasks (whose spec default is needs_freeze_bn=True) get GroupNorm in backbone,
    FPN and heads (models.rcnn_norm): frozen BatchNorm from scratch holds the initial
    statistics and diverges, and live BatchNorm at batch 2 diverged too (Mask R-CNN's
    ResNet-50 at learning_rate 0.005 reached NaN by batch 8). A classifier keeps an explicit
    needs_freeze_bn=True (its default is False): on tiny data sets it learns faster that way.
    model.json records what was built.
    """
    pretrained = hp.get("pretrained" if task == "classification" else "backbone_pretrained", False)
    if pretrained:
        return hp
    levels_key = "num_frozen_levels" if task == "classification" else "backbone_num_frozen_levels"
    changes = {levels_key: 0}
    if task != "classification":
        changes["needs_freeze_bn"] = False
        changes["rcnn_norm"] = "group"
    overridden = {k: hp.get(k) for k, v in changes.items() if hp.get(k) != v}
    if overridden:
        log.warning("%s", scratch_message(task, overridden, changes))
    return {**hp, **changes}


def scratch_message(task: str, overridden: dict, changes: dict) -> str:
    """One sentence: what a from-scratch job changed, from what to what, and why."""
    flag = "pretrained" if task == "classification" else "backbone_pretrained"
    told = ", ".join(
        f"{k} from {'unset' if overridden[k] is None else overridden[k]} to {changes[k]}" for k in overridden
    )
    return f"{flag} is false, so the model trains from scratch with nothing frozen: {told}."


# --- distribution and devices -----------------------------------------------------------------


class DeviceMonitor:
    """v1.5 `devices` entries from NVML, refreshed at most every few seconds."""

    def __init__(self, device: torch.device):
        self.device = device
        self._cache: list[dict] = []
        self._at = -1e9
        self._nvml = None
        if device.type == "cuda":
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception:
                log.warning("NVML unavailable: devices will be reported empty")

    def snapshot(self) -> list[dict]:
        if self._nvml is None:
            return []
        now = time.monotonic()
        if now - self._at < DEVICE_REFRESH_SECONDS:
            return self._cache
        self._at = now
        nv = self._nvml
        try:
            index = self.device.index or 0
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            name = nv.nvmlDeviceGetName(handle)
            self._cache = [
                {
                    "id": index,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "utilization_in_percent": nv.nvmlDeviceGetUtilizationRates(handle).gpu,
                    "memory_total_in_mb": mem.total // 2**20,
                    "memory_used_in_mb": mem.used // 2**20,
                    "memory_free_in_mb": mem.free // 2**20,
                    "power_limit_in_watt": nv.nvmlDeviceGetPowerManagementLimit(handle) / 1000,
                    "power_usage_in_watt": nv.nvmlDeviceGetPowerUsage(handle) / 1000,
                }
            ]
        except Exception:
            log.debug("NVML query failed", exc_info=True)
        return self._cache


# --- weights: resume and finetune -----------------------------------------------------------


def load_matching(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Loads every tensor whose name and shape match; returns the names left at their fresh init."""
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(k for k in own if k not in matched)
    unrelated = [k for k in skipped if k not in state and not k.endswith("num_batches_tracked")]
    if len(unrelated) > len(own) // 2:
        raise ValueError(
            f"The weights of {source} do not fit this model ({len(unrelated)} of {len(own)} tensors missing); "
            "finetune from a job with the same algorithm and backbone"
        )
    model.load_state_dict(matched, strict=False)
    return skipped


def load_finetune(model: torch.nn.Module, finetune: dict, task: str, hp: dict) -> None:
    uri, epoch = finetune["checkpoint_uri"], int(finetune["epoch"])
    with tempfile.TemporaryDirectory() as tmp:
        path = ArtifactWriter(uri).download_dir(layout.epoch_dir(epoch), Path(tmp))
        weights = path / ckpt.WEIGHTS
        if not weights.is_file():
            raise FileNotFoundError(
                f"Checkpoint epoch {epoch} of {uri} has no weights (pruned by max_num_checkpoints); "
                "choose an available epoch"
            )
        source_json = (
            json.loads((path / ckpt.MODEL_JSON).read_text()) if (path / ckpt.MODEL_JSON).is_file() else {}
        )
        for key in ("task", "algorithm"):
            if source_json.get(key) not in (None, task if key == "task" else hp.get("algorithm")):
                raise ValueError(
                    f"Cannot finetune {hp.get('algorithm')} ({task}) from a {source_json[key]} checkpoint; "
                    f"use the same {key}"
                )
        skipped = load_matching(model, ckpt.load_weights(weights), f"{uri} epoch {epoch}")
    log.info("finetuning from %s epoch %d; re-initialised: %s", uri, epoch, skipped[:10])


# --- the loop -------------------------------------------------------------------------------


class Progress:
    """Turns batch callbacks into heartbeats and loss points."""

    def __init__(self, ctx, hp, total_epoch, total_batch, world_size, optimizer, monitor):
        self.ctx, self.reporter = ctx, ctx.reporter
        self.display = int(hp["num_batches_to_display"])
        self.total_epoch, self.total_batch, self.world = total_epoch, total_batch, world_size
        self.optimizer, self.monitor = optimizer, monitor
        self.samples_per_sec = -1.0

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.sum, self.window, self.samples = epoch, 0.0, [], 0
        self.points = 0  # loss points this epoch: every epoch gets at least one
        self.started = time.monotonic()

    def on_batch(self, batch: int, loss, batch_size: int) -> None:
        """`loss` may live on the GPU: it is read (a sync) only for a loss point or a heartbeat."""
        self.sum = self.sum + loss
        self.samples += batch_size
        self.window.append(loss)
        short_epoch = batch == self.total_batch and self.points == 0  # fewer batches than `display`
        if len(self.window) >= self.display or (short_epoch and self.window):
            point = engine.finite_loss(sum(self.window), self.epoch, batch) / len(self.window)
            self.window = []
            self.points += 1
            self.reporter.add_loss(point, plots.loss_step(self.epoch, batch, self.total_batch))
            if self.reporter.enabled:
                emit_metric(metrics.TRAIN_LOSS, point)
                emit_metric(metrics.TRAIN_LEARNING_RATE, self.optimizer.param_groups[0]["lr"])
        if not (batch == self.total_batch or self.reporter.due()):
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.samples_per_sec = self.samples * self.world / elapsed
        remaining = (self.total_batch - batch) + self.total_batch * (self.total_epoch - self.epoch)
        self.reporter.update(
            status="running",
            phase=statuses.TRAINING,
            epoch=self.epoch,
            batch=batch,
            avg_loss=engine.finite_loss(self.sum, self.epoch, batch) / batch,
            learning_rate=self.optimizer.param_groups[0]["lr"],
            samples_per_sec=self.samples_per_sec,
            eta_hr=remaining * (elapsed / batch) / 3600,
            devices=self.monitor.snapshot(),
        )


def _loaders(train_ds, val_ds, task, hp, device, world, rank):
    collate = vision_data.classification_collate if task == "classification" else vision_data.collate_fn
    bs = int(hp["batch_size"])
    workers = device_input.resolve_num_workers(hp, device, "num_workers" in v15_arguments.defaulted(hp))
    on_device = device_input.decode_on_device(task, device)
    log.info(
        "input: %d DataLoader workers, JPEG decode on %s", workers, device if on_device else "the workers"
    )
    if on_device:  # the workers read files; decode and augmentation run on the device
        train_ds, val_ds = device_input.EncodedView(train_ds), device_input.EncodedView(val_ds)
        collate = device_input.encoded_collate
    else:
        vision_data.cache_decoded([train_ds, val_ds], shared=workers > 0)  # decode once when it fits
    pin = device.type == "cuda"
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True) if world > 1 else None
    per_rank = len(train_ds) // world if world > 1 else len(train_ds)
    # A lone last sample would make BatchNorm see a batch of one (fatal for some nets): drop it.
    drop_last = bs > 1 and per_rank % bs == 1
    train_loader = DataLoader(
        train_ds,
        batch_size=bs,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin,
        drop_last=drop_last,
        persistent_workers=workers > 0,
    )
    val_loader = DataLoader(
        val_ds,
        batch_size=bs,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin,
        persistent_workers=workers > 0,
    )
    if on_device:
        train_loader = device_input.DeviceLoader(
            train_loader, device_input.DeviceDecode(train_ds.dataset.transforms, device)
        )
        val_loader = device_input.DeviceLoader(
            val_loader, device_input.DeviceDecode(val_ds.dataset.transforms, device)
        )
    return train_loader, val_loader


def _checkpoint_files(model_json, record, summary, evaluation, task, class_names) -> dict[str, bytes]:
    """The checkpoint's JSON files; its plots are drawn from these when asked for
    (contracts.plots), never while training."""
    files = {
        ckpt.MODEL_JSON: ckpt.json_bytes(model_json),
        ckpt.METRICS: ckpt.json_bytes(record),
        ckpt.SUMMARY: ckpt.json_bytes(summary),
    }
    if task == "classification":
        from trainer.vision.metrics import confusion_matrix, precision_recall_vs_threshold

        c = len(class_names)
        matrix = confusion_matrix(evaluation.probs, evaluation.targets, c)
        thresholds, precision, recall = precision_recall_vs_threshold(evaluation.probs, evaluation.targets, c)
        files[layout.PLOT_DATA_JSON] = ckpt.json_bytes(
            plots.plot_data(
                class_names, matrix.tolist(), thresholds.tolist(), precision.tolist(), recall.tolist()
            )
        )
    return files


def best_checkpoint(root: Path, task: str) -> tuple[int, Path, dict] | None:
    """The available checkpoint that contracts.metrics ranks best (the one the API stars)."""
    found = {
        epoch: (path, json.loads((path / ckpt.METRICS).read_text()))
        for epoch, path in ckpt.list_checkpoints(root)
        if (path / ckpt.WEIGHTS).is_file()
    }
    best = metrics.best_epoch(
        {epoch: headline(task, record["metrics"]) for epoch, (_, record) in found.items()}
    )
    return None if best is None else (best, *found[best])


def export_best(ctx, task: str) -> None:
    found = best_checkpoint(ctx.env.checkpoint_dir, task)
    if found is None:
        return
    epoch, path, record = found
    model_dir = ctx.env.model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in (ckpt.WEIGHTS, ckpt.MODEL_JSON, ckpt.METRICS, ckpt.SUMMARY):
        if (path / name).is_file():
            (model_dir / name).write_bytes((path / name).read_bytes())
    ctx.reporter.put_result({"best_epoch": epoch, "metrics": record["metrics"]})


def _write_checkpoint(root, epoch, file_args, weights, state, max_num_checkpoints, task) -> None:
    """Writes the checkpoint (from snapshots where it runs beside training, `BackgroundWork.frozen`)."""
    ckpt.write_checkpoint(root, epoch, _checkpoint_files(*file_args), weights, state)
    ckpt.prune(root, max_num_checkpoints, task)


def _prepare(env, task: str, hp: dict, device: torch.device):
    """This rank's data, model and optimizer (every rank builds its own; DDP starts them all
    from rank 0's weights)."""
    # classifiers get uint8 batches and convert them on the device (engine.to_float)
    train_ds, val_ds = vision_data.load_data(
        env.channel_dir("training"), task, hp, as_float=task != "classification"
    )
    if len(val_ds) == 0:
        raise ValueError("The validation split lists no images; add image names to splits/val.txt")
    class_names = list(train_ds.class_names)
    model = device_input.prepare_model(build_model(task, hp, len(class_names)).to(device), task, device)
    optimizer = engine.build_optimizer(model, hp)
    amp_dtype, scaler = engine.amp_setup(device)
    return train_ds, val_ds, class_names, model, optimizer, amp_dtype, scaler


def _resume(ctx, group, done: int | None, model, optimizer, scaler, hp: dict) -> int:
    """Loads checkpoint `done` (rank 0's choice; None: a fresh start, or a finetune) and
    returns the first epoch to train. Every rank loads the same one, so all continue at the
    same epoch with the same optimizer state."""
    env = ctx.env
    if done is None:
        ctx.reporter.set_losses([])
        if env.job.finetune:
            load_finetune(model, env.job.finetune, env.task, hp)
        return 1
    path = ckpt.epoch_dir(env.checkpoint_dir, done)
    if not (path / ckpt.WEIGHTS).is_file():
        raise FileNotFoundError(
            f"{env.current_host} cannot read checkpoint epoch-{done} at {path}, which rank 0 resumes "
            "from; every host must see the job's checkpoints (the checkpoint S3 URI)"
        )
    model.load_state_dict(ckpt.load_weights(path / ckpt.WEIGHTS))
    if (path / ckpt.TRAIN_STATE).is_file():
        state = ckpt.load_train_state(path / ckpt.TRAIN_STATE)
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        ckpt.restore_rng(state)
        num_losses = int(state["num_losses"])
        log.info("resuming after epoch %d from %s", done, path)
    else:
        record = json.loads((path / ckpt.METRICS).read_text())
        num_losses = int(record.get("num_losses", len(ctx.reporter.losses)))
        log.info("resuming after epoch %d from the weights of %s with a fresh optimizer state", done, path)
    ctx.reporter.set_losses(ctx.reporter.losses[:num_losses])
    return done + 1


def run(ctx) -> None:
    """Trains; checkpoint side work (background.BackgroundWork) is all flushed on return."""
    with contextlib.ExitStack() as stack:
        _run(ctx, stack)


def _run(ctx, stack: contextlib.ExitStack) -> None:
    env = ctx.env
    task = env.task
    hp = resolve_hyperparameters(task, env.hyperparameters)
    group = distributed.setup(
        env, lambda local_rank: engine.select_device(hp["visible_devices"], env.resource_config, local_rank)
    )
    stack.callback(group.close)
    device, world = group.device, group.world
    work = stack.enter_context(background.BackgroundWork.for_device(device))
    is_master = group.is_writer and ctx.writer is not None

    # every rank resumes from the checkpoint rank 0 chose: its newest complete one
    chosen = ckpt.latest_resumable(env.checkpoint_dir) if group.is_writer else None
    resume_epoch = group.broadcast(None if chosen is None else chosen[0])
    failure = None
    try:
        train_ds, val_ds, class_names, model, optimizer, amp_dtype, scaler = _prepare(env, task, hp, device)
        model_json = describe_model(task, hp, class_names)
        start_epoch = _resume(ctx, group, resume_epoch, model, optimizer, scaler, hp)
    except Exception as exc:  # agreed on: every host fails with it, none waits for the others
        failure = exc
    if group.agree_stop(ctx.should_stop(), failure, "loading the data and the model"):
        log.info("Stop agreed before training began")
        ctx.stop_event.set()  # a host that got no SIGTERM stops (and reports `stopped`) as well
        return
    for param_group in optimizer.param_groups:  # replay the schedule from the (possibly overridden) settings
        param_group["lr"] = float(hp["learning_rate"])
        param_group.pop("initial_lr", None)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(hp["step_lr_sizes"]), gamma=float(hp["step_lr_gamma"])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(start_epoch - 1):
            scheduler.step()

    train_loader, val_loader = _loaders(train_ds, val_ds, task, hp, device, world, group.rank)
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    total_epoch = int(hp["num_epochs_to_finish"])
    total_batch = len(train_loader)
    warmup_iterations = engine.warmup_iterations(task, total_batch)
    model_json["lr_warmup"] = engine.describe_warmup(warmup_iterations)
    ctx.reporter.update(
        force=True,
        status="initialized",
        total_epoch=total_epoch,
        total_batch=total_batch,
        epoch=start_epoch - 1,
        batch=0,
    )
    if is_master and start_epoch == 1:
        ctx.writer.put_json(
            layout.MODEL_GRAPH_JSON, plots.model_graph(module_tree(model, hp.get("algorithm", task)))
        )
    if is_master:  # ready for the first validation (imported beside the first epoch where that is free)
        work.submit(warm_imports, task)
    progress = Progress(ctx, hp, total_epoch, total_batch, world, optimizer, DeviceMonitor(device))
    every = int(hp["num_epochs_to_validate"])
    summary = None

    def checkpoint(epoch: int, avg_loss: float) -> None:
        """Rank 0: evaluates, queues `epoch-<N>/` beside training and reports the headline metric."""
        nonlocal summary
        ctx.reporter.update(force=True, phase=statuses.EVALUATING, eta_hr=-1)
        evaluation = engine.evaluate(model, val_loader, device, task, class_names, amp_dtype)
        if summary is None:
            summary = ckpt.summarize(model, task, input_size(task, hp), device)
        record = {
            "epoch": epoch,
            "avg_loss": round(avg_loss, 6),
            "metrics": evaluation.metrics,
            "num_losses": len(ctx.reporter.losses),  # where a resume from these weights cuts the history
        }
        state = work.frozen(ckpt.make_train_state(epoch, optimizer, len(ctx.reporter.losses), scaler))
        work.submit(
            _write_checkpoint,
            env.checkpoint_dir,
            epoch,
            (dict(model_json), record, summary, evaluation, task, class_names),
            work.frozen_weights(model),
            state,
            int(hp["max_num_checkpoints"]),
            task,
        )
        emit_metric(
            metrics.EVAL_ACCURACY if task == "classification" else metrics.EVAL_MAP,
            headline(task, evaluation.metrics),
        )

    for epoch in range(start_epoch, total_epoch + 1):
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        progress.start_epoch(epoch)
        result = engine.train_one_epoch(
            train_model,
            optimizer,
            train_loader,
            device,
            epoch,
            task,
            amp_dtype=amp_dtype,
            scaler=scaler,
            clip_grad_base_and_max=hp["clip_grad_base_and_max"],
            on_batch=progress.on_batch,
            should_stop=ctx.should_stop,
            agree=lambda stop, failure, at=f"epoch {epoch}": group.agree_stop(stop, failure, at),
            warmup_iterations=warmup_iterations if epoch == 1 else 0,
        )
        if result.stopped:
            log.info(
                "Stop agreed at epoch %d, batch %d (rank %d of %d): resuming will restart the epoch",
                epoch,
                result.num_batches,
                group.rank,
                world,
            )
            ctx.stop_event.set()
            break
        scheduler.step()
        if is_master:
            emit_metric(metrics.TRAIN_EPOCH, epoch)
            emit_metric(metrics.TRAIN_EPOCH_LOSS, result.avg_loss)
            emit_metric(metrics.TRAIN_SAMPLES_PER_SEC, progress.samples_per_sec)
        failure = None
        if is_master and (epoch % every == 0 or epoch == total_epoch):
            try:
                checkpoint(epoch, result.avg_loss)
            except Exception as exc:  # agreed on below: the others are not left waiting for it
                failure = exc
        # the others wait here for rank 0's checkpoint; a stop at an epoch's end keeps the epoch
        if group.agree_stop(ctx.should_stop(), failure, f"the end of epoch {epoch}"):
            log.info("Stop agreed at the end of epoch %d (rank %d of %d)", epoch, group.rank, world)
            ctx.stop_event.set()
            break

    work.drain()  # every checkpoint on disk before the best one is chosen
    if is_master:
        export_best(ctx, task)
    group.barrier("rank 0's model export")  # the others exit once the job's files are written

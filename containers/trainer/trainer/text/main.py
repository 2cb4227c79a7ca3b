"""ml_tagger / ml_topic training, shaped like torchvision's reference scripts.

`run(ctx)` = fetch the records → build model, optimizer, schedule (resuming from the newest step
checkpoint if the checkpoint directory has one) → step loop with checkpoints every
`saveCheckpointSteps` → held-out evaluation → final model + result.json. The training
length is counted in steps (`process.train.steps`), as in the original tf.estimator
trainer, not in epochs.

Fine-tuning (job.json `finetune`, from the `model.finetuneFrom` hyper-parameter): a new job
starts from another job's model, its vocabulary extended and its labels checked
(trainer.text.finetune); resuming from this job's own checkpoint takes precedence.

Several GPUs or instances: DDP (trainer.distributed, the runtime the vision trainer shares),
every rank training on its shard of each epoch with `process.train.batchsize` examples per
step; rank 0 alone fetches (and broadcasts the records), evaluates and writes files and
heartbeats. Each step's loss and stop request are all-reduced together, so a SIGTERM seen by
any rank stops all of them after the same step; a failure of rank 0's fetch or checkpoint is
agreed on, so the others fail with it instead of waiting.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import torch
from torch import nn

from contracts import metrics
from trainer import gpu_required
from trainer.distributed import Group, setup
from trainer.reporting import emit_metric
from trainer.secrets import read_dataset_headers
from trainer.text import checkpoints, finetune
from trainer.text.config import TextConfig, as_hyperparameters, parse_hyperparameters
from trainer.text.data import (
    IGNORE_INDEX,
    SPECIALS,
    StepBatches,
    TextData,
    eval_batches,
    load_records,
    prepare_data,
)
from trainer.text.entities import EntityCounts, callback_entry, is_span_scheme
from trainer.text.metrics import callback_log, confusion_matrix, scores
from trainer.text.models import build_model, model_spec

log = logging.getLogger("trainer.text")

FORMAT_VERSION = 1


def pick_device(
    using_gpu: bool, resource_config: dict, group: Group | None = None, name: str = "using_gpu"
) -> torch.device:
    """CUDA when asked for and present; a CPU-only machine still trains (slowly) instead of failing,
    unless `resource_config` (the environment's) names a GPU instance (E01)."""
    if using_gpu and torch.cuda.is_available():
        return group.device if group is not None and group.device.type == "cuda" else torch.device("cuda")
    gpu_required.check(using_gpu, torch.cuda.is_available, resource_config)
    if using_gpu:
        log.info("%s is true but this machine has no CUDA device, so it runs on the CPU.", name)
    return torch.device("cpu")


def pick_devices(
    config: TextConfig, resource_config: dict, group: Group | None = None
) -> tuple[torch.device, torch.device]:
    """(training, evaluation) devices; a fallback to the CPU is logged once, naming what asked for the GPU."""
    if config.using_gpu == config.eval_using_gpu:
        name = "using_gpu (and eval_using_gpu)" if config.using_gpu else "using_gpu"
        device = pick_device(config.using_gpu, resource_config, group, name)
        return device, device
    return (
        pick_device(config.using_gpu, resource_config, group),
        pick_device(config.eval_using_gpu, resource_config, group, "eval_using_gpu"),
    )


def describe_devices(device: torch.device) -> list[dict]:
    if device.type != "cuda":
        return []
    return [
        {
            "id": i,
            "name": torch.cuda.get_device_name(i),
            "memory_in_mb": torch.cuda.get_device_properties(i).total_memory // 2**20,
        }
        for i in range(torch.cuda.device_count())
    ]


def fetch_inputs(ctx, config: TextConfig, group: Group, resuming: bool) -> tuple[list[dict], object] | None:
    """Rank 0 fetches the records (and the fine-tuning source, unless resuming) for every rank;
    its failure is agreed on, so the others fail with it rather than wait for the broadcast."""
    inputs, failure = None, None
    try:
        if group.rank == 0:
            inputs = _fetch(ctx, config, resuming)
    except Exception as exc:  # agreed on below
        failure = exc
    group.agree_stop(False, failure, "fetching the dataset")
    return group.broadcast(inputs)


def _fetch(ctx, config: TextConfig, resuming: bool) -> tuple[list[dict], object] | None:
    """The records and the fine-tuning source (None when a stop came during the fetch)."""
    inputs = None
    headers = read_dataset_headers(ctx.env.job.data)
    records = load_records(ctx.env.job.data, ctx.env.task, headers, ctx.should_stop)
    if not ctx.should_stop():
        if not records:
            raise ValueError(
                "The dataset endpoint returned no records; check data.url and pagination.begin_offset"
            )
        source = None
        if not resuming:
            if ctx.env.job.finetune:
                source = finetune.load_source(ctx.env.job.finetune, ctx.env.task)
            elif config.finetune_from:
                raise ValueError(
                    f"model.finetuneFrom={config.finetune_from} was not resolved into job.json's "
                    "finetune; submit the job through the API, which checks the source job"
                )
        inputs = (records, source)
    return inputs


def model_meta(task: str, spec: dict, data: TextData, config: TextConfig) -> dict:
    """model.json: what inference needs to rebuild the model and read its outputs."""
    return {
        "format_version": FORMAT_VERSION,
        "task": task,
        "algorithm": spec["architecture"],
        "model": spec,
        "vocab": data.encoder.vocab,
        "classes": data.encoder.classes,
        "special_tokens": dict(zip(("pad", "unk", "bos", "eos"), SPECIALS, strict=True)),
        "tokenizer": "whitespace",
        "hyperparameters": as_hyperparameters(config),
    }


def make_optimizer(model: nn.Module, config: TextConfig):
    """SGD with momentum; lr = init * decayRate ** (step // decayLearningSteps)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=config.init_lr, momentum=config.momentum)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: config.decay_rate ** (step // config.decay_steps)
    )
    return optimizer, schedule


def compute_loss(criterion: nn.Module, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return criterion(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def train_one_step(model, criterion, optimizer, schedule, batch, device, config: TextConfig) -> float:
    model.train()
    batch = batch.to(device)
    loss = compute_loss(criterion, model(batch.ids, batch.lengths), batch.target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.clip_grad_norm:
        nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
    optimizer.step()
    schedule.step()
    return float(loss.detach())


@torch.no_grad()
def evaluate(model, criterion, data: TextData, config: TextConfig, device: torch.device) -> dict:
    """Held-out report (see metrics.scores) plus `loss`, over at most `process.eval.steps` batches;
    a tagger whose tags are B-/I- (or IOBES) spans gets `entities` too (trainer.text.entities)."""
    num_outputs = (
        model.head[-1].out_features if isinstance(model.head, nn.Sequential) else model.head.out_features
    )
    classes = data.encoder.classes
    spans = EntityCounts() if data.encoder.task == "ml_tagger" and is_span_scheme(classes) else None
    names = [*classes, *(["O"] * (num_outputs - len(classes)))]  # unnamed outputs are no entity
    home = next(model.parameters()).device
    model.to(device).eval()
    matrix = torch.zeros((num_outputs, num_outputs), dtype=torch.long)
    total_loss, batches = 0.0, 0
    try:
        for batch in eval_batches(data.heldout, config.eval_batch_size, config.eval_steps):
            batch = batch.to(device)
            logits = model(batch.ids, batch.lengths)
            if (batch.target != IGNORE_INDEX).any():
                total_loss += float(compute_loss(criterion, logits, batch.target))
                batches += 1
            predicted = logits.argmax(-1)
            matrix += confusion_matrix(predicted, batch.target, num_outputs)
            if spans is not None:
                for true_row, predicted_row in zip(batch.target.tolist(), predicted.tolist(), strict=True):
                    kept = [(t, p) for t, p in zip(true_row, predicted_row, strict=True) if t != IGNORE_INDEX]
                    spans.add([names[t] for t, _ in kept], [names[p] for _, p in kept])
    finally:
        model.to(home)
    report = scores(matrix, len(classes))
    report["loss"] = total_loss / max(1, batches)
    if spans is not None:
        report["entities"] = spans.scores()
    return report


def result_log(report: dict) -> dict:
    """The callback's `log`: the spec's `avg` and `details`, and `entities` beside them when scored."""
    out = callback_log(report)
    if "entities" in report:
        out["entities"] = callback_entry(report["entities"])
    return out


def emit_eval(report: dict) -> None:
    emit_metric(metrics.EVAL_LOSS, report["loss"])
    emit_metric(metrics.EVAL_ACCURACY, report["accuracy"])
    emit_metric(metrics.EVAL_PRECISION, report["avg"]["precision"])
    emit_metric(metrics.EVAL_RECALL, report["avg"]["recall"])
    emit_metric(metrics.EVAL_F1, report["avg"]["f1-score"])


@dataclass
class Session:
    """One attempt's moving parts, so the loop and the save points share them."""

    ctx: object
    config: TextConfig
    data: TextData
    model: nn.Module  # the model itself: what is evaluated and saved
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    meta: dict
    device: torch.device
    eval_device: torch.device
    group: Group = field(default_factory=Group)
    train_model: nn.Module | None = None  # the DDP wrapper when several processes train

    @property
    def writes(self) -> bool:
        return self.ctx.env.is_master and self.group.is_writer

    def save(self, step: int, avg_loss: float, with_eval: bool) -> dict | None:
        """Rank 0 evaluates and writes `step-<N>/`; the other ranks wait for it (and fail with it)."""
        report, failure = None, None
        try:
            report = self._write(step, avg_loss, with_eval) if self.writes else None
        except Exception as exc:  # agreed on below
            failure = exc
        self.group.agree_stop(False, failure, f"rank 0's checkpoint of step {step}")
        return report

    def _write(self, step: int, avg_loss: float, with_eval: bool) -> dict | None:
        """Rank 0's part: the held-out report (when `with_eval`) and the checkpoint files."""
        report = None
        metrics = {"avg_loss": avg_loss}
        if with_eval:
            report = evaluate(self.model, self.criterion, self.data, self.config, self.eval_device)
            emit_eval(report)
            metrics["eval"] = {
                key: report[key] for key in ("loss", "accuracy", "avg", "entities") if key in report
            }
        state = {
            "step": step,
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.schedule.state_dict(),
            "num_losses": len(self.ctx.reporter.losses),
            "format_version": FORMAT_VERSION,
        }
        checkpoints.save(
            self.ctx.env.checkpoint_dir, step, self.model, self.meta, state, metrics, self.config.keep_max
        )
        return report


def train(session: Session, start_step: int) -> tuple[int, float, bool]:
    """Runs steps until `process.train.steps` or a stop request; returns (step, recent avg loss, stopped)."""
    ctx, config, group = session.ctx, session.config, session.group
    batches = StepBatches(session.data.train, config.batch_size, config.seed, group.rank, group.world)
    total_epoch = math.ceil(config.steps / batches.per_epoch)
    recent: deque[float] = deque(maxlen=100)
    window: list[float] = []
    step, samples, started = start_step, 0, time.perf_counter()
    last_saved = start_step
    stop = group.agree(0.0, ctx.should_stop())[1] if group.active else ctx.should_stop()
    while step < config.steps and not stop:
        batch = batches(step)
        lr = session.optimizer.param_groups[0]["lr"]
        local_loss = train_one_step(
            session.train_model or session.model,
            session.criterion,
            session.optimizer,
            session.schedule,
            batch,
            session.device,
            config,
        )
        loss, stop = group.agree(local_loss, ctx.should_stop())
        if not math.isfinite(loss):
            raise RuntimeError(
                f"The training loss became {loss} at step {step + 1}; lower process.train.initLearningRate "
                f"(now {config.init_lr}) or process.train.clipGradNorm"
            )
        step += 1
        samples += len(batch) * group.world
        recent.append(loss)
        window.append(loss)
        if step % config.loss_every == 0:
            ctx.reporter.add_loss(sum(window) / len(window))
            if session.writes:
                emit_metric(metrics.TRAIN_LOSS, sum(window) / len(window))
                emit_metric(metrics.TRAIN_LEARNING_RATE, lr)
                emit_metric(metrics.TRAIN_SAMPLES_PER_SEC, samples / max(time.perf_counter() - started, 1e-9))
            window.clear()
        elapsed = max(time.perf_counter() - started, 1e-9)
        per_step = elapsed / (step - start_step)
        ctx.reporter.update(
            status="running",
            epoch=batches.epoch_of(step - 1) + 1,
            total_epoch=total_epoch,
            batch=step,
            total_batch=config.steps,
            avg_loss=sum(recent) / len(recent),
            learning_rate=lr,
            samples_per_sec=samples / elapsed,
            eta_hr=(config.steps - step) * per_step / 3600,
        )
        if config.save_steps and step % config.save_steps == 0 and step < config.steps and not stop:
            session.save(step, sum(recent) / len(recent), with_eval=True)
            last_saved = step
    avg_loss = sum(recent) / max(1, len(recent))
    if stop:
        ctx.stop_event.set()  # a rank that got no SIGTERM stops (and reports `stopped`) as well
        log.warning("Stop requested at step %d: saving a checkpoint", step)
        if step > last_saved:
            session.save(step, avg_loss, with_eval=False)
    return step, avg_loss, stop


def build(task: str, config: TextConfig, data: TextData, resume, source) -> tuple[dict, nn.Module]:
    """(model.json's `model` block, the model): resumed, fine-tuned or fresh."""
    if resume is not None:
        spec = resume.meta["model"]
    elif source is not None:
        spec = finetune.model_spec(source, len(data.encoder.vocab), config)
    else:
        num_classes = max(config.num_classes, len(data.encoder.classes))
        spec = model_spec(task, len(data.encoder.vocab), num_classes, config)
    model = build_model(spec)
    if resume is not None:
        model.load_state_dict(resume.weights)
    elif source is not None:
        finetune.load_into(model, source)
    return spec, model


def run(ctx) -> None:
    env = ctx.env
    task = env.task
    config = parse_hyperparameters(env.hyperparameters)
    use_cuda = config.using_gpu and torch.cuda.is_available()
    group = setup(
        env, lambda local: torch.device("cuda", local % torch.cuda.device_count()) if use_cuda else None
    )
    try:
        _run(ctx, task, config, group)
    finally:
        group.close()


def resume_point(env, task: str, group: Group):
    """The checkpoint every rank resumes from: rank 0's newest (None: a fresh start). A rank
    that cannot read that same one fails, and every rank with it, rather than train apart."""
    chosen = group.broadcast(checkpoints.list_steps(env.checkpoint_dir)[-1:] if group.is_writer else None)
    resume, failure = None, None
    try:
        resume = checkpoints.load_latest(env.checkpoint_dir) if chosen else None
        if chosen and (resume is None or resume.step != chosen[0]):
            raise FileNotFoundError(
                f"{env.current_host} cannot read checkpoint step-{chosen[0]} under {env.checkpoint_dir}, "
                "which rank 0 resumes from; every host must see the job's checkpoints"
            )
        if resume is not None and resume.meta.get("task") != task:
            raise ValueError(
                f"Checkpoint {resume.path} is for task {resume.meta.get('task')!r}, not {task!r}"
            )
    except Exception as exc:  # agreed on below
        failure = exc
    group.agree_stop(False, failure, "reading the checkpoint to resume")
    return resume


def _run(ctx, task: str, config: TextConfig, group: Group) -> None:
    env = ctx.env
    torch.manual_seed(config.seed)
    device, eval_device = pick_devices(config, env.resource_config, group)

    resume = resume_point(env, task, group)
    inputs = fetch_inputs(ctx, config, group, resuming=resume is not None)
    if inputs is None:
        return
    records, source = inputs
    data = prepare_data(
        task,
        records,
        config,
        resume.meta if resume else None,
        source.meta if source else None,
        source.name if source else "",
    )
    spec, model = build(task, config, data, resume, source)
    torch.manual_seed(config.seed + group.rank)  # same initial weights, different dropout per rank
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    model.to(device)
    optimizer, schedule = make_optimizer(model, config)
    start_step = 0
    if resume is not None:
        optimizer.load_state_dict(resume.state["optimizer"])
        schedule.load_state_dict(resume.state["lr_scheduler"])
        start_step = int(resume.state["step"])
        ctx.reporter.set_losses(ctx.reporter.losses[: int(resume.state["num_losses"])])
        log.info("Resuming from checkpoint %s at step %d", resume.path, start_step)
    meta = model_meta(task, spec, data, config)
    if source is not None:
        meta["finetuned_from"] = {**env.job.finetune, "vocab_size": len(source.meta["vocab"])}
    train_model = None
    if group.active:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    session = Session(
        ctx,
        config,
        data,
        model,
        criterion,
        optimizer,
        schedule,
        meta,
        device,
        eval_device,
        group,
        train_model,
    )
    ctx.reporter.update(
        force=True,
        status="initialized",
        batch=start_step,
        total_batch=config.steps,
        learning_rate=optimizer.param_groups[0]["lr"],
        devices=describe_devices(device),
    )

    step, avg_loss, stopped = train(session, start_step)
    # the last step's numbers, also when the whole run took less than a heartbeat's interval
    ctx.reporter.update(force=True)
    if stopped:
        return
    report = session.save(step, avg_loss, with_eval=True) if step > start_step else None
    if not session.writes:
        return
    if report is None:  # resumed from a checkpoint that had already reached the last step
        report = evaluate(model, criterion, data, config, eval_device)
        emit_eval(report)
    checkpoints.write_model(env.model_dir, model, session.meta)
    result = {"log": result_log(report)}
    (env.model_dir / checkpoints.METRICS_FILE).write_text(
        json.dumps({"step": step, "avg_loss": avg_loss, **result}, indent=1)
    )
    ctx.reporter.put_result(result)
    log.info(
        "Finished at step %d: held-out weighted F1 %.4f%s",
        step,
        report["avg"]["f1-score"],
        f", entity-level F1 {report['entities']['f1-score']:.4f}" if "entities" in report else "",
    )

"""`aifactory`: the command line over `aifactory.Client`.

Every command prints what the API said, readably, or with `--json` as JSON for scripts.
Failures are one line on stderr naming the problem (never a traceback) and a non-zero
exit: 1 for an API error or a job that did not finish, 2 for a usage error, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from aifactory import config, errors
from aifactory.client import Client, is_v15_job
from aifactory.follow import AI_FACTORY_TERMINAL, V15_TERMINAL, follow
from aifactory.progress import ProgressView, monitor_line, status_line

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
TASKS = ["classification", "detection", "instance_segmentation"]


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage dump) and an exception, not `sys.exit`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


# --- output ---------------------------------------------------------------------------------
def emit(args: argparse.Namespace, value: Any, text: str | None = None) -> None:
    if args.json:
        print(json.dumps(value, indent=2, sort_keys=False, default=str))
    elif text is not None:
        print(text)


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def needs_v15(command: str, job: str) -> None:
    if not is_v15_job(job):
        raise UsageError(
            f"{command} works on v1.5 job ids (YYYYmmddHHMMSS-<uuid>); {job!r} looks like an AI Factory job name"
        )


# --- commands ---------------------------------------------------------------------------------
def cmd_version(client: Client, args: argparse.Namespace) -> int:
    version = client.version()
    emit(args, {"version": version}, version)
    return 0


def cmd_environment(client: Client, args: argparse.Namespace) -> int:
    body = client.environment()
    env = body.get("environment", {})
    soft = env.get("software", {})
    lines = [f"{k}: {v}" for k, v in soft.items()]
    lines += [
        f"device {d.get('id')}: {d.get('name')} ({d.get('memory_in_mb')} MB)"
        for d in env.get("hardware", {}).get("devices", [])
    ] or ["devices: none (CPU)"]
    emit(args, body, "\n".join(lines))
    return 0


def cmd_devices(client: Client, args: argparse.Namespace) -> int:
    body = client.devices()
    rows = [
        [
            d.get("id"),
            d.get("name"),
            d.get("utilization_in_percent"),
            d.get("memory_used_in_mb"),
            d.get("memory_total_in_mb"),
        ]
        for d in body.get("devices", [])
    ]
    emit(
        args,
        body,
        table(rows, ["ID", "NAME", "UTIL%", "MEM_USED_MB", "MEM_TOTAL_MB"]) if rows else "no devices (CPU)",
    )
    return 0


def parse_train_extras(extras: list[str]) -> dict[str, str]:
    """`--name value` / `--name=value` pairs: any v1.5 train argument (dashes read as underscores)."""
    found: dict[str, str] = {}
    i = 0
    while i < len(extras):
        token = extras[i]
        if not token.startswith("--") or len(token) < 3:
            raise UsageError(f"aifactory train: unexpected {token!r}; train arguments are --name value")
        name, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(extras):
                raise UsageError(f"aifactory train: --{name} needs a value")
            value = extras[i + 1]
            i += 1
        found[name.replace("-", "_")] = value
        i += 1
    return found


def cmd_train(client: Client, args: argparse.Namespace) -> int:
    job_id = client.train(args.task, args.data_dir, **args.train_args)
    if args.follow:
        if not args.json:
            print(job_id, flush=True)
        return run_follow(client, args, job_id)
    emit(args, {"result": "OK", "job_id": job_id}, job_id)
    return 0


def cmd_create(client: Client, args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.payload == "-" else Path(args.payload).read_text()
    except OSError as exc:
        raise UsageError(f"aifactory create: cannot read {args.payload}: {exc.strerror}") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"aifactory create: {args.payload} is not JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    body = client.create_training_job(payload)
    job_name = body["job_name"]
    if args.follow:
        if not args.json:
            print(job_name, flush=True)
        return run_follow(client, args, job_name)
    emit(args, body, job_name)
    return 0


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    """Both APIs' jobs: v1.5 (`GET /api/v1.5.0/train`, every page) then AI Factory (check_trained_job)."""
    try:
        v15 = list(client.iter_jobs())
    except errors.RouteNotFound:  # an older server without the v1.5 list route
        v15 = []
    ai_factory = client.check_trained_job()
    items = [{"api": "v1.5", **j} for j in v15] + [{"api": "ai_factory", **i} for i in ai_factory]
    rows = [
        [
            j.get("job_id"),
            f"v1.5 {j.get('task', '')}".strip(),
            j.get("status"),
            f"{j['epoch']}/{j['total_epoch']}" if j.get("total_epoch") else "",
            j.get("created_at"),
        ]
        for j in v15
    ] + [
        [i.get("TrainingJobName"), "ai_factory", i.get("TrainingJobStatus"), "", i.get("CreationTime")]
        for i in ai_factory
    ]
    emit(args, items, table(rows, ["JOB", "API", "STATUS", "EPOCH", "CREATED"]) if rows else "no jobs")
    return 0


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    if is_v15_job(args.job):
        body = client.monitor(args.job)
        text = monitor_line(body)
        exc = body.get("exception")
        if exc:
            text += f"\n{exc.get('code')} {exc.get('type')}: {exc.get('message')}"
    else:
        body = client.status(args.job)
        text = status_line(body)
    emit(args, body, text)
    return 0


def cmd_logs(client: Client, args: argparse.Namespace) -> int:
    if args.follow:
        args.json = False  # lines as they come; `--json` pages make no sense in a stream
        view = _LinePrinter()
        outcome = follow(client, args.job, on_lines=view.lines, poll_seconds=args.poll, metrics=args.metrics)
        if not outcome.ok:
            print(f"aifactory: {outcome.reason}", file=sys.stderr)
            return EXIT_ERROR
        return 0
    if args.limit is not None or args.json:
        page = client.logs(args.job, args.offset, args.limit, args.metrics)
        emit(args, page, "\n".join(page["lines"]))
        return 0
    for line in client.iter_logs(args.job, args.offset, metrics=args.metrics):
        print(line)
    return 0


class _LinePrinter:
    def lines(self, lines: list[str]) -> None:
        for line in lines:
            print(line, flush=True)


def cmd_stop(client: Client, args: argparse.Namespace) -> int:
    v15 = is_v15_job(args.job)
    if not v15:  # the AI Factory API answers a stop of an ended job as if it stopped it
        ended = client.status(args.job).get("status", "")
        if ended in AI_FACTORY_TERMINAL:
            return _already_ended(args, ended)
    try:
        body = client.stop(args.job) if v15 else client.stop_training_job(args.job)
    except errors.Conflict:  # v1.5: "Job is not under tracking." for a job that is not running
        status = (
            client.monitor(args.job).get("status", "") if v15 else client.status(args.job).get("status", "")
        )
        if status in V15_TERMINAL + AI_FACTORY_TERMINAL:
            return _already_ended(args, status)
        raise
    emit(args, body, f"stopping {args.job}")
    return 0


def _already_ended(args: argparse.Namespace, status: str) -> int:
    """Stopping a job that is not running: say so, and succeed (nothing is left to stop)."""
    if status in ("stopped", "Stopped"):
        text = f"job {args.job} is already stopped"
    else:
        text = f"job {args.job} already ended ({status}); nothing to stop"
    emit(args, {"job": args.job, "status": status, "already_ended": True}, text)
    return 0


def cmd_restore(client: Client, args: argparse.Namespace) -> int:
    needs_v15("restore", args.job)
    body = client.restore(args.job)
    if args.follow:
        if not args.json:
            print(f"restored {args.job}", flush=True)
        return run_follow(client, args, args.job)
    emit(args, body, f"restored {args.job}")
    return 0


def cmd_clear(client: Client, args: argparse.Namespace) -> int:
    needs_v15("clear", args.job)
    emit(args, client.clear(args.job), f"cleared {args.job}")
    return 0


def cmd_checkpoints(client: Client, args: argparse.Namespace) -> int:
    needs_v15("checkpoints", args.job)
    if args.epoch is not None:
        item = client.checkpoint(args.job, args.epoch)
        shown = {k: v for k, v in item.items() if k != "base64_metric_plot"}
        emit(args, item, json.dumps(shown, indent=2))
        return 0
    listing = client.checkpoint_listing(args.job)
    items = listing["checkpoints"]
    metric = next((k for k in ("accuracy", "mean_ap") if items and k in items[0]), "score")
    rows = [
        [
            c["epoch"],
            f"{c['avg_loss']:.4f}",
            f"{c.get(metric, -1):.4f}",
            "*" if c["is_best"] else "",
            "yes" if c["is_available"] else "no",
            megabytes(c.get("bytes")),
        ]
        for c in items
    ]
    text = (
        table(rows, ["EPOCH", "AVG_LOSS", metric.upper(), "BEST", "AVAILABLE", "SIZE"])
        if rows
        else "no checkpoints yet"
    )
    if listing.get("disk_bytes") is not None:
        text += f"\njob holds {megabytes(listing['disk_bytes'])} (free a finished job's space: aifactory reclaim JOB)"
    emit(args, items, text)
    return 0


def megabytes(value) -> str:
    return "?" if value is None else f"{value / 1e6:.1f} MB"


def cmd_reclaim(client: Client, args: argparse.Namespace) -> int:
    needs_v15("reclaim", args.job)
    body = client.reclaim(args.job)
    emit(
        args,
        body,
        f"freed {megabytes(body['freed_bytes'])}; job {args.job} holds {megabytes(body['disk_bytes'])}",
    )
    return 0


def cmd_download(client: Client, args: argparse.Namespace) -> int:
    out = Path(args.output)
    if not is_v15_job(args.job):
        if args.epoch is not None:
            raise UsageError(
                "aifactory download: --epoch applies to v1.5 jobs; an AI Factory job has one model"
            )
        out.mkdir(parents=True, exist_ok=True)
        path = client.download_model(args.job, out)
        emit(args, {"path": str(path), "bytes": path.stat().st_size}, str(path))
        return 0
    epoch = args.epoch
    if epoch is None:
        best = [c for c in client.checkpoints(args.job) if c["is_best"]]
        if not best:
            raise errors.NotFound(f"job {args.job} has no checkpoint yet")
        epoch = best[0]["epoch"]
    item = client.checkpoint(args.job, epoch)
    # No route of the v1.5 API serves a checkpoint's weights file (deploy it to serve it instead).
    if not args.json:
        print(
            "aifactory: note: the v1.5 API serves no checkpoint weights file; "
            "writing the checkpoint's metrics and plot",
            file=sys.stderr,
        )
    target = out / f"{args.job}-epoch-{epoch}"
    target.mkdir(parents=True, exist_ok=True)
    plot = item.pop("base64_metric_plot", None)
    written = [target / "checkpoint.json"]
    written[0].write_text(json.dumps(item, indent=2) + "\n")
    if plot:
        written.append(target / "metric.jpg")
        written[1].write_bytes(base64.b64decode(plot))
    emit(args, {"epoch": epoch, "paths": [str(p) for p in written]}, "\n".join(str(p) for p in written))
    return 0


def cmd_deployments(client: Client, args: argparse.Namespace) -> int:
    items = client.deployments()
    rows = [
        [
            d.get("job_id"),
            d.get("epoch"),
            d.get("target_device_id"),
            d.get("status") or "",
            d.get("memory") or "",
            d.get("instance_type") or "",
        ]
        for d in items
    ]
    emit(
        args,
        items,
        table(rows, ["JOB", "EPOCH", "DEVICE", "STATUS", "MEMORY", "INSTANCE"]) if rows else "no deployments",
    )
    failed = [d for d in items if d.get("failure_reason")]
    if failed and not args.json:
        for d in failed:
            print(f"{d.get('job_id')} epoch {d.get('epoch')}: {d['failure_reason']}")
    return 0


def cmd_deploy(client: Client, args: argparse.Namespace) -> int:
    needs_v15("deploy", args.job)
    body = client.deploy(args.job, args.task, args.epoch, args.device)
    emit(args, body, f"deployed {args.job} epoch {args.epoch}")
    return 0


def cmd_undeploy(client: Client, args: argparse.Namespace) -> int:
    needs_v15("undeploy", args.job)
    body = client.undeploy(args.job, args.epoch, args.device)
    emit(args, body, f"undeployed {args.job} epoch {args.epoch}")
    return 0


def cmd_infer(client: Client, args: argparse.Namespace) -> int:
    needs_v15("infer", args.job)
    if (args.image is None) == (args.server_path is None):
        raise UsageError("aifactory infer: give an IMAGE file or --server-path PATH (one of them)")
    try:
        with _deploy_hint(args):
            body = client.infer(
                args.job, args.task, args.epoch, image=args.image, path_to_image=args.server_path
            )
    except OSError as exc:
        raise UsageError(f"aifactory infer: cannot read {args.image}: {exc.strerror}") from None
    written = _write_images(args.output, body.get("base64_images") or []) if args.output else []
    text = "\n".join(prediction_lines(body) + [f"wrote {p}" for p in written])
    emit(args, body, text)
    return 0


def cmd_infer_multiple(client: Client, args: argparse.Namespace) -> int:
    needs_v15("infer-multiple", args.job)
    with _deploy_hint(args):
        body = client.infer_multiple(args.job, args.task, args.epoch, args.patterns)
    lines: list[str] = []
    for image in body.get("images") or []:
        found = prediction_lines(image)
        lines.append(
            f"{image.get('path')}: {found[0].strip()}" if len(found) == 1 else f"{image.get('path')}:"
        )
        if len(found) > 1:
            lines += [f"  {line}" for line in found]
        if image.get("omitted"):
            lines.append(
                f"  (omitted from this answer: {image['omitted']}; `aifactory infer` the image for all)"
            )
    emit(args, body, "\n".join(lines) or "no image matched")
    return 0


def prediction_lines(body: dict[str, Any]) -> list[str]:
    """An infer answer for people: `red 1.00` (classification); one line per box with its score
    (detection) or per instance with its area (instance segmentation)."""
    if "classification" in body:
        c = body["classification"] or {}
        if c.get("category") is None:
            return [f"no confident class (top probability {_prob(c.get('prob'))})"]
        return [f"{c['category']} {_prob(c.get('prob'))}"]
    for key, noun in (("detections", "detection"), ("instance_segmentations", "instance")):
        if key in body:
            items = body[key] or []
            if not items:
                return [f"no {noun}s above the threshold"]
            lines = []
            for item in items:
                box = ", ".join(f"{v:.0f}" for v in item.get("bbox") or [])
                line = f"{item.get('category')} {_prob(item.get('prob'))} box [{box}]"
                if "area" in item:
                    line += f" area {item['area']}"
                lines.append(line)
            return lines
    return ["no prediction in the answer"]


def _prob(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "?"


def _write_images(output: str, images: list[str]) -> list[Path]:
    """The answer's JPEGs: the first to `output`, any more beside it as `<stem>-2<suffix>`, ..."""
    if not images:
        raise errors.AIFactoryError("the answer has no image to write (base64_images is empty)")
    first = Path(output)
    if first.suffix == "":
        first = first.with_suffix(".jpg")
    first.parent.mkdir(parents=True, exist_ok=True)
    paths = [first] + [first.with_name(f"{first.stem}-{i}{first.suffix}") for i in range(2, len(images) + 1)]
    for path, data in zip(paths, images, strict=True):
        path.write_bytes(base64.b64decode(data))
    return paths


class _deploy_hint:
    """The API's "deploy it first with POST /api/v1.5.0/deploy/..." as this CLI's own command."""

    def __init__(self, args: argparse.Namespace):
        self.args = args

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> None:
        if isinstance(exc, errors.NotFound) and "deploy it first" in exc.message:
            a = self.args
            raise errors.NotFound(
                f"epoch {a.epoch} of job {a.job} is not deployed; deploy it first with "
                f"`aifactory deploy {a.job} --task {a.task} --epoch {a.epoch}`",
                exc.status,
                exc.method,
                exc.url,
            ) from None


def _write_file(args: argparse.Namespace, data: bytes, default_name: str) -> int:
    """A JPEG the API drew, written to `-o` (default: `default_name` here); prints the path."""
    path = Path(args.output or default_name)
    if path.is_dir():
        path = path / default_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    emit(args, {"path": str(path), "bytes": len(data)}, str(path))
    return 0


def cmd_plot(client: Client, args: argparse.Namespace) -> int:
    needs_v15("plot", args.job)
    kind = args.kind
    if kind in ("confusion-matrix", "threshold") and args.epoch is None:
        raise UsageError(f"aifactory plot {kind}: give --epoch (a checkpoint's epoch)")
    if kind == "threshold" and args.class_index is None:
        raise UsageError("aifactory plot threshold: give --class (the class index, 0 first)")
    if kind == "model-graph":
        data, name = client.plot_model_graph(args.job), f"{args.job}-model-graph.jpg"
    elif kind == "loss":
        data, name = client.plot_loss(args.job), f"{args.job}-loss.jpg"
    elif kind == "confusion-matrix":
        data = client.plot_confusion_matrix(args.job, args.epoch)
        name = f"{args.job}-confusion-matrix-epoch-{args.epoch}.jpg"
    else:
        data = client.plot_threshold(args.job, args.epoch, args.class_index)
        name = f"{args.job}-threshold-epoch-{args.epoch}-class-{args.class_index}.jpg"
    return _write_file(args, data, name)


def cmd_summarize(client: Client, args: argparse.Namespace) -> int:
    needs_v15("summarize", args.job)
    body = client.summarize(args.job, args.task, args.epoch)
    keys = body.get("param_keys") or []
    lines = [
        f"FLOPs: {body.get('flops')}",
        f"parameters: {body.get('params')}",
        f"{len(keys)} parameter tensors:",
    ]
    lines += [f"  {k}" for k in keys]
    if keys:
        lines.append(
            f"draw one with `aifactory visualize {args.job} --task {args.task} --epoch {args.epoch} --param-key KEY`"
        )
    emit(args, body, "\n".join(lines))
    return 0


def cmd_visualize(client: Client, args: argparse.Namespace) -> int:
    needs_v15("visualize", args.job)
    data = client.visualize(args.job, args.task, args.epoch, args.param_key)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in args.param_key)
    return _write_file(args, data, f"{args.job}-epoch-{args.epoch}-{safe}.jpg")


def cmd_aug(client: Client, args: argparse.Namespace) -> int:
    data = client.aug_preview(args.task, args.data_dir, args.index, **args.train_args)
    return _write_file(args, data, f"aug-{args.index}.jpg")


def cmd_keys(client: Client, args: argparse.Namespace) -> int:
    """API keys as tenants: each key sees only its own jobs and deployments."""
    if args.action == "list":
        rows = client.keys()
        emit(args, rows, table(
            [[k["tenant_id"], k["name"], "yes" if k["admin"] else "", _quota_text(k["quotas"]),
              k.get("revoked_at") or ""] for k in rows],
            ["TENANT", "NAME", "ADMIN", "QUOTAS", "REVOKED"],
        ))  # fmt: skip
        return 0
    if not args.target:
        raise UsageError(
            f"aifactory keys {args.action}: give the tenant's {'name' if args.action == 'create' else 'id'}"
        )
    if args.action == "revoke":
        body = client.revoke_key(args.target)
        emit(args, body, f"revoked {args.target}: its key is refused from now on")
        return 0
    quotas: dict[str, Any] = {}
    if args.max_concurrent_jobs is not None:
        quotas["max_concurrent_jobs"] = args.max_concurrent_jobs
    if args.max_deployments is not None:
        quotas["max_deployments"] = args.max_deployments
    if args.instance_types:
        quotas["instance_types"] = [t.strip() for t in args.instance_types.split(",") if t.strip()]
    body = client.create_key(args.target, admin=args.admin, quotas=quotas)
    tenant = body["tenant"]
    emit(
        args,
        body,
        f"tenant {tenant['tenant_id']} ({tenant['name']}); its API key, shown only now:\n{body['api_key']}",
    )
    return 0


def _quota_text(quotas: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in quotas.items() if v not in (None, [], ())]
    return ", ".join(parts) or "stage limits"


# The API's messages name its routes; the CLI's user is told the CLI's command instead.
_ROUTE_HINTS = (
    (
        re.compile(r"DELETE /api/v1\.5\.0/deploy/<job_id> \(epoch, target_device_id\)"),
        "`aifactory undeploy JOB --epoch EPOCH --device DEVICE`",
    ),
    (
        re.compile(r"POST /api/v1\.5\.0/deploy/(\S+) \(task, epoch, target_device_id\)"),
        r"`aifactory deploy \1 --task TASK --epoch EPOCH`",
    ),
    (re.compile(r"GET /models/(\S+) with your x-api-key"), r"`aifactory download \1`"),
)


def cli_terms(message: str) -> str:
    """An API message with the routes it names replaced by this CLI's commands."""
    for pattern, command in _ROUTE_HINTS:
        message = pattern.sub(command, message)
    return message


# --- following ---------------------------------------------------------------------------------
def run_follow(client: Client, args: argparse.Namespace, job: str) -> int:
    if args.json:
        outcome = follow(client, job, poll_seconds=args.poll, logs=False)
        print(json.dumps(outcome.as_dict(), indent=2, default=str))
    else:
        view = ProgressView(job)
        try:
            outcome = follow(client, job, on_status=view.status, on_lines=view.lines, poll_seconds=args.poll)
        finally:
            view.close()
        if outcome.ok:
            print(f"job {job} {outcome.status}")
    if not outcome.ok:
        print(f"aifactory: {outcome.reason}", file=sys.stderr)
        return EXIT_ERROR
    return 0


# --- parser -----------------------------------------------------------------------------------
def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="API base URL (default: AIFACTORY_URL, $AIFACTORY_HOME/url, http://127.0.0.1:8000)",
    )
    common.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help="x-api-key (default: AIFACTORY_API_KEY, $AIFACTORY_HOME/api_key)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    common.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="seconds to wait for an answer (default 60)"
    )
    parser = Parser(
        prog="aifactory",
        description="Train, follow and inspect AI Factory jobs of both APIs (v1.5 vision and AI Factory).",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(name: str, func, help_text: str, job: bool = False, follow_flag: bool = False) -> Parser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(func=func)
        if job:
            p.add_argument("job", metavar="JOB", help="v1.5 job id or AI Factory job name")
        if follow_flag:
            p.add_argument("--follow", action="store_true", help="show progress and logs until the job ends")
            p.add_argument("--poll", type=float, default=1.0, help="seconds between polls (default 1)")
        return p

    command("version", cmd_version, "the API version")
    command("environment", cmd_environment, "the training environment: Python, CUDA, devices")
    command("devices", cmd_devices, "device usage")
    p = command(
        "train", cmd_train, "start a v1.5 training job; any v1.5 argument as --name value", follow_flag=True
    )
    p.add_argument("--task", required=True, choices=["classification", "detection", "instance_segmentation"])
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", required=True)
    p.epilog = "Any other v1.5 train argument as --name value, e.g. --algorithm resnet18 --pretrained False --batch_size 8."
    p = command(
        "create", cmd_create, "start an AI Factory job from the spec's JSON payload", follow_flag=True
    )
    p.add_argument(
        "--payload", required=True, metavar="FILE", help="the create_training_job JSON ('-' reads stdin)"
    )
    command("jobs", cmd_jobs, "list both APIs' jobs: v1.5 (every page) and AI Factory")
    command("status", cmd_status, "a job's status (v1.5: the heartbeat)", job=True)
    p = command("logs", cmd_logs, "a job's stdout/stderr", job=True)
    p.add_argument("--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between polls (default 1)")
    p.add_argument(
        "--offset", type=int, default=0, help="first line to show (default 0; offsets count every line)"
    )
    p.add_argument("--limit", type=int, default=None, help="at most this many lines (one page)")
    p.add_argument(
        "--metrics", action="store_true", help="also the #metric lines (for SageMaker's metric regexes)"
    )
    command("stop", cmd_stop, "stop a running job", job=True)
    command(
        "restore",
        cmd_restore,
        "resume a stopped v1.5 job from its last checkpoint",
        job=True,
        follow_flag=True,
    )
    command("clear", cmd_clear, "delete a stopped or ended v1.5 job and its artifacts", job=True)
    command(
        "reclaim",
        cmd_reclaim,
        "free a finished v1.5 job's space: weights of all but its best and deployed checkpoints, optimizer state",
        job=True,
    )
    p = command("checkpoints", cmd_checkpoints, "a v1.5 job's checkpoints, their metrics and sizes", job=True)
    p.add_argument("--epoch", type=int, default=None, help="one checkpoint in full")
    p = command(
        "download",
        cmd_download,
        "AI Factory: the model.tar.gz; v1.5: a checkpoint's metrics and plot (the v1.5 API serves no weights file)",
        job=True,
    )
    p.add_argument("--epoch", type=int, default=None, help="v1.5 checkpoint epoch (default: the best)")
    p.add_argument("-o", "--output", default=".", metavar="DIR", help="directory to write into (default .)")
    command("deployments", cmd_deployments, "deployed checkpoints")
    for name, func, help_text in (
        ("deploy", cmd_deploy, "deploy a v1.5 checkpoint for inference"),
        ("undeploy", cmd_undeploy, "undeploy a v1.5 checkpoint"),
    ):
        p = command(name, func, help_text, job=True)
        if name == "deploy":
            p.add_argument(
                "--task", required=True, choices=["classification", "detection", "instance_segmentation"]
            )
        p.add_argument("--epoch", type=int, required=True)
        p.add_argument("--device", type=int, default=-1, help="target_device_id (-1: CPU)")
    p = command("keys", cmd_keys, "API keys as tenants: create, list or revoke (the stage's or an admin key)")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("target", nargs="?", metavar="NAME|TENANT", help="create: a name; revoke: the tenant id")
    p.add_argument("--admin", action="store_true", help="create: a key that sees every tenant's work")
    p.add_argument(
        "--max-concurrent-jobs", type=int, default=None, help="create: jobs running or queued at once"
    )
    p.add_argument("--max-deployments", type=int, default=None, help="create: live deployments at once")
    p.add_argument("--instance-types", default=None, help="create: comma-separated training instance types")
    p = command("infer", cmd_infer, "infer one image with a deployed v1.5 checkpoint", job=True)
    p.add_argument("image", nargs="?", metavar="IMAGE", help="a local image file (sent as base64_image)")
    p.add_argument(
        "--server-path", default=None, metavar="PATH", help="an image path the server reads instead"
    )
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument(
        "-o", "--output", default=None, metavar="FILE", help="write the annotated image (JPEG) here"
    )
    p = command(
        "infer-multiple", cmd_infer_multiple, "infer the server-side images glob patterns match", job=True
    )
    p.add_argument("patterns", nargs="+", metavar="PATTERN", help="a path or glob the server reads")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--epoch", type=int, required=True)
    p = command(
        "plot",
        cmd_plot,
        "a v1.5 job's plot as a JPEG: model-graph, loss, confusion-matrix, threshold",
        job=True,
    )
    p.add_argument("kind", choices=["model-graph", "loss", "confusion-matrix", "threshold"])
    p.add_argument("--epoch", type=int, default=None, help="confusion-matrix, threshold: the checkpoint")
    p.add_argument("--class", dest="class_index", type=int, default=None, help="threshold: class index")
    p.add_argument(
        "-o", "--output", default=None, metavar="FILE", help="where to write (default: a name here)"
    )
    p = command(
        "summarize", cmd_summarize, "a v1.5 checkpoint's FLOPs, parameters and parameter names", job=True
    )
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--epoch", type=int, required=True)
    p = command("visualize", cmd_visualize, "one parameter of a v1.5 checkpoint drawn as a JPEG", job=True)
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument("--param-key", required=True, help="a name `aifactory summarize` lists")
    p.add_argument(
        "-o", "--output", default=None, metavar="FILE", help="where to write (default: a name here)"
    )
    p = command("aug", cmd_aug, "preview data augmentation on one image of a data directory, as a JPEG")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument(
        "--data-dir", "--data_dir", dest="data_dir", required=True, help="a directory the server reads"
    )
    p.add_argument("--index", type=int, default=0, help="which image (default 0)")
    p.add_argument(
        "-o", "--output", default=None, metavar="FILE", help="where to write (default: aug-INDEX.jpg)"
    )
    p.epilog = "Any aug argument as --name value, e.g. --aug_hflip_prob 1 --aug_strategy all."
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras and args.command not in ("train", "aug"):
        raise UsageError(f"aifactory {args.command}: unrecognized arguments: {' '.join(extras)}")
    args.train_args = parse_train_extras(extras) if args.command in ("train", "aug") else {}
    for name, default in (("url", None), ("api_key", None), ("json", False), ("timeout", 60.0)):
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse(argv)
        target = config.resolve(args.url, args.api_key)
        with Client(target.url, target.api_key, timeout=(5.0, args.timeout)) as client:
            return args.func(client, args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except errors.Forbidden as exc:
        hint = (
            "" if target.api_key else " (no API key: pass --api-key, set AIFACTORY_API_KEY or run `make run`)"
        )
        print(f"aifactory: {target.url} refused the API key: {exc}{hint}", file=sys.stderr)
        return EXIT_ERROR
    except errors.ConnectionFailed as exc:
        print(
            f"aifactory: {exc} (is the API running? `make run` starts one here; "
            "point the CLI at another with AIFACTORY_URL=URL or --url URL)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except errors.AIFactoryError as exc:
        print(f"aifactory: {cli_terms(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("aifactory: interrupted (a job keeps running; `aifactory stop JOB` stops it)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

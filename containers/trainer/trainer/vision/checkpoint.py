"""`checkpoints/epoch-<N>/` directories: written atomically, pruned, and read back for resume.

Weights are safetensors (loading a pickle from storage runs code); `train_state.pt` holds
only plain tensors and containers so it loads with `torch.load(weights_only=True)`. A
pruned checkpoint keeps its metrics and plots and loses `model.safetensors`: the API reports
`is_available` from the weights file. Pruning keeps the newest `max_num_checkpoints` and
always the best; `train_state.pt` (optimizer momentum, about the weights' size again) stays
only in the newest checkpoint, the one a restore resumes from, finished jobs included (a
restore with a larger `num_epochs_to_finish` continues them exactly). A checkpoint with
weights and no train state (an older epoch copied by `resume_job_id_and_epoch`, or a job
whose space was reclaimed) still resumes, with a fresh optimizer state.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.flop_counter import FlopCounterMode

from contracts import layout, metrics

WEIGHTS = layout.WEIGHTS
MODEL_JSON = layout.MODEL_JSON
METRICS = layout.METRICS_JSON
SUMMARY = layout.SUMMARY_JSON
TRAIN_STATE = layout.TRAIN_STATE
TRAIN_STATE_VERSION = 1
_EPOCH_DIR = layout.EPOCH_DIR_NAME


def epoch_dir(root: Path, epoch: int) -> Path:
    return Path(root) / layout.epoch_dir_name(epoch)


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(epoch, directory) of every complete checkpoint, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _EPOCH_DIR.match(child.name)
        if match and child.is_dir() and (child / METRICS).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_resumable(root: Path) -> tuple[int, Path] | None:
    """The newest checkpoint that still has weights (its train state, when kept, is beside them), or None."""
    for epoch, path in reversed(list_checkpoints(root)):
        if (path / WEIGHTS).is_file():
            return epoch, path
    return None


def state_dict_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU, contiguous, unshared copies: what safetensors accepts."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def save_weights(path: Path, model: torch.nn.Module, metadata: dict[str, str] | None = None) -> None:
    save_file(state_dict_tensors(model), str(path), metadata=metadata or {"format": "pt"})


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def write_checkpoint(
    root: Path, epoch: int, files: dict[str, bytes], model: torch.nn.Module, train_state: dict | None
) -> Path:
    """Writes `epoch-<epoch>/` in a temporary sibling and renames it into place."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".epoch-{epoch}.tmp-"))
    try:
        save_weights(tmp / WEIGHTS, model)
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if train_state is not None:
            torch.save(train_state, tmp / TRAIN_STATE)
        final = epoch_dir(root, epoch)
        if final.exists():  # a re-run of the same epoch (e.g. after a crash) replaces it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        short = _space_shortage(root, model)
        if short and isinstance(exc, OSError | RuntimeError):
            raise OSError(errno.ENOSPC, f"No space left for checkpoint epoch-{epoch}: {short}") from exc
        raise


def _space_shortage(root: Path, model) -> str | None:
    """Advice when the volume cannot hold another checkpoint (torch reports a full disk as a
    failed zip write), else None. A checkpoint is the weights plus about as much train state."""
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        return None
    needed = 2 * sum(t.numel() * t.element_size() for t in model.state_dict().values())
    if free >= needed:
        return None
    return (
        f"{free / 2**20:.0f} MB free under {root}, a checkpoint takes about {needed / 2**20:.0f} MB; "
        "raise VolumeSizeInGB in the resource config or lower max_num_checkpoints"
    )


def json_bytes(value) -> bytes:
    return json.dumps(value, indent=1, allow_nan=False).encode()


def read_scores(root: Path, task: str) -> dict[int, float]:
    """Every checkpoint's headline score (contracts.metrics.headline), by epoch."""
    return {
        epoch: metrics.headline(task, json.loads((path / METRICS).read_text()).get("metrics") or {})
        for epoch, path in list_checkpoints(root)
    }


def prune(root: Path, max_num_checkpoints: int, task: str) -> list[int]:
    """Keeps the weights of the newest `max_num_checkpoints` checkpoints and always of the best
    (contracts.metrics.checkpoints_to_keep), and the train state of the newest alone: only the
    newest is a resume point. Returns the epochs whose weights it removed."""
    found = list_checkpoints(root)
    keep = metrics.checkpoints_to_keep(read_scores(root, task), max_num_checkpoints)
    newest = found[-1][0] if found else None
    pruned = []
    for epoch, path in found:
        if epoch != newest:
            (path / TRAIN_STATE).unlink(missing_ok=True)
        if epoch not in keep and (path / WEIGHTS).is_file():
            (path / WEIGHTS).unlink()
            pruned.append(epoch)
    return pruned


def make_train_state(epoch: int, optimizer, num_losses: int, scaler=None) -> dict:
    state = {
        "format_version": TRAIN_STATE_VERSION,
        "epoch": epoch,
        "num_losses": num_losses,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def load_train_state(path: Path) -> dict:
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if state.get("format_version") != TRAIN_STATE_VERSION:
        raise ValueError(f"Unsupported train state format in {path}; start a new job instead of resuming")
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    if torch.cuda.is_available() and state.get("cuda_rng"):
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def human(value: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3f}{unit}"
    return f"{value:.0f}"


def summarize(model: torch.nn.Module, task: str, size: tuple[int, int], device=None) -> dict:
    """`summary.json`: FLOPs of one eval forward at `size` (H, W), parameter count, state-dict keys."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    image = torch.rand(3, *size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(image.unsqueeze(0) if task == "classification" else [image])
    model.train(was_training)
    return {
        "flops": human(counter.get_total_flops()),
        "params": human(sum(p.numel() for p in model.parameters())),
        "param_keys": list(model.state_dict().keys()),
    }


# --- a checkpoint directory back into a model (the inference server and tools use this) ------


@dataclass
class LoadedModel:
    """An eval-mode model rebuilt from `epoch-<N>/` (or a model dir), with what inference needs.

    `transform` is the trainer's own eval pipeline (`build_eval_transforms`) applied to one
    image: a uint8 (3, H, W) tensor or PIL image in, the float [0, 1] tensor the model takes out.
    """

    model: torch.nn.Module
    model_json: dict
    task: str
    class_names: list[str]
    transform: Callable
    device: torch.device


def eval_image_transform(task: str, hp: dict) -> Callable:
    """The eval pipeline for an image alone: R-CNN pipelines sanitize boxes, so they get an empty target."""
    from torchvision import tv_tensors

    from trainer.vision.augment import build_eval_transforms

    pipeline = build_eval_transforms(task, hp)
    if task == "classification":
        return pipeline

    def transform(image):
        image = tv_tensors.Image(image) if torch.is_tensor(image) else image
        height, width = image.shape[-2:] if torch.is_tensor(image) else (image.height, image.width)
        empty = {
            "boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(height, width)),
            "labels": torch.zeros(0, dtype=torch.int64),
        }
        return pipeline(image, empty)[0]

    return transform


def load_model(checkpoint_dir: Path, device: torch.device | str | None = None) -> LoadedModel:
    """The one definition of how a checkpoint becomes a model: `model.json` -> module -> weights -> eval.

    Loads strictly (every tensor must match), so a checkpoint from another model fails here
    rather than predicting nonsense. `device` None picks the first GPU when there is one.
    """
    from trainer.vision.models import rebuild_model

    path = Path(checkpoint_dir)
    if not (path / MODEL_JSON).is_file():
        raise FileNotFoundError(f"{path} has no {MODEL_JSON}: it is not a vision checkpoint directory")
    if not (path / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"{path} has no {WEIGHTS} (pruned by max_num_checkpoints?); choose an available checkpoint"
        )
    model_json = json.loads((path / MODEL_JSON).read_text())
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    model = rebuild_model(model_json)
    model.load_state_dict(load_weights(path / WEIGHTS))
    model.to(device).eval()
    task = model_json["task"]
    return LoadedModel(
        model=model,
        model_json=model_json,
        task=task,
        class_names=list(model_json["class_names"]),
        transform=eval_image_transform(task, model_json.get("hyperparameters") or {}),
        device=device,
    )

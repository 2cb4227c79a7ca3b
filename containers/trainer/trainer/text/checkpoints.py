"""Step checkpoints under the checkpoint directory: `step-<N>/`, the newest `keep` kept.

Each directory is self-contained and deployable: `model.safetensors` + `model.json` (no
pickles in what the API or hosting reads), `metrics.json`, and `train_state.pt` (optimizer,
LR schedule, step) that only the trainer reads, with `weights_only=True`. A directory is
written under a temporary name and renamed, so a spot interruption mid-save never leaves a
half checkpoint that a resume would pick up.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger("trainer.text")

STEP_DIR = re.compile(r"^step-(\d+)$")
MODEL_FILE, META_FILE, STATE_FILE, METRICS_FILE = (
    "model.safetensors",
    "model.json",
    "train_state.pt",
    "metrics.json",
)


@dataclass
class Checkpoint:
    step: int
    path: Path
    weights: dict[str, torch.Tensor]
    meta: dict
    state: dict


def write_model(directory: Path, model: torch.nn.Module, meta: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(directory / MODEL_FILE), metadata={"format": "pt"})
    (directory / META_FILE).write_text(json.dumps(meta, indent=1))


def list_steps(root: Path) -> list[int]:
    """Steps of the complete checkpoints under `root`, oldest first."""
    if not root.is_dir():
        return []
    steps = []
    for child in root.iterdir():
        match = STEP_DIR.match(child.name)
        if match and all((child / name).is_file() for name in (MODEL_FILE, META_FILE, STATE_FILE)):
            steps.append(int(match.group(1)))
    return sorted(steps)


def save(
    root: Path, step: int, model: torch.nn.Module, meta: dict, state: dict, metrics: dict, keep: int
) -> Path:
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_model(tmp, model, meta)
    torch.save(state, tmp / STATE_FILE)
    (tmp / METRICS_FILE).write_text(json.dumps({"step": step, **metrics}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    log.info("Saved checkpoint %s", final)
    if keep > 0:
        for old in list_steps(root)[:-keep]:
            shutil.rmtree(root / f"step-{old}", ignore_errors=True)
    return final


def load_latest(root: Path) -> Checkpoint | None:
    steps = list_steps(root)
    if not steps:
        return None
    path = root / f"step-{steps[-1]}"
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    meta = json.loads((path / META_FILE).read_text())
    return Checkpoint(steps[-1], path, load_file(str(path / MODEL_FILE)), meta, state)

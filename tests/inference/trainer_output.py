"""What the trainer itself computes for a checkpoint: its eval data pipeline and `engine.predict`."""

from __future__ import annotations

from pathlib import Path

import torch
from trainer.vision import engine
from trainer.vision.augment import build_eval_transforms
from trainer.vision.checkpoint import load_model
from trainer.vision.data import VisionDataset, classification_collate, collate_fn


def val_dataset(data_dir: Path, task: str, hp: dict) -> VisionDataset:
    return VisionDataset(data_dir, task, "val", build_eval_transforms(task, hp))


def trainer_predictions(checkpoint: Path, data_dir: Path) -> tuple[list[Path], list]:
    """(val image paths, per-image outputs) exactly as the trainer's evaluation produces them."""
    loaded = load_model(checkpoint, "cpu")
    dataset = val_dataset(data_dir, loaded.task, loaded.model_json["hyperparameters"])
    collate = classification_collate if loaded.task == "classification" else collate_fn
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, shuffle=False, collate_fn=collate)
    outputs, _ = engine.predict(loaded.model, loader, torch.device("cpu"), loaded.task)
    if loaded.task == "classification":
        outputs = [row for batch in outputs for row in batch]
    return [dataset.image_path(i) for i in range(len(dataset))], outputs

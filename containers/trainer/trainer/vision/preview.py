"""The aug preview: one training sample drawn with its boxes and masks.

It sits above both ``augment`` (the pipeline) and ``data`` (the data set) so that those two
import one way only (data -> augment); the preview uses exactly ``build_train_transforms``,
so it shows what the model sees.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as F
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from trainer.vision.augment import build_train_transforms
from trainer.vision.data import VisionDataset

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]  # fmt: skip


def preview(root, task: str, index: int, hp: dict, seed: int | None = None):
    """Sample ``index`` of the train split through the training pipeline, boxes and masks drawn on it."""
    dataset = VisionDataset(Path(root), task, "train", build_train_transforms(task, hp))
    if not 0 <= index < len(dataset):
        raise ValueError(f"index {index} is out of range: the train split has {len(dataset)} images")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        image, target = dataset[index]
    canvas = (image.as_subclass(torch.Tensor).clamp(0, 1) * 255).round().to(torch.uint8)
    if task != "classification":
        labels = target["labels"].tolist()
        colors = [_PALETTE[label % len(_PALETTE)] for label in labels]
        if task == "instance_segmentation" and len(labels):
            canvas = draw_segmentation_masks(canvas, target["masks"].bool(), alpha=0.45, colors=colors)
        if len(labels):
            names = [dataset.class_names[label] for label in labels]
            canvas = draw_bounding_boxes(canvas, target["boxes"], labels=names, colors=colors, width=2)
    return F.to_pil_image(canvas)

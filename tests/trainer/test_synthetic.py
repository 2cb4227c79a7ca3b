"""The synthetic data sets load, agree with themselves and can be learned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from trainer.vision.augment import masks_to_boxes
from trainer.vision.data import VisionDataset, classification_collate, load_data
from trainer.vision.synthetic import class_colors, generate

TRAINER_DIR = Path(__file__).resolve().parents[2] / "containers" / "trainer"
TASKS = ["classification", "detection", "instance_segmentation"]


def split_lines(root: Path, name: str) -> list[str]:
    return (root / "splits" / f"{name}.txt").read_text().split()


@pytest.mark.parametrize("task", TASKS)
def test_generated_set_loads_and_splits_cover_every_image_once(tmp_path, task):
    root = generate(tmp_path / "data", task, num_images=15, image_size=32, num_classes=3, seed=4)
    images = sorted(p.name for p in (root / "images").iterdir())
    assert len(images) == 15
    train, val, test = (split_lines(root, s) for s in ("train", "val", "test"))
    assert not set(train) & set(val) and not set(train) & set(test)
    assert sorted(set(train) | set(val) | set(test)) == images
    assert abs(len(train) - 10) <= 2
    meta = json.loads((root / "meta.json").read_text())
    expected = (
        ["red", "green", "blue"] if task == "classification" else ["background", "red", "green", "blue"]
    )
    assert sorted(meta, key=meta.get) == expected
    for split, names in (("train", train), ("val", val), ("test", test)):
        ds = VisionDataset(root, task, split)
        assert len(ds) == len(names) and ds.class_names == expected
        for i in range(len(ds)):
            image, target = ds[i]
            assert image.shape == (3, 32, 32)
            if task != "classification":
                assert 1 <= len(target["boxes"]) <= 3
                assert target["labels"].min() >= 1 and target["labels"].max() <= 3


@pytest.mark.parametrize("task", ["detection", "instance_segmentation"])
def test_boxes_are_exact_and_objects_have_their_class_colour(tmp_path, task):
    root = generate(tmp_path / "data", task, num_images=10, image_size=48, num_classes=3, seed=1)
    ds = VisionDataset(root, task, "train")
    colors = dict(class_colors(3))
    for i in range(len(ds)):
        image, target = ds[i]
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
            # the centre of a rectangle or ellipse is inside the shape: it has the class colour
            cx, cy = int((box[0] + box[2]) // 2), int((box[1] + box[3]) // 2)
            pixel = image[:, cy, cx].float()
            expected = torch.tensor(colors[ds.class_names[label]], dtype=torch.float32)
            assert (pixel - expected).abs().max() < 60
        if task == "instance_segmentation":
            masks = target["masks"]
            assert masks.sum(dim=(1, 2)).min() > 0
            assert masks.sum(dim=0).max() <= 1  # no overlaps
            assert torch.equal(masks_to_boxes(masks), target["boxes"].as_subclass(torch.Tensor))


def test_segmentation_png_is_a_palette_image_of_instance_indices(tmp_path):
    root = generate(tmp_path / "data", "instance_segmentation", num_images=3, image_size=32)
    seg = Image.open(root / "segmentations" / "0000.png")
    assert seg.mode == "P"
    values = set(np.unique(np.array(seg)).tolist())
    colors = {int(c.text) for c in __import__("xml.etree.ElementTree").etree.ElementTree.parse(
        root / "annotations" / "0000.xml").iter("color")}  # fmt: skip
    assert values == colors | {0}


def test_generation_is_reproducible_from_the_seed(tmp_path):
    a = generate(tmp_path / "a", "detection", num_images=6, image_size=32, seed=7)
    b = generate(tmp_path / "b", "detection", num_images=6, image_size=32, seed=7)
    c = generate(tmp_path / "c", "detection", num_images=6, image_size=32, seed=8)
    read = lambda root: [(root / "annotations" / f"{i:04d}.xml").read_text() for i in range(6)]  # noqa: E731
    assert read(a) == read(b) and read(a) != read(c)
    assert split_lines(a, "train") == split_lines(b, "train")


def test_three_fractions_give_a_separate_test_split(tmp_path):
    root = generate(tmp_path / "d", "classification", num_images=20, image_size=16, splits=(0.6, 0.2, 0.2))
    train, val, test = (set(split_lines(root, s)) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test) and len(train | val | test) == 20
    assert len(test) >= 2


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="Invalid task 'segmentation'"):
        generate(tmp_path, "segmentation")
    with pytest.raises(ValueError, match="splits must be"):
        generate(tmp_path, "classification", splits=(0.8, 0.8))


def test_cli_writes_a_data_set(tmp_path):
    out = tmp_path / "Shapes"
    env = {**os.environ, "PYTHONPATH": str(TRAINER_DIR)}
    cmd = [sys.executable, "-m", "trainer.vision.synthetic", "--task", "detection", "--out", str(out),
           "--num-images", "5", "--image-size", "40"]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "Wrote 5 detection images" in result.stdout
    assert len(list((out / "images").glob("*.jpg"))) == 5
    assert len(VisionDataset(out, "detection", "train")) + len(VisionDataset(out, "detection", "val")) == 5


def test_a_tiny_cnn_learns_the_classification_set_from_scratch(tmp_path):
    torch.manual_seed(0)
    root = generate(tmp_path / "cls", "classification", num_images=60, image_size=32, num_classes=3, seed=0)
    hp = {"image_resized_width": 24, "image_resized_height": 24, "aug_hflip_prob": 0.5}
    train, val = load_data(root, "classification", hp)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(16, 3),
    )  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    loader = torch.utils.data.DataLoader(train, batch_size=8, shuffle=True, collate_fn=classification_collate)
    for _ in range(6):
        for images, labels in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(images), labels).backward()
            optimizer.step()
    images, labels = classification_collate([val[i] for i in range(len(val))])
    with torch.no_grad():
        accuracy = (net(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.8, f"val accuracy {accuracy:.2f} after 6 epochs (chance is 0.33)"

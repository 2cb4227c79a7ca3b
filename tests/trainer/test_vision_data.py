"""Reading a v1.5 data_dir: targets, class names, split resolution and file errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from trainer.failure import exception_code
from trainer.vision.data import (
    VisionDataset,
    cache_decoded,
    classification_collate,
    collate_fn,
    load_class_names,
    load_data,
)


def write_image(root: Path, filename: str, width=40, height=30, color=(200, 20, 20)):
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), color).save(root / "images" / filename)


def write_xml(root: Path, image_id: str, filename: str, *, category=None, objects=(), width=40, height=30):
    parts = [f"<annotation><filename>{filename}</filename>"]
    parts.append(f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>")
    if category is not None:
        parts.append(f"<category>{category}</category>")
    for obj in objects:
        name, (x1, y1, x2, y2), color = obj[0], obj[1], obj[2] if len(obj) > 2 else None
        mask = f"<mask><color>{color}</color></mask>" if color is not None else ""
        parts.append(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>{mask}</object>"
        )
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"{image_id}.xml").write_text("".join(parts) + "</annotation>")


def write_split(root: Path, name: str, lines):
    (root / "splits").mkdir(parents=True, exist_ok=True)
    (root / "splits" / f"{name}.txt").write_text("\n".join(lines) + "\n")


def write_meta(root: Path, meta: dict):
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").write_text(json.dumps(meta))


@pytest.fixture
def classification_dir(tmp_path):
    root = tmp_path / "cls"
    write_meta(root, {"cat": 0, "dog": 1})
    for i, (category, color) in enumerate([("cat", (250, 0, 0)), ("dog", (0, 0, 250)), ("dog", (0, 0, 240))]):
        write_image(root, f"{i:03d}.jpg", color=color)
        write_xml(root, f"{i:03d}", f"{i:03d}.jpg", category=category)
    # file names, bare ids and a path-like line are all accepted; blank lines are skipped
    write_split(root, "train", ["000.jpg", "001", "", "images/002.jpg"])
    write_split(root, "test", ["001.jpg"])
    return root


@pytest.fixture
def detection_dir(tmp_path):
    root = tmp_path / "det"
    write_meta(root, {"background": 0, "cat": 1, "dog": 2})
    write_image(root, "a.png")
    write_xml(
        root,
        "a",
        "a.png",
        objects=[("cat", (2, 3, 12, 13)), ("dog", (20, 5, 39, 29)), ("dog", (9, 9, 9, 20))],
    )
    write_image(root, "b.jpg")
    write_xml(root, "b", "b.jpg")  # no objects at all
    write_split(root, "train", ["a", "b.jpg"])
    write_split(root, "val", ["b"])
    return root


@pytest.fixture
def segmentation_dir(tmp_path):
    root = tmp_path / "seg"
    write_meta(root, {"cat": 1, "dog": 2})  # background left implicit
    write_image(root, "s.png")
    instance_map = np.zeros((30, 40), dtype=np.uint8)
    instance_map[2:10, 3:15] = 5
    instance_map[12:28, 20:30] = 9
    (root / "segmentations").mkdir(parents=True)
    seg = Image.fromarray(instance_map)
    seg.putpalette([0, 0, 0] + [255, 255, 255] * 255)
    seg.save(root / "segmentations" / "s.png")
    write_xml(root, "s", "s.png", objects=[("dog", (20, 12, 30, 28), 9), ("cat", (3, 2, 15, 10), 5)])
    write_split(root, "train", ["s.png"])
    return root


def test_classification_labels_and_collate(classification_dir):
    ds = VisionDataset(classification_dir, "classification", "train")
    assert ds.class_names == ["cat", "dog"]
    assert ds.samples == ["000", "001", "002"] and len(ds) == 3
    assert ds.image_path(1) == classification_dir / "images" / "001.jpg"
    image, target = ds[1]
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 30, 40) and image.dtype == torch.uint8
    assert target == {"label": 1}
    images, labels = classification_collate([ds[0], ds[1], ds[2]])
    assert images.shape == (3, 3, 30, 40) and labels.tolist() == [0, 1, 1]


def test_detection_targets_drop_degenerate_boxes_and_allow_empty_images(detection_dir):
    ds = VisionDataset(detection_dir, "detection", "train")
    assert ds.class_names == ["background", "cat", "dog"]
    image, target = ds[0]
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format.name == "XYXY"
    assert tuple(boxes.canvas_size) == (30, 40)
    assert boxes.tolist() == [[2, 3, 12, 13], [20, 5, 39, 29]]  # the zero-width third box is gone
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [1, 2]
    assert target["image_id"] == 0
    _, empty = ds[1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["image_id"] == 1
    images, targets = collate_fn([ds[0], ds[1]])
    assert len(images) == 2 and targets[1]["boxes"].shape == (0, 4)


def test_instance_segmentation_masks_follow_mask_colors(segmentation_dir):
    ds = VisionDataset(segmentation_dir, "instance_segmentation", "train")
    assert ds.class_names == ["background", "cat", "dog"]
    _, target = ds[0]
    masks = target["masks"]
    assert isinstance(masks, tv_tensors.Mask) and masks.shape == (2, 30, 40) and masks.dtype == torch.uint8
    assert target["labels"].tolist() == [2, 1]
    assert masks[0].sum() == 16 * 10 and masks[0, 12:28, 20:30].all()
    assert masks[1].sum() == 8 * 12 and masks[1, 2:10, 3:15].all()


def test_segmentation_of_the_wrong_size_is_reported(segmentation_dir):
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(segmentation_dir / "segmentations" / "s.png")
    with pytest.raises(ValueError, match=r"segmentations/s.png is 10x10 but image images/s.png is 40x30"):
        VisionDataset(segmentation_dir, "instance_segmentation", "train")[0]


def test_unknown_category_names_file_and_category(detection_dir):
    write_xml(detection_dir, "b", "b.jpg", objects=[("horse", (1, 1, 5, 5))])
    with pytest.raises(ValueError) as excinfo:
        VisionDataset(detection_dir, "detection", "train")
    assert "annotations/b.xml" in str(excinfo.value) and "'horse'" in str(excinfo.value)
    assert exception_code(excinfo.value) == "E03"


@pytest.mark.parametrize(
    ("damage", "message", "when"),
    [
        (lambda r: (r / "images" / "001.jpg").unlink(), "Cannot read image images/001.jpg", "init"),
        (lambda r: (r / "images" / "001.jpg").write_bytes(b"not a jpeg"), "Cannot read image images/001.jpg", "getitem"),
        (lambda r: (r / "images" / "002.jpg").unlink(), "Cannot read image images/002.jpg", "init"),
        (lambda r: (r / "annotations" / "001.xml").unlink(), "annotations/001.xml", "init"),
        (lambda r: (r / "annotations" / "001.xml").write_text("<annotation>"), "Cannot read annotation annotations/001.xml", "init"),
        (lambda r: (r / "meta.json").unlink(), "meta.json", "init"),
        (lambda r: (r / "splits" / "train.txt").unlink(), "splits/train.txt", "init"),
    ],
)  # fmt: skip
def test_missing_or_corrupt_files_raise_file_not_found_naming_them(classification_dir, damage, message, when):
    damage(classification_dir)
    with pytest.raises(FileNotFoundError) as excinfo:
        ds = VisionDataset(classification_dir, "classification", "train")
        assert when == "getitem", "annotation problems must surface when the data set is built"
        ds[1]
    assert message in str(excinfo.value)
    assert exception_code(excinfo.value) == "E04"


ENTITY_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;">]>'
    "<annotation><filename>001.jpg</filename><category>&y;</category></annotation>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    "<annotation><filename>001.jpg</filename><category>&e;</category></annotation>"
)


@pytest.mark.parametrize("xml", [ENTITY_BOMB, EXTERNAL_ENTITY], ids=["entity-expansion", "external-entity"])
def test_annotations_with_xml_entities_are_refused(classification_dir, xml):
    (classification_dir / "annotations" / "001.xml").write_text(xml)
    with pytest.raises(FileNotFoundError) as excinfo:
        VisionDataset(classification_dir, "classification", "train")
    assert "Cannot read annotation annotations/001.xml: it uses XML entities" in str(excinfo.value)
    assert exception_code(excinfo.value) == "E04"


def test_missing_segmentation_png(segmentation_dir):
    (segmentation_dir / "segmentations" / "s.png").unlink()
    with pytest.raises(FileNotFoundError, match="Cannot read mask segmentations/s.png"):
        VisionDataset(segmentation_dir, "instance_segmentation", "train")[0]


@pytest.mark.parametrize(
    ("task", "meta", "expected"),
    [
        ("classification", {"b": 1, "a": 0}, ["a", "b"]),
        ("detection", {"background": 0, "cat": 1}, ["background", "cat"]),
        ("detection", {"cat": 2, "dog": 1}, ["background", "dog", "cat"]),
        ("instance_segmentation", {"cat": 1}, ["background", "cat"]),
    ],
)
def test_class_names(tmp_path, task, meta, expected):
    write_meta(tmp_path, meta)
    assert load_class_names(tmp_path, task) == expected


@pytest.mark.parametrize(
    ("task", "meta", "message"),
    [
        ("detection", {"cat": 0, "dog": 1}, "index 0 is reserved for 'background'"),
        ("classification", {"cat": 0, "dog": 2}, "contiguous from 0"),
        ("detection", {"cat": 1, "dog": 3}, "contiguous from 1"),
        ("classification", {"cat": 0, "dog": 0}, "share index 0"),
        ("classification", {"cat": "0"}, "must be a non-negative integer"),
        ("segmentation", {"cat": 0}, "Invalid task 'segmentation'"),
    ],
)
def test_bad_meta_is_explained(tmp_path, task, meta, message):
    write_meta(tmp_path, meta)
    with pytest.raises(ValueError, match=message):
        load_class_names(tmp_path, task)


def test_load_data_falls_back_to_test_split_and_applies_pipelines(classification_dir):
    hp = {"image_resized_width": 16, "image_resized_height": 12, "aug_hflip_prob": 1.0}
    train, val = load_data(classification_dir, "classification", hp)
    assert val.split == "test" and val.samples == ["001"]
    image, _ = train[0]
    assert (
        image.shape == (3, 12, 16) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    )
    loader = torch.utils.data.DataLoader(train, batch_size=2, collate_fn=classification_collate)
    images, labels = next(iter(loader))
    assert images.shape == (2, 3, 12, 16) and labels.tolist() == [0, 1]


def test_load_data_detection_batches_through_a_dataloader(detection_dir):
    train, val = load_data(detection_dir, "detection", {"aug_hflip_prob": 1.0})
    assert val.split == "val" and len(val) == 1
    images, targets = next(iter(torch.utils.data.DataLoader(train, batch_size=2, collate_fn=collate_fn)))
    assert len(images) == 2 and images[0].dtype == torch.float32
    assert targets[0]["boxes"].tolist() == [[28, 3, 38, 13], [1, 5, 20, 29]]  # flipped in a 40 px wide image
    assert targets[1]["boxes"].shape == (0, 4)


def test_load_data_needs_a_train_split_and_a_validation_split(classification_dir):
    (classification_dir / "splits" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"splits/val.txt \(or splits/test.txt\)"):
        load_data(classification_dir, "classification", {})
    (classification_dir / "splits" / "train.txt").unlink()
    with pytest.raises(FileNotFoundError, match="splits/train.txt"):
        load_data(classification_dir, "classification", {})


def test_decoded_images_are_cached_after_the_first_read(classification_dir):
    ds = VisionDataset(classification_dir, "classification", "train")
    assert ds.enable_cache(budget_bytes=10**6, shared=False)
    first = ds[0][0]
    ds.image_path(0).unlink()  # a second read that went to the file would fail now
    again = ds[0][0]
    assert torch.equal(first, again) and isinstance(again, tv_tensors.Image)
    again[...] = 0  # what the pipeline gets is a copy: the cache keeps the decoded image
    assert torch.equal(ds[0][0], first)


SIZED = {"image_resized_width": 16, "image_resized_height": 12, "aug_hflip_prob": 0.0}


def test_a_fixed_size_pipeline_caches_images_at_the_size_the_model_sees(classification_dir):
    train, val = load_data(classification_dir, "classification", SIZED, as_float=False)
    uncached = [train[i][0] for i in range(len(train))]
    assert cache_decoded([train, val], shared=False, budget=10**6)
    assert train._cache[0].numel() == len(train) * 3 * 12 * 16  # not the files' 40x30
    first = [train[i][0] for i in range(len(train))]
    for i in range(len(train)):
        train.image_path(i).unlink()  # later epochs neither decode nor resize
    again = [train[i][0] for i in range(len(train))]
    for a, b, c in zip(uncached, first, again, strict=True):
        assert torch.equal(a, b) and torch.equal(b, c) and c.shape == (3, 12, 16)


def test_the_random_ops_still_run_on_every_read_of_a_cached_image(classification_dir):
    half = np.zeros((30, 40, 3), dtype=np.uint8)
    half[:, :20] = 255  # bright left half: a flip shows
    Image.fromarray(half).save(classification_dir / "images" / "000.jpg")
    hp = {**SIZED, "aug_hflip_prob": 1.0}
    train, _ = load_data(classification_dir, "classification", hp, as_float=False)
    assert train.enable_cache(budget_bytes=10**6, shared=False)
    resized = train._cached_steps[0](train._image(0))
    assert resized[0, 0, 0] > 200 and resized[0, 0, -1] < 50
    for _ in range(2):
        assert torch.equal(train[0][0], torch.flip(resized, dims=[-1]))


def test_a_pipeline_that_keeps_a_side_caches_decoded_images(classification_dir):
    train, _ = load_data(classification_dir, "classification", {"image_resized_width": -1})
    assert train.enable_cache(budget_bytes=10**6, shared=False)
    assert train._cached_steps is None and train._cache[0].numel() == len(train) * 3 * 30 * 40


def test_the_cache_keeps_decoded_images_when_asked_to(classification_dir):
    train, _ = load_data(classification_dir, "classification", SIZED)
    assert train.enable_cache(budget_bytes=10**6, shared=False, resized=False)
    assert train._cached_steps is None and train._cache[0].numel() == len(train) * 3 * 30 * 40


def test_upscaled_images_that_do_not_fit_are_cached_decoded(classification_dir):
    train, _ = load_data(
        classification_dir, "classification", {"image_resized_width": 80, "image_resized_height": 60}
    )
    decoded = len(train) * 3 * 30 * 40
    assert train.enable_cache(budget_bytes=decoded, shared=False)  # 4x that resized
    assert train._cached_steps is None and train._cache[0].numel() == decoded


def test_the_cache_stays_off_when_the_images_do_not_fit(classification_dir):
    ds = VisionDataset(classification_dir, "classification", "train")
    assert not ds.enable_cache(budget_bytes=40 * 30 * 3 - 1, shared=False)
    ds[0]
    ds.image_path(0).unlink()
    with pytest.raises(FileNotFoundError, match="Cannot read image"):
        ds[0]


def test_workers_fill_one_shared_cache(classification_dir):
    train, val = load_data(
        classification_dir, "classification", {"image_resized_width": 16, "image_resized_height": 16}
    )
    assert cache_decoded([train, val], shared=True, budget=10**6)
    loader = torch.utils.data.DataLoader(
        train, batch_size=1, num_workers=1, collate_fn=classification_collate
    )
    assert len(list(loader)) == len(train)
    assert bool(train._cache[1].all())  # filled by the worker, visible here
    assert val._cache is not None and not cache_decoded([train, val], shared=False, budget=10)
    assert train._cache is None and val._cache is None

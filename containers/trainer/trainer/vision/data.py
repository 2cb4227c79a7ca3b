"""Reads a v1.5 ``data_dir`` (images/, annotations/, segmentations/, splits/, meta.json).

Annotations are parsed when the data set is built, so a bad category or a missing XML file
fails the job before the first batch rather than in the middle of an epoch; images and
masks are decoded lazily in ``__getitem__``. Every problem with a file raises
FileNotFoundError (exception code E04) or ValueError (E03) naming the file relative to the
data_dir, which is what the user has to fix.

The XML files come from users, so they are parsed with defusedxml: an entity bomb or an
external entity is refused like any other unreadable annotation instead of being expanded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml
import numpy as np
import torch
from defusedxml import ElementTree as SafeET
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from trainer.vision.augment import build_eval_transforms, build_train_transforms, fixed_size_prefix

TASKS = ("classification", "detection", "instance_segmentation")
BACKGROUND = "background"
JPEG_MAGIC = b"\xff\xd8\xff"  # every JPEG file starts with SOI and a marker
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"Invalid task '{task}'. Choose one of: {', '.join(TASKS)}")


def _has_background(task: str) -> bool:
    return task in ("detection", "instance_segmentation")


def load_class_names(root: Path, task: str) -> list[str]:
    """Index i -> class name from meta.json.

    Detection and instance segmentation reserve index 0 for "background"; a meta.json that
    numbers its categories from 1 without naming the background is accepted as it is.
    """
    _check_task(task)
    path = Path(root) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Missing meta.json in data_dir {root}: it maps category names to indices"
        ) from None
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"Cannot read meta.json: {exc}") from exc
    if not isinstance(meta, dict) or not meta:
        raise ValueError('meta.json must be a non-empty object {"category name": class index}')
    by_index: dict[int, str] = {}
    for name, index in meta.items():
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(
                f"meta.json: index of category '{name}' must be a non-negative integer, got {index!r}"
            )
        if index in by_index:
            raise ValueError(f"meta.json: categories '{by_index[index]}' and '{name}' share index {index}")
        by_index[index] = name
    if _has_background(task):
        if 0 in by_index and by_index[0] != BACKGROUND:
            raise ValueError(
                f"meta.json: index 0 is reserved for '{BACKGROUND}' in {task}, "
                f"but category '{by_index[0]}' uses it; number the categories from 1"
            )
        by_index.setdefault(0, BACKGROUND)
    expected = list(range(len(by_index)))
    if sorted(by_index) != expected:
        start = 1 if _has_background(task) else 0
        raise ValueError(
            f"meta.json: class indices must be contiguous from {start}, got {sorted(i for i in by_index if i >= start)}"
        )
    return [by_index[i] for i in expected]


@dataclass
class ObjectAnnotation:
    name: str
    box: tuple[float, float, float, float]
    difficult: bool = False
    mask_color: int | None = None


@dataclass
class SampleAnnotation:
    image_id: str
    filename: str
    category: str | None = None
    objects: list[ObjectAnnotation] = field(default_factory=list)


def _text(node, tag: str) -> str | None:
    """The stripped text of ``node``'s child ``tag``; None when the node or the child is absent."""
    child = node.find(tag) if node is not None else None
    return child.text.strip() if child is not None and child.text is not None else None


def _parse_annotation(root: Path, image_id: str, task: str) -> SampleAnnotation:
    rel = f"annotations/{image_id}.xml"
    try:
        tree = SafeET.parse(root / rel)
    except FileNotFoundError:
        raise FileNotFoundError(f"Missing annotation {rel} for image '{image_id}'") from None
    except defusedxml.DefusedXmlException as exc:
        raise FileNotFoundError(
            f"Cannot read annotation {rel}: it uses XML entities or external references ({exc}); remove them"
        ) from exc
    except (OSError, SafeET.ParseError) as exc:
        raise FileNotFoundError(f"Cannot read annotation {rel}: {exc}") from exc
    node = tree.getroot()
    ann = SampleAnnotation(image_id=image_id, filename=_text(node, "filename") or "")
    if task == "classification":
        ann.category = _text(node, "category")
        if not ann.category:
            raise ValueError(f"Annotation {rel} has no <category>: classification needs one per image")
        return ann
    for i, obj in enumerate(node.findall("object")):
        name = _text(obj, "name")
        if not name:
            raise ValueError(f"Annotation {rel}: object {i} has no <name>")
        bnd = obj.find("bndbox")
        try:
            box = tuple(float(_text(bnd, k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise ValueError(
                f"Annotation {rel}: object {i} ('{name}') needs numeric <bndbox> xmin ymin xmax ymax"
            ) from None
        color = None
        if task == "instance_segmentation":
            raw = _text(obj.find("mask"), "color")
            try:
                color = int(raw)
            except (TypeError, ValueError):
                raise ValueError(
                    f"Annotation {rel}: object {i} ('{name}') needs an integer <mask><color>"
                ) from None
        difficult = _text(obj, "difficult") in ("1", "true", "True")
        ann.objects.append(ObjectAnnotation(name, box, difficult, color))
    return ann


def _read_split(root: Path, split: str) -> list[str]:
    path = root / "splits" / f"{split}.txt"
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"Missing split file splits/{split}.txt in data_dir {root}") from None
    entries = [line.strip() for line in lines]
    return [e.replace("\\", "/").rsplit("/", 1)[-1] for e in entries if e and not e.startswith("#")]


def _find_image(root: Path, image_id: str) -> str | None:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (image_id + suffix, image_id + suffix.upper()):
            if (root / "images" / candidate).is_file():
                return candidate
    return None


def _resolve_entry(root: Path, entry: str) -> tuple[str, str | None]:
    """A split line is an image file name or an image id: returns (image_id, file name or None)."""
    if (root / "images" / entry).is_file() or Path(entry).suffix.lower() in IMAGE_SUFFIXES:
        return Path(entry).stem, entry
    return entry, None


def read_image(root: Path, filename: str) -> tv_tensors.Image:
    rel = f"images/{filename}"
    try:
        with Image.open(root / rel) as img:
            rgb = img.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"Cannot read image {rel}: file not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FileNotFoundError(f"Cannot read image {rel}: {exc}") from exc
    return tv_tensors.Image(F.pil_to_tensor(rgb))


def read_segmentation(root: Path, image_id: str) -> np.ndarray:
    """The instance map as an (H, W) integer array: pixel value N belongs to mask color N."""
    rel = f"segmentations/{image_id}.png"
    try:
        with Image.open(root / rel) as img:
            img.load()
            mode = img.mode
            arr = np.array(img)
    except FileNotFoundError:
        raise FileNotFoundError(f"Cannot read mask {rel}: file not found") from None
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"Cannot read mask {rel}: {exc}") from exc
    if arr.ndim == 3:
        if not (arr[..., :3] == arr[..., :1]).all():
            raise ValueError(f"Mask {rel} is an RGB image ({mode}); save it as a palette or grayscale PNG")
        arr = arr[..., 0]
    return arr.astype(np.int64)


class VisionDataset(torch.utils.data.Dataset):
    """One split of a v1.5 data_dir.

    ``samples`` holds the image ids (file stems) in split order; ``image_path(i)`` the file.
    ``__getitem__`` returns ``(image, target)``: a uint8 ``tv_tensors.Image`` when
    ``transforms`` is None (float32 in [0, 1] after the augment pipelines) and
    classification ``{"label": int}``; detection ``{"boxes": BoundingBoxes XYXY,
    "labels": int64, "image_id": i}``; instance segmentation also ``"masks"`` (N, H, W
    uint8). ``image_id`` is the index in this data set (COCO-style evaluators want ints).
    """

    def __init__(self, root, task: str, split: str, transforms=None):
        _check_task(task)
        self.root = Path(root)
        self.task = task
        self.split = split
        self.transforms = transforms
        self._cache = None  # see enable_cache
        self._cached_steps = None  # (prefix, rest) of the pipeline when the cache keeps the prefix's output
        self.class_names = load_class_names(self.root, task)
        self._index = {name: i for i, name in enumerate(self.class_names)}
        self._annotations: list[SampleAnnotation] = []
        seen: set[str] = set()
        for entry in _read_split(self.root, split):
            image_id, filename = _resolve_entry(self.root, entry)
            if image_id in seen:
                continue
            seen.add(image_id)
            ann = _parse_annotation(self.root, image_id, task)
            self._check_categories(ann)
            annotated = ann.filename.replace("\\", "/").rsplit("/", 1)[-1]
            found = self._existing(filename) or self._existing(annotated) or _find_image(self.root, image_id)
            if not found:
                rel = f"images/{filename or annotated or image_id + '.*'}"
                raise FileNotFoundError(
                    f"Cannot read image {rel}: file not found (listed in splits/{split}.txt)"
                )
            ann.filename = found
            self._annotations.append(ann)
        self.samples = [ann.image_id for ann in self._annotations]

    def _existing(self, name: str | None) -> str | None:
        return name if name and (self.root / "images" / name).is_file() else None

    def _check_categories(self, ann: SampleAnnotation) -> None:
        names = [ann.category] if self.task == "classification" else [o.name for o in ann.objects]
        for name in names:
            if name not in self._index or (name == BACKGROUND and self.task != "classification"):
                known = [n for n in self.class_names if n != BACKGROUND or self.task == "classification"]
                raise ValueError(
                    f"Annotation annotations/{ann.image_id}.xml uses category '{name}' "
                    f"which is not in meta.json (known: {', '.join(known)})"
                )

    def __len__(self) -> int:
        return len(self._annotations)

    def image_path(self, i: int) -> Path:
        return self.root / "images" / self._annotations[i].filename

    def enable_cache(self, budget_bytes: int, shared: bool, resized: bool = True) -> bool:
        """Keeps each image after its first read, when all of them fit in ``budget_bytes``;
        returns whether the cache is on.

        What is kept is the output of the pipeline's leading deterministic steps where they
        resize every image to one size (``augment.fixed_size_prefix``: classification resized
        to image_resized_*), so later epochs neither decode nor resize; otherwise the decoded
        image (uint8 RGB, sizes from the file headers). The cache is one flat uint8 buffer with
        an offset per image, in shared memory when ``shared`` (DataLoader workers fill it and
        every worker, and the next epoch, reads what any of them produced) and plain memory
        otherwise. ``resized=False`` keeps decoded images in any case (bench_transforms compares).
        """
        self._cache = None
        split = None
        if resized and self.task == "classification" and self.transforms is not None:
            split = fixed_size_prefix(self.transforms)
        if split is not None and 3 * split[2][0] * split[2][1] * len(self._annotations) > budget_bytes:
            split = None  # upscaled images that do not fit: the smaller decoded ones may
        if split is not None:
            shapes = [(3, *split[2])] * len(self._annotations)
        else:
            shapes = self._decoded_shapes(budget_bytes)
            if shapes is None:
                return False
        offsets = np.cumsum([0] + [c * h * w for c, h, w in shapes]).tolist()
        buffer = torch.empty(max(offsets[-1], 1), dtype=torch.uint8)
        filled = torch.zeros(len(shapes), dtype=torch.bool)
        if shared:
            buffer.share_memory_()
            filled.share_memory_()
        self._cache = (buffer, filled, offsets, shapes)
        self._cached_steps = split[:2] if split is not None else None
        return True

    def _decoded_shapes(self, budget_bytes: int) -> list[tuple[int, int, int]] | None:
        shapes, total = [], 0
        for ann in self._annotations:
            try:
                with Image.open(self.root / "images" / ann.filename) as img:
                    width, height = img.size
            except (OSError, ValueError, Image.DecompressionBombError):
                return None  # __getitem__ reports the file with its usual message
            shapes.append((3, height, width))
            total += 3 * height * width
            if total > budget_bytes:
                return None
        return shapes

    def _cached(self, i: int, produce) -> tv_tensors.Image:
        """The cached image ``i`` (a copy: the pipeline may write to it), or ``produce()`` stored."""
        buffer, filled, offsets, shapes = self._cache
        window = buffer[offsets[i] : offsets[i + 1]].view(shapes[i])
        if bool(filled[i]):
            return tv_tensors.Image(window.clone())
        image = produce()
        if tuple(image.shape) == shapes[i] and image.dtype == torch.uint8:  # else (a lying header) not cached
            window.copy_(image.as_subclass(torch.Tensor))
            filled[i] = True
        return image

    def _image(self, i: int) -> tv_tensors.Image:
        """Image ``i`` decoded (from the cache when it holds decoded images)."""

        def read():
            return read_image(self.root, self._annotations[i].filename)

        if self._cache is None or self._cached_steps is not None:
            return read()
        return self._cached(i, read)

    def __getitem__(self, i: int):
        ann = self._annotations[i]
        if self.task == "classification":
            target = {"label": self._index[ann.category]}
            if self._cache is not None and self._cached_steps is not None:
                prefix, rest = self._cached_steps
                image = self._cached(i, lambda: prefix(read_image(self.root, ann.filename)))
                return (rest(image) if rest is not None else image), target
            image = self._image(i)
            image = self.transforms(image) if self.transforms is not None else image
            return image, target
        image = self._image(i)
        target = self._detection_target(i, ann, image.shape[-2:])
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def encoded_item(self, i: int) -> tuple[torch.Tensor, dict]:
        """(image, target) before decoding, for ``device_input``: a JPEG file as its bytes (a 1-D
        uint8 tensor), any other image decoded here (CHW uint8); the target names the file."""
        ann = self._annotations[i]
        rel = f"images/{ann.filename}"
        try:
            data = (self.root / rel).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"Cannot read image {rel}: file not found") from None
        except OSError as exc:
            raise FileNotFoundError(f"Cannot read image {rel}: {exc}") from exc
        target = {"label": self._index[ann.category], "file": rel}
        if data[:3] == JPEG_MAGIC:  # decoded on the device
            return torch.frombuffer(bytearray(data), dtype=torch.uint8), target
        return self._image(i).as_subclass(torch.Tensor), target

    def _detection_target(self, i: int, ann: SampleAnnotation, size) -> dict:
        height, width = int(size[0]), int(size[1])
        boxes, labels, colors = [], [], []
        for obj in ann.objects:
            x1, y1, x2, y2 = obj.box
            x1, x2 = sorted((min(max(x1, 0.0), width), min(max(x2, 0.0), width)))
            y1, y2 = sorted((min(max(y1, 0.0), height), min(max(y2, 0.0), height)))
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue  # degenerate or outside the image: nothing a detector can learn from
            boxes.append((x1, y1, x2, y2))
            labels.append(self._index[obj.name])
            colors.append(obj.mask_color)
        target = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                format="XYXY",
                canvas_size=(height, width),
            ),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "image_id": i,
        }
        if self.task == "instance_segmentation":
            target["masks"] = self._masks(ann, colors, height, width)
        return target

    def _masks(self, ann: SampleAnnotation, colors: list[int], height: int, width: int) -> tv_tensors.Mask:
        if not colors:
            return tv_tensors.Mask(torch.zeros((0, height, width), dtype=torch.uint8))
        instance_map = read_segmentation(self.root, ann.image_id)
        if instance_map.shape != (height, width):
            raise ValueError(
                f"Mask segmentations/{ann.image_id}.png is {instance_map.shape[1]}x{instance_map.shape[0]} "
                f"but image images/{ann.filename} is {width}x{height}"
            )
        stacked = np.stack([instance_map == c for c in colors]).astype(np.uint8)
        return tv_tensors.Mask(torch.from_numpy(stacked))


def collate_fn(batch):
    """Detection models take lists of differently sized images and targets."""
    return tuple(zip(*batch, strict=True))


def classification_collate(batch):
    """Stacked images (uint8 or float, as the pipeline left them) and int64 labels."""
    images, targets = zip(*batch, strict=True)
    labels = torch.tensor([t["label"] if isinstance(t, dict) else int(t) for t in targets], dtype=torch.int64)
    return torch.stack([img.as_subclass(torch.Tensor) for img in images]), labels


def load_data(root, task: str, hp: dict, *, as_float: bool = True) -> tuple[VisionDataset, VisionDataset]:
    """Train split with the augmentation pipeline, val split (or test when val.txt is absent) without.

    ``as_float=False`` leaves the images uint8 (the trainer converts whole batches on the device)."""
    root = Path(root)
    train = VisionDataset(root, task, "train", build_train_transforms(task, hp, as_float=as_float))
    if len(train) == 0:
        raise ValueError(f"splits/train.txt in data_dir {root} lists no images")
    val_split = "val" if (root / "splits" / "val.txt").is_file() else "test"
    if not (root / "splits" / f"{val_split}.txt").is_file():
        raise FileNotFoundError(f"Missing split file splits/val.txt (or splits/test.txt) in data_dir {root}")
    val = VisionDataset(root, task, val_split, build_eval_transforms(task, hp, as_float=as_float))
    return train, val


CACHE_MEMORY_FRACTION = 0.25  # of physical memory, for the decoded train and val images together
CACHE_SHM_FRACTION = 0.5  # of the free space in /dev/shm when DataLoader workers share the cache


def cache_budget(shared: bool) -> int:
    """Bytes the decoded-image cache may take: a share of RAM, and of /dev/shm for workers
    (Docker's default /dev/shm is 64 MiB; a buffer beyond it would crash the workers)."""
    budget = int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * CACHE_MEMORY_FRACTION)
    if shared:
        try:
            shm = os.statvfs("/dev/shm")
        except OSError:
            return 0
        budget = min(budget, int(shm.f_bavail * shm.f_frsize * CACHE_SHM_FRACTION))
    return budget


def cache_decoded(datasets: list[VisionDataset], shared: bool, budget: int | None = None) -> bool:
    """Turns the decoded-image cache on for all ``datasets`` when together they fit the budget."""
    remaining = cache_budget(shared) if budget is None else budget
    for dataset in datasets:
        if not dataset.enable_cache(remaining, shared):
            for other in datasets:
                other._cache = None
            return False
        remaining -= dataset._cache[0].numel()
    return True

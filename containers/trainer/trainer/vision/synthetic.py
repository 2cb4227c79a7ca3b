"""Small synthetic data sets in the v1.5 data_dir layout, for tests, demos and smoke runs.

The class of every image or object is its colour, a cue a tiny network trained from
scratch picks up within a few epochs, so a run on this data shows whether training
works at all without downloading anything. Objects never overlap, so boxes and masks are
exact: every box is the tight pixel-edge box of its mask (x2 = last column + 1).

    python -m trainer.vision.synthetic --task detection --out ./examples/Shapes --num-images 40 --image-size 128
"""

from __future__ import annotations

import argparse
import colorsys
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

TASKS = ("classification", "detection", "instance_segmentation")
NAMED_COLORS = [
    ("red", (220, 40, 40)),
    ("green", (40, 190, 60)),
    ("blue", (40, 80, 230)),
    ("yellow", (235, 215, 40)),
    ("magenta", (210, 50, 210)),
    ("cyan", (40, 210, 220)),
    ("orange", (245, 140, 30)),
    ("white", (250, 250, 250)),
]
MAX_OBJECTS = 3


def class_colors(num_classes: int) -> list[tuple[str, tuple[int, int, int]]]:
    if num_classes <= len(NAMED_COLORS):
        return NAMED_COLORS[:num_classes]
    hues = [colorsys.hsv_to_rgb(i / num_classes, 0.85, 0.9) for i in range(num_classes)]
    return [(f"class_{i}", tuple(int(c * 255) for c in rgb)) for i, rgb in enumerate(hues)]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    # dark, low-saturation noise so that no class colour (white included) blends into it
    base = rng.uniform(40, 110, size=3)
    return np.clip(base + rng.normal(0, 18, size=(size, size, 3)), 0, 255)


def _shape_mask(rng: np.random.Generator, size: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    if rng.random() < 0.5:
        mask[y : y + h, x : x + w] = True
    else:
        yy, xx = np.mgrid[0:size, 0:size]
        cy, cx, ry, rx = y + (h - 1) / 2, x + (w - 1) / 2, h / 2, w / 2
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return mask


def _paint(rng: np.random.Generator, pixels: np.ndarray, mask: np.ndarray, color) -> None:
    pixels[mask] = np.clip(np.asarray(color) + rng.normal(0, 8, size=(int(mask.sum()), 3)), 0, 255)


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _place_objects(rng: np.random.Generator, size: int) -> list[tuple[int, int, int, int]]:
    """Up to MAX_OBJECTS non-overlapping (x, y, w, h) windows, at least one."""
    wanted = int(rng.integers(1, MAX_OBJECTS + 1))
    lo, hi = max(4, size // 6), max(5, size // 2)
    placed: list[tuple[int, int, int, int]] = []
    for _ in range(50 * wanted):
        if len(placed) == wanted:
            break
        w, h = (int(v) for v in rng.integers(lo, hi, size=2))
        x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
        if all(
            x + w + 1 <= px or px + pw + 1 <= x or y + h + 1 <= py or py + ph + 1 <= y
            for px, py, pw, ph in placed
        ):
            placed.append((x, y, w, h))
    return placed


def _annotation(image_id: str, filename: str, size: int) -> ET.Element:
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = filename
    size_node = ET.SubElement(root, "size")
    for tag, value in (("width", size), ("height", size), ("depth", 3)):
        ET.SubElement(size_node, tag).text = str(value)
    return root


def _add_object(root: ET.Element, name: str, box, color: int | None) -> None:
    obj = ET.SubElement(root, "object")
    ET.SubElement(obj, "name").text = name
    ET.SubElement(obj, "difficult").text = "0"
    bnd = ET.SubElement(obj, "bndbox")
    for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
        ET.SubElement(bnd, tag).text = str(value)
    if color is not None:
        ET.SubElement(ET.SubElement(obj, "mask"), "color").text = str(color)


def _split(rng: np.random.Generator, labels: list[int], splits) -> list[list[int]]:
    """Stratified by class so that every split sees every class where the counts allow it."""
    fractions = list(splits)
    if len(fractions) not in (2, 3) or any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-6:
        raise ValueError(
            f"splits must be 2 or 3 non-negative fractions (train, val[, test]) summing to <= 1, got {splits}"
        )
    parts: list[list[int]] = [[], [], []]
    for label in sorted(set(labels)):
        members = [i for i, c in enumerate(labels) if c == label]
        rng.shuffle(members)
        n_train = max(1, round(fractions[0] * len(members)))
        n_val = round(fractions[1] * len(members)) if len(fractions) == 3 else len(members) - n_train
        parts[0] += members[:n_train]
        parts[1] += members[n_train : n_train + n_val]
        parts[2] += members[n_train + n_val :]
    return [sorted(p) for p in parts]


def generate(
    root: Path,
    task: str,
    num_images: int = 24,
    image_size: int = 64,
    num_classes: int = 2,
    seed: int = 0,
    splits=(0.67, 0.33),
) -> Path:
    """Writes the data set under ``root`` and returns it.

    ``splits`` are the train and val fractions (and optionally test). With two fractions
    the test split repeats val, so tools that evaluate on test.txt find data; train never
    overlaps val or test and the splits together list every image.
    """
    if task not in TASKS:
        raise ValueError(f"Invalid task '{task}'. Choose one of: {', '.join(TASKS)}")
    if num_images < 2 or image_size < 16 or num_classes < 1:
        raise ValueError("Need num_images >= 2, image_size >= 16 and num_classes >= 1")
    rng = np.random.default_rng(seed)
    root = Path(root)
    for sub in ("images", "annotations", "splits") + (
        ("segmentations",) if task == "instance_segmentation" else ()
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
    colors = class_colors(num_classes)
    offset = 0 if task == "classification" else 1
    meta = {} if task == "classification" else {"background": 0}
    meta.update({name: i + offset for i, (name, _) in enumerate(colors)})
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")

    filenames, strata = [], []
    suffix = ".png" if task == "instance_segmentation" else ".jpg"
    for n in range(num_images):
        image_id = f"{n:04d}"
        filename = image_id + suffix
        pixels = _background(rng, image_size)
        ann = _annotation(image_id, filename, image_size)
        if task == "classification":
            label = n % num_classes
            side = int(image_size * rng.uniform(0.5, 0.8))
            x, y = (int(v) for v in rng.integers(0, image_size - side + 1, size=2))
            _paint(rng, pixels, _shape_mask(rng, image_size, x, y, side, side), colors[label][1])
            ET.SubElement(ann, "category").text = colors[label][0]
            strata.append(label)
        else:
            instance_map = np.zeros((image_size, image_size), dtype=np.uint8)
            windows = _place_objects(rng, image_size)
            for k, (x, y, w, h) in enumerate(windows, start=1):
                label = int(rng.integers(num_classes)) if k > 1 else n % num_classes
                mask = _shape_mask(rng, image_size, x, y, w, h)
                _paint(rng, pixels, mask, colors[label][1])
                instance_map[mask] = k
                _add_object(
                    ann, colors[label][0], _tight_box(mask), k if task == "instance_segmentation" else None
                )
            strata.append(n % num_classes)
            if task == "instance_segmentation":
                seg = Image.fromarray(instance_map)  # uint8 -> "L"; putpalette turns it into "P"
                seg.putpalette(_mask_palette())
                seg.save(root / "segmentations" / f"{image_id}.png")
        image = Image.fromarray(pixels.astype(np.uint8))
        image.save(root / "images" / filename, **({"quality": 95} if suffix == ".jpg" else {}))
        ET.indent(ann)
        ET.ElementTree(ann).write(root / "annotations" / f"{image_id}.xml", encoding="unicode")
        filenames.append(filename)

    train, val, test = _split(rng, strata, splits)
    test = test or val
    for name, members in (("train", train), ("val", val), ("test", test)):
        (root / "splits" / f"{name}.txt").write_text("".join(filenames[i] + "\n" for i in members))
    return root


def _mask_palette() -> list[int]:
    """Palette for the instance map: 0 black, instances in distinct colours (values stay the indices)."""
    palette = [0, 0, 0]
    for i in range(1, 256):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618) % 1.0, 0.8, 1.0)
        palette += [int(r * 255), int(g * 255), int(b * 255)]
    return palette


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a small synthetic v1.5 data_dir (class = colour).")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--out", required=True, type=Path, help="data_dir to create")
    parser.add_argument("--num-images", type=int, default=24)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = generate(args.out, args.task, args.num_images, args.image_size, args.num_classes, args.seed)
    print(f"Wrote {args.num_images} {args.task} images to {out}")


if __name__ == "__main__":
    main()

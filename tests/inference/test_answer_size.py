"""Issue 17: an infer answer's size does not grow with the input image. `returns_images` of a
4000x3000 photo was about 10 MB (two quality-90 JPEGs and a PNG in base64), over SageMaker's
and Lambda's 6 MB; the returned pictures are now drawn at most 1280 px on their long side at
JPEG quality 85, while the numbers and the instance map stay in the original's pixels."""

from __future__ import annotations

import base64
import io
import json
import os

import torch
from inference import encode
from PIL import Image

from chalicelib.aws_limits import INVOKE_ENDPOINT_MAX_BYTES

WIDTH, HEIGHT = 4000, 3000
CLASSES = ["background", "cat", "dog"]


def noise(width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """The worst case for JPEG: every pixel random."""
    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


def segmentation_output() -> dict:
    """Three instances, blobs as Mask R-CNN's upsampled probabilities make them."""
    masks = torch.zeros(3, 1, HEIGHT, WIDTH, dtype=torch.float16)
    boxes = [(100, 200, 1500, 1400), (2000, 500, 3900, 2900), (600, 1800, 1900, 2990)]
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        masks[i, 0, y0:y1, x0:x1] = 0.9
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.tensor([1, 2, 1]),
        "scores": torch.tensor([0.95, 0.9, 0.8]),
        "masks": masks,
    }


def decoded(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


def test_a_4000x3000_segmentation_answer_with_images_stays_well_under_6_mb():
    body = encode.infer_body("instance_segmentation", noise(), segmentation_output(), CLASSES, 0.5, 1.0, True)
    size = len(json.dumps(body).encode())
    assert size < INVOKE_ENDPOINT_MAX_BYTES // 2, f"{size:,} bytes"
    assert [decoded(i).size for i in body["base64_images"]] == [(1280, 960), (1280, 960)]
    assert decoded(body["instance_segmentation_base64_map"]).size == (WIDTH, HEIGHT)  # data: full size
    assert body["instance_segmentations"][1]["bbox"] == [2000.0, 500.0, 3900.0, 2900.0]  # original pixels


def test_detection_and_classification_pictures_are_bounded_too():
    image = noise()
    output = {k: v for k, v in segmentation_output().items() if k != "masks"}
    detection = encode.infer_body("detection", image, output, CLASSES, 0.5, 1.0, True)
    classification = encode.infer_body(
        "classification", image, torch.tensor([0.1, 0.7, 0.2]), CLASSES, 0, 1, True
    )
    for body in (detection, classification):
        (picture,) = body["base64_images"]
        assert decoded(picture).size == (1280, 960)
        assert len(picture) < 1_500_000


def test_a_picture_smaller_than_the_bound_keeps_its_size():
    body = encode.infer_body(
        "classification", noise(640, 480), torch.tensor([0.1, 0.7, 0.2]), CLASSES, 0, 1, True
    )
    assert decoded(body["base64_images"][0]).size == (640, 480)


def test_a_tall_picture_is_bounded_on_its_long_side():
    body = encode.infer_body(
        "classification", noise(500, 3000), torch.tensor([0.1, 0.7, 0.2]), CLASSES, 0, 1, True
    )
    assert decoded(body["base64_images"][0]).size == (213, 1280)

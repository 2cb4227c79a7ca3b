"""Model output -> the v1.5 infer body (`output_fn`): classification, detections, instance segmentations.

Threshold semantics (as v1.5's own inferer): a prediction counts when
`lower_prob_thresh <= prob <= upper_prob_thresh`. Detection and instance segmentation keep
the boxes inside that band (R-CNN heads already drop scores under 0.05). Classification
answers the top class; when its probability lies outside the band the category is `null`
("no confident answer") and `prob` still reports the top probability.

Instance segmentation: masks are the model's mask probabilities > 0.5; `color` numbers the
kept instances 1, 2, ... in descending probability; `area` is the mask's pixel count;
`polygons` are the mask's outer and hole contours (OpenCV, simplified to within 0.1 % of
their length), one `{"x": [...], "y": [...]}` per contour; `instance_segmentation_base64_map`
is a palette PNG whose pixel value is the instance's `color` (0 = background), the same
encoding as the data_dir's `segmentations/*.png`.

`base64_images` (JPEG): classification and detection one image with the prediction
drawn; instance segmentation two: the masks over the image, and the masks with contours,
boxes, labels and areas.

The returned images are pictures to look at, bounded by design so an answer fits
SageMaker's and Lambda's 6 MB: each is drawn on the image shrunk to at most
`MAX_IMAGE_SIDE` (1280) px on its long side (never enlarged) and saved as JPEG quality
`JPEG_QUALITY` (85). A 4000x3000 image's segmentation answer with full-size quality-90
pictures was 11.6 MB (a noisy photo) to 24 MB (pure noise); bounded, 0.37 MB and 1.0 MB
(`tests/inference/test_answer_size.py`). The numbers (boxes,
polygons, areas) and `instance_segmentation_base64_map` stay in the original image's
pixels: the map is data, a palette PNG of mask blobs that compresses to little.
"""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.transforms.v2 import functional as F
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]  # fmt: skip
MASK_THRESHOLD = 0.5
MAX_INSTANCES = 255  # the map is 8-bit
MAX_IMAGE_SIDE = 1280  # px, the long side of each returned image
JPEG_QUALITY = 85


def in_band(prob: float, lower: float, upper: float) -> bool:
    return lower <= prob <= upper


def jpeg_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def shown(image: Image.Image) -> tuple[Image.Image, float, float]:
    """(the image a returned picture is drawn on, x scale, y scale): shrunk to at most
    MAX_IMAGE_SIDE on its long side, so the answer's size does not grow with the input's."""
    longest = max(image.size)
    if longest <= MAX_IMAGE_SIDE:
        return image, 1.0, 1.0
    width = max(1, round(image.width * MAX_IMAGE_SIDE / longest))
    height = max(1, round(image.height * MAX_IMAGE_SIDE / longest))
    small = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return small, width / image.width, height / image.height


def label_palette() -> list[int]:
    """The PASCAL VOC palette: value i gets a distinct colour, 0 stays black."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


# --- classification -------------------------------------------------------------------------


def classification(probs: torch.Tensor, class_names: list[str], lower: float, upper: float) -> dict:
    prob, index = probs.max(dim=0)
    prob = float(prob)
    category = class_names[int(index)] if in_band(prob, lower, upper) else None
    return {"category": category, "prob": prob}


def classification_images(image: Image.Image, result: dict) -> list[str]:
    canvas = shown(image)[0].copy()
    draw = ImageDraw.Draw(canvas)
    text = f"{result['category'] if result['category'] is not None else '-'}: {result['prob']:.3f}"
    left, top, right, bottom = draw.textbbox((0, 0), text)
    width, height = right - left, bottom - top
    x, y = max(0, (canvas.width - width) // 2), max(0, canvas.height - height - 6)
    draw.rectangle((x - 2, y - 2, x + width + 2, y + height + 2), fill=(128, 128, 128))
    draw.text((x, y), text, fill=(255, 255, 255))
    return [jpeg_base64(canvas)]


# --- detection --------------------------------------------------------------------------------


def kept(output: dict, lower: float, upper: float) -> list[int]:
    return [i for i, p in enumerate(output["scores"].tolist()) if in_band(p, lower, upper)]


def detections(output: dict, class_names: list[str], lower: float, upper: float) -> list[dict]:
    boxes, labels, scores = output["boxes"].tolist(), output["labels"].tolist(), output["scores"].tolist()
    return [
        {"bbox": boxes[i], "category": class_names[labels[i]], "prob": scores[i]}
        for i in kept(output, lower, upper)
    ]


def _colors(items: list[dict], class_names: list[str]) -> list[tuple[int, int, int]]:
    return [PALETTE[class_names.index(item["category"]) % len(PALETTE)] for item in items]


def _draw_boxes(
    canvas: torch.Tensor,
    items: list[dict],
    class_names: list[str],
    texts: list[str],
    scale: tuple[float, float] = (1.0, 1.0),
):
    """The items' boxes (original pixels) drawn on `canvas`, an image `scale` (x, y) times the original."""
    if not items:
        return canvas
    boxes = torch.tensor([item["bbox"] for item in items], dtype=torch.float32)
    boxes *= torch.tensor([scale[0], scale[1], scale[0], scale[1]])
    return draw_bounding_boxes(canvas, boxes, labels=texts, colors=_colors(items, class_names), width=2)


def detection_images(image: Image.Image, items: list[dict], class_names: list[str]) -> list[str]:
    small, sx, sy = shown(image)
    canvas = F.pil_to_tensor(small)
    texts = [f"{item['category']} {item['prob']:.3f}" for item in items]
    return [jpeg_base64(F.to_pil_image(_draw_boxes(canvas, items, class_names, texts, (sx, sy))))]


# --- instance segmentation -------------------------------------------------------------------


def polygons(mask: np.ndarray) -> list[dict]:
    contours, _ = cv2.findContours(mask, mode=cv2.RETR_CCOMP, method=cv2.CHAIN_APPROX_SIMPLE)
    found = []
    for contour in contours:
        epsilon = cv2.arcLength(contour, closed=True) * 0.001
        points = cv2.approxPolyDP(contour, epsilon, closed=True).reshape(-1, 2)
        found.append({"x": points[:, 0].tolist(), "y": points[:, 1].tolist()})
    return found


def instance_segmentations(
    output: dict, class_names: list[str], lower: float, upper: float
) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """(items, (N, H, W) uint8 masks of the kept instances, (H, W) uint8 colour map)."""
    indices = kept(output, lower, upper)[:MAX_INSTANCES]
    probmasks = output["masks"]  # (N, 1, H, W) probabilities
    height, width = probmasks.shape[-2:]
    masks = (probmasks[indices, 0] > MASK_THRESHOLD).to(torch.uint8).numpy() if indices else None
    if masks is None:
        masks = np.zeros((0, height, width), dtype=np.uint8)
    boxes, labels, scores = output["boxes"].tolist(), output["labels"].tolist(), output["scores"].tolist()
    items = []
    instance_map = np.zeros((height, width), dtype=np.uint8)
    for color, (i, mask) in enumerate(zip(indices, masks, strict=True), start=1):
        items.append(
            {
                "bbox": boxes[i],
                "category": class_names[labels[i]],
                "prob": scores[i],
                "color": color,
                "area": int(mask.sum()),
                "polygons": polygons(mask),
            }
        )
    for color in range(len(items), 0, -1):  # the more probable instance ends on top where masks overlap
        instance_map[masks[color - 1] > 0] = color
    return items, masks, instance_map


def map_base64(instance_map: np.ndarray) -> str:
    image = Image.frombytes("P", instance_map.shape[::-1], np.ascontiguousarray(instance_map).tobytes())
    image.putpalette(label_palette())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def segmentation_images(
    image: Image.Image, items: list[dict], masks: np.ndarray, class_names: list[str]
) -> list[str]:
    small, sx, sy = shown(image)
    canvas = F.pil_to_tensor(small)
    if items:
        drawn = torch.from_numpy(masks)
        if small is not image:  # the masks at the picture's size (nearest: they stay masks)
            drawn = F.resize(drawn, [small.height, small.width], F.InterpolationMode.NEAREST)
        canvas = draw_segmentation_masks(canvas, drawn.bool(), alpha=0.5, colors=_colors(items, class_names))
    overlay = F.to_pil_image(canvas)
    outlined = np.ascontiguousarray(np.array(overlay))
    for item in items:
        for polygon in item["polygons"]:
            points = np.stack([np.multiply(polygon["x"], sx), np.multiply(polygon["y"], sy)], axis=1)
            points = np.round(points).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(outlined, [points], isClosed=True, color=(255, 255, 255), thickness=1)
    texts = [f"{item['category']} {item['prob']:.3f}, {item['area']} px" for item in items]
    annotated = _draw_boxes(torch.from_numpy(outlined).permute(2, 0, 1), items, class_names, texts, (sx, sy))
    return [jpeg_base64(overlay), jpeg_base64(F.to_pil_image(annotated))]


# --- the body ----------------------------------------------------------------------------------


def infer_body(
    task: str,
    image: Image.Image,
    output,
    class_names: list[str],
    lower: float,
    upper: float,
    returns_images: bool,
) -> dict:
    """The v1.5 infer response for one image: `output` is a softmax row or an R-CNN output dict
    in the original image's coordinates."""
    body: dict = {"result": "OK"}
    if task == "classification":
        result = classification(output, class_names, lower, upper)
        if returns_images:
            body["base64_images"] = classification_images(image, result)
        body["classification"] = result
    elif task == "detection":
        items = detections(output, class_names, lower, upper)
        if returns_images:
            body["base64_images"] = detection_images(image, items, class_names)
        body["detections"] = items
    else:
        items, masks, instance_map = instance_segmentations(output, class_names, lower, upper)
        if returns_images:
            body["base64_images"] = segmentation_images(image, items, masks, class_names)
        body["instance_segmentations"] = items
        body["instance_segmentation_base64_map"] = map_base64(instance_map)
    return body

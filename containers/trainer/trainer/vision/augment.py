"""The v1.5 ``aug_*`` arguments as one torchvision.transforms.v2 pipeline.

Everything runs through transforms.v2 so bounding boxes and masks move with the image, and
one function (``build_train_transforms``) builds what both training and the aug preview
route use, so the preview shows exactly what the model sees.

Each option is one random op with its own probability; its ``min_max`` range is a
normalised magnitude (spec ranges [-1, 1] or [0, 1]) from which one value ``v`` is drawn
uniformly per application and mapped to a physical amount:

=============  ===========================================================================
op             mapping of the drawn value ``v``
=============  ===========================================================================
hflip/vflip    flip (probability only)
rotate90       rotate by 90, 180 or 270 degrees (chosen uniformly), canvas expanded
crop           keep a random window covering ``max(v, 0.1)`` of the area, same aspect ratio
               (no resize back; the sizing step below fixes the size where one is set)
zoom           magnify the content about the centre by ``2**v`` on a fixed canvas
               (v > 0 zooms in and cuts the borders, v < 0 zooms out with a black border)
scale          resize the whole image (canvas included) by ``2**v``
translate      shift x and y by ``v * 0.25`` of the width / height (drawn per axis)
rotate         rotate by ``v * 45`` degrees, canvas kept (corners cut)
shear          shear x and y by ``v * 30`` degrees (drawn per axis)
blur           Gaussian blur with sigma ``3 * v`` pixels
sharpen        sharpness factor ``1 + 2 * v`` (1 = unchanged)
color          saturation factor ``2**v`` (0.5 .. 2)
brightness     brightness factor ``2**v`` (0.5 .. 2; never a black image)
contrast       contrast factor ``2**v`` (0.5 .. 2)
grayscale      blend ``v`` of the grayscale image into the colour one (1 = fully gray)
noise          additive Gaussian noise with std ``0.2 * v`` (intensities in [0, 1]), clipped
resized_crop   RandomResizedCrop to (height, width) with area 25%..100%, aspect 3/4..4/3
=============  ===========================================================================

Strategies: ``all`` tries every op in the order above with its probability; ``one`` picks
one op among those with probability > 0 and applies it with its probability; ``some``
takes each such op with 50% chance, shuffles them, and applies each with its probability.

Then the sizing step (``image_resized_width`` / ``image_resized_height``, -1 keeps that
side) and, for detection and instance segmentation, box clean-up: instance segmentation
boxes are recomputed from the transformed masks (the masks are the ground truth and stay
tight under rotation), boxes are clamped to the canvas and boxes smaller than a pixel
are dropped together with their labels and masks. ``image_min_side``/``image_max_side``
are not applied here: torchvision's detection models resize with them internally.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

STRATEGIES = ("all", "one", "some")
# name -> (allowed magnitude range, default range), in the order "all" applies them
RANGE_KEYS: dict[str, tuple[float, float]] = {
    "crop": (0.0, 1.0),
    "zoom": (-1.0, 1.0),
    "scale": (-1.0, 1.0),
    "translate": (-1.0, 1.0),
    "rotate": (-1.0, 1.0),
    "shear": (-1.0, 1.0),
    "blur": (0.0, 1.0),
    "sharpen": (0.0, 1.0),
    "color": (-1.0, 1.0),
    "brightness": (-1.0, 1.0),
    "grayscale": (0.0, 1.0),
    "contrast": (-1.0, 1.0),
    "noise": (0.0, 1.0),
}
DEFAULT_RESIZED_CROP = (0.0, (224, 224))
DEFAULT_FLIP_PROBS = {"hflip": 0.5, "vflip": 0.0, "rotate90": 0.0}

MIN_CROP_AREA = 0.1
TRANSLATE_MAX_FRACTION = 0.25
ROTATE_MAX_DEGREES = 45.0
SHEAR_MAX_DEGREES = 30.0
BLUR_MAX_SIGMA = 3.0
SHARPEN_MAX_GAIN = 2.0
NOISE_MAX_STD = 0.2
RESIZED_CROP_AREA = (0.25, 1.0)
BILINEAR = v2.InterpolationMode.BILINEAR


# ----------------------------------------------------------------------------- arguments


def _literal(value: Any, key: str) -> Any:
    if isinstance(value, str):
        if len(value) > 200:
            raise ValueError(f"{key} is too long to be a (prob, (min, max)) value")
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"{key} must be a Python literal such as (0.5, (0, 1)), got {value!r}") from None
    return value


def _prob(value: Any, key: str) -> float:
    value = _literal(value, key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{key} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _prob_and_pair(value: Any, key: str) -> tuple[float, tuple[float, float]]:
    value = _literal(value, key)
    try:
        prob, (lo, hi) = value
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must look like (prob, (min, max)), got {value!r}") from None
    return _prob(prob, key), (lo, hi)


@dataclass(frozen=True)
class AugConfig:
    strategy: str
    probs: dict[str, float]
    ranges: dict[str, tuple[float, float]]
    resized_crop: tuple[int, int]  # (width, height)


def resolve_aug(hp: dict | None) -> AugConfig:
    """Typed, validated aug_* arguments with the spec defaults filled in."""
    hp = hp or {}
    strategy = hp.get("aug_strategy", "all") or "all"
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid aug_strategy '{strategy}'. Choose one of: {', '.join(STRATEGIES)}")
    probs = {k: _prob(hp.get(f"aug_{k}_prob", d), f"aug_{k}_prob") for k, d in DEFAULT_FLIP_PROBS.items()}
    ranges = {}
    for name, (low, high) in RANGE_KEYS.items():
        key = f"aug_{name}_prob_and_min_max"
        prob, (lo, hi) = _prob_and_pair(hp.get(key, (0.0, (low, high))), key)
        if not low <= lo <= hi <= high:
            raise ValueError(
                f"{key}: min and max must satisfy {low} <= min <= max <= {high}, got ({lo}, {hi})"
            )
        probs[name], ranges[name] = prob, (lo, hi)
    key = "aug_resized_crop_prob_and_width_height"
    prob, (w, h) = _prob_and_pair(hp.get(key, DEFAULT_RESIZED_CROP), key)
    if w <= 0 or h <= 0 or w != int(w) or h != int(h):
        raise ValueError(f"{key}: width and height must be positive integers, got ({w}, {h})")
    probs["resized_crop"] = prob
    return AugConfig(strategy, probs, ranges, (int(w), int(h)))


# ----------------------------------------------------------------------------- ops


class _Magnitude(v2.Transform):
    """Draws one magnitude per call (per axis where ``axes`` is 2) from [lo, hi]."""

    axes = 1

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = float(lo), float(hi)

    def _draw(self) -> float:
        return self.lo + (self.hi - self.lo) * float(torch.rand(()))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"v": [self._draw() for _ in range(self.axes)], "size": v2.query_size(flat_inputs)}

    def extra_repr(self) -> str:
        return f"min={self.lo}, max={self.hi}"


class RandomRotate90(v2.Transform):
    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"k": int(torch.randint(1, 4, ()))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.rotate, inpt, angle=90.0 * params["k"], expand=True)


class RandomAreaCrop(_Magnitude):
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.crop, inpt, **params["window"])

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        side = math.sqrt(max(self._draw(), MIN_CROP_AREA))
        h, w = max(1, round(height * side)), max(1, round(width * side))
        top = int(torch.randint(0, height - h + 1, ()))
        left = int(torch.randint(0, width - w + 1, ()))
        return {"window": {"top": top, "left": left, "height": h, "width": w}}


class RandomZoom(_Magnitude):
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(
            F.affine, inpt, angle=0.0, translate=[0.0, 0.0], scale=2.0 ** params["v"][0], shear=[0.0, 0.0],
            interpolation=BILINEAR,
        )  # fmt: skip


class RandomScale(_Magnitude):
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        height, width = params["size"]
        factor = 2.0 ** params["v"][0]
        size = [max(1, round(height * factor)), max(1, round(width * factor))]
        return self._call_kernel(F.resize, inpt, size, interpolation=BILINEAR, antialias=True)


class RandomTranslate(_Magnitude):
    axes = 2

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        height, width = params["size"]
        dx, dy = (v * TRANSLATE_MAX_FRACTION for v in params["v"])
        return self._call_kernel(
            F.affine, inpt, angle=0.0, translate=[round(dx * width), round(dy * height)], scale=1.0,
            shear=[0.0, 0.0], interpolation=BILINEAR,
        )  # fmt: skip


class RandomRotate(_Magnitude):
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        angle = params["v"][0] * ROTATE_MAX_DEGREES
        return self._call_kernel(F.rotate, inpt, angle=angle, interpolation=BILINEAR, expand=False)


class RandomShear(_Magnitude):
    axes = 2

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        shear = [v * SHEAR_MAX_DEGREES for v in params["v"]]
        return self._call_kernel(
            F.affine, inpt, angle=0.0, translate=[0.0, 0.0], scale=1.0, shear=shear, interpolation=BILINEAR
        )


class RandomBlur(_Magnitude):
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        sigma = params["v"][0] * BLUR_MAX_SIGMA
        if sigma < 0.05:
            return inpt
        # reflect padding needs kernel // 2 < side: tiny (e.g. cropped then shrunk) images get a smaller kernel
        kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * min(params["size"]) - 1)
        if kernel < 3:
            return inpt
        return self._call_kernel(F.gaussian_blur, inpt, kernel_size=[kernel, kernel], sigma=[sigma, sigma])


class RandomSharpen(_Magnitude):
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(
            F.adjust_sharpness, inpt, sharpness_factor=1.0 + SHARPEN_MAX_GAIN * params["v"][0]
        )


class RandomSaturation(_Magnitude):
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.adjust_saturation, inpt, saturation_factor=2.0 ** params["v"][0])


class RandomBrightness(_Magnitude):
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.adjust_brightness, inpt, brightness_factor=2.0 ** params["v"][0])


class RandomContrast(_Magnitude):
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.adjust_contrast, inpt, contrast_factor=2.0 ** params["v"][0])


class RandomGrayscaleBlend(_Magnitude):
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        # a saturation factor of 0 is the grayscale image, so 1 - v blends v of it in
        return self._call_kernel(F.adjust_saturation, inpt, saturation_factor=1.0 - params["v"][0])


class RandomNoise(_Magnitude):
    """Gaussian noise is drawn in float; a uint8 image comes back as uint8 (the pipelines stay
    uint8 until their last step, see ``build_train_transforms``)."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        sigma = NOISE_MAX_STD * params["v"][0]
        if isinstance(inpt, tv_tensors.Image) and not inpt.is_floating_point():
            noisy = F.gaussian_noise(
                F.to_dtype(inpt, torch.float32, scale=True), mean=0.0, sigma=sigma, clip=True
            )
            return F.to_dtype(noisy, inpt.dtype, scale=True)
        return self._call_kernel(F.gaussian_noise, inpt, mean=0.0, sigma=sigma, clip=True)


_OPS = {
    "crop": RandomAreaCrop,
    "zoom": RandomZoom,
    "scale": RandomScale,
    "translate": RandomTranslate,
    "rotate": RandomRotate,
    "shear": RandomShear,
    "blur": RandomBlur,
    "sharpen": RandomSharpen,
    "color": RandomSaturation,
    "brightness": RandomBrightness,
    "grayscale": RandomGrayscaleBlend,
    "contrast": RandomContrast,
    "noise": RandomNoise,
}


@dataclass
class AugOp:
    name: str
    prob: float
    transform: v2.Transform


class AugmentPolicy(v2.Transform):
    """Applies the ops according to aug_strategy; ``last_applied`` names what the last call did."""

    def __init__(self, ops: list[AugOp], strategy: str = "all"):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"Invalid aug_strategy '{strategy}'. Choose one of: {', '.join(STRATEGIES)}")
        self.ops = [op for op in ops if op.prob > 0]
        self.strategy = strategy
        self.transforms = torch.nn.ModuleList([op.transform for op in self.ops])  # shows up in repr()
        self.last_applied: list[str] = []

    def _plan(self) -> list[AugOp]:
        if not self.ops:
            return []
        if self.strategy == "one":
            return [self.ops[int(torch.randint(len(self.ops), ()))]]
        if self.strategy == "some":
            chosen = [op for op in self.ops if float(torch.rand(())) < 0.5]
            return [chosen[i] for i in torch.randperm(len(chosen)).tolist()]
        return list(self.ops)

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        applied = []
        for op in self._plan():
            if float(torch.rand(())) < op.prob:
                sample = op.transform(sample)
                applied.append(op.name)
        self.last_applied = applied
        return sample

    def extra_repr(self) -> str:
        return f"strategy={self.strategy}, probs={[(op.name, op.prob) for op in self.ops]}"


def build_ops(cfg: AugConfig) -> list[AugOp]:
    ops = [
        AugOp("hflip", cfg.probs["hflip"], v2.RandomHorizontalFlip(p=1.0)),
        AugOp("vflip", cfg.probs["vflip"], v2.RandomVerticalFlip(p=1.0)),
        AugOp("rotate90", cfg.probs["rotate90"], RandomRotate90()),
    ]
    ops += [AugOp(name, cfg.probs[name], cls(*cfg.ranges[name])) for name, cls in _OPS.items()]
    width, height = cfg.resized_crop
    resized_crop = v2.RandomResizedCrop((height, width), scale=RESIZED_CROP_AREA, antialias=True)
    ops.append(AugOp("resized_crop", cfg.probs["resized_crop"], resized_crop))
    return ops


# ----------------------------------------------------------------------------- sizing and clean-up


class ResizeSides(v2.Transform):
    """Resizes to (height, width) where a side of -1 (or 0) keeps the input's size of that side."""

    def __init__(self, width: int, height: int):
        super().__init__()
        self.width, self.height = int(width), int(height)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        return {"size": [self.height if self.height > 0 else height, self.width if self.width > 0 else width]}

    def forward(self, *inputs: Any) -> Any:
        # The resize after the augmentations is a no-op unless an op changed the size: a lone
        # image of the right size skips v2's flatten / query / rewrap (~0.1 ms a sample).
        if len(inputs) == 1 and isinstance(inputs[0], torch.Tensor):
            if tuple(inputs[0].shape[-2:]) == self.output_size(None):  # None where a side is kept
                return inputs[0]
        return super().forward(*inputs)

    def output_size(self, size: tuple[int, int] | None) -> tuple[int, int] | None:
        """(height, width) this step produces from ``size`` (None: not known without the image)."""
        height = self.height if self.height > 0 else size[0] if size else None
        width = self.width if self.width > 0 else size[1] if size else None
        return None if height is None or width is None else (height, width)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, params["size"], interpolation=BILINEAR, antialias=True)


class CenterCropRatio(v2.Transform):
    """Center crop keeping ``ratio`` of each side (eval_center_crop_ratio)."""

    def __init__(self, ratio: float):
        super().__init__()
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"eval_center_crop_ratio must be in (0, 1], got {ratio}")
        self.ratio = float(ratio)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"size": list(self.output_size(v2.query_size(flat_inputs)))}

    def output_size(self, size: tuple[int, int] | None) -> tuple[int, int] | None:
        return (
            None
            if size is None
            else (max(1, round(size[0] * self.ratio)), max(1, round(size[1] * self.ratio)))
        )

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.center_crop, inpt, params["size"])


class BoxesFromMasks(v2.Transform):
    """Replaces each box by the tight box of its mask; an emptied mask gets an empty box (then sanitized)."""

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        target = next(
            (x for x in (sample if isinstance(sample, tuple | list) else [sample]) if isinstance(x, dict)),
            None,
        )
        if target is None or "masks" not in target or "boxes" not in target:
            return sample
        masks, boxes = target["masks"], target["boxes"]
        target["boxes"] = tv_tensors.wrap(
            masks_to_boxes(masks).to(boxes.dtype), like=boxes, canvas_size=tuple(masks.shape[-2:])
        )
        return sample


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, 4) XYXY with pixel-edge coordinates (x2 = last column + 1); empty masks give zeros."""
    boxes = torch.zeros((masks.shape[0], 4), dtype=torch.float32)
    if masks.shape[0] == 0:
        return boxes
    rows, cols = masks.bool().any(dim=2), masks.bool().any(dim=1)
    for i in range(masks.shape[0]):
        ys, xs = torch.nonzero(rows[i]).flatten(), torch.nonzero(cols[i]).flatten()
        if len(xs) and len(ys):
            boxes[i] = torch.tensor([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=torch.float32)
    return boxes


def _sizing(hp: dict, task: str) -> list[v2.Transform]:
    default = 224 if task == "classification" else -1
    width, height = int(hp.get("image_resized_width", default)), int(hp.get("image_resized_height", default))
    for key, value in (("image_resized_width", width), ("image_resized_height", height)):
        if value == 0 or value < -1:
            raise ValueError(
                f"{key} must be a positive number of pixels or -1 to keep the original, got {value}"
            )
    return [ResizeSides(width, height)] if width > 0 or height > 0 else []


def _finish(task: str, as_float: bool = True) -> list[v2.Transform]:
    to_float = [v2.ToDtype(torch.float32, scale=True)] if as_float else []
    if task == "classification":
        return to_float
    steps: list[v2.Transform] = [BoxesFromMasks()] if task == "instance_segmentation" else []
    return steps + [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes()] + to_float


def build_train_transforms(task: str, hp: dict, *, as_float: bool = True) -> v2.Compose:
    """Resizes first, then augments at the size the model sees, all on uint8 (a quarter of the
    bytes of float32, and what the data loader's workers, the pinned copy and the transfer to
    the device move); a second resize restores that size after an op that changed it (crop,
    scale) and is free otherwise. The float conversion is the last step; with
    ``as_float=False`` it is left out and the training loop converts the whole batch on the
    device (``engine.to_float``), where it is cheapest. docs/benchmarks.md has the CPU cost."""
    cfg = resolve_aug(hp)
    sizing = _sizing(hp, task)
    return v2.Compose(
        [v2.ToImage(), *sizing, AugmentPolicy(build_ops(cfg), cfg.strategy), *sizing]
        + _finish(task, as_float)
    )


def build_eval_transforms(task: str, hp: dict, *, as_float: bool = True) -> v2.Compose:
    steps: list[v2.Transform] = [v2.ToImage()]
    if task == "classification":
        ratio = float(hp.get("eval_center_crop_ratio", 1.0))
        steps += [CenterCropRatio(ratio)] if ratio != 1.0 else []
    return v2.Compose(steps + _sizing(hp, task) + _finish(task, as_float))


def fixed_size_prefix(
    pipeline: v2.Compose,
) -> tuple[v2.Compose, v2.Compose | None, tuple[int, int]] | None:
    """Splits a classification pipeline after its leading deterministic steps (ToImage, center
    crop, resize) once they have brought every image to one (height, width). Returns (prefix,
    rest or None when nothing is left, size); None when the pipeline starts with a random op
    or keeps a side of the input.

    The data set keeps the prefix's output when it fits (``VisionDataset.enable_cache``): each
    image is decoded and resized once, not every epoch, and the cache holds images at the size
    the model sees, usually far smaller than the files."""
    size: tuple[int, int] | None = None
    split, split_size = 0, None
    for i, step in enumerate(pipeline.transforms):
        if isinstance(step, ResizeSides | CenterCropRatio):
            size = step.output_size(size)
        elif not isinstance(step, v2.ToImage):
            break
        if size is not None:
            split, split_size = i + 1, size
    if split_size is None:
        return None
    rest = pipeline.transforms[split:]
    return v2.Compose(pipeline.transforms[:split]), v2.Compose(rest) if rest else None, split_size


def find_policy(pipeline: v2.Compose) -> AugmentPolicy:
    return next(t for t in pipeline.transforms if isinstance(t, AugmentPolicy))

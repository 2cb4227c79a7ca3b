"""Load a checkpoint directory and predict: the toolkit's `model_fn` and `predict_fn`.

For users who take a model elsewhere::

    from inference.predict import Predictor

    predictor = Predictor("jobs/<job_id>/checkpoints/epoch-3")  # GPU when there is one
    body = predictor.predict("cat.jpg", lower_prob_thresh=0.5)  # the v1.5 infer body
    print(body["classification"])  # or body["detections"], body["instance_segmentations"]

The model comes from `trainer.vision.checkpoint.load_model`, the same code the trainer's
checkpoints are written for; `prepare` applies the trainer's eval pipeline, `forward` runs
one forward pass over any number of prepared images (what the server's batcher calls), and
`respond` maps boxes and masks back to the original image and builds the response body.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from trainer.vision.checkpoint import load_model
from trainer.vision.models import input_size

from inference import encode
from inference.decode import DEFAULT_LOWER, DEFAULT_RETURNS_IMAGES, DEFAULT_UPPER, open_image

DEFAULT_MAX_PIXELS = 40_000_000


@dataclass
class Prepared:
    """One image ready for the model: `tensor` (3, h, w) float on the CPU, `size` the original (H, W)."""

    tensor: torch.Tensor
    size: tuple[int, int]


class Predictor:
    def __init__(self, checkpoint_dir, device: torch.device | str | None = None):
        self.loaded = load_model(Path(checkpoint_dir), device)
        self.model = self.loaded.model
        self.task = self.loaded.task
        self.class_names = self.loaded.class_names
        self.device = self.loaded.device

    # -- model_fn's neighbours ---------------------------------------------------------------

    def prepare(self, image: Image.Image) -> Prepared:
        tensor = self.loaded.transform(image.convert("RGB"))
        return Prepared(tensor.as_subclass(torch.Tensor), (image.height, image.width))

    @torch.inference_mode()
    def forward(self, tensors: list[torch.Tensor]) -> list:
        """One forward pass for the list (classification: one per distinct input shape).

        Returns per image a softmax row (classification) or an R-CNN output dict, on the CPU.
        """
        if self.task != "classification":
            outputs = self.model([t.to(self.device, non_blocking=True) for t in tensors])
            return [
                {k: v.float().cpu() if v.is_floating_point() else v.cpu() for k, v in o.items()}
                for o in outputs
            ]
        results: list = [None] * len(tensors)
        groups: dict[tuple, list[int]] = {}
        for i, t in enumerate(tensors):
            groups.setdefault(tuple(t.shape), []).append(i)
        for indices in groups.values():
            batch = torch.stack([tensors[i] for i in indices]).to(self.device, non_blocking=True)
            probs = self.model(batch).float().softmax(dim=1).cpu()
            for row, i in zip(probs, indices, strict=True):
                results[i] = row
        return results

    def to_original(self, output, prepared: Prepared):
        """Boxes and masks from the model's input size back to the original image's pixels."""
        if self.task == "classification":
            return output
        height, width = prepared.size
        in_h, in_w = prepared.tensor.shape[-2:]
        if (in_h, in_w) == (height, width):
            return output
        output = dict(output)
        scale = torch.tensor([width / in_w, height / in_h, width / in_w, height / in_h])
        output["boxes"] = output["boxes"] * scale
        if "masks" in output and len(output["masks"]):
            output["masks"] = torch.nn.functional.interpolate(
                output["masks"], size=(height, width), mode="bilinear", align_corners=False
            )
        elif "masks" in output:
            output["masks"] = output["masks"].new_zeros((0, 1, height, width))
        return output

    def respond(
        self, image: Image.Image, prepared: Prepared, output, lower: float, upper: float, returns_images: bool
    ) -> dict:
        return encode.infer_body(
            self.task,
            image,
            self.to_original(output, prepared),
            self.class_names,
            lower,
            upper,
            returns_images,
        )

    def warm_up(self) -> None:
        """One forward at the model's nominal input size, so the first request pays no set-up cost."""
        height, width = input_size(self.task, self.loaded.model_json.get("hyperparameters") or {})
        self.forward([self.prepare(Image.new("RGB", (width, height), (127, 127, 127))).tensor])

    # -- the few-lines helper ----------------------------------------------------------------

    def predict(
        self,
        image,
        lower_prob_thresh: float = DEFAULT_LOWER,
        upper_prob_thresh: float = DEFAULT_UPPER,
        returns_images: bool = DEFAULT_RETURNS_IMAGES,
    ) -> dict:
        """The v1.5 infer body for an image file path, raw bytes or a PIL image."""
        if isinstance(image, str | Path):
            image = open_image(Path(image).read_bytes(), DEFAULT_MAX_PIXELS)
        elif isinstance(image, bytes | bytearray):
            image = open_image(bytes(image), DEFAULT_MAX_PIXELS)
        prepared = self.prepare(image)
        (output,) = self.forward([prepared.tensor])
        return self.respond(image, prepared, output, lower_prob_thresh, upper_prob_thresh, returns_images)

"""The input pipeline's device half: JPEG decode, augmentation and float conversion where they
are cheapest, so a GPU does not wait for the CPU.

On a CUDA device a classification job's DataLoader workers only read files: a JPEG travels
as its encoded bytes (a tenth of the decoded size, pinned), is decoded on the GPU in one
batched ``torchvision.io.decode_jpeg`` call, augmented there on uint8 by the job's own
transforms.v2 pipeline, stacked, and converted to float as the last step
(``engine.to_float``; the ImageNet normalisation is inside the model). Files that are not
JPEG, and JPEGs the device decoder refuses (e.g. CMYK), are decoded on the CPU as before.
Without CUDA the workers decode and augment (``VisionDataset.__getitem__``), which is the
faster place on a CPU-only machine.

``DeviceDecode`` runs on any device: on the CPU it is the same code path, and with the same
random state it produces the same batches as the worker pipeline (torchvision's and PIL's
libjpeg-turbo decode bit-identically), which is what tests/trainer/test_gpu_path.py checks.
``AIFACTORY_DEVICE_DECODE`` = ``1`` / ``0`` forces the path on or off (benchmarks, tests);
unset, it is on for classification on CUDA.

Detection and instance segmentation keep decoding in the workers: their transforms move
boxes and masks with the image, and their models at batch 2-8 are bound by the model, not
by the input.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F

from trainer.vision.background import usable_cpus

DECODE_ENV = "AIFACTORY_DEVICE_DECODE"
MAX_AUTO_WORKERS = 16  # torchvision's classification reference default (-j 16)
CPU_CORES_PER_WORKER = 4  # a CPU device trains on the same cores: leave most of them to the model


def default_num_workers(
    device: torch.device, cpus: int | None = None, processes_per_host: int | None = None
) -> int:
    """DataLoader workers for a job whose user did not choose ``num_workers``.

    On a GPU every core but one per training process feeds the device (capped at 16). On a
    CPU-only machine the model's own threads need the cores, so one worker per four of them:
    none on a 2-core machine, where the decoded-image cache makes later epochs free anyway.
    """
    cpus = usable_cpus() if cpus is None else cpus
    if processes_per_host is None:
        processes_per_host = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    per_process = max(1, cpus // max(1, processes_per_host))
    if device.type == "cuda":
        return max(1, min(MAX_AUTO_WORKERS, per_process - 1))
    return min(4, per_process // CPU_CORES_PER_WORKER)


def resolve_num_workers(hp: dict, device: torch.device, defaulted: bool) -> int:
    """The job's ``num_workers``; the CPU-count default when the user left it unset."""
    return default_num_workers(device) if defaulted else int(hp["num_workers"])


def decode_on_device(task: str, device: torch.device) -> bool:
    """Whether the job's workers hand encoded images to ``DeviceDecode`` (see the module doc)."""
    forced = os.environ.get(DECODE_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1" and task == "classification"
    return task == "classification" and device.type == "cuda"


def decode_on_cpu(data: torch.Tensor, rel: str) -> torch.Tensor:
    """What the worker pipeline does with a file: PIL, converted to RGB, CHW uint8; an
    unreadable file fails the job with E04 naming it, as ``data.read_image`` does."""
    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as img:
            return F.pil_to_tensor(img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FileNotFoundError(f"Cannot read image {rel}: {exc}") from exc


def _decode_jpeg(data, device: torch.device):
    """torchvision 0.29 warns on every call that its decoders move to TorchCodec; the job's
    log does not need that once per batch."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torchvision\.io")
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


class EncodedView(torch.utils.data.Dataset):
    """A classification VisionDataset whose items are ``(encoded or decoded image, target)``,
    untransformed: the transforms run in ``DeviceDecode``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.dataset.encoded_item(i)


def encoded_collate(batch):
    """(list of 1-D uint8 byte tensors or CHW uint8 images, int64 labels, file names)."""
    items, targets = zip(*batch, strict=True)
    labels = torch.tensor([t["label"] for t in targets], dtype=torch.int64)
    return list(items), labels, [t["file"] for t in targets]


class DeviceDecode:
    """Encoded items -> one uint8 (N, C, H, W) batch on ``device``, through ``transforms``."""

    def __init__(self, transforms, device: torch.device):
        self.transforms = transforms
        self.device = torch.device(device)

    def decode(self, items: list[torch.Tensor], files: list[str]) -> list[torch.Tensor]:
        images: list[torch.Tensor | None] = [None] * len(items)
        jpegs = [i for i, item in enumerate(items) if item.ndim == 1]
        if jpegs:
            try:
                decoded = _decode_jpeg([items[i] for i in jpegs], self.device)
            except RuntimeError:  # one image the device decoder does not take: each on its own
                decoded = [self._decode_one(items[i], files[i]) for i in jpegs]
            for i, image in zip(jpegs, decoded, strict=True):
                images[i] = image
        for i, item in enumerate(items):
            if images[i] is None:
                images[i] = item.to(self.device, non_blocking=True)
        return images

    def _decode_one(self, data: torch.Tensor, rel: str) -> torch.Tensor:
        try:
            return _decode_jpeg(data, self.device)
        except RuntimeError:
            return decode_on_cpu(data, rel).to(self.device, non_blocking=True)

    def __call__(self, items: list[torch.Tensor], files: list[str]) -> torch.Tensor:
        images = [self.transforms(tv_tensors.Image(image)) for image in self.decode(items, files)]
        return torch.stack([image.as_subclass(torch.Tensor) for image in images])


class DeviceLoader:
    """Iterates a DataLoader of ``encoded_collate`` batches as (uint8 images, labels) on the device."""

    def __init__(self, loader, decode: DeviceDecode):
        self.loader, self.decode = loader, decode
        self.sampler, self.dataset = loader.sampler, loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for items, labels, files in self.loader:
            yield self.decode(items, files), labels.to(self.decode.device, non_blocking=True)


def prepare_model(model: torch.nn.Module, task: str, device: torch.device) -> torch.nn.Module:
    """channels_last for CNN classifiers on CUDA (tensor cores read NHWC without transposes)."""
    if task == "classification" and device.type == "cuda":
        return model.to(memory_format=torch.channels_last)
    return model

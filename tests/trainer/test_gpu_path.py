"""The device half of the input pipeline (trainer.vision.device_input), run on the CPU.

The CUDA path's calls (batched ``decode_jpeg``, transforms.v2 on device tensors, the float
conversion, channels_last) all run on CPU tensors too, so these tests exercise the same code
a GPU job runs and compare its batches with the worker pipeline's.
"""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from trainer.vision import device_input, engine, synthetic
from trainer.vision import main as vision_main
from trainer.vision.data import VisionDataset, classification_collate, load_data

from contracts import v15_arguments

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only its type is read: nothing here touches a GPU
AUGMENTED = {
    "image_resized_width": 24,
    "image_resized_height": 20,
    "aug_hflip_prob": 0.5,
    "aug_rotate_prob_and_min_max": (0.5, (-1.0, 1.0)),
    "aug_brightness_prob_and_min_max": (0.5, (-1.0, 1.0)),
    "aug_noise_prob_and_min_max": (0.5, (0.0, 1.0)),
    "aug_crop_prob_and_min_max": (0.5, (0.3, 1.0)),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return synthetic.generate(
        tmp_path_factory.mktemp("gpu-path"), "classification", num_images=12, image_size=32, num_classes=3
    )


def worker_batches(root, hp, seed):
    """The CPU pipeline: workers decode and augment, images come out float."""
    train, _ = load_data(root, "classification", hp)
    loader = DataLoader(train, batch_size=4, shuffle=True, collate_fn=classification_collate)
    torch.manual_seed(seed)
    return [(images, labels) for images, labels in loader]


def device_loader(root, hp, workers=0):
    train, val = load_data(root, "classification", hp, as_float=False)
    loader = DataLoader(
        device_input.EncodedView(train),
        batch_size=4,
        shuffle=True,
        num_workers=workers,
        collate_fn=device_input.encoded_collate,
    )
    return device_input.DeviceLoader(loader, device_input.DeviceDecode(train.transforms, CPU)), val


def device_batches(root, hp, seed):
    loader, _ = device_loader(root, hp)
    torch.manual_seed(seed)
    return [(engine.to_float(images, CPU), labels) for images, labels in loader]


@pytest.mark.parametrize("hp", [AUGMENTED, {"image_resized_width": 32, "image_resized_height": 32}])
def test_device_decode_gives_the_worker_pipelines_batches(data_dir, hp):
    expected, got = worker_batches(data_dir, hp, seed=3), device_batches(data_dir, hp, seed=3)
    assert len(got) == len(expected) == 3  # 9 training images, batches of 4
    for (images, labels), (want_images, want_labels) in zip(got, expected, strict=True):
        assert images.dtype == torch.float32 and images.shape == want_images.shape
        assert torch.equal(images, want_images) and torch.equal(labels, want_labels)


def test_the_augmentation_differs_between_draws(data_dir):
    first, second = device_batches(data_dir, AUGMENTED, seed=3), device_batches(data_dir, AUGMENTED, seed=4)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, second, strict=True))


def test_batches_stay_uint8_until_the_training_loop_converts_them(data_dir):
    loader, _ = device_loader(data_dir, AUGMENTED)
    images, labels = next(iter(loader))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 20, 24) and labels.dtype == torch.int64
    as_float = engine.to_float(images, CPU)
    assert torch.allclose(as_float, images.float() / 255)


def test_workers_hand_over_the_encoded_bytes(data_dir):
    loader, _ = device_loader(data_dir, AUGMENTED, workers=1)
    batches = list(loader)
    assert [len(labels) for _, labels in batches] == [4, 4, 1]
    items, labels, files = next(iter(loader.loader))
    assert all(item.ndim == 1 and bytes(item[:3].tolist()) == b"\xff\xd8\xff" for item in items)
    assert all(name.startswith("images/") and name.endswith(".jpg") for name in files)


def test_non_jpeg_images_are_decoded_by_the_workers(data_dir, tmp_path):
    root = tmp_path / "mixed"
    (root / "images").mkdir(parents=True)
    for sub in ("annotations", "splits"):
        (root / sub).symlink_to(data_dir / sub)
    (root / "meta.json").write_text((data_dir / "meta.json").read_text())
    first, *rest = sorted((data_dir / "images").iterdir())
    Image.open(first).save(root / "images" / first.name, format="PNG")  # a PNG under a .jpg name
    for path in rest:
        (root / "images" / path.name).write_bytes(path.read_bytes())
    dataset = VisionDataset(root, "classification", "train")
    kinds = [dataset.encoded_item(i)[0].ndim for i in range(len(dataset))]
    assert kinds.count(3) == 1 and kinds.count(1) == len(dataset) - 1
    decoded = device_input.DeviceDecode(lambda image: image, CPU).decode(
        [dataset.encoded_item(i)[0] for i in range(len(dataset))], ["x"] * len(dataset)
    )
    assert all(torch.equal(image, dataset[i][0]) for i, image in enumerate(decoded))


def test_an_unreadable_jpeg_fails_naming_the_file():
    decode = device_input.DeviceDecode(lambda image: image, CPU)
    good = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 30)).save(good, format="JPEG")
    items = [torch.frombuffer(bytearray(good.getvalue()), dtype=torch.uint8)]
    items.append(torch.frombuffer(bytearray(b"\xff\xd8\xff\xe0 not a jpeg"), dtype=torch.uint8))
    with pytest.raises(FileNotFoundError, match=r"Cannot read image images/broken\.jpg"):
        decode(items, ["images/fine.jpg", "images/broken.jpg"])
    assert decode(items[:1], ["images/fine.jpg"]).shape == (1, 3, 6, 8)


def test_cuda_classifiers_and_batches_are_channels_last():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    assert device_input.prepare_model(model, "classification", CUDA)[0].weight.is_contiguous(
        memory_format=torch.channels_last
    )
    batch = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    assert engine.to_float(batch, CUDA).is_contiguous(memory_format=torch.channels_last)
    assert engine.to_float(batch, CPU).is_contiguous()
    detector = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    assert device_input.prepare_model(detector, "detection", CUDA)[0].weight.is_contiguous()


def test_device_decode_is_on_for_cuda_classification_and_can_be_forced(monkeypatch):
    monkeypatch.delenv(device_input.DECODE_ENV, raising=False)
    assert device_input.decode_on_device("classification", CUDA)
    assert not device_input.decode_on_device("classification", CPU)
    assert not device_input.decode_on_device("detection", CUDA)
    monkeypatch.setenv(device_input.DECODE_ENV, "1")
    assert device_input.decode_on_device("classification", CPU)
    assert not device_input.decode_on_device("instance_segmentation", CPU)
    monkeypatch.setenv(device_input.DECODE_ENV, "0")
    assert not device_input.decode_on_device("classification", CUDA)


@pytest.mark.parametrize(
    "device, cpus, processes, expected",
    [
        (CUDA, 16, 1, 15),
        (CUDA, 16, 2, 7),
        (CUDA, 128, 1, 16),
        (CUDA, 1, 1, 1),
        (CPU, 2, 1, 0),
        (CPU, 8, 1, 2),
        (CPU, 64, 1, 4),
    ],
)
def test_default_workers_follow_the_cpu_count(device, cpus, processes, expected):
    assert device_input.default_num_workers(device, cpus=cpus, processes_per_host=processes) == expected


def resolved(**form):
    base = {"task": "classification", "data_dir": "/data", "algorithm": "resnet18"}
    return v15_arguments.resolve_train_args({**base, **form})["hyperparameters"]


def test_the_api_records_which_arguments_took_their_default():
    assert "num_workers" in v15_arguments.defaulted(resolved())
    given = resolved(num_workers="2")
    assert given["num_workers"] == 2 and "num_workers" not in v15_arguments.defaulted(given)
    assert "algorithm" not in v15_arguments.defaulted(given)


def test_a_resumed_job_keeps_the_source_jobs_defaulted_arguments():
    source = {"job_id": "j1", "task": "classification", "data_dir": "/data", "hyperparameters": resolved()}
    resumed = v15_arguments.resolve_train_args({"resume_job_id_and_epoch": '("j1", 1)'}, source)
    assert "num_workers" in v15_arguments.defaulted(resumed["hyperparameters"])
    overridden = v15_arguments.resolve_train_args(
        {"resume_job_id_and_epoch": '("j1", 1)', "num_workers": "3"}, source
    )
    assert "num_workers" not in v15_arguments.defaulted(overridden["hyperparameters"])


def test_the_trainer_reads_a_hand_written_job_without_num_workers_as_defaulted():
    typed = v15_arguments.resolve_job_hyperparameters(
        "classification", {"algorithm": "resnet18", "num_workers": 0}
    )
    assert "num_workers" not in v15_arguments.defaulted(typed)
    assert "num_workers" in v15_arguments.defaulted(
        v15_arguments.resolve_job_hyperparameters("classification", {"algorithm": "resnet18"})
    )


def test_a_bad_defaulted_list_is_refused_naming_it():
    with pytest.raises(v15_arguments.ValidationError) as caught:
        v15_arguments.resolve_job_hyperparameters(
            "classification", {"algorithm": "resnet18", v15_arguments.DEFAULTED: "num_workers"}
        )
    assert caught.value.field == v15_arguments.DEFAULTED
    assert "must be a list of argument names" in caught.value.message


@pytest.mark.parametrize("form, workers", [({}, 4), ({"num_workers": "2"}, 2), ({"num_workers": "0"}, 0)])
def test_the_trainers_loaders_use_the_cpu_default_only_when_not_given(data_dir, monkeypatch, form, workers):
    monkeypatch.setattr(device_input, "usable_cpus", lambda: 16)
    monkeypatch.setenv(device_input.DECODE_ENV, "0")
    hp = v15_arguments.resolve_job_hyperparameters("classification", {**resolved(**form), "batch_size": 4})
    train, val = load_data(data_dir, "classification", hp, as_float=False)
    train_loader, val_loader = vision_main._loaders(train, val, "classification", hp, CPU, 1, 0)
    assert train_loader.num_workers == val_loader.num_workers == workers
    assert train_loader.persistent_workers == val_loader.persistent_workers == (workers > 0)


def test_the_trainers_loaders_decode_on_the_device_when_asked(data_dir, monkeypatch):
    monkeypatch.setenv(device_input.DECODE_ENV, "1")
    hp = v15_arguments.resolve_job_hyperparameters(
        "classification", {**resolved(num_workers="0", batch_size="4"), **AUGMENTED}
    )
    train, val = load_data(data_dir, "classification", hp, as_float=False)
    train_loader, val_loader = vision_main._loaders(train, val, "classification", hp, CPU, 1, 0)
    assert isinstance(train_loader, device_input.DeviceLoader)
    assert len(train_loader) == 2  # 9 images at batch 4: the lone last one is dropped
    images, labels = next(iter(val_loader))
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 20, 24) and labels.shape == (3,)


def test_a_classification_job_trains_through_the_device_path(tmp_path, monkeypatch):
    from tests.trainer.test_vision_train import CLASSIFICATION, Job, check_checkpoint

    monkeypatch.setenv(device_input.DECODE_ENV, "1")
    torch.manual_seed(0)
    job = Job(tmp_path, "classification", {**CLASSIFICATION, "num_epochs_to_finish": 2}, num_images=12)
    assert job.run(monkeypatch) == 0
    assert job.read("progress.json")["status"] == "finished"
    record = check_checkpoint(job, 2, "classification")
    assert 0.0 <= record["metrics"]["overall"]["accuracy"] <= 1.0

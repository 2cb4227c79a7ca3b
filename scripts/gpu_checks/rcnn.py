"""Detection (FPN Faster R-CNN) and instance segmentation (Mask R-CNN) training steps.

Same pieces as a job: a synthetic data_dir, the trainer's datasets with their train
transforms (decoded by the DataLoader workers: R-CNN batches are bound by the model),
`trainer.vision.main._loaders`, `models.build_model` from scratch (GroupNorm, as the trainer
builds R-CNNs without pretrained weights), AMP, the first epoch's learning-rate warm-up, and
`engine.train_one_epoch`. The row reports samples/s of the last epoch and its loss, which
must be finite (the engine raises otherwise).
"""

from __future__ import annotations

from pathlib import Path

from scripts.gpu_checks.common import OK, Config, Row, maybe_fail, release

ALGORITHMS = {"detection": "fpn", "instance_segmentation": "mask_rcnn"}
PATHS = {"detection": "detection", "instance_segmentation": "segmentation"}


def run(config: Config, task: str) -> Row:
    maybe_fail(config, PATHS[task])
    from trainer.vision import data as vision_data
    from trainer.vision import engine, synthetic
    from trainer.vision import main as vision_main
    from trainer.vision.models import DEFAULT_SEGMENTATION_BACKBONE, build_model

    sizes, device = config.sizes, config.device
    root = synthetic.generate(
        Path(config.workdir) / task,
        task,
        num_images=sizes.rcnn_images,
        image_size=sizes.rcnn_image_size,
        num_classes=3,
        splits=(0.9, 0.1),
    )
    form = {
        "algorithm": ALGORITHMS[task],
        "backbone_pretrained": False,
        "batch_size": sizes.rcnn_batch,
        "image_min_side": sizes.rcnn_image_size,
        "image_max_side": sizes.rcnn_image_size,
        "aug_hflip_prob": 0.5,
        **dict(sizes.rcnn_overrides),
    }
    if task == "detection":  # mask_rcnn has no backbone argument: it builds on DEFAULT_SEGMENTATION_BACKBONE
        form["backbone"] = sizes.rcnn_backbone
        form["anchor_sizes"] = [min(128, sizes.rcnn_image_size // 2)]  # the default 128 fits no tiny image
    hp = vision_main.resolve_hyperparameters(task, form)
    train_ds, val_ds = vision_data.load_data(root, task, hp)
    model = build_model(task, hp, len(train_ds.class_names)).to(device)
    optimizer = engine.build_optimizer(model, hp)
    amp_dtype, scaler = engine.amp_setup(device)
    loader, _ = vision_main._loaders(train_ds, val_ds, task, hp, device, 1, 0)
    warmup = engine.warmup_iterations(task, len(loader))
    result = None
    for number in range(1, sizes.rcnn_epochs + 1):
        result = engine.train_one_epoch(
            model,
            optimizer,
            loader,
            device,
            number,
            task,
            amp_dtype=amp_dtype,
            scaler=scaler,
            clip_grad_base_and_max=hp["clip_grad_base_and_max"],
            warmup_iterations=warmup if number == 1 else 0,
        )
    workers = loader.num_workers
    backbone = hp.get("backbone") or DEFAULT_SEGMENTATION_BACKBONE
    del loader, model, optimizer
    release(device)
    samples_s = result.num_samples / result.seconds
    numbers = {"samples_per_s": samples_s, "loss": result.avg_loss, "batch_size": sizes.rcnn_batch}
    measured = f"{samples_s:.1f} samples/s, loss {result.avg_loss:.3f}"
    note = (
        f"{ALGORITHMS[task]}/{backbone} {sizes.rcnn_image_size}px b{sizes.rcnn_batch}, "
        f"{workers} workers, epoch {sizes.rcnn_epochs} of {sizes.rcnn_epochs}"
    )
    return Row(PATHS[task], OK, measured, "runs, finite loss", note, numbers)

"""Builds the v1.5 vision models from torchvision and timm, and rebuilds them from `model.json`.

Everything structural about a model (algorithm, backbone, class count, frozen BatchNorm,
anchors, image sizing, RPN/ROI settings) is recorded in `model.json`, so an
`epoch-<N>/` directory can be turned back into a module without the job record
(the inference container calls `rebuild_model`).

Frozen levels (`num_frozen_levels` / `backbone_num_frozen_levels`, 0..5): level 1 is the
stem, levels 2..5 the four successive stages, per family:

- resnet*, resnext*, wide_resnet*, resnest*: conv1+bn1 | layer1 | layer2 | layer3 | layer4
- mobilenet_v2 features: [0-1] | [2-3] | [4-6] | [7-13] | [14-18] (split where the stride changes)
- efficientnet_b* features: [0-1] | [2] | [3] | [4-5] | [6-8]
- googlenet: conv1 | conv2+conv3 | inception3* | inception4* | inception5*
- inception_v3: Conv2d_1a..2b | Conv2d_3b..4a | Mixed_5* | Mixed_6* | Mixed_7*
- timm detection backbones (senet154, se_resnext*, nasnet, pnasnet, resnest): the modules up to
  the one producing timm's feature level 1..5 (strides 2, 4, 8, 16, 32).

Detection anchors: faster_rcnn puts every size of `anchor_sizes` on its single feature map;
fpn has five maps (strides 4..64): one size given -> size * 2**level per map, five sizes -> one
per map, any other count -> every size on every map. Aspect ratios are (0.5, 1, 2) everywhere.

Image sizing (detection, instance segmentation): `image_min_side`/`image_max_side` are
torchvision's `min_size`/`max_size`; min -1 scales the long side to max; max -1 leaves the long
side unbounded; both -1 keep the original size.

Normalisation in the R-CNNs (`rcnn_norm`, recorded in model.json): "frozen_batch" (the
pretrained path: FrozenBatchNorm2d in the backbone, torchvision's default heads), "batch"
(trainable BatchNorm2d in the backbone), or "group": GroupNorm(32) in a torchvision backbone,
in the FPN, in a 4-conv + 1-fc box head and in the mask head. "group" is what training from
scratch needs at detection batch sizes (He, Girshick, Dollar, "Rethinking ImageNet
Pre-training"; torchvision's `*_v2` builders use the same heads): per-device BatchNorm at
batch 2 estimates its statistics from two images and the loss diverges. timm backbones have
no uniform norm argument, so with "group" they keep trainable BatchNorm and only the FPN and
heads use GroupNorm. A model.json without the key (written before it existed) rebuilds as
"frozen_batch" or "batch" from `needs_freeze_bn`, as those models were built.

googlenet and inception_v3 are built without auxiliary heads (`aux_logits=False`), so one
cross-entropy on the main logits trains them; their pretrained weights still load.
"""

from __future__ import annotations

import importlib
import logging
from collections import OrderedDict
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models import get_model, get_model_weights
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from contracts import v15_arguments as contracts_args

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNBOUNDED_SIDE = 100_000
INCEPTION_MIN_SIDE = 75

TIMM_RESNEST = {
    "resnest50": "resnest50d",
    "resnest101": "resnest101e",
    "resnest200": "resnest200e",
    "resnest269": "resnest269e",
}
# The choices are the contract's (contracts.v15_arguments); here only how each is built.
CLASSIFICATION_ALGORITHMS = contracts_args.ALGORITHMS["classification"]
TIMM_DETECTION_BACKBONES = {
    "senet154": "legacy_senet154",
    "se_resnext50_32x4d": "legacy_seresnext50_32x4d",
    "se_resnext101_32x4d": "legacy_seresnext101_32x4d",
    "nasnet_a_large": "nasnetalarge",
    "pnasnet_5_large": "pnasnet5large",
    **TIMM_RESNEST,
}
DETECTION_BACKBONES = contracts_args.DETECTION_BACKBONES
TORCHVISION_DETECTION_BACKBONES = tuple(b for b in DETECTION_BACKBONES if b not in TIMM_DETECTION_BACKBONES)
ALGORITHMS = contracts_args.ALGORITHMS
DEFAULT_SEGMENTATION_BACKBONE = "resnet50"
ASPECT_RATIOS = (0.5, 1.0, 2.0)
FPN_LEVELS = 5
FPN_CHANNELS = 256
RCNN_NORMS = ("frozen_batch", "batch", "group")
GROUP_NORM_GROUPS = 32
GN_BOX_HEAD_CONVS = (256, 256, 256, 256)
GN_BOX_HEAD_FC = 1024  # torchvision's FastRCNNPredictor default representation size
GN_MASK_HEAD_CONVS = (256, 256, 256, 256)

# Hyper-parameters that change the module structure or its input: what model.json keeps.
STRUCTURAL_KEYS = (
    "algorithm",
    "backbone",
    "needs_freeze_bn",
    "rcnn_norm",
    "image_resized_width",
    "image_resized_height",
    "image_min_side",
    "image_max_side",
    "eval_center_crop_ratio",
    "anchor_sizes",
    "train_rpn_pre_nms_top_n",
    "train_rpn_post_nms_top_n",
    "eval_rpn_pre_nms_top_n",
    "eval_rpn_post_nms_top_n",
    "num_anchor_samples_per_batch",
    "num_proposal_samples_per_batch",
    "num_detections_per_image",
    "proposal_nms_threshold",
    "detection_nms_threshold",
)


def _choose(kind: str, value: Any, choices) -> str:
    if value not in choices:
        raise ValueError(f"Invalid {kind} {value!r}. Choose one of: {', '.join(choices)}")
    return value


def _frozen_levels(hp: dict, key: str) -> int:
    value = int(hp.get(key, 0) or 0)
    if not 0 <= value <= 5:
        raise ValueError(f"Invalid {key} {value}. Choose an integer in [0, 5]")
    return value


def _load_failure(name: str, exc: Exception) -> FileNotFoundError:
    return FileNotFoundError(
        f"Pretrained weights for {name} could not be loaded: {exc}. "
        "Make them available in the torch/timm cache or train with pretrained=false"
    )


def _timm():
    """timm, imported on first use: it costs a small job seconds of start-up, and only the
    resnest models, timm detection backbones and frozen BatchNorm need it."""
    return importlib.import_module("timm")


def freeze_batch_norm_2d(module: nn.Module) -> nn.Module:
    """timm's BatchNorm2d -> FrozenBatchNorm2d conversion (recursive, keeps the statistics)."""
    return importlib.import_module("timm.layers").freeze_batch_norm_2d(module)


def _torchvision_model(name: str, pretrained: bool, **kwargs) -> nn.Module:
    weights = get_model_weights(name).DEFAULT if pretrained else None
    try:
        return get_model(name, weights=weights, **kwargs)
    except Exception as exc:
        if pretrained:
            raise _load_failure(name, exc) from exc
        raise


def _timm_model(name: str, timm_name: str, pretrained: bool, **kwargs) -> nn.Module:
    try:
        return _timm().create_model(timm_name, pretrained=pretrained, **kwargs)
    except Exception as exc:
        if pretrained:
            raise _load_failure(name, exc) from exc
        raise


def _freeze(modules) -> None:
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(False)


def _classification_levels(algorithm: str, net: nn.Module) -> list[list[nn.Module]]:
    if algorithm.startswith(("resnet", "resnest")):
        return [[net.conv1, net.bn1], [net.layer1], [net.layer2], [net.layer3], [net.layer4]]
    if algorithm == "mobilenet_v2":
        f = net.features
        return [list(f[0:2]), list(f[2:4]), list(f[4:7]), list(f[7:14]), list(f[14:])]
    if algorithm.startswith("efficientnet"):
        f = net.features
        return [list(f[0:2]), [f[2]], [f[3]], list(f[4:6]), list(f[6:])]
    if algorithm == "googlenet":
        return [
            [net.conv1],
            [net.conv2, net.conv3],
            [net.inception3a, net.inception3b],
            [getattr(net, f"inception4{c}") for c in "abcde"],
            [net.inception5a, net.inception5b],
        ]
    if algorithm == "inception_v3":
        return [
            [net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3],
            [net.Conv2d_3b_1x1, net.Conv2d_4a_3x3],
            [net.Mixed_5b, net.Mixed_5c, net.Mixed_5d],
            [getattr(net, f"Mixed_6{c}") for c in "abcde"],
            [net.Mixed_7a, net.Mixed_7b, net.Mixed_7c],
        ]
    raise ValueError(f"No level mapping for {algorithm!r}")


def _replace_head(algorithm: str, net: nn.Module, num_classes: int) -> None:
    if algorithm.startswith("resnest"):
        net.reset_classifier(num_classes)
    elif algorithm.startswith(("resnet", "googlenet", "inception")):
        net.fc = nn.Linear(net.fc.in_features, num_classes)
    else:  # mobilenet_v2, efficientnet: Sequential(Dropout, Linear)
        net.classifier[-1] = nn.Linear(net.classifier[-1].in_features, num_classes)


class Classifier(nn.Module):
    """Takes [0, 1] images and normalises them itself, so inference needs no separate recipe."""

    def __init__(self, net: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.std)


def build_classifier(hp: dict, num_classes: int) -> nn.Module:
    algorithm = _choose("algorithm", hp.get("algorithm"), CLASSIFICATION_ALGORITHMS)
    pretrained = bool(hp.get("pretrained", False))
    if algorithm == "inception_v3":
        sides = [int(hp.get(k, -1)) for k in ("image_resized_width", "image_resized_height")]
        if any(0 < side < INCEPTION_MIN_SIDE for side in sides):
            raise ValueError(
                f"inception_v3 needs images of at least {INCEPTION_MIN_SIDE}x{INCEPTION_MIN_SIDE} pixels; "
                f"set image_resized_width and image_resized_height to {INCEPTION_MIN_SIDE} or more"
            )
    if algorithm.startswith("resnest"):
        _check_resnest_batch(algorithm, hp)
        net = _timm_model(algorithm, TIMM_RESNEST[algorithm], pretrained)
    elif algorithm in ("googlenet", "inception_v3"):
        net = _torchvision_model(algorithm, pretrained, aux_logits=False, init_weights=not pretrained)
    else:
        net = _torchvision_model(algorithm, pretrained)
    _replace_head(algorithm, net, num_classes)
    _freeze(
        m
        for level in _classification_levels(algorithm, net)[: _frozen_levels(hp, "num_frozen_levels")]
        for m in level
    )
    if hp.get("needs_freeze_bn"):
        net = freeze_batch_norm_2d(net)
    return Classifier(net)


def _check_resnest_batch(name: str, hp: dict) -> None:
    if int(hp.get("batch_size", 2)) < 2 and not hp.get("needs_freeze_bn"):
        raise ValueError(
            f"{name} cannot train with batch_size 1: its split-attention BatchNorm needs 2 or more samples. "
            "Set batch_size >= 2 or needs_freeze_bn=true"
        )


# --- detection backbones --------------------------------------------------------------------


class TimmBackbone(nn.Module):
    """A timm `features_only` network as a torchvision detection backbone (OrderedDict of maps)."""

    def __init__(self, features: nn.Module, fpn: bool, fpn_norm=None):
        super().__init__()
        self.body = features
        channels = features.feature_info.channels()
        self.fpn = (
            FeaturePyramidNetwork(
                channels, FPN_CHANNELS, extra_blocks=LastLevelMaxPool(), norm_layer=fpn_norm
            )
            if fpn
            else None
        )
        self.out_channels = FPN_CHANNELS if fpn else channels[-1]

    def forward(self, x: torch.Tensor) -> OrderedDict:
        maps = OrderedDict((str(i), f) for i, f in enumerate(self.body(x)))
        return self.fpn(maps) if self.fpn is not None else maps


def _freeze_timm_levels(features: nn.Module, levels: int) -> None:
    """Freezes the children of a timm feature net up to the module that yields feature level `levels`."""
    if levels == 0:
        return
    container = features.body if hasattr(features, "body") else features
    names = features.feature_info.module_name()
    target = names[min(levels, len(names)) - 1]
    top = target.split(".")[0].replace(".", "_")
    flat_target = target.replace(".", "_")
    children = list(container.named_children())
    for name, child in children:
        if name == flat_target or (name == top and target == top):
            _freeze([child])
            return
        if name == top:  # the feature is hooked inside this child: freeze what came before it
            return
        _freeze([child])


def rcnn_norm(hp: dict) -> str:
    """The R-CNN normalisation: `rcnn_norm` when set, else what `needs_freeze_bn` always meant."""
    norm = hp.get("rcnn_norm") or ("frozen_batch" if hp.get("needs_freeze_bn") else "batch")
    return _choose("rcnn_norm", norm, RCNN_NORMS)


def group_norm(num_channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUP_NORM_GROUPS, num_channels)


def _backbone_norm(norm: str):
    return {"frozen_batch": FrozenBatchNorm2d, "batch": nn.BatchNorm2d, "group": group_norm}[norm]


def _head_norm(norm: str):
    """The FPN's and heads' norm layer: GroupNorm with "group", none otherwise (torchvision's v1 heads)."""
    return group_norm if norm == "group" else None


def _torchvision_backbone(backbone: str, hp: dict, pretrained: bool, fpn: bool, levels: int) -> nn.Module:
    norm = rcnn_norm(hp)
    net = _torchvision_model(backbone, pretrained, norm_layer=_backbone_norm(norm))
    _freeze(m for level in _classification_levels("resnet", net)[:levels] for m in level)
    if fpn:  # what torchvision's resnet_fpn_backbone builds, with a norm layer in the FPN too
        stage2 = net.inplanes // 8
        return BackboneWithFPN(
            net,
            {f"layer{k}": str(k - 1) for k in range(1, 5)},
            [stage2 * 2 ** (k - 1) for k in range(1, 5)],
            FPN_CHANNELS,
            extra_blocks=LastLevelMaxPool(),
            norm_layer=_head_norm(norm),
        )
    body = IntermediateLayerGetter(net, {"layer4": "0"})
    body.out_channels = net.fc.in_features
    return body


def _timm_backbone(backbone: str, hp: dict, pretrained: bool, fpn: bool, levels: int) -> nn.Module:
    if backbone.startswith("resnest"):
        _check_resnest_batch(backbone, hp)
    out_indices = (1, 2, 3, 4) if fpn else (4,)
    features = _timm_model(
        backbone, TIMM_DETECTION_BACKBONES[backbone], pretrained, features_only=True, out_indices=out_indices
    )
    _freeze_timm_levels(features, levels)
    norm = rcnn_norm(hp)
    if norm == "frozen_batch":
        features = freeze_batch_norm_2d(features)
    return TimmBackbone(features, fpn, _head_norm(norm))


def _anchor_generator(sizes: list[int], fpn: bool) -> AnchorGenerator:
    sizes = [int(s) for s in sizes]
    if not 1 <= len(sizes) <= 5 or any(s < 2 for s in sizes):
        raise ValueError(f"Invalid anchor_sizes {sizes}. Give 1 to 5 sizes, each >= 2")
    if not fpn:
        per_map = (tuple(sizes),)
    elif len(sizes) == 1:
        per_map = tuple((sizes[0] * 2**i,) for i in range(FPN_LEVELS))
    elif len(sizes) == FPN_LEVELS:
        per_map = tuple((s,) for s in sizes)
    else:
        per_map = (tuple(sizes),) * FPN_LEVELS
    return AnchorGenerator(sizes=per_map, aspect_ratios=(ASPECT_RATIOS,) * len(per_map))


class KeepSizeTransform(GeneralizedRCNNTransform):
    """`image_min_side = image_max_side = -1`: normalise and batch, never resize."""

    def resize(self, image, target=None):
        return image, target


def _sides(hp: dict, task: str) -> tuple[int, int]:
    defaults = {"detection": (600, 1000), "instance_segmentation": (800, 1333)}[task]
    min_side = int(hp.get("image_min_side", defaults[0]))
    max_side = int(hp.get("image_max_side", defaults[1]))
    if min_side != -1 and max_side != -1 and min_side > max_side:
        raise ValueError(f"image_min_side {min_side} must not exceed image_max_side {max_side}")
    if min_side == 0 or min_side < -1 or max_side == 0 or max_side < -1:
        raise ValueError("image_min_side and image_max_side must be positive or -1")
    return min_side, max_side


def _rcnn_kwargs(hp: dict, task: str) -> dict:
    min_side, max_side = _sides(hp, task)
    min_size = max_side if min_side == -1 else min_side
    max_size = UNBOUNDED_SIDE if max_side == -1 else max_side
    if min_side == -1 and max_side == -1:
        min_size = max_size = UNBOUNDED_SIDE
    kwargs = {"min_size": min_size, "max_size": max_size}
    mapping = {
        "rpn_pre_nms_top_n_train": "train_rpn_pre_nms_top_n",
        "rpn_post_nms_top_n_train": "train_rpn_post_nms_top_n",
        "rpn_pre_nms_top_n_test": "eval_rpn_pre_nms_top_n",
        "rpn_post_nms_top_n_test": "eval_rpn_post_nms_top_n",
        "rpn_batch_size_per_image": "num_anchor_samples_per_batch",
        "box_batch_size_per_image": "num_proposal_samples_per_batch",
        "box_detections_per_img": "num_detections_per_image",
        "rpn_nms_thresh": "proposal_nms_threshold",
        "box_nms_thresh": "detection_nms_threshold",
    }
    for torch_name, v15_name in mapping.items():
        if hp.get(v15_name) is not None:
            kwargs[torch_name] = hp[v15_name]
    return kwargs


def _gn_heads(task: str, channels: int) -> dict:
    """The box head (4 conv + 1 fc) and mask head (4 conv) with GroupNorm, as in the GN paper."""
    heads = {
        "box_head": FastRCNNConvFCHead(
            (channels, 7, 7), list(GN_BOX_HEAD_CONVS), [GN_BOX_HEAD_FC], norm_layer=group_norm
        )
    }
    if task == "instance_segmentation":
        heads["mask_head"] = MaskRCNNHeads(channels, list(GN_MASK_HEAD_CONVS), 1, norm_layer=group_norm)
    return heads


def build_detector(task: str, hp: dict, num_classes: int) -> nn.Module:
    algorithm = _choose("algorithm", hp.get("algorithm"), ALGORITHMS[task])
    default_backbone = DEFAULT_SEGMENTATION_BACKBONE if task == "instance_segmentation" else None
    backbone = _choose("backbone", hp.get("backbone") or default_backbone, DETECTION_BACKBONES)
    pretrained = bool(hp.get("backbone_pretrained", False))
    levels = _frozen_levels(hp, "backbone_num_frozen_levels")
    fpn = algorithm != "faster_rcnn"
    build = _timm_backbone if backbone in TIMM_DETECTION_BACKBONES else _torchvision_backbone
    body = build(backbone, hp, pretrained, fpn, levels)
    kwargs = _rcnn_kwargs(hp, task)
    default_sizes = [128] if fpn else [128, 256, 512]
    anchors = _anchor_generator(hp.get("anchor_sizes") or default_sizes, fpn)
    if not fpn:
        kwargs["box_roi_pool"] = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    kwargs.update(_gn_heads(task, body.out_channels) if rcnn_norm(hp) == "group" else {})
    model_class = MaskRCNN if task == "instance_segmentation" else FasterRCNN
    model = model_class(body, num_classes=num_classes, rpn_anchor_generator=anchors, **kwargs)
    if kwargs["min_size"] == UNBOUNDED_SIDE and kwargs["max_size"] == UNBOUNDED_SIDE:
        model.transform = KeepSizeTransform(1, 1, list(IMAGENET_MEAN), list(IMAGENET_STD))
    return model


def build_model(task: str, hp: dict, num_classes: int) -> nn.Module:
    """The untrained (or backbone-pretrained) model for `task`; `num_classes` counts background for R-CNNs."""
    _choose("task", task, tuple(ALGORITHMS))
    if num_classes < 2:
        raise ValueError(f"{task} needs at least 2 classes (got {num_classes}); check meta.json")
    if task == "classification":
        return build_classifier(hp, num_classes)
    return build_detector(task, hp, num_classes)


# --- model.json ----------------------------------------------------------------------------


def input_size(task: str, hp: dict) -> tuple[int, int]:
    """(height, width) of the example input used for FLOPs and inference warm-up."""
    if task == "classification":
        h, w = int(hp.get("image_resized_height", 224)), int(hp.get("image_resized_width", 224))
        return (h if h > 0 else 224, w if w > 0 else 224)
    min_side, max_side = _sides(hp, task)
    side = min_side if min_side > 0 else max_side if max_side > 0 else 512
    return (side, side)


def describe_model(task: str, hp: dict, class_names: list[str]) -> dict:
    """The `model.json` of a checkpoint: enough to rebuild the module and prepare its input."""
    structural = {k: hp[k] for k in STRUCTURAL_KEYS if k in hp}
    if task == "instance_segmentation":
        structural.setdefault("backbone", DEFAULT_SEGMENTATION_BACKBONE)
    architecture = None
    if task != "classification":
        norm = structural["rcnn_norm"] = rcnn_norm(hp)
        architecture = {
            "norm": norm,
            "group_norm_groups": GROUP_NORM_GROUPS if norm == "group" else None,
            "box_head": "4conv1fc-gn" if norm == "group" else "2mlp",
            "mask_head": ("4conv-gn" if norm == "group" else "4conv")
            if task == "instance_segmentation"
            else None,
        }
    return {
        "format_version": FORMAT_VERSION,
        "framework": f"torch-{torch.__version__.split('+')[0]}/torchvision-{torchvision.__version__.split('+')[0]}",
        "weights": "model.safetensors",
        "task": task,
        "algorithm": hp.get("algorithm"),
        "backbone": structural.get("backbone") if task != "classification" else None,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "image": {
            "resized_width": int(hp.get("image_resized_width", -1)),
            "resized_height": int(hp.get("image_resized_height", -1)),
            "min_side": int(hp.get("image_min_side", -1)),
            "max_side": int(hp.get("image_max_side", -1)),
            "eval_center_crop_ratio": float(hp.get("eval_center_crop_ratio", 1) or 1),
            "input_range": [0, 1],
            "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "inside_model": True},
        },
        "hyperparameters": structural,
        "architecture": architecture,
    }


def rebuild_model(model_json: dict) -> nn.Module:
    """An untrained module whose state-dict keys and shapes match the checkpoint's weights."""
    version = model_json.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"Unsupported model.json format_version {version!r}; expected {FORMAT_VERSION}")
    hp = dict(model_json.get("hyperparameters") or {})
    hp.update(pretrained=False, backbone_pretrained=False, num_frozen_levels=0, backbone_num_frozen_levels=0)
    hp["batch_size"] = max(2, int(hp.get("batch_size", 2)))
    return build_model(model_json["task"], hp, int(model_json["num_classes"]))


MAX_GRAPH_LINES = 70


def module_tree(model, title: str) -> list[str]:
    """The module tree two levels deep with parameter counts, for the model graph plot: read
    from the live model here, drawn from these lines in the background (plots.model_graph_plot)."""
    lines = []
    for name, module in model.named_modules():
        depth = name.count(".") + 1 if name else 0
        if depth > 2:
            continue
        params = sum(p.numel() for p in module.parameters())
        label = name or title
        lines.append(f"{'  ' * depth}{label}: {type(module).__name__} ({params:,} params)")
    if len(lines) > MAX_GRAPH_LINES:
        hidden = len(lines) - MAX_GRAPH_LINES
        lines = lines[:MAX_GRAPH_LINES] + [f"... {hidden} more modules"]
    return lines

"""torchvision detection and optical-flow models behind a one-tensor adapter.

Every command feeds a model ONE batched tensor (``--input-shape``, parity, bench, MACs), while a
torchvision detector takes a list of images and RAFT two frames. ``torchvision:NAME`` for these
models therefore builds an adapter, an ``nn.Module`` whose ``forward`` takes one tensor and returns
the raw head tensors, before any post-processing, with fixed shapes, in a dict keyed by what each
tensor is (``cls_logits``, ``bbox_regression``, ``flow``: :meth:`Adapter.output_names`). The keys
are the output names everywhere (:mod:`compressor.outputs`): ``compress info``, the ONNX graph's
outputs, the parity rows, ``compress eval --output``:

* one-stage detectors (RetinaNet, FCOS, SSD, SSDlite): images ``(B, 3, H, W)`` in [0, 1], normalised
  as the detector does (its resize step is left out: the network sees ``H x W``); outputs the class
  logits and box regression of every anchor (FCOS: and centerness), ``(B, anchors, ...)``;
* two-stage detectors (Faster/Mask/Keypoint R-CNN): the region-proposal head's objectness and box
  deltas of every anchor, then the box head (and the mask or keypoint head) on ``rois`` fixed
  regions per image, an even spread of the anchors: ``(B, rois, ...)``. Fixed regions in place of
  the top-scored proposals keep the graph free of data-dependent selection (NMS, top-k), so the
  output shapes and the ONNX graph do not depend on the weights and every head runs on every input;
* RAFT optical flow: ``(B, 6, H, W)``, the two RGB frames stacked on the channel axis (H and W
  divisible by 8, at least 128); output ``flow``, the last flow estimate ``(B, 2, H, W)`` in pixels.

The detector itself is the adapter's ``model`` (full detection with post-processing:
``adapter.model.eval()(list_of_images)``), so an artifact rebuilt from the reference loads the same
weights into the same adapter. :meth:`Adapter.kept_layers` names the layers that make the outputs
and the feature widths the heads share, which structured pruning keeps (see
:func:`compressor.pruning.structured.graph.ignored_layers`).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from compressor.errors import UsageError

# name -> (family, default input shape). Shapes are small so that a CPU run takes seconds, and
# what the model is made for where it is already small (ssd300 300x300, ssdlite/320 variants).
MODELS: dict[str, tuple[str, tuple[int, ...]]] = {
    "fasterrcnn_resnet50_fpn": ("rcnn", (1, 3, 320, 320)),
    "fasterrcnn_resnet50_fpn_v2": ("rcnn", (1, 3, 320, 320)),
    "fasterrcnn_mobilenet_v3_large_fpn": ("rcnn", (1, 3, 320, 320)),
    "fasterrcnn_mobilenet_v3_large_320_fpn": ("rcnn", (1, 3, 320, 320)),
    "maskrcnn_resnet50_fpn": ("rcnn", (1, 3, 320, 320)),
    "maskrcnn_resnet50_fpn_v2": ("rcnn", (1, 3, 320, 320)),
    "keypointrcnn_resnet50_fpn": ("rcnn", (1, 3, 320, 320)),
    "retinanet_resnet50_fpn": ("dense", (1, 3, 320, 320)),
    "retinanet_resnet50_fpn_v2": ("dense", (1, 3, 320, 320)),
    "fcos_resnet50_fpn": ("dense", (1, 3, 320, 320)),
    "ssd300_vgg16": ("dense", (1, 3, 300, 300)),
    "ssdlite320_mobilenet_v3_large": ("dense", (1, 3, 320, 320)),
    "raft_small": ("flow", (1, 6, 128, 128)),
    "raft_large": ("flow", (1, 6, 128, 128)),
}

ROIS = 8  # fixed regions per image a two-stage adapter runs its region heads on
FLOW_UPDATES = 12  # RAFT's recurrent refinements (torchvision's default)
HEAD = "detection head (makes the outputs)"
FEATURES = "feature width shared by the heads (kept)"


def is_adapted(name: str) -> bool:
    """True for a torchvision detection or optical-flow model (built behind an adapter)."""
    return name in MODELS


def input_shape(name: str) -> tuple[int, ...]:
    """The adapter's default example input (batch 1)."""
    return MODELS[name][1]


def build(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """The adapter around torchvision's ``name`` with random weights.

    ``rois`` (two-stage detectors) and ``flow_updates`` (RAFT) are the adapter's own keyword
    arguments; every other one goes to torchvision's builder (``num_classes=5``, ...).
    """
    import torchvision

    family = MODELS[name][0]
    kwargs = dict(kwargs)
    own = _own({k: kwargs.pop(k) for k in ("rois", "flow_updates") if k in kwargs}, family)
    if family != "flow":
        kwargs.setdefault("weights_backbone", None)
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    adapter: Adapter
    if family == "flow":
        adapter = FlowAdapter(model, **own)
    elif family == "rcnn":
        adapter = TwoStageAdapter(model, **own)
    else:
        adapter = DenseAdapter(model)
    return calibrated(adapter, MODELS[name][1])


def calibrated(adapter: Adapter, shape: tuple[int, ...]) -> Adapter:
    """The adapter with BatchNorm running statistics estimated on two seeded random images.

    Freshly initialised BatchNorm layers normalise with mean 0 and variance 1 in eval mode, which
    does not match what the random layers before them produce: through SSDlite's normal(0, 0.03)
    initialisation the eval-mode outputs shrink to 1e-14, and a parity check on them compares
    nothing. With statistics from one batch every layer sees unit-scale inputs, as in a trained
    network. No weight changes, and the global random state is not touched.
    """
    from compressor.pruning.batchnorm import recalibrate

    images = torch.rand((2, *shape[1:]), generator=torch.Generator().manual_seed(0))
    recalibrate(adapter, images)
    return adapter.eval()


def _own(own: dict[str, Any], family: str) -> dict[str, int]:
    """The adapter's own keyword arguments, checked before anything is built."""
    takes = {"flow": {"flow_updates": FLOW_UPDATES}, "rcnn": {"rois": ROIS}}.get(family, {})
    extra = sorted(set(own) - set(takes))
    if extra:
        hint = (
            f"this model's adapter takes {', '.join(f'{k}=N' for k in takes)}"
            if takes
            else "this model's adapter takes none of its own"
        )
        raise UsageError(f"--arch-kwargs {', '.join(extra)} does not apply to this model", hint)
    values = {**takes, **own}
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"--arch-kwargs {key} must be a positive integer, got {value!r}")
    return values


class Adapter(nn.Module):
    """One tensor in, the raw head tensors out (see the module docstring)."""

    task = ""
    model: Any  # the torchvision model; its sub-modules are read by name

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def output_names(self) -> list[str]:
        """What each output tensor is: the keys of ``forward``'s dict, in order."""
        raise NotImplementedError  # each adapter names its outputs

    def export_note(self) -> str:
        """What an exported graph of this adapter computes (for the export report)."""
        return (
            f"{self.task} model exported through its adapter: one input tensor, the raw head "
            f"outputs ({', '.join(self.output_names())}) with fixed shapes; post-processing "
            "(box decoding, score threshold, NMS) is not in the graph"
        )

    def kept_layers(self) -> dict[str, str]:
        """Qualified name (in this adapter) -> why its output channels are never pruned."""
        raise NotImplementedError  # each adapter names its heads

    def _named(self, prefix: str, *layers: str) -> dict[str, str]:
        return {f"model.{prefix}{name}": HEAD for name in layers}


class DenseAdapter(Adapter):
    """RetinaNet, FCOS, SSD and SSDlite: one-stage detectors whose head scores every anchor."""

    task = "detection"

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        transform = self.model.transform
        mean = torch.as_tensor(transform.image_mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.as_tensor(transform.image_std, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.model.backbone(self._normalise(x))
        levels = list(features.values()) if isinstance(features, dict) else [features]
        head = self.model.head(levels)
        return {name: head[name] for name in self.output_names()}

    def output_names(self) -> list[str]:
        names = ["bbox_regression", "cls_logits"]
        return ["bbox_ctrness", *names] if hasattr(self.model.head.regression_head, "bbox_ctrness") else names

    def kept_layers(self) -> dict[str, str]:
        head = self.model.head
        kept: dict[str, str] = {}
        for branch in ("classification_head", "regression_head"):
            sub = getattr(head, branch)
            lists = getattr(sub, "module_list", None)
            if lists is not None:  # SSD: one predictor per feature map (SSDlite: the last conv of each)
                kept.update(
                    {f"model.head.{branch}.module_list.{i}{_last_conv(m)}": HEAD for i, m in enumerate(lists)}
                )
            else:
                kept.update(
                    {
                        f"model.head.{branch}.{n}": HEAD
                        for n in ("cls_logits", "bbox_reg", "bbox_ctrness")
                        if isinstance(getattr(sub, n, None), nn.Conv2d)
                    }
                )
        kept.update(_fpn_outputs(self.model.backbone))
        return kept


class TwoStageAdapter(DenseAdapter):
    """Faster, Mask and Keypoint R-CNN: region proposals, then heads on regions of interest."""

    def __init__(self, model: nn.Module, rois: int = ROIS) -> None:
        super().__init__(model)
        self.rois = rois

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        from torchvision.models.detection.image_list import ImageList

        batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
        features = self.model.backbone(self._normalise(x))
        levels = list(features.values())
        objectness, deltas = self.model.rpn.head(levels)
        anchors = self.model.rpn.anchor_generator(ImageList(x[:1], [(height, width)]), levels)[0]
        boxes = fixed_regions(anchors, self.rois, height, width)
        heads = self.model.roi_heads
        pooled = roi_pool(heads.box_roi_pool, features, boxes, batch, (height, width))
        logits, regression = heads.box_predictor(heads.box_head(pooled))
        out = [
            torch.cat([o.flatten(1) for o in objectness], 1),
            torch.cat([d.flatten(1) for d in deltas], 1),
            logits.reshape(batch, self.rois, -1),
            regression.reshape(batch, self.rois, -1),
        ]
        if heads.mask_roi_pool is not None:
            masks = heads.mask_predictor(
                heads.mask_head(roi_pool(heads.mask_roi_pool, features, boxes, batch, (height, width)))
            )
            out.append(masks.reshape(batch, self.rois, *masks.shape[1:]))
        if heads.keypoint_roi_pool is not None:
            points = heads.keypoint_predictor(
                heads.keypoint_head(
                    roi_pool(heads.keypoint_roi_pool, features, boxes, batch, (height, width))
                )
            )
            out.append(points.reshape(batch, self.rois, *points.shape[1:]))
        return dict(zip(self.output_names(), out, strict=True))

    def output_names(self) -> list[str]:
        heads = self.model.roi_heads
        return [
            "rpn_objectness",
            "rpn_box_deltas",
            "class_logits",
            "box_regression",
            *(["mask_logits"] if heads.mask_roi_pool is not None else []),
            *(["keypoint_logits"] if heads.keypoint_roi_pool is not None else []),
        ]

    def kept_layers(self) -> dict[str, str]:
        heads = self.model.roi_heads
        kept = self._named("rpn.head.", "cls_logits", "bbox_pred")
        kept.update(self._named("roi_heads.box_predictor.", "cls_score", "bbox_pred"))
        if heads.mask_predictor is not None:
            kept.update(self._named("roi_heads.mask_predictor.", "mask_fcn_logits"))
        if heads.keypoint_predictor is not None:
            kept.update(self._named("roi_heads.keypoint_predictor.", "kps_score_lowres"))
        # the box head's first linear layer reads channels x 7 x 7 pooled values: the pooled
        # feature width stays, so the FPN outputs are kept
        kept.update(_fpn_outputs(self.model.backbone))
        return kept


class FlowAdapter(Adapter):
    """RAFT: two frames stacked on the channel axis in, the final flow field out.

    ``flow`` is in pixels, refined by twelve recurrent updates that each look up the correlation
    volume at the current estimate: float32 rounding reaches every pixel's flow at the scale of the
    field (1e-6 of its largest magnitude), whatever the pixel's own value. Parity compares it on
    that scale (``parity_scaled``, see :mod:`compressor.export.parity`).
    """

    task = "optical flow"
    parity_scaled = ("flow",)

    def __init__(self, model: nn.Module, flow_updates: int = FLOW_UPDATES) -> None:
        super().__init__(model)
        self.flow_updates = flow_updates

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        first, second = torch.chunk(x, 2, dim=1)
        with warnings.catch_warnings():
            # the encoders' InstanceNorm layers have no weights, so pruning leaves their unused
            # num_features at the old width, and torch warns on every call
            warnings.filterwarnings("ignore", message="input's size at dim=1 does not match num_features")
            return {"flow": self.model(first, second, num_flow_updates=self.flow_updates)[-1]}

    def output_names(self) -> list[str]:
        return ["flow"]

    @contextlib.contextmanager
    def tracing(self) -> Iterator[None]:
        """One refinement while torch-pruning traces the graph: every refinement runs the same
        layers, and the graph of twelve is too deep for the tracer's shape inference."""
        updates, self.flow_updates = self.flow_updates, 1
        try:
            yield
        finally:
            self.flow_updates = updates

    def export_note(self) -> str:
        return (
            f"optical-flow model exported through its adapter: the two frames stacked on the channel "
            f"axis in, the flow after {self.flow_updates} refinements out; parity compares the flow "
            "on its own scale (|ort - torch| <= atol + rtol * max|flow|)"
        )

    def kept_layers(self) -> dict[str, str]:
        update = self.model.update_block
        kept = self._named("", "feature_encoder.conv", "context_encoder.conv")
        kept.update(
            {
                f"model.update_block.{n}": "recurrent state width (kept)"
                for n, m in update.named_modules()
                if isinstance(m, nn.Conv2d) and n.startswith("recurrent_block")
            }
        )
        kept.update(self._named("update_block.flow_head.", "conv2"))
        kept.update(
            {
                f"model.{n}": HEAD
                for n, m in self.model.named_modules()
                if n.startswith("mask_predictor") and isinstance(m, nn.Conv2d)
            }
        )
        return kept


def _last_conv(module: nn.Module) -> str:
    """``""`` for a conv itself, else ``.NAME`` of the last conv inside it."""
    if isinstance(module, nn.Conv2d):
        return ""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    return f".{names[-1]}"


def _fpn_outputs(backbone: nn.Module) -> dict[str, str]:
    """The FPN's output convolutions (and its extra P6/P7 levels): the width every head reads."""
    fpn = getattr(backbone, "fpn", None)
    if fpn is None:
        return {}
    kept = {}
    for name, sub in fpn.named_modules():
        if isinstance(sub, nn.Conv2d) and (
            name.startswith("layer_blocks") or name.startswith("extra_blocks")
        ):
            kept[f"model.backbone.fpn.{name}"] = FEATURES
    return kept


def fixed_regions(anchors: torch.Tensor, count: int, height: int, width: int) -> torch.Tensor:
    """``count`` anchors spread evenly over all of them, clipped to the image: regions that depend on
    the image size only."""
    index = torch.linspace(0, anchors.shape[0] - 1, count).round().long()
    boxes = anchors[index]
    return torch.stack(
        [
            boxes[:, 0].clamp(0, width),
            boxes[:, 1].clamp(0, height),
            boxes[:, 2].clamp(0, width),
            boxes[:, 3].clamp(0, height),
        ],
        1,
    )


def roi_pool(
    pooler: Any, features: dict[str, torch.Tensor], boxes: torch.Tensor, batch: int, size: tuple[int, int]
) -> torch.Tensor:
    """torchvision's ``MultiScaleRoIAlign`` on the same ``boxes`` in every image of the batch.

    Written with tensor operations only (the batch index is a tensor, the level of each region a
    mask), so a traced graph keeps a dynamic batch axis; each region is pooled from the level
    ``floor(k0 + log2(sqrt(area) / s0))`` as in torchvision.
    """
    from torchvision.ops import roi_align

    maps = [v for k, v in features.items() if k in pooler.featmap_names]
    scales = [2.0 ** round(math.log2(m.shape[-2] / size[0])) for m in maps]
    k_min, k_max = -math.log2(scales[0]), -math.log2(scales[-1])
    count = boxes.shape[0]
    image = torch.arange(batch, dtype=boxes.dtype).repeat_interleave(count).unsqueeze(1)
    rois = torch.cat([image, boxes.repeat(batch, 1)], 1)
    if len(maps) == 1:
        return roi_align(maps[0], rois, pooler.output_size, scales[0], pooler.sampling_ratio)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    level = torch.floor(pooler.canonical_level + torch.log2(area.sqrt() / pooler.canonical_scale) + 1e-6)
    level = (level.clamp(k_min, k_max) - k_min).repeat(batch)
    pooled = None
    for i, (fmap, scale) in enumerate(zip(maps, scales)):
        part = roi_align(fmap, rois, pooler.output_size, scale, pooler.sampling_ratio)
        part = part * (level == i).to(part.dtype).view(-1, 1, 1, 1)
        pooled = part if pooled is None else pooled + part
    assert pooled is not None
    return pooled

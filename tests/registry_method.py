"""A pruning method that exists only for the tests: it masks the first ``sparsity`` share of every
selected layer's weights, in storage order. It has no merit as a method; it shows that one module
and one registry entry are all a method needs to be validated, listed, run and saved."""

from __future__ import annotations

import torch

from compressor.model import ModelHandle
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext
from compressor.pruning.unstructured import layers as L


@torch.no_grad()
def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport:
    """Mask the leading ``cfg.sparsity`` of each selected layer's weights."""
    layers = L.select_layers(handle, cfg)
    masks = {}
    for name, module in layers:
        keep = torch.ones(module.weight.numel(), dtype=torch.bool)
        keep[: round((cfg.sparsity or 0.0) * keep.numel())] = False
        masks[f"{name}.weight"] = keep.view_as(module.weight)
    L.install_masks(handle, masks)
    return MethodReport(figures=L.base_figures(handle, layers))

"""Magnitude pruning (Han et al., NeurIPS 2015): remove the weights with the smallest |W|.

Score S_ij = |W_ij|. ``--scope global`` ranks all selected layers together under one threshold,
``layer`` brings every layer to the target sparsity, ``row`` every output row; ``--nm N:M`` keeps
the N largest of every M consecutive inputs of a row. Weights already masked score 0 and stay
removed. ``--recalibrate-bn`` (with ``--data``; off by default, magnitude needs no data) then
re-estimates BatchNorm statistics on ``--calib-samples`` for the masked weights, and
``--finetune-epochs`` recovers accuracy with the masks kept.
"""

from __future__ import annotations

import torch

from compressor.errors import UsageError
from compressor.model import ModelHandle
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext
from compressor.pruning.batchnorm import recalibrate
from compressor.pruning.unstructured import layers as L
from compressor.pruning.unstructured.masks import global_masks, nm_mask, scoped_mask


def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport:
    """Mask the smallest weights of the selected layers; fine-tune if asked."""
    layers = L.select_layers(handle, cfg)
    nm = L.check_nm(layers, cfg)
    L.install_masks(handle, magnitude_masks(layers, cfg.sparsity or 0.0, cfg.scope, nm))
    report = MethodReport(figures=L.base_figures(handle, layers), notes=[L.SPEED_NOTE])
    bn_layers, samples = 0, 0
    if L.recalibrates_bn(handle, cfg):
        if ctx.train is None:
            raise UsageError("--recalibrate-bn needs calibration data", "add --data fashion-mnist")
        x, _ = ctx.train.take(cfg.calib_samples, cfg.seed)
        bn_layers, samples = recalibrate(handle.module, x, cfg.batch_size), len(x)
    report.figures["bn_recalibrated_layers"] = bn_layers
    note = L.bn_note(handle, cfg, bn_layers, samples)
    if note:
        report.notes.append(note)
    tuned = L.finetune(handle, ctx, cfg.finetune_epochs)
    if tuned:
        report.figures["finetune_val_accuracy"] = tuned["val_accuracy"]
    return report


def magnitude_masks(
    layers: list, sparsity: float, scope: str, nm: tuple[int, int] | None = None
) -> dict[str, torch.Tensor]:
    """Kept-weight masks by |W| for ``layers`` (name, module) at ``scope`` or N:M."""
    scores = {f"{name}.weight": mod.weight.detach().abs() for name, mod in layers}
    if nm:
        return {name: nm_mask(s, *nm) for name, s in scores.items()}
    if scope == "global":
        return global_masks(scores, sparsity)
    return {name: scoped_mask(s, sparsity, scope) for name, s in scores.items()}


def plan(handle: ModelHandle, cfg: PruneConfig) -> list[dict]:
    """Per selected layer: its weight shape and the sparsity this run would give it."""
    layers = L.select_layers(handle, cfg)
    nm = L.check_nm(layers, cfg)
    masks = magnitude_masks(layers, cfg.sparsity or 0.0, cfg.scope, nm)
    return [
        {
            "layer": name,
            "shape": list(mod.weight.shape),
            "sparsity": round(1 - masks[f"{name}.weight"].float().mean().item(), 4),
        }
        for name, mod in layers
    ]

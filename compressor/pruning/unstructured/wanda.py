"""Wanda (Sun et al., 2023, arXiv:2306.11695): prune by |W| times the input activation norm.

Score S_ij = |W_ij| * ||X_j||_2, X_j being input feature j over a fixed calibration set
(``--calib-samples``, drawn with ``--seed``; conv: per input channel over batch and positions).
Within every output row the lowest ``--sparsity`` fraction is removed (``--scope layer``: one
ranking per layer); ``--nm N:M`` keeps the N best of every M consecutive inputs. Layers are pruned
in forward order in one pass: a pre-forward hook scores and masks a layer just before it runs, so
later layers see the activations of the already-pruned earlier ones. No weight update.
With ``--recalibrate-bn`` (the default on models with BatchNorm) the pass runs with BatchNorm
re-estimating its statistics from the calibration batch: each layer is then scored on inputs
normalised for the pruned layers before it, and the model keeps those statistics (the trained ones
belong to the dense weights; without this, eval-mode BatchNorm feeds later layers distorted inputs).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from compressor.errors import UsageError
from compressor.model import ModelHandle
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext
from compressor.pruning.batchnorm import statistics_pass
from compressor.pruning.unstructured import layers as L
from compressor.pruning.unstructured.magnitude import magnitude_masks
from compressor.pruning.unstructured.masks import input_sq_sum, nm_mask, scoped_mask, wanda_scores


def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport:
    """Calibrate, score and mask the selected layers in one forward pass; fine-tune if asked."""
    L.parse_options(cfg.options, {}, cfg.method)
    layers = L.select_layers(handle, cfg)
    nm = L.check_nm(layers, cfg)
    if ctx.train is None:
        raise UsageError("method 'wanda' needs calibration data", "add --data fashion-mnist")
    x, _ = ctx.train.take(cfg.calib_samples, cfg.seed)
    scope = "layer" if cfg.scope == "layer" else "row"
    recal = L.recalibrates_bn(handle, cfg)
    missed, bn_layers = prune_in_forward(handle, layers, x, cfg.sparsity or 0.0, scope, nm, recal)
    report = MethodReport(figures=L.base_figures(handle, layers), notes=[L.SPEED_NOTE])
    report.figures.update({"calib_samples": len(x), "wanda_scope": "nm" if nm else scope,
                           "bn_recalibrated_layers": bn_layers})
    note = L.bn_note(handle, cfg, bn_layers, len(x))
    if note:
        report.notes.append(note)
    if cfg.scope == "global":
        report.notes.append("Wanda ranks within each output row (scope row); a global ranking "
                            "is not defined for layer-by-layer pruning; --scope layer ranks per layer")
    if missed:
        report.notes.append(f"not reached by the forward pass, pruned by |W| only: {', '.join(missed)}")
    tuned = L.finetune(handle, ctx, cfg.finetune_epochs)
    if tuned:
        report.figures["finetune_val_accuracy"] = tuned["val_accuracy"]
    return report


def prune_in_forward(handle: ModelHandle, layers: list[tuple[str, nn.Module]], x: torch.Tensor,
                     sparsity: float, scope: str, nm: tuple[int, int] | None,
                     recalibrate_bn: bool = False) -> tuple[list[str], int]:
    """Mask each layer in a pre-forward hook during one pass over ``x``.

    Returns the layers the pass did not reach and how many BatchNorm layers it recalibrated.
    """
    done: set[str] = set()

    def make_hook(name: str, mod: nn.Module):
        def hook(_module, args):
            if name not in done:
                norm = input_sq_sum(args[0], L.layer_kind(mod) == "conv").sqrt().float()
                scores = wanda_scores(mod.weight.detach(), norm, getattr(mod, "groups", 1))
                mask = nm_mask(scores, *nm) if nm else scoped_mask(scores, sparsity, scope)
                L.install_masks(handle, {f"{name}.weight": mask})
                done.add(name)
        return hook

    hooks = [mod.register_forward_pre_hook(make_hook(name, mod)) for name, mod in layers]
    handle.module.eval()
    try:
        with torch.no_grad(), statistics_pass(handle.module) if recalibrate_bn else nullcontext(0) as bns:
            handle.module(x)
    finally:
        for h in hooks:
            h.remove()
    missed = [(name, mod) for name, mod in layers if name not in done]
    if missed:
        L.install_masks(handle, magnitude_masks(missed, sparsity, scope, nm))
    return [name for name, _ in missed], bns

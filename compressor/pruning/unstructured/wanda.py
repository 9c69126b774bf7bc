"""Wanda (Sun et al., 2023, arXiv:2306.11695): prune by |W| times the input activation norm.

Score S_ij = |W_ij| * ||X_j||_2, X_j being input feature j over a fixed calibration set
(``--calib-samples``, drawn with ``--seed``; conv: per input channel over batch and positions).
Within every output row the lowest ``--sparsity`` fraction is removed (the default, ``--scope row``;
``--scope layer``: one ranking per layer); ``--nm N:M`` keeps the N best of every M consecutive
inputs. Layers are pruned in forward order in one pass: a pre-forward hook scores and masks a layer
just before it runs, so later layers see the activations of the already-pruned earlier ones. No
weight update. ``--scope global`` first gives every layer its own sparsity: a pass over the same
samples scores the dense network, each layer's scores are divided by their mean, and one threshold
over all of them sets how much of each layer goes (overall: ``--sparsity``; at most 99% of a
layer); the sequential pass then prunes each layer to its share, ranked per layer (these choices:
:class:`~compressor.pruning.unstructured.settings.WandaConfig`, ``--opt``).
With ``--recalibrate-bn`` (the default on models with BatchNorm) the passes run with BatchNorm
re-estimating its statistics from the calibration batch: each layer is then scored on inputs
normalised for the pruned layers before it, and the model keeps those statistics (the trained ones
belong to the dense weights; without this, eval-mode BatchNorm feeds later layers distorted inputs).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn

from compressor.errors import UsageError
from compressor.model import ModelHandle
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext
from compressor.pruning.batchnorm import statistics_pass
from compressor.pruning.unstructured import layers as L
from compressor.pruning.unstructured.magnitude import magnitude_masks
from compressor.pruning.unstructured.masks import (
    global_allocation,
    input_sq_sum,
    nm_mask,
    scoped_mask,
    wanda_scores,
)
from compressor.pruning.unstructured.settings import WandaConfig


def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport:
    """Calibrate, score and mask the selected layers in one forward pass; fine-tune if asked."""
    opts = cfg.settings_as(WandaConfig)
    layers = L.select_layers(handle, cfg)
    nm = L.check_nm(layers, cfg)
    if ctx.train is None:
        raise UsageError("method 'wanda' needs calibration data", "add --data fashion-mnist")
    x, _ = ctx.train.take(cfg.calib_samples, cfg.seed)
    sparsity, recal = cfg.sparsity or 0.0, L.recalibrates_bn(handle, cfg)
    allocation = None
    if cfg.scope == "global" and not nm:  # N:M fixes every row's share: scope does not apply
        allocation = dense_allocation(handle, layers, x, sparsity, recal, opts)
    scope = opts.global_ranking if allocation else "layer" if cfg.scope == "layer" else "row"
    missed, bn_layers = prune_in_forward(handle, layers, x, allocation or sparsity, scope, nm, recal)
    report = MethodReport(figures=L.base_figures(handle, layers), notes=[L.SPEED_NOTE])
    label = "nm" if nm else f"global-{scope}" if allocation else scope
    report.figures.update(
        {"calib_samples": len(x), "wanda_scope": label, "bn_recalibrated_layers": bn_layers}
    )
    if allocation:
        report.figures["wanda_layer_allocation"] = {n: round(v, 4) for n, v in allocation.items()}
        report.notes.append(allocation_note(allocation, scope))
    note = L.bn_note(handle, cfg, bn_layers, len(x))
    if note:
        report.notes.append(note)
    if nm and cfg.scope in ("global", "layer"):
        report.notes.append(
            f"--scope {cfg.scope} does not apply with --nm {nm[0]}:{nm[1]}: every block of "
            f"{nm[1]} inputs keeps its {nm[0]} best"
        )
    if missed:
        report.notes.append(f"not reached by the forward pass, pruned by |W| only: {', '.join(missed)}")
    tuned = L.finetune(handle, ctx, cfg.finetune_epochs)
    if tuned:
        report.figures["finetune_val_accuracy"] = tuned["val_accuracy"]
    return report


def allocation_note(allocation: dict[str, float], ranking: str) -> str:
    """The per-layer sparsity a global threshold gave, for the report."""
    per_layer = ", ".join(f"{name} {value:.1%}" for name, value in allocation.items())
    return (
        f"scope global: one threshold over the dense network's Wanda scores (each layer's "
        f"divided by its mean) set each layer's sparsity, then each layer was pruned ranked per "
        f"{ranking} on the already-pruned network: {per_layer}"
    )


def dense_allocation(
    handle: ModelHandle,
    layers: list[tuple[str, nn.Module]],
    x: torch.Tensor,
    sparsity: float,
    recalibrate_bn: bool,
    opts: WandaConfig,
) -> dict[str, float]:
    """Each layer's sparsity from one threshold over the Wanda scores of the dense network.

    Layers the forward pass does not reach get ``sparsity`` itself (they are pruned by |W|).
    """
    scores: dict[str, torch.Tensor] = {}
    missed, _ = each_layer_once(
        handle,
        layers,
        x,
        recalibrate_bn,
        lambda name, mod, inp: scores.__setitem__(name, layer_scores(mod, inp)),
    )
    allocation = (
        global_allocation(scores, sparsity, opts.global_normalize, opts.max_layer_sparsity) if scores else {}
    )
    allocation.update({name: sparsity for name in missed})
    return {name: allocation[name] for name, _ in layers}


def layer_scores(mod: nn.Module, inp: torch.Tensor) -> torch.Tensor:
    """Wanda scores |W| * ||X||_2 of one layer for its input batch ``inp``."""
    norm = input_sq_sum(inp, L.layer_kind(mod) == "conv").sqrt().float()
    return wanda_scores(mod.weight.detach(), norm, getattr(mod, "groups", 1))


def prune_in_forward(
    handle: ModelHandle,
    layers: list[tuple[str, nn.Module]],
    x: torch.Tensor,
    sparsity: float | dict[str, float],
    scope: str,
    nm: tuple[int, int] | None,
    recalibrate_bn: bool = False,
) -> tuple[list[str], int]:
    """Mask each layer just before it runs during one pass over ``x``.

    ``sparsity`` is one fraction for every layer or one per layer name. Returns the layers the
    pass did not reach (masked by |W|) and how many BatchNorm layers it recalibrated.
    """
    level = sparsity.get if isinstance(sparsity, dict) else lambda _name: sparsity

    def prune(name: str, mod: nn.Module, inp: torch.Tensor) -> None:
        scores = layer_scores(mod, inp)
        mask = nm_mask(scores, *nm) if nm else scoped_mask(scores, level(name), scope)
        L.install_masks(handle, {f"{name}.weight": mask})

    missed, bns = each_layer_once(handle, layers, x, recalibrate_bn, prune)
    modules = dict(layers)
    for name in missed:
        L.install_masks(handle, magnitude_masks([(name, modules[name])], level(name), scope, nm))
    return missed, bns


def each_layer_once(
    handle: ModelHandle,
    layers: list[tuple[str, nn.Module]],
    x: torch.Tensor,
    recalibrate_bn: bool,
    visit: Callable[[str, nn.Module, torch.Tensor], None],
) -> tuple[list[str], int]:
    """One eval-mode pass over ``x``; ``visit(name, module, input)`` runs before each selected
    layer's first call (a pre-forward hook, so it may mask the layer it visits).

    With ``recalibrate_bn`` the pass re-estimates the BatchNorm statistics. Returns the layers
    the pass did not reach and how many BatchNorm layers it recalibrated.
    """
    done: set[str] = set()

    def make_hook(name: str, mod: nn.Module):
        def hook(_module, args):
            if name not in done:
                visit(name, mod, args[0])
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
    return [name for name, _ in layers if name not in done], bns

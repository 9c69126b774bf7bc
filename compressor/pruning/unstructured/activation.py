"""Activation-based neuron pruning (the APoZ / mean-activation family, Hu et al., 2016).

Score of output unit (neuron or conv channel) j of a layer: its mean activation over the
calibration samples and positions, mean(max(y_j, 0)) (``--opt stat=abs``: mean |y_j|). Units
with a low score lose their whole weight row / filter and bias. The threshold is either a
percentile (every layer loses the same fraction of its still-alive units, chosen so the selected
layers reach ``--sparsity``) or fixed (``--opt threshold=0.01``: the units below it, at most that
percentile, so ``--sparsity`` is then a ceiling). It runs
``--steps`` times, the fraction growing linearly, with ``--finetune-epochs`` after every step. The
model's output layer is skipped (``--opt skip_last=false`` prunes it too); every layer keeps at
least one unit.
"""

from __future__ import annotations

import torch
from torch import nn

from compressor.errors import UsageError
from compressor.model import ModelHandle
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext
from compressor.pruning.unstructured import layers as L
from compressor.pruning.unstructured.settings import ActivationConfig


def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport:
    """Score units by mean activation and mask the weakest rows, ``cfg.steps`` times."""
    opts = cfg.settings_as(ActivationConfig)
    if ctx.train is None:
        raise UsageError("method 'activation' needs calibration data", "add --data fashion-mnist")
    layers = L.select_layers(handle, cfg)
    x, _ = ctx.train.take(cfg.calib_samples, cfg.seed)
    report = MethodReport(notes=[L.SPEED_NOTE])
    for step in range(1, cfg.steps + 1):
        means, order = mean_activations(handle.module, layers, x, opts.stat)
        prunable = [(n, m) for n, m in layers if n in means and not (opts.skip_last and n == order[-1])]
        fraction = unit_fraction(layers, prunable, (cfg.sparsity or 0.0) * step / cfg.steps)
        removed = _prune_units(handle, prunable, means, fraction, opts.threshold)
        tuned = L.finetune(handle, ctx, cfg.finetune_epochs)
        figures = L.base_figures(handle, layers)
        report.steps.append(
            {
                "step": step,
                "units_removed": removed,
                "sparsity": figures["layer_sparsity"],
                **({"val_accuracy": tuned["val_accuracy"]} if tuned else {}),
            }
        )
        ctx.log(f"activation step {step}: removed {removed} units, sparsity {figures['layer_sparsity']:.4f}")
    report.figures = {
        **L.base_figures(handle, layers),
        "units_removed": sum(s["units_removed"] for s in report.steps),
    }
    if opts.skip_last:
        report.notes.append(f"output layer '{order[-1]}' kept whole (--opt skip_last=false prunes it)")
    return report


def unit_stat(y: torch.Tensor, conv: bool, stat: str) -> tuple[torch.Tensor, int]:
    """Per-unit sum of the activation statistic over batch (and positions), and the count summed."""
    y = y.detach().double()
    y = y.clamp(min=0) if stat == "relu" else y.abs()
    if conv:
        flat = y.transpose(0, 1).reshape(y.shape[1], -1)
        return flat.sum(1), flat.shape[1]
    flat = y.reshape(-1, y.shape[-1])
    return flat.sum(0), flat.shape[0]


@torch.no_grad()
def mean_activations(
    model: nn.Module, layers: list, x: torch.Tensor, stat: str
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Mean activation per output unit of every selected layer, and the layers' call order."""
    sums: dict[str, list] = {}

    def make_hook(name: str, conv: bool):
        def hook(_m, _args, out):
            total, count = unit_stat(out, conv, stat)
            prev = sums.setdefault(name, [0, 0])
            prev[0], prev[1] = prev[0] + total, prev[1] + count

        return hook

    hooks = [m.register_forward_hook(make_hook(n, L.layer_kind(m) == "conv")) for n, m in layers]
    try:
        model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return {n: (s / c).float() for n, (s, c) in sums.items()}, list(sums)


def unit_fraction(layers: list, prunable: list, sparsity: float) -> float:
    """Fraction of units to drop from each prunable layer so all selected layers reach ``sparsity``."""
    total = sum(m.weight.numel() for _, m in layers)
    part = sum(m.weight.numel() for _, m in prunable)
    return min(sparsity * total / max(part, 1), 1.0)


def low_units(
    means: torch.Tensor, alive: torch.Tensor, fraction: float, threshold: float | None
) -> torch.Tensor:
    """Bool mask of units kept: the lowest-mean alive units go (at least one unit stays).

    Percentile: the ``fraction`` of units with the lowest means. With ``threshold`` only those of
    them whose mean is below it (the fraction is then a ceiling).
    """
    rows = means.numel()
    target = min(int(round(rows * fraction)), rows - 1) - int((~alive).sum())
    order = torch.argsort(torch.where(alive, means, torch.full_like(means, float("inf"))), stable=True)
    drop = torch.zeros(rows, dtype=torch.bool)
    drop[order[: max(target, 0)]] = True
    if threshold is not None:  # fixed threshold; the percentile (from --sparsity) is its ceiling
        drop &= means < threshold
    keep = alive & ~drop
    if not keep.any():
        keep[torch.argmax(torch.where(alive, means, torch.full_like(means, -float("inf"))))] = True
    return keep


def _prune_units(
    handle: ModelHandle,
    prunable: list,
    means: dict[str, torch.Tensor],
    fraction: float,
    threshold: float | None,
) -> int:
    removed = 0
    for name, mod in prunable:
        w = mod.weight
        current = handle.masks.get(f"{name}.weight", torch.ones_like(w, dtype=torch.bool))
        alive = current.reshape(w.shape[0], -1).any(1)
        keep = low_units(means[name], alive, fraction, threshold)
        removed += int((alive & ~keep).sum())
        shape = (-1,) + (1,) * (w.dim() - 1)
        masks = {f"{name}.weight": keep.view(shape).expand_as(w).clone()}
        if getattr(mod, "bias", None) is not None:
            masks[f"{name}.bias"] = keep.clone()
        L.install_masks(handle, masks)
    return removed

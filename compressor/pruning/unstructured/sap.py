"""SAP, sparsity-informed adaptive pruning (Diao et al., ICLR 2023, "Pruning Deep Neural Networks
from a Sparsity Perspective").

For the d unpruned weights w of a group (``--scope row``: each neuron / output row, ``layer``: each
layer, ``global``: all selected layers), the PQ index is I(w) = 1 - d^(1/q-1/p) ||w||_p / ||w||_q,
the weights to keep r = d (1+eta_r)^(-q/(q-p)) (1-I)^(qp/(q-p)) and the weights to prune
c = floor(d min(gamma (1 - r/d), beta)); the c smallest-magnitude unpruned weights go. This runs
``--steps`` times with ``--finetune-epochs`` of fine-tuning after every step. p, q, eta_r, gamma
and beta are :class:`~compressor.pruning.unstructured.settings.SapConfig` (``--opt``; defaults: the
paper's main setting). ``--sparsity``, when given, is a
ceiling: the last step is trimmed so the selected layers do not pass it, and the loop stops there.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from compressor.model import ModelHandle
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext
from compressor.pruning.unstructured import layers as L
from compressor.pruning.unstructured.masks import pq_index, prune_smallest, sap_amounts
from compressor.pruning.unstructured.settings import SapConfig


def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport:
    """``cfg.steps`` rounds of adaptive pruning with fine-tuning in between; logs every step."""
    opts = cfg.settings_as(SapConfig)
    layers = L.select_layers(handle, cfg)
    report = MethodReport(notes=[L.SPEED_NOTE])
    for step in range(1, cfg.steps + 1):
        stats = prune_step(handle, layers, cfg.scope, opts, cfg.sparsity)
        tuned = L.finetune(handle, ctx, cfg.finetune_epochs)
        stats = {"step": step, **stats, **({"val_accuracy": tuned["val_accuracy"]} if tuned else {})}
        report.steps.append(stats)
        ctx.log(
            f"SAP step {step}: PQ index {stats['pq_index']:.4f}, keep {stats['keep']:.0f}, "
            f"prune {stats['pruned']}, sparsity {stats['sparsity']:.4f}"
        )
        if cfg.sparsity is not None and stats["sparsity"] >= cfg.sparsity - 1e-6:
            break
    report.figures = {
        **L.base_figures(handle, layers),
        "sap_steps": len(report.steps),
        "pq_index_final": report.steps[-1]["pq_index"],
        **asdict(opts),
    }
    if cfg.sparsity is not None and report.figures["layer_sparsity"] < cfg.sparsity - 1e-3:
        report.notes.append(
            f"SAP's adaptive amount reached sparsity {report.figures['layer_sparsity']:.3f} "
            f"< {cfg.sparsity} in {cfg.steps} steps: raise --steps or --opt gamma"
        )
    return report


def prune_step(
    handle: ModelHandle, layers: list, scope: str, opts: SapConfig, ceiling: float | None
) -> dict[str, Any]:
    """One SAP step over the selected layers; masks installed, figures returned."""
    masks = L.weight_masks(handle, layers)
    names = list(masks)
    params = dict(handle.module.named_parameters())
    magnitude = torch.cat([params[n].detach().abs().reshape(-1) for n in names])
    alive = torch.cat([masks[n].reshape(-1) for n in names])
    budget = None if ceiling is None else max(0, int(alive.sum()) - round(alive.numel() * (1 - ceiling)))
    new_alive, stats = sap_step(magnitude, alive, group_ranges(layers, scope), opts, budget)
    start = 0
    for n in names:
        size = masks[n].numel()
        L.install_masks(handle, {n: new_alive[start : start + size].view(masks[n].shape)})
        start += size
    return {**stats, "sparsity": 1 - new_alive.float().mean().item()}


def group_ranges(layers: list, scope: str) -> list[tuple[int, int]]:
    """(start, end) slices of the flattened selected weights forming SAP's groups at ``scope``."""
    ranges, start = [], 0
    for _, mod in layers:
        size, rows = mod.weight.numel(), mod.weight.shape[0]
        if scope == "row":
            width = size // rows
            ranges += [(start + i * width, start + (i + 1) * width) for i in range(rows)]
        else:
            ranges.append((start, start + size))
        start += size
    return [(0, start)] if scope == "global" else ranges


def sap_step(
    magnitude: torch.Tensor,
    alive: torch.Tensor,
    ranges: list[tuple[int, int]],
    opts: SapConfig,
    budget: int | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Apply SAP's amounts to every group; ``budget`` caps the total pruned (scaled down evenly).

    Returns the new alive mask and: pq_index (over all alive weights), pq_index_mean (over
    groups), keep (sum of r), pruned (weights removed this step).
    """
    p, q = opts.p, opts.q
    amounts, indices, keep = [], [], 0.0
    for s, e in ranges:
        w = magnitude[s:e][alive[s:e]]
        index = pq_index(w, p, q)
        r, c = sap_amounts(w.numel(), index, p, q, opts.eta_r, opts.gamma, opts.beta)
        amounts.append(c), indices.append(index)
        keep += r
    total = sum(amounts)
    if budget is not None and total > budget:
        amounts = _scale(amounts, budget)
    out = alive.clone()
    for (s, e), c in zip(ranges, amounts):
        out[s:e] = prune_smallest(magnitude[s:e], alive[s:e], c)
    overall = pq_index(magnitude[alive], p, q)
    return out, {
        "pq_index": overall,
        "pq_index_mean": sum(indices) / max(len(indices), 1),
        "keep": keep,
        "pruned": int(alive.sum() - out.sum()),
    }


def _scale(amounts: list[int], budget: int) -> list[int]:
    """Scale ``amounts`` down to sum exactly ``budget`` (largest remainders get the extras)."""
    total = sum(amounts)
    raw = [a * budget / total for a in amounts]
    out = [int(v) for v in raw]
    for i in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[: budget - sum(out)]:
        out[i] += 1
    return out

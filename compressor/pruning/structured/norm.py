"""Norm-based filter pruning: l1, l2 and random (the control).

Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017 (arXiv:1608.08710). The score of
output channel i is the p-norm of everything coupled to it, ||W[i, :, :, :]||_p (p=1 for l1, p=2
for l2), averaged over the coupled group (conv, its BatchNorm, the next layer's input slice,
residual partners) and normalised per group; the lowest-scored channels are removed physically,
either against one global ranking (``--scope global``) or in every layer (``--scope layer``),
never more than ``--max-layer-ratio`` of a layer, channel counts rounded to ``--round-to``. The
``random`` control scores channels uniformly at random (seeded). Iterative pruning (``--steps``)
re-scores after each step, recalibrates BatchNorm statistics when data is given and fine-tunes
between steps and at the end (``--finetune-epochs``). ``--target-macs f`` prunes in small steps
until at most the fraction f of the MACs is left.
"""

from __future__ import annotations

from typing import Any

import torch
import torch_pruning as tp

from compressor.model import ModelHandle
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext
from compressor.pruning.structured import graph

MACS_STEPS = 40  # granularity of --target-macs: ratio 0.95 reached in this many small steps
MACS_MAX_RATIO = 0.95
BN_BATCHES = 20


def importance(method: str, seed: int = 0) -> Any:
    """The torch-pruning importance for ``method`` (l1, l2 or random)."""
    if method == "random":
        torch.manual_seed(seed)
        return tp.importance.RandomImportance()
    return tp.importance.GroupMagnitudeImportance(p=1 if method == "l1" else 2)


def plan(handle: ModelHandle, cfg: PruneConfig) -> list[dict[str, Any]]:
    """Dry run: the groups one-shot pruning would remove and the layers never pruned."""
    model, example = handle.module, handle.example_input()
    graph.check_supported(model)
    reasons = graph.ignored_layers(model, example, cfg.ignore)
    pruners = _pruners(model, example, cfg, cfg.ratio or 1 - cfg.target_macs, 1, list(reasons))
    rows = graph.group_rows(pruners, model)
    rows += [{"group": name, "status": f"kept: {why}"} for name, why in reasons.items()]
    return rows


def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport:
    """Prune ``handle.module`` in place; fine-tune and recalibrate BatchNorm when data is given."""
    model, example = handle.module, handle.example_input()
    graph.check_supported(model)
    graph.check_scope(cfg.scope)
    reasons = graph.ignored_layers(model, example, cfg.ignore)
    report = MethodReport(notes=graph.describe_kept(reasons))
    rule = graph.restriction(model)
    if rule is not None:
        report.notes.append(rule.reason)
    if cfg.target_macs is not None:
        _prune_to_macs(handle, cfg, ctx, list(reasons), report)
    else:
        _prune_steps(handle, cfg, ctx, list(reasons), report)
    if cfg.finetune_epochs and ctx.finetune is not None:
        report.figures.update({f"finetune_{k}": v for k, v in ctx.finetune(handle, cfg.finetune_epochs).items()})
    return report


def _pruners(model, example, cfg: PruneConfig, ratio: float, steps: int, ignored: list[str]):
    return graph.make_pruners(
        model, example, importance(cfg.method, cfg.seed), ratio=ratio,
        global_pruning=graph.check_scope(cfg.scope), steps=steps, round_to=cfg.round_to,
        max_layer_ratio=cfg.max_layer_ratio, ignored=ignored)


def _step(pruners) -> None:
    with graph.tracer_errors():
        for pruner in pruners:
            pruner.step()


def _prune_steps(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext, ignored: list[str],
                 report: MethodReport) -> None:
    model, example = handle.module, handle.example_input()
    pruners = _pruners(model, example, cfg, cfg.ratio, cfg.steps, ignored)
    for step in range(cfg.steps):
        _step(pruners)
        row = _after_step(handle, ctx, step)
        if cfg.finetune_epochs and ctx.finetune is not None and step < cfg.steps - 1:
            row.update({f"finetune_{k}": v for k, v in ctx.finetune(handle, cfg.finetune_epochs).items()})
        report.steps.append(row)
        ctx.log(f"step {step + 1}/{cfg.steps}: {row['params']} params, {row['macs']} MACs")


def _prune_to_macs(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext, ignored: list[str],
                   report: MethodReport) -> None:
    model, example = handle.module, handle.example_input()
    base_macs, _ = tp.utils.count_ops_and_params(model, example)
    pruners = _pruners(model, example, cfg, MACS_MAX_RATIO, MACS_STEPS, ignored)
    for step in range(MACS_STEPS):
        _step(pruners)
        graph.sync_attributes(model)
        macs, _ = tp.utils.count_ops_and_params(model, example)
        if macs <= cfg.target_macs * base_macs:
            break
    row = _after_step(handle, ctx, step)
    report.steps.append(row)
    report.figures["macs_kept"] = row["macs"] / max(base_macs, 1)
    if row["macs"] > cfg.target_macs * base_macs:
        report.notes.append(f"reached only {report.figures['macs_kept']:.3f} of the MACs "
                            f"(--max-layer-ratio {cfg.max_layer_ratio} and ignored layers limit it)")


def _after_step(handle: ModelHandle, ctx: PruneContext, step: int) -> dict[str, Any]:
    model, example = handle.module, handle.example_input()
    graph.sync_attributes(model)
    graph.run_forward(model, example)
    row: dict[str, Any] = {"step": step + 1}
    if ctx.train is not None:
        row["bn_batches"] = graph.recalibrate_bn(model, ctx.train.loader(batch_size=64, shuffle=True,
                                                                           seed=step), BN_BATCHES)
    macs, params = tp.utils.count_ops_and_params(model, example)
    row.update({"params": int(params), "macs": int(macs)})
    return row

"""Norm-based filter pruning: l1, l2 and random (the control).

Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017 (arXiv:1608.08710). The score of
output channel i is the p-norm of everything coupled to it, ||W[i, :, :, :]||_p (p=1 for l1, p=2
for l2), averaged over the coupled group (conv, its BatchNorm, the next layer's input slice,
residual partners) and normalised per group; the lowest-scored channels are removed physically,
either against one global ranking (``--scope global``) or in every layer (``--scope layer``),
never more than ``--max-layer-ratio`` of a layer, channel counts rounded to ``--round-to``. The
``random`` control scores channels uniformly at random (seeded). Iterative pruning (``--steps``)
re-scores after each step, recalibrates BatchNorm statistics when data is given and fine-tunes
between steps and at the end (``--finetune-epochs``). With a target instead of a ratio (a measured
speed-up or latency, MACs, parameters or file bytes) the widths are planned per group against the
target's cost (:mod:`compressor.pruning.structured.budget`), trading the same scores.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch_pruning as tp

from compressor.model import ModelHandle
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext
from compressor.pruning.structured import coupling, graph, preflight
from compressor.stats import count_macs, count_params

BN_BATCHES = 20


def importance(method: str, seed: int = 0) -> Any:
    """The torch-pruning importance for ``method`` (l1, l2 or random)."""
    if method == "random":
        torch.manual_seed(seed)
        return tp.importance.RandomImportance()
    return tp.importance.GroupMagnitudeImportance(p=1 if method == "l1" else 2)


def step_ratio(total: float, step: int, steps: int) -> float:
    """Fraction of the *current* channels to remove at ``step`` (1-based) so that after ``steps``
    equal steps of the original widths, ``total`` of them are gone."""
    done, goal = total * (step - 1) / steps, total * step / steps
    return (goal - done) / (1 - done)


def plan(handle: ModelHandle, cfg: PruneConfig) -> list[dict[str, Any]]:
    """Dry run: the groups one-shot pruning would remove and the layers never pruned."""
    model, example = handle.module, handle.example_input()
    graph.check_supported(model)
    if cfg.budget is not None:
        return preview(handle, cfg, PruneContext())[0]
    reasons = preflight.kept_layers(handle, cfg)
    ratio, original = cfg.ratio, graph.out_widths(model)
    if graph.check_scope(cfg.scope):
        taken = graph.capped_global_plan(
            model,
            example,
            lambda: importance(cfg.method, cfg.seed),
            ratio=ratio,
            max_layer_ratio=cfg.max_layer_ratio,
            ignored=list(reasons),
            original=original,
        )
        return graph.plan_rows(model, taken) + [
            {"group": name, "status": f"kept: {why}"} for name, why in reasons.items()
        ]
    pruners = graph.make_pruners(
        model, example, importance(cfg.method, cfg.seed), ratio=ratio, ignored=list(reasons)
    )
    rows = graph.group_rows(pruners, model)
    for row in rows:
        row["remove"] = round(
            row["channels"]
            * graph.capped_ratio(row["channels"], original[row["group"]], row["remove"], cfg.max_layer_ratio)
        )
    rows += [{"group": name, "status": f"kept: {why}"} for name, why in reasons.items()]
    return rows


def preview(
    handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Dry run with a target: the budget engine's first plan, predicted by its cost model (per-layer
    widths and cost, predicted figure, MACs and parameters); nothing pruned, nothing written."""
    from compressor.pruning.structured.budget import land

    model = handle.module
    graph.check_supported(model)
    graph.check_scope(cfg.scope)
    reasons = preflight.kept_layers(handle, cfg)
    rows, figures = land.preview(
        handle,
        cfg.budget,
        lambda: importance(cfg.method, cfg.seed),
        list(reasons),
        max_layer_ratio=cfg.max_layer_ratio,
        round_to=cfg.round_to,
        latency_model=ctx.latency_model,
        meter=ctx.budget_meter,
        log=ctx.log,
    )
    return with_kept(rows, reasons), figures


def with_kept(rows: list[dict[str, Any]], reasons: dict[str, str]) -> list[dict[str, Any]]:
    """Plan rows with each kept layer's reason in its own row (or in a row of its own)."""
    by_name = {row["layer"]: row for row in rows}
    for name, why in reasons.items():
        by_name.setdefault(name, {"layer": name})["status"] = f"kept: {why}"
    return list(by_name.values())


@coupling.remembering_unmapped()  # the preflight's copy, the plan and the cut: one structure
def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport:
    """Prune ``handle.module`` (in place; with a target, the kept pruned copy replaces it); fine-tune
    and recalibrate BatchNorm when data is given."""
    model = handle.module
    graph.check_supported(model)
    graph.check_scope(cfg.scope)
    # One cut without budget can be undone and checked: it goes first, and the search for groups
    # whose cut breaks the model runs only when it breaks (most models: never).
    cut_first = cfg.budget is None and cfg.steps == 1 and not cfg.strict
    reasons = preflight.kept_layers(handle, cfg, search=not cut_first)
    rule = graph.restriction(model)
    report = MethodReport()
    dense_widths = graph.out_widths(model)
    with coupling.recording_kept() as unmapped:
        if cfg.budget is not None:
            from compressor.pruning.structured.budget import land

            land.run(handle, cfg, ctx, lambda: importance(cfg.method, cfg.seed), list(reasons), report)
            recalibrated = _after_step(handle, ctx, 0).get("bn_batches")
            if recalibrated is not None:
                report.figures["bn_batches"] = recalibrated
        else:
            reasons = _prune_keeping(handle, cfg, ctx, reasons, report)
    kept = {**reasons, **coupling.kept_names(handle.module, unmapped)}
    report.notes[:0] = graph.describe_kept(kept) + ([rule.reason] if rule is not None else [])
    if cfg.budget is None and cfg.round_to is None:
        from compressor.pruning.structured.budget.config import CHANNEL_BLOCK

        report.notes += graph.misaligned_note(dense_widths, graph.out_widths(handle.module), CHANNEL_BLOCK)
    if cfg.finetune_epochs and ctx.finetune is not None:
        report.figures.update(
            {f"finetune_{k}": v for k, v in ctx.finetune(handle, cfg.finetune_epochs).items()}
        )
    return report


def _step(
    handle: ModelHandle, cfg: PruneConfig, ratio: float, ignored: list[str], original: dict[str, int]
) -> None:
    graph.prune_step(
        handle.module,
        handle.example_input(),
        lambda: importance(cfg.method, cfg.seed),
        ratio=ratio,
        global_pruning=graph.check_scope(cfg.scope),
        round_to=cfg.round_to,
        max_layer_ratio=cfg.max_layer_ratio,
        ignored=ignored,
        original=original,
    )


def _prune_keeping(
    handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext, reasons: preflight.Kept, report: MethodReport
) -> preflight.Kept:
    """Prune keeping ``reasons``; returns the layers kept.

    When the preflight had no verdict (no search ran: the cut goes first; or its deadline stopped
    the search), a cut that breaks the model (it no longer runs, an output changes shape, or
    torch-pruning fails cutting a group its graph maps wrongly: an index past a layer's channels)
    is undone: the search runs on the unpruned model (for :data:`preflight.PREFLIGHT_SECONDS`
    after no search, :data:`preflight.LATE_SECONDS` after a short one) and the model is pruned
    once more, keeping what it finds."""
    searches = ([preflight.PREFLIGHT_SECONDS] if not reasons.searched else []) + [preflight.LATE_SECONDS]
    while True:
        undo = bool(searches) and not (reasons.complete or cfg.strict)
        backup = copy.deepcopy(handle.module) if undo else None
        try:
            _prune_steps(handle, cfg, ctx, list(reasons), report)
            failure = (
                None
                if backup is None
                else preflight.cut_failure(handle.module, handle.example_input(), reasons)
            )
            if failure is None:
                return reasons
            ctx.log(f"the cut breaks the model: {failure}")
        except (coupling.CutBreaksModel, graph.TorchPruningFailed) as broken:
            if backup is None:
                raise
            ctx.log(broken.one_line())
        handle.module = backup
        report.steps.clear()
        seconds = searches.pop(0)
        ctx.log(f"searching for the groups whose cut breaks it (up to {seconds:.0f} s)")
        reasons = preflight.kept_layers(handle, cfg, seconds=seconds)


def _prune_steps(
    handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext, ignored: list[str], report: MethodReport
) -> None:
    original = graph.out_widths(handle.module)
    for step in range(cfg.steps):
        _step(handle, cfg, step_ratio(cfg.ratio, step + 1, cfg.steps), ignored, original)
        row = _after_step(handle, ctx, step)
        if cfg.finetune_epochs and ctx.finetune is not None and step < cfg.steps - 1:
            row.update({f"finetune_{k}": v for k, v in ctx.finetune(handle, cfg.finetune_epochs).items()})
        report.steps.append(row)
        ctx.log(f"step {step + 1}/{cfg.steps}: {row['params']} params, {row['macs']} MACs")


def _after_step(handle: ModelHandle, ctx: PruneContext, step: int) -> dict[str, Any]:
    """Recalibrate BatchNorm when data is given; params and MACs (one forward, which also proves the
    pruned model still runs on the input shape)."""
    model, example = handle.module, handle.example_input()
    row: dict[str, Any] = {"step": step + 1}
    if ctx.train is not None:
        row["bn_batches"] = graph.recalibrate_bn(
            model, ctx.train.loader(batch_size=64, shuffle=True, seed=step), BN_BATCHES
        )
    row.update({"params": count_params(model)[0], "macs": count_macs(model, example)})
    return row

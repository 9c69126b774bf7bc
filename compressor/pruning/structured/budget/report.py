"""The budget report: per-layer widths and their measured share of the cost, flat figures, notes
(whether the target was met, and where the time went: layers cut without buying time)."""

from __future__ import annotations

from typing import Any

from compressor.pruning.structured.budget import meters
from compressor.pruning.structured.budget.allocate import PlanCost
from compressor.pruning.structured.budget.config import BudgetConfig, flag
from compressor.pruning.structured.budget.latency import layer_fn
from compressor.pruning.structured.budget.structure import Structure

NO_TIME_SHARE = 0.05  # a cut layer whose measured time fell by less than this share bought no time
NO_TIME_MS = 0.005  # ... or by less than this many ms
OVERHEAD_MS = 0.02  # layers this fast are mostly ONNX Runtime's per-operator cost
MEMORY_BOUND = 8.0  # MACs per byte moved below which a layer waits on memory
NAMED = 6  # layers named in a note (the rest are counted)


def describe(
    landing,
    structure: Structure,
    cost: PlanCost,
    model_cost: Any,
    budget: BudgetConfig,
    max_layer_ratio: float,
) -> None:
    """Fill ``landing.layers``, ``landing.figures`` and ``landing.notes`` for the kept attempt."""

    attempt = landing.attempt
    widths = {n: cost.widths(lay, attempt.plan) for n, lay in structure.layers.items()}
    if hasattr(model_cost, "ensure"):  # every layer's share is measured, not interpolated
        model_cost.ensure({n: w for n, w in widths.items()})
        model_cost.ensure({n: (s.cin, s.cout) for n, s in structure.shapes.items()})
    fn, unit = layer_fn(model_cost), meters.UNITS[budget.kind]
    reading = attempt.reading
    for name, shape in structure.shapes.items():
        before, after = fn(name, shape.cin, shape.cout), fn(name, *widths[name])
        landing.layers[name] = {
            "cin_before": shape.cin,
            "cout_before": shape.cout,
            "cin_after": widths[name][0],
            "cout_after": widths[name][1],
            f"{unit}_before": before,
            f"{unit}_after": after,
            "share_before": before / reading.dense if reading.dense else 0.0,
            "share_after": after / reading.pruned if reading.pruned else 0.0,
        }
    landing.figures.update(_figures(landing, budget, model_cost, unit))
    landing.notes += _landing_notes(landing, budget, max_layer_ratio)
    if budget.measured:
        note = where_time_went(structure, landing.layers)
        if note:
            landing.notes.append(note)


def plan_rows(
    structure: Structure, cost: PlanCost, model_cost: Any, plan: dict[str, int], unit: str
) -> list[dict[str, Any]]:
    """One row per layer of a plan that is not measured: its widths and its cost before and after
    by the cost model (``latency_ms``: the measured per-layer model, interpolated between points)."""
    fn = layer_fn(model_cost)
    rows = []
    for name, shape in structure.shapes.items():
        cin, cout = cost.widths(structure.layers[name], plan)
        rows.append(
            {
                "layer": name,
                "in": f"{shape.cin}->{cin}",
                "out": f"{shape.cout}->{cout}",
                f"{unit}_before": _rounded(fn(name, shape.cin, shape.cout), unit),
                f"{unit}_after": _rounded(fn(name, cin, cout), unit),
            }
        )
    return rows


def _rounded(value: float, unit: str) -> float | int:
    return round(value, 4) if unit == "latency_ms" else int(round(value))


def _figures(landing, budget: BudgetConfig, model_cost: Any, unit: str) -> dict[str, Any]:
    reading = landing.attempt.reading
    figures: dict[str, Any] = {
        "target": budget.describe(),
        "target_kind": budget.kind,
        "target_value": budget.value,
        "target_factor": landing.target,
        "landed": landing.landed,
        "attempts": len(landing.attempts),
        "band_low": budget.speedup_low if budget.measured else 1.0,
        "band_high": budget.speedup_high,
        "estimated_factor": landing.attempt.estimate,
        "measured_factor": reading.factor,
        f"dense_{unit}": reading.dense,
        f"pruned_{unit}": reading.pruned,
        **reading.figures,
    }
    if not budget.measured:
        figures[f"{unit}_kept"] = reading.pruned / reading.dense if reading.dense else 0.0
    if hasattr(model_cost, "measured"):
        figures.update(
            costmodel_grid_measured=model_cost.grid_measured,
            costmodel_points_measured=model_cost.measured,
            costmodel_seconds=model_cost.seconds,
            costmodel_points=len(model_cost.points),
            costmodel_cache=str(model_cost.path),
        )
    return figures


def _landing_notes(landing, budget: BudgetConfig, max_layer_ratio: float) -> list[str]:
    attempt, reading = landing.attempt, landing.attempt.reading
    notes = list(dict.fromkeys(n for a in landing.attempts for n in a.reading.notes))
    if landing.landed:
        return notes
    got = f"{reading.factor:.3f}x" if budget.kind != "latency_ms" else f"{reading.pruned:.3f} ms"
    notes.append(
        f"not landed: {budget.describe()} asked, measured {got} after {len(landing.attempts)} "
        f"attempt(s); the closest plan is kept"
    )
    fastest = max(landing.attempts, key=lambda a: a.reading.factor)
    if fastest is not attempt:
        notes.append(
            f"the fastest plan measured {fastest.reading.factor:.3f}x; kept the least-cut plan measured "
            f"within {budget.closest_share:.0%} of it ({reading.factor:.3f}x), which keeps more channels"
        )
    if any(a.at_floor for a in landing.attempts) and reading.factor < landing.target:
        notes.append(
            f"the target needs more than {flag('max_layer_ratio')} {max_layer_ratio} allows "
            "(even every group at its floor falls short"
            + (
                f"; a latency target out of reach is planned to {budget.reach_share:.0%} of the largest "
                "saving, since the last cuts before the floor buy little time for much accuracy"
                if budget.measured
                else ""
            )
            + "): raise it, prune more layers (fewer --ignore, no --keep-residual) or relax the target"
        )
    return notes


def where_time_went(structure: Structure, rows: dict[str, dict[str, Any]]) -> str | None:
    """A note naming the layers whose widths were cut but whose measured time hardly fell."""
    idle = []
    for name, row in rows.items():
        cut = row["cin_after"] < row["cin_before"] or row["cout_after"] < row["cout_before"]
        saved = row["latency_ms_before"] - row["latency_ms_after"]
        if cut and saved < max(NO_TIME_SHARE * row["latency_ms_before"], NO_TIME_MS):
            idle.append(f"{name} ({reason(structure, name, row)})")
    if not idle:
        return None
    more = f" and {len(idle) - NAMED} more" if len(idle) > NAMED else ""
    return (
        f"where the time went: {len(idle)} layer(s) were narrowed (as neighbours of cut groups) but "
        f"their measured time hardly fell: {', '.join(idle[:NAMED])}{more}"
    )


def reason(structure: Structure, name: str, row: dict[str, Any]) -> str:
    """Why a cut bought no time: a depthwise conv, ONNX Runtime's per-operator cost, or memory."""
    shape = structure.shapes[name]
    if shape.depthwise:
        return "depthwise: little arithmetic per byte"
    if row["latency_ms_before"] < OVERHEAD_MS:
        return "op overhead: under 20 us"
    if meters.intensity(shape, shape.cin, shape.cout) < MEMORY_BOUND:
        return "memory-bound"
    return "kernel step: the width change stays within one block of the kernel"

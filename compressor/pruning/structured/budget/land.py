"""Land a structured method on a budget: plan widths under a cost model, prune, measure, retry.

1. The model's layers and coupled groups are read from torch-pruning's dependency graph, each
   group with its channels' importance (the method's scores: L1/L2 norms, BatchNorm gammas).
2. A per-layer cost function prices every layer at any pair of widths: the measured latency cost
   model (:mod:`compressor.bench.costmodel`) for latency targets, the layer's MACs, parameters or
   weight bytes otherwise. The dense model's measured figure minus the layers' sum is a constant
   rest (other operators); when the layers' sum is larger (one-layer graphs pay layout changes that
   a whole graph does not), the layers' costs are scaled down to the measured total instead.
3. :func:`~compressor.pruning.structured.budget.allocate.allocate` picks the widths that reach an
   internal target factor (dense estimate / plan estimate), first the target itself.
4. A copy of the dense model is pruned to those widths and measured against the dense one. Outside
   the landing band the internal target is rescaled by what was measured (a secant step in log
   space over the attempts so far) and the plan is made again, at most ``retries`` times. When
   the new aim gives back a plan that measured above the band, the highest lower aim that changes
   the widths is found by bisection; any other plan already tried (the floor plan falling short
   comes back as itself) ends the loop.
5. The attempt that landed is kept; when none did, the closest one (the least over-pruned among
   those meeting the budget, else the one nearest to it) is kept and reported as not landed.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from compressor.errors import UnsupportedError
from compressor.pruning.structured.budget import meters
from compressor.pruning.structured.budget.allocate import PlanCost, allocate, floor_plan
from compressor.pruning.structured.budget.config import BudgetConfig
from compressor.pruning.structured.budget.latency import build_latency_model, layer_fn
from compressor.pruning.structured.budget.structure import Structure, apply_plan, find_structure

MIN_FACTOR = 1.0001  # an internal target at or below 1 plans the dense model
REAIMS = 8  # bisection steps when a lower aim repeats an over-cut plan (allocations, not measurements)


@dataclass
class Attempt:
    """One plan and its measurement.

    Attributes:
        internal: the estimated factor the allocation aimed at.
        estimate: the factor the plan reached in the estimate.
        at_floor: the allocation ran out of moves before reaching ``internal``.
        plan: group -> width.
        reading: the measured comparison with the dense model.
        landed: the measured figure is within the landing band.
    """

    internal: float
    estimate: float
    at_floor: bool
    plan: dict[str, int]
    reading: meters.Reading
    landed: bool

    def row(self, number: int, target: float) -> dict[str, Any]:
        """One flat row for the report."""
        return {
            "attempt": number,
            "internal_target": self.internal,
            "estimated_factor": self.estimate,
            "measured_factor": self.reading.factor,
            "target_factor": target,
            "at_floor": self.at_floor,
            "landed": self.landed,
            **self.reading.figures,
        }


@dataclass
class Landing:
    """What the budget engine did.

    Attributes:
        module: the kept pruned model.
        attempt: the kept attempt.
        attempts: every attempt, in order.
        target: the target factor of the kept attempt (dense figure / target figure).
        landed: whether the kept attempt landed.
        layers: layer name -> widths and cost before and after, with shares.
        notes: the infeasibility note and "where the time went".
        figures: flat figures for the report.
    """

    module: nn.Module
    attempt: Attempt
    attempts: list[Attempt]
    target: float
    landed: bool
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


LatencyModel = Callable[[Structure, BudgetConfig, int, Callable[[str], None]], Any]
MeterFactory = Callable[[BudgetConfig, Any, Path], meters.Meter]


def land(
    handle,
    budget: BudgetConfig,
    importance: Callable[[], Any],
    ignored: list[str],
    *,
    max_layer_ratio: float,
    round_to: int | None,
    latency_model: LatencyModel | None = None,
    meter: MeterFactory | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Landing:
    """Prune a copy of ``handle.module`` to ``budget`` (see the module docstring); ``handle`` is
    left as it was."""
    structure, unit = _structure(handle, budget, importance, ignored, max_layer_ratio, round_to)
    with tempfile.TemporaryDirectory(prefix="compressor-budget-") as tmp:
        gauge = (meter or meters.default_meter)(budget, handle, Path(tmp))
        dense = gauge.dense()
        model_cost = _layer_cost(structure, budget, unit, latency_model, log)
        cost = _plan_cost(structure, model_cost, dense)
        attempts, kept = _attempts(handle, structure, cost, gauge, budget, importance, ignored, dense, log)
    landing = Landing(kept[1], kept[0], attempts, _target(budget, kept[0].reading.dense), kept[0].landed)
    from compressor.pruning.structured.budget.report import describe

    describe(landing, structure, cost, model_cost, budget, max_layer_ratio)
    return landing


def preview(
    handle,
    budget: BudgetConfig,
    importance: Callable[[], Any],
    ignored: list[str],
    *,
    max_layer_ratio: float,
    round_to: int | None,
    latency_model: LatencyModel | None = None,
    meter: MeterFactory | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The first plan :func:`land` would measure, predicted by the cost model and not measured:
    per-layer rows (widths, predicted cost before and after) and flat figures (the predicted
    figure and factor, and the MACs and parameters of the planned model, counted on a pruned copy).

    Only the dense model is measured (for a latency target: timed whole, to learn the cost of
    what the layers leave out; the per-layer cost model is built or read from its cache).
    ``handle`` is left as it was and nothing but the cost model's cache is written.
    """
    from compressor.pruning.structured.budget.report import plan_rows
    from compressor.stats import count_macs, count_params

    model, example = handle.module, handle.example_input()
    structure, unit = _structure(handle, budget, importance, ignored, max_layer_ratio, round_to)
    with tempfile.TemporaryDirectory(prefix="compressor-budget-") as tmp:
        dense = (meter or meters.default_meter)(budget, handle, Path(tmp)).dense()
    model_cost = _layer_cost(structure, budget, unit, latency_model, log)
    cost = _plan_cost(structure, model_cost, dense)
    dense_total, ceiling, internal = _first_aim(budget, structure, cost, dense)
    plan = allocate(structure.groups, cost, dense_total / internal, budget.lookahead)
    pruned = copy.deepcopy(model)
    apply_plan(pruned, example, importance, plan.plan, ignored)
    predicted = cost.total(plan.plan)
    unit_name = meters.UNITS[budget.kind]
    figures: dict[str, Any] = {
        "target": budget.describe(),
        "target_kind": budget.kind,
        "target_value": budget.value,
        "target_factor": _target(budget, dense),
        "predicted_factor": dense / predicted if predicted else 0.0,
        "unit": unit_name,
        f"dense_{unit_name}": dense,
        f"predicted_{unit_name}": predicted,
        "predicted_reaches_target": plan.reached and internal < ceiling,
        "dense_macs": count_macs(model, example),
        "predicted_macs": count_macs(pruned, example),
        "dense_params": count_params(model)[0],
        "predicted_params": count_params(pruned)[0],
    }
    if hasattr(model_cost, "measured"):
        figures.update(costmodel_grid_measured=model_cost.grid_measured, costmodel_cache=str(model_cost.path))
    return plan_rows(structure, cost, model_cost, plan.plan, unit_name), figures


def _with_sensitivity(structure: Structure, path: str) -> Structure:
    """The structure with each group's cut priced by the measured accuracy drops of ``path``."""
    import dataclasses

    from compressor.bench.costmodel import structure_hash
    from compressor.pruning.structured.budget import pricing

    document = pricing.load(path, structure_hash(structure.shapes))
    return dataclasses.replace(structure, groups=pricing.priced(structure.groups, document))


def _layer_cost(
    structure: Structure,
    budget: BudgetConfig,
    unit: int,
    latency_model: LatencyModel | None,
    log: Callable[[str], None],
) -> Any:
    """The cost model (an object with ``layer_ms``) for latency, else a counting function."""
    if not budget.measured:
        return meters.count_fn(budget.kind, structure.shapes)
    return (latency_model or build_latency_model)(structure, budget, unit, log)


def _plan_cost(structure: Structure, model_cost: Any, dense: float) -> PlanCost:
    fn = layer_fn(model_cost)
    groups = structure.groups
    cost = PlanCost(list(structure.layers.values()), groups, fn)
    layers_sum = cost.total({g.name: g.width for g in groups})
    if layers_sum <= dense or layers_sum <= 0:
        cost.rest = dense - layers_sum
        return cost
    scale = dense / layers_sum
    return PlanCost(list(structure.layers.values()), groups, lambda n, i, o: scale * fn(n, i, o))


def _structure(handle, budget: BudgetConfig, importance, ignored, max_layer_ratio, round_to):
    """The model's groups (priced by the sensitivity scan when given) and the width unit."""
    unit = round_to or (budget.unit if budget.measured else 1)  # counts have no kernel blocks
    structure = find_structure(
        handle.module, handle.example_input(), importance(), ignored, max_layer_ratio, unit
    )
    if budget.sensitivity:
        structure = _with_sensitivity(structure, budget.sensitivity)
    if not structure.groups:
        raise UnsupportedError(
            "no prunable group is left to meet the budget",
            "check --ignore and --keep-residual: every layer is kept",
        )
    return structure, unit


def _first_aim(budget: BudgetConfig, structure: Structure, cost: PlanCost, dense: float):
    """The dense plan's estimate, the highest internal target worth planning, and the first one."""
    dense_total = cost.total({g.name: g.width for g in structure.groups})
    ceiling = reach(budget, _target(budget, dense), dense_total, cost.total(floor_plan(structure.groups)))
    return dense_total, ceiling, min(max(_target(budget, dense), MIN_FACTOR), ceiling)


def reach(budget: BudgetConfig, target: float, dense_total: float, floor_total: float) -> float:
    """The highest internal target worth planning: the floor plan's estimated factor, except for a
    measured target clearly beyond it, which is planned to ``budget.reach_share`` of the largest
    estimated saving (the cuts nearest the floor save the least time per channel)."""
    floor = dense_total / max(floor_total, 1e-12)
    if not budget.measured or target <= floor:
        return floor
    return dense_total / max(floor_total + (1 - budget.reach_share) * (dense_total - floor_total), 1e-12)


def _target(budget: BudgetConfig, dense: float) -> float:
    """The factor (dense / pruned figure) the budget asks for, given the dense figure."""
    if budget.kind == "speedup":
        return budget.value
    return dense / budget.value if budget.kind in ("latency_ms", "size") else 1 / budget.value


def landed(budget: BudgetConfig, reading: meters.Reading) -> bool:
    """Within the band: [low, high] x the target speed-up for latency; at or under the target and
    within 1 / high of it for counts and sizes."""
    target = _target(budget, reading.dense)
    if budget.kind == "latency_ms":  # the latency itself, not the pair-ratio speed-up
        return budget.value / budget.speedup_high <= reading.pruned <= budget.value / budget.speedup_low
    low = budget.speedup_low if budget.measured else 1.0
    return low * target <= reading.factor <= budget.speedup_high * target


@dataclass
class _Search:
    """Plans made and measured against the dense model; every measured plan is an attempt."""

    handle: Any
    structure: Structure
    cost: PlanCost
    gauge: meters.Meter
    budget: BudgetConfig
    importance: Any
    ignored: list[str]
    dense_total: float  # the dense plan's estimate
    attempts: list[Attempt] = field(default_factory=list)

    def plan(self, internal: float):
        """The allocation aiming at the internal target factor."""
        return allocate(self.structure.groups, self.cost, self.dense_total / internal, self.budget.lookahead)

    def known(self, plan) -> Attempt | None:
        """The attempt that already measured these widths."""
        return next((a for a in self.attempts if a.plan == plan.plan), None)

    def fresh(self, internal: float):
        """The plan for ``internal``; when that repeats an attempt measured above the band (the
        allocation's last cut can overshoot its aim by more than the re-aim lowered it), the plan
        of the highest lower aim that changes the widths, found by bisection in log space between
        ``internal`` and the highest estimate measured below the band (else the dense model).
        Plans are not measured here, so the search costs allocations only."""
        plan = self.plan(internal)
        repeated = self.known(plan)
        if repeated is None or not _over(repeated, self.budget):
            return plan, internal
        short = [a.estimate for a in self.attempts if not _over(a, self.budget) and not a.landed]
        lo, hi = math.log(max([MIN_FACTOR, *(e for e in short if e < internal)])), math.log(internal)
        found = None
        for _ in range(REAIMS):
            mid = (lo + hi) / 2
            candidate = self.plan(math.exp(mid))
            if self.known(candidate) is repeated:
                hi = mid
            else:
                lo = mid
                if candidate.factor > 1:  # a dense plan (no cut at all) is never worth measuring
                    found = (candidate, math.exp(mid))
        return found or (plan, internal)

    def measure(self, plan, internal: float, at_floor: bool) -> tuple[Attempt, nn.Module]:
        """Prune a copy to ``plan``, measure it, and record the attempt."""
        module = copy.deepcopy(self.handle.module)
        apply_plan(module, self.handle.example_input(), self.importance, plan.plan, self.ignored)
        reading = self.gauge.compare(module)
        attempt = Attempt(internal, plan.factor, at_floor, plan.plan, reading, landed(self.budget, reading))
        self.attempts.append(attempt)
        return attempt, module


def _attempts(
    handle,
    structure: Structure,
    cost: PlanCost,
    gauge: meters.Meter,
    budget: BudgetConfig,
    importance,
    ignored: list[str],
    dense: float,
    log,
) -> tuple[list[Attempt], tuple[Attempt, nn.Module]]:
    dense_total, ceiling, internal = _first_aim(budget, structure, cost, dense)
    search = _Search(handle, structure, cost, gauge, budget, importance, ignored, dense_total)
    kept: tuple[Attempt, nn.Module] | None = None
    for number in range(budget.retries + 1):
        plan, internal = search.fresh(internal)
        if search.known(plan):
            break  # the same widths again: measuring them tells nothing new
        attempt, module = search.measure(plan, internal, not plan.reached or internal >= ceiling)
        log(
            f"budget attempt {number + 1}: planned {plan.factor:.3f}x (aimed {internal:.3f}x), measured "
            f"{attempt.reading.factor:.3f}x, target {_target(budget, attempt.reading.dense):.3f}x"
            + (" - landed" if attempt.landed else "")
        )
        kept = _closer(kept, (attempt, module), budget)
        if attempt.landed:
            break
        internal = min(max(_rescale(search.attempts, budget), MIN_FACTOR), ceiling)
    assert kept is not None  # the first attempt always runs
    if budget.measured and not kept[0].landed and _out_of_reach(search.attempts, budget):
        kept = _back_off(search, kept, log)
    return search.attempts, kept


def _over(attempt: Attempt, budget: BudgetConfig) -> bool:
    """The attempt measured above the landing band (cut deeper than the target asks)."""
    return not attempt.landed and attempt.reading.factor > budget.speedup_high * _target(
        budget, attempt.reading.dense
    )


def _out_of_reach(attempts: list[Attempt], budget: BudgetConfig) -> bool:
    """The deepest plan was measured and even the fastest attempt falls short of the target."""
    fastest = max(attempts, key=lambda a: a.reading.factor)
    target = _target(budget, fastest.reading.dense)
    return any(a.at_floor for a in attempts) and fastest.reading.factor < budget.speedup_low * target


def _back_off(search: _Search, kept: tuple[Attempt, nn.Module], log) -> tuple[Attempt, nn.Module]:
    """Out of reach, keep the least-cut plan measured within ``budget.closest_share`` of the
    fastest attempt: the deepest cuts are where the cost model promises time that the measured
    model does not give back. Bisection in log space on the internal target, between the fastest
    attempt's measured factor (a plan estimated to give what was measured) and its estimate, at
    most ``budget.retries`` plans more."""
    fastest = max(search.attempts, key=lambda a: a.reading.factor)
    enough = search.budget.closest_share * fastest.reading.factor
    lo, hi = math.log(max(fastest.reading.factor, MIN_FACTOR)), math.log(max(fastest.estimate, MIN_FACTOR))
    best = kept if kept[0] is fastest else None
    for number in range(search.budget.retries):
        if hi - lo < 0.01:
            break
        internal = math.exp(lo if number == 0 else (lo + hi) / 2)
        plan = search.plan(internal)
        attempt, module = search.known(plan), None
        if attempt is None:
            attempt, module = search.measure(plan, internal, False)
            log(
                f"budget back-off {number + 1}: planned {plan.factor:.3f}x, measured "
                f"{attempt.reading.factor:.3f}x (the fastest plan measured {fastest.reading.factor:.3f}x)"
            )
        if attempt.reading.factor >= enough:
            hi = math.log(max(plan.factor, MIN_FACTOR))
            if module is not None and (best is None or plan.factor < best[0].estimate):
                best = (attempt, module)
        else:
            lo = math.log(max(plan.factor, MIN_FACTOR))
    return best or kept


def _rescale(attempts: list[Attempt], budget: BudgetConfig) -> float:
    """The next internal target, by interpolation in log space between what was planned and what
    was measured: the dense model (planned 1x, measured 1x) and every attempt so far are points;
    the two nearest points on either side of the target bracket it (regula falsi), else the last
    two points extrapolate (their slope kept within [1/4, 4])."""
    goal = math.log(_target(budget, attempts[-1].reading.dense))
    points = [(0.0, 0.0)] + [(math.log(a.estimate), math.log(max(a.reading.factor, 1e-9))) for a in attempts]
    below = [p for p in points if p[1] <= goal]
    above = [p for p in points if p[1] > goal]
    if below and above:
        (x0, y0), (x1, y1) = max(below, key=lambda p: p[1]), min(above, key=lambda p: p[1])
    else:
        (x0, y0), (x1, y1) = points[-2], points[-1]
    slope = (y1 - y0) / (x1 - x0) if abs(x1 - x0) > 1e-9 else 1.0
    slope = min(max(slope, 0.25), 4.0)
    return math.exp(x1 + (goal - y1) / slope)


def _closer(
    kept: tuple[Attempt, nn.Module] | None, new: tuple[Attempt, nn.Module], budget: BudgetConfig
) -> tuple[Attempt, nn.Module]:
    """The better of two attempts: landed; else meeting the budget with the least over-shoot;
    else the nearest below it."""
    if kept is None:
        return new

    def rank(a: Attempt) -> tuple:
        target = _target(budget, a.reading.dense)
        meets = a.reading.factor >= (budget.speedup_low if budget.measured else 1.0) * target
        return (not a.landed, not meets, abs(math.log(max(a.reading.factor, 1e-9) / target)))

    return new if rank(new[0]) < rank(kept[0]) else kept


def run(handle, cfg, ctx, importance: Callable[[], Any], ignored: list[str], report) -> Landing:
    """Land ``cfg.budget`` for a structured method: swap the kept pruned model into ``handle`` and
    put the attempts, figures, notes and per-layer rows into the method's ``report``."""
    landing = land(
        handle,
        cfg.budget,
        importance,
        ignored,
        max_layer_ratio=cfg.max_layer_ratio,
        round_to=cfg.round_to,
        latency_model=ctx.latency_model,
        meter=ctx.budget_meter,
        log=ctx.log,
    )
    handle.module = landing.module
    report.steps += [
        a.row(i + 1, _target(cfg.budget, a.reading.dense)) for i, a in enumerate(landing.attempts)
    ]
    report.figures.update(landing.figures)
    report.notes += landing.notes
    report.layers.update(landing.layers)
    return landing

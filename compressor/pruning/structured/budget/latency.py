"""The per-layer cost a budget is planned with: the measured latency cost model, and one way to
call any cost model (an object with ``layer_ms``, or a plain function)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor.errors import UnsupportedError
from compressor.pruning.structured.budget.config import BudgetConfig
from compressor.pruning.structured.budget.structure import Structure


def build_latency_model(structure: Structure, budget: BudgetConfig, unit: int, log: Callable[[str], None]):
    """The measured cost model of the model's layers under the budget's profile (cached)."""
    from compressor.bench import costmodel, runner

    profile = budget.bench_profile()
    if runner.resolve_device(profile.device, [True]) != "cpu":
        raise UnsupportedError(
            f"latency targets are measured on the CPU; profile '{profile.name}' runs on CUDA here",
            "use --profile mobile or edge (or a target of --target-macs/--target-params)",
        )
    settings = costmodel.BuildSettings(
        tuple(budget.grid),
        unit,
        budget.cost_cache,
        budget.point_runs,
        budget.point_time_s,
        budget.point_passes,
    )
    return costmodel.build(
        structure.shapes, structure.variable(), profile, settings, log=log, multiples=structure.multiples()
    )


def layer_fn(model_cost: Any) -> Callable[[str, int, int], float]:
    """(layer, cin, cout) -> cost from a cost model object or a plain function."""
    return model_cost.layer_ms if hasattr(model_cost, "layer_ms") else model_cost

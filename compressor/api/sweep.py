"""``compress sweep``: every method x level as one recipe each; resumable; CSV, JSON, frontier, plots.

The plan and the engine live in :mod:`compressor.sweep`; here each point's recipe runs through
the API's recipe runner, the same as ``compress run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor.sweep.engine import SweepResult, record_point, run_sweep
from compressor.sweep.plan import SweepConfig

__all__ = ["SweepConfig", "SweepResult", "sweep", "run_point"]


def sweep(
    cfg: SweepConfig, on_point: Callable[[dict[str, Any]], None] | None = None, plan_only: bool = False
) -> SweepResult:
    """Run (or resume) the sweep; write points.csv, sweep.json and the plots into ``output_dir``.

    ``plan_only`` writes every point's recipe and the tables of what is finished, and runs nothing
    (for a cluster scheduler: ``compress run points/ID.yaml --record`` per point, then the sweep
    again to collect).
    """
    return run_sweep(cfg, run_point, on_point, plan_only)


def run_point(pid: str, mapping: dict[str, Any], points_dir: str) -> dict[str, Any]:
    """Run one point's recipe and store its result as points_dir/ID.json (atomically).

    What ``compress run points/ID.yaml --record`` calls on a cluster node, and what the sweep
    runs in each worker process.
    """
    from compressor.api.recipe import run_recipe

    return record_point(pid, mapping, points_dir, run_recipe)

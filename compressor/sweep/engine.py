"""Running a sweep: plan every point, skip the finished ones, run the rest, write the tables.

What runs one point is given by the caller (:func:`compressor.api.sweep.run_point`, which runs
the point's recipe through the API), so this package sits below the API and never imports it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from compressor.errors import EXIT_UNSUPPORTED, CompressorError
from compressor.recipe.parse import Recipe
from compressor.recipe.run import RecipeResult
from compressor.sweep.plan import BATCH_SIZE, DONE, SweepConfig, plan
from compressor.sweep.runner import PointRunner, run_all


@dataclass(frozen=True)
class SweepResult:
    """Every point's row, the frontiers, and what this run computed or skipped."""

    output_dir: str
    points: list[dict[str, Any]]
    frontiers: dict[str, list[str]]
    computed: int
    skipped: int
    files: dict[str, str]
    wall_s: float

    @property
    def failed(self) -> list[str]:
        """Ids of points that failed (usage error) or broke (a bug); unsupported ones are answers."""
        return [p["id"] for p in self.points if p["status"] in ("failed", "error")]

    def to_json(self) -> dict[str, Any]:
        """The sweep summary (the full document is OUT/sweep.json)."""
        return {**asdict(self), "failed": self.failed}


def record_point(
    pid: str, mapping: dict[str, Any], points_dir: str, run_recipe: Callable[[Recipe], RecipeResult]
) -> dict[str, Any]:
    """Run one point's recipe with ``run_recipe`` and store its result as points_dir/ID.json (atomically).

    A failure is recorded, not raised: one broken point must not end the sweep.
    """
    from compressor.recipe.parse import parse_recipe
    from compressor.sweep.report import write_json

    start = time.perf_counter()
    record: dict[str, Any] = {
        "id": pid,
        **_labels(mapping),
        "recipe": str(Path(points_dir) / f"{pid}.yaml"),
        "recipe_mapping": mapping,
    }
    try:
        result = run_recipe(parse_recipe(mapping, where=f"point {pid}"))
        record.update(
            status="ok",
            metrics=result.metrics,
            step_seconds={f"{r['step']}_{r['kind']}": r["seconds"] for r in result.steps},
        )
    except CompressorError as exc:
        status = "unsupported" if exc.exit_code == EXIT_UNSUPPORTED else "failed"
        record.update(status=status, error=exc.one_line(), metrics={})
    except Exception as exc:  # noqa: BLE001 - one broken point must not end the sweep
        record.update(status="error", error=f"{type(exc).__name__}: {str(exc)[:200]}", metrics={})
    record["seconds"] = round(time.perf_counter() - start, 2)
    write_json(record, Path(points_dir) / f"{pid}.json")
    return record


def finished(points_dir: Path, pid: str, mapping: dict[str, Any]) -> dict[str, Any] | None:
    """The stored record of a point finished with this same recipe, else None."""
    file = points_dir / f"{pid}.json"
    try:
        record = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    same = record.get("recipe_mapping") == json.loads(json.dumps(mapping))
    return record if same and record.get("status") in DONE else None


def run_sweep(
    cfg: SweepConfig,
    run_point: PointRunner,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    plan_only: bool = False,
) -> SweepResult:
    """Run (or resume) the sweep; write points.csv, sweep.json and the plots into ``output_dir``.

    ``run_point`` runs and records one point (in worker processes with ``cfg.jobs > 1``).

    ``plan_only`` writes every point's recipe and the tables of what is finished, and runs nothing
    (for a cluster scheduler: ``compress run points/ID.yaml --record`` per point, then the sweep
    again to collect).
    """
    start = time.perf_counter()
    points_dir = Path(cfg.output_dir) / "points"
    planned, threads = _prepare(cfg, points_dir)
    records = {pid: rec for pid, mapping in planned if (rec := finished(points_dir, pid, mapping))}
    todo = [(pid, mapping) for pid, mapping in planned if pid not in records]
    load_before = os.getloadavg()
    for record in run_all(
        [] if plan_only else todo, str(points_dir), cfg.jobs, len(planned), run_point, on_point
    ):
        records[record["id"]] = record
    ordered = [records.get(pid) or _pending(pid, mapping, points_dir) for pid, mapping in planned]
    rows = rows_from(ordered, list(cfg.profiles) if cfg.bench else [])
    machine = {
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "jobs": cfg.jobs,
        "loadavg_start": load_before,
        "loadavg_end": os.getloadavg(),
    }
    return _write_outputs(
        cfg,
        Path(cfg.output_dir),
        rows,
        0 if plan_only else len(todo),
        len(planned) - len(todo),
        machine,
        start,
    )


def _prepare(cfg: SweepConfig, points_dir: Path) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """Check data and model once (exit 2 before any point), validate and write every recipe."""
    import torch

    from compressor.errors import InputError
    from compressor.io.data import load_data
    from compressor.recipe.parse import parse_recipe

    epoch_batches = math.ceil(len(load_data(cfg.data, "train")) / BATCH_SIZE)
    cfg.spec.load()
    if points_dir.parent.exists() and not points_dir.parent.is_dir():
        raise InputError(f"-o {points_dir.parent} is a file", "give a folder (created if missing)")
    points_dir.mkdir(parents=True, exist_ok=True)
    threads = 1 if cfg.jobs > 1 else torch.get_num_threads()
    planned = plan(cfg, threads, epoch_batches)
    for pid, mapping in planned:
        parse_recipe(mapping, where=f"point {pid}")
        _write_recipe(points_dir / f"{pid}.yaml", mapping)
    return planned, threads


def _pending(pid: str, mapping: dict[str, Any], points_dir: Path) -> dict[str, Any]:
    return {"id": pid, **_labels(mapping), "status": "pending", "recipe": str(points_dir / f"{pid}.yaml")}


def _labels(mapping: dict[str, Any]) -> dict[str, Any]:
    """What names a point in the tables: its method and its level or target (None for the other)."""
    meta = mapping["meta"]
    return {"method": meta["method"], "level": meta.get("level"), "target": meta.get("target")}


def _write_recipe(path: Path, mapping: dict[str, Any]) -> None:
    import yaml

    from compressor.io.atomic import atomic_write_text

    head = "# one sweep point: `compress run THIS_FILE` reproduces it (compressor sweep)\n"
    atomic_write_text(path, head + yaml.safe_dump(mapping, sort_keys=False))


TARGET_FIGURES = ("landed", "target_factor", "target_measured_factor")
"""A budgeted point's figures from its prune step: landed or not, the factor (dense / pruned figure)
the target asked for and the one measured (the speed-up for latency targets)."""


def rows_from(records: list[dict[str, Any]], profiles: list[str]) -> list[dict[str, Any]]:
    """Flat table rows: effective sparsity against the baseline's parameters, accuracy drop, measured
    speed-up over the baseline per profile, and a budgeted point's target figures."""
    base = next((r["metrics"] for r in records if r["id"] == "baseline" and r["status"] == "ok"), {})
    rows = []
    for rec in records:
        m = rec.get("metrics") or {}
        row = {
            k: rec.get(k) for k in ("id", "method", "level", "target", "status", "seconds", "recipe", "error")
        }
        row.update(
            {
                k: m.get(k)
                for k in (
                    "params",
                    "nonzero_params",
                    "macs",
                    "size_bytes",
                    "compressed_bytes",
                    "onnx_size_bytes",
                    "accuracy",
                    "robust_accuracy",
                    *TARGET_FIGURES,
                )
            }
        )
        for p in profiles:
            ms, base_ms = m.get(f"latency_ms_p50_{p}"), base.get(f"latency_ms_p50_{p}")
            row[f"latency_ms_p50_{p}"] = ms
            row[f"speedup_{p}"] = base_ms / ms if ms and base_ms else None
        row["zero_fraction"] = m.get("sparsity")
        if m.get("nonzero_params") is not None and base.get("params"):
            row["sparsity"] = 1 - m["nonzero_params"] / base["params"]
        if m.get("accuracy") is not None and base.get("accuracy") is not None:
            row["accuracy_drop"] = base["accuracy"] - m["accuracy"]
        rows.append(row)
    return rows


def _write_outputs(
    cfg: SweepConfig,
    out: Path,
    rows: list[dict[str, Any]],
    computed: int,
    skipped: int,
    machine: dict[str, Any],
    start: float,
) -> SweepResult:
    from compressor.sweep import report

    profiles = list(cfg.profiles) if cfg.bench else []
    fronts = report.frontiers(rows, profiles)
    files = {
        "csv": str(out / "points.csv"),
        "json": str(out / "sweep.json"),
        "plot_sparsity": str(out / "accuracy_vs_sparsity.png"),
    }
    report.write_csv(rows, Path(files["csv"]), profiles)
    report.plot_sparsity(rows, fronts["accuracy_vs_sparsity"], Path(files["plot_sparsity"]))
    if profiles:
        files["plot_latency"] = str(out / "accuracy_vs_latency.png")
        report.plot_latency(rows, fronts, profiles, Path(files["plot_latency"]))
    wall = round(time.perf_counter() - start, 2)
    doc = {
        "config": {**asdict(cfg), "model": cfg.spec.path},
        "machine": machine,
        "wall_s": wall,
        "computed": computed,
        "skipped": skipped,
        "frontiers": fronts,
        "points": rows,
    }
    report.write_json(doc, Path(files["json"]))
    return SweepResult(str(out), rows, fronts, computed, skipped, files, wall)

"""``compress sweep``: every method x level as one recipe each; resumable; CSV, JSON, frontier, plots.

Each point is a recipe (:mod:`compressor.api.recipe`) written to ``OUT/points/ID.yaml`` and run by
the same step runner as ``compress run``, so ``compress run OUT/points/ID.yaml`` reproduces it
(the recipe pins the torch thread count). A finished point is stored as ``OUT/points/ID.json``
together with the recipe it ran; a rerun skips every point whose stored recipe is unchanged.
Points are independent: ``--jobs N`` runs them in N processes, and a cluster scheduler can run one
``compress run`` per point file (docs/sweep.md).

Budget of one point: the method, the fine-tune budget (``finetune_epochs``; iterative methods
spread it over their steps with a per-step batch cap, slim splits it between sparsity training
and fine-tuning), accuracy on the whole test split once, an optional attack on ``attack_limit``
test samples, ONNX export and a short latency run per profile (:data:`SWEEP_BENCH`).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from compressor import registry
from compressor.errors import EXIT_UNSUPPORTED, CompressorError, UsageError

DEFAULT_METHODS = ("l1", "slim", "magnitude", "wanda", "sap", "activation")
DEFAULT_LEVELS = (0.2, 0.5, 0.8, 0.9, 0.95)
# steps of the iterative methods; SAP's adaptive amount needs several steps to reach high levels
ITERATIVE_STEPS = {"sap": 10, "activation": 4}
# ranking settings per method: global magnitude spares small layers; Wanda compares within rows
# as in the paper; SAP per layer with gamma 4 (gamma 1 removes only ~11-15% per step here)
METHOD_SETTINGS: dict[str, dict[str, Any]] = {"magnitude": {"scope": "global"}, "wanda": {"scope": "row"},
                                              "sap": {"scope": "layer", "options": {"gamma": 4.0}}}
# a short latency run per point: enough for a stable median of a small model, ~1-3 s
SWEEP_BENCH = {"warmup": 5, "min_runs": 30, "min_time_s": 0.3, "max_time_s": 3.0}
BATCH_SIZE = 128
DONE = ("ok", "unsupported")  # unsupported (exit 3) is a finished answer; errors are retried


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep and how to measure each point.

    Attributes:
        model: the trained model (as on the command line).
        data: data spec for calibration, fine-tuning and accuracy.
        output_dir: where points, tables and plots go.
        methods / levels: every method at every level (structured: channel ratio; masked: sparsity).
        finetune_epochs: fine-tune budget per point, in epochs of the training split.
        profiles: bench profiles to measure each point under (latency per profile).
        bench: export and bench each point (False: accuracy and sizes only).
        attack / eps / attack_limit: robustness column (fgsm or pgd on that many test samples).
        jobs: points run in this many processes (each with one torch thread).
    """

    model: str
    data: str
    output_dir: str
    methods: tuple[str, ...] = DEFAULT_METHODS
    levels: tuple[float, ...] = DEFAULT_LEVELS
    finetune_epochs: int = 1
    profiles: tuple[str, ...] = ("mobile",)
    bench: bool = True
    attack: str | None = None
    eps: float = 0.03
    attack_limit: int | None = 1000
    jobs: int = 1
    seed: int = 0
    arch: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from compressor.bench.profiles import get_profile
        from compressor.robustness import AttackConfig

        for m in self.methods:
            registry.method(m)
        if not self.methods or not self.levels:
            raise UsageError("a sweep needs at least one method and one level", "e.g. --levels 0.5,0.9")
        if len(set(self.methods)) != len(self.methods) or len(set(self.levels)) != len(self.levels):
            raise UsageError("methods and levels must not repeat")
        for level in self.levels:
            if not 0 < level < 1:
                raise UsageError(f"level {level} must be between 0 and 1 (exclusive)", "e.g. --levels 0.5,0.9")
        for p in self.profiles:
            get_profile(p)
        if self.attack is not None:
            AttackConfig(self.attack, self.eps)
        if self.jobs < 1 or self.finetune_epochs < 0:
            raise UsageError(f"--jobs must be >= 1 and --finetune-epochs >= 0, got {self.jobs}, "
                             f"{self.finetune_epochs}")
        if self.attack_limit is not None and self.attack_limit < 1:
            raise UsageError(f"--attack-limit must be >= 1, got {self.attack_limit}")


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


def point_id(method: str, level: float) -> str:
    """``wanda_0.8``."""
    return f"{method}_{level:g}"


def model_step(method: str, level: float, cfg: SweepConfig, epoch_batches: int) -> dict[str, Any]:
    """The prune (or slim) step of one point, with the fine-tune budget spread over its steps."""
    epochs = cfg.finetune_epochs
    if method == "slim":  # half an epoch of sparsity training, half of fine-tuning
        return {"slim": {"ratio": level, "sparsity_epochs": epochs, "finetune_epochs": epochs,
                         "max_batches": math.ceil(epoch_batches / 2) if epochs else None,
                         "seed": cfg.seed}}
    key = "ratio" if registry.method(method).kind == "structured" else "sparsity"
    settings: dict[str, Any] = {"method": method, key: level, "seed": cfg.seed,
                                **METHOD_SETTINGS.get(method, {})}
    steps = ITERATIVE_STEPS.get(method, 1)
    if steps > 1:
        settings["steps"] = steps
    if epochs and steps > 1:
        settings.update(finetune_epochs=1, finetune_batches=math.ceil(epochs * epoch_batches / steps))
    elif epochs:
        settings["finetune_epochs"] = epochs
    return {"prune": settings}


def measure_steps(cfg: SweepConfig) -> list[dict[str, Any]]:
    """The steps after the model step: attack, sizes, export and one bench per profile."""
    steps: list[dict[str, Any]] = []
    if cfg.attack:
        steps.append({"eval": {"attack": cfg.attack, "eps": cfg.eps, "limit": cfg.attack_limit}})
    steps.append({"info": {}})
    if cfg.bench:
        steps.append({"export": {}})
        steps += [{"bench": {"profile": p, **SWEEP_BENCH}} for p in cfg.profiles]
    return steps


def point_recipe(cfg: SweepConfig, pid: str, first: dict[str, Any], threads: int,
                 meta: dict[str, Any]) -> dict[str, Any]:
    """The recipe mapping of one point (what OUT/points/ID.yaml holds)."""
    model = str(Path(cfg.model).resolve()) if Path(cfg.model).is_file() else cfg.model
    points = Path(cfg.output_dir).resolve() / "points"
    recipe: dict[str, Any] = {"model": model, "data": cfg.data, "threads": threads,
                              "output_dir": str(points / pid), "meta": {"sweep_point": pid, **meta},
                              "steps": [first, *measure_steps(cfg)]}
    if cfg.arch:
        recipe.update(arch=cfg.arch, arch_kwargs=dict(cfg.arch_kwargs))
    return recipe


def plan(cfg: SweepConfig, threads: int, epoch_batches: int) -> list[tuple[str, dict[str, Any]]]:
    """(id, recipe mapping) of the baseline and of every method x level."""
    points = [("baseline", point_recipe(cfg, "baseline", {"eval": {}}, threads,
                                        {"method": "baseline", "level": 0.0}))]
    for method in cfg.methods:
        for level in sorted(cfg.levels):
            pid = point_id(method, level)
            points.append((pid, point_recipe(cfg, pid, model_step(method, level, cfg, epoch_batches),
                                             threads, {"method": method, "level": level})))
    return points


def run_point(pid: str, mapping: dict[str, Any], points_dir: str) -> dict[str, Any]:
    """Run one point's recipe and store its result as points_dir/ID.json (atomically).

    What ``compress run points/ID.yaml --record`` calls on a cluster node.
    """
    from compressor.api.recipe import parse_recipe, run_recipe
    from compressor.sweep.report import write_json

    start = time.perf_counter()
    record: dict[str, Any] = {"id": pid, **{k: mapping["meta"][k] for k in ("method", "level")},
                              "recipe": str(Path(points_dir) / f"{pid}.yaml"), "recipe_mapping": mapping}
    try:
        result = run_recipe(parse_recipe(mapping, where=f"point {pid}"))
        record.update(status="ok", metrics=result.metrics,
                      step_seconds={f"{r['step']}_{r['kind']}": r["seconds"] for r in result.steps})
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


def sweep(cfg: SweepConfig, on_point: Callable[[dict[str, Any]], None] | None = None,
          plan_only: bool = False) -> SweepResult:
    """Run (or resume) the sweep; write points.csv, sweep.json and the plots into ``output_dir``.

    ``plan_only`` writes every point's recipe and the tables of what is finished, and runs nothing
    (for a cluster scheduler: ``compress run points/ID.yaml --record`` per point, then the sweep
    again to collect).
    """
    from compressor.sweep.runner import run_all

    start = time.perf_counter()
    points_dir = Path(cfg.output_dir) / "points"
    planned, threads = _prepare(cfg, points_dir)
    records = {pid: rec for pid, mapping in planned if (rec := finished(points_dir, pid, mapping))}
    todo = [(pid, mapping) for pid, mapping in planned if pid not in records]
    load_before = os.getloadavg()
    for record in run_all([] if plan_only else todo, str(points_dir), cfg.jobs, len(planned), on_point):
        records[record["id"]] = record
    ordered = [records.get(pid) or _pending(pid, mapping, points_dir) for pid, mapping in planned]
    rows = rows_from(ordered, list(cfg.profiles) if cfg.bench else [])
    machine = {"cpu_count": os.cpu_count(), "torch_threads": threads, "jobs": cfg.jobs,
               "loadavg_start": load_before, "loadavg_end": os.getloadavg()}
    return _write_outputs(cfg, Path(cfg.output_dir), rows, 0 if plan_only else len(todo),
                          len(planned) - len(todo), machine, start)


def _prepare(cfg: SweepConfig, points_dir: Path) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """Check data and model once (exit 2 before any point), validate and write every recipe."""
    import torch

    from compressor.api.common import ModelSpec
    from compressor.api.recipe import parse_recipe
    from compressor.errors import InputError
    from compressor.io.data import load_data

    epoch_batches = math.ceil(len(load_data(cfg.data, "train")) / BATCH_SIZE)
    ModelSpec(cfg.model, cfg.arch, dict(cfg.arch_kwargs)).load()
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
    return {"id": pid, **{k: mapping["meta"][k] for k in ("method", "level")}, "status": "pending",
            "recipe": str(points_dir / f"{pid}.yaml")}


def _write_recipe(path: Path, mapping: dict[str, Any]) -> None:
    import yaml

    from compressor.io.atomic import atomic_write_text

    head = "# one sweep point: `compress run THIS_FILE` reproduces it (compressor sweep)\n"
    atomic_write_text(path, head + yaml.safe_dump(mapping, sort_keys=False))


def rows_from(records: list[dict[str, Any]], profiles: list[str]) -> list[dict[str, Any]]:
    """Flat table rows: effective sparsity against the baseline's parameters, accuracy drop."""
    base = next((r["metrics"] for r in records if r["id"] == "baseline" and r["status"] == "ok"), {})
    rows = []
    for rec in records:
        m = rec.get("metrics") or {}
        row = {k: rec.get(k) for k in ("id", "method", "level", "status", "seconds", "recipe", "error")}
        row.update({k: m.get(k) for k in ("params", "nonzero_params", "macs", "size_bytes", "compressed_bytes",
                                          "onnx_size_bytes", "accuracy", "robust_accuracy")})
        row.update({f"latency_ms_p50_{p}": m.get(f"latency_ms_p50_{p}") for p in profiles})
        row["zero_fraction"] = m.get("sparsity")
        if m.get("nonzero_params") is not None and base.get("params"):
            row["sparsity"] = 1 - m["nonzero_params"] / base["params"]
        if m.get("accuracy") is not None and base.get("accuracy") is not None:
            row["accuracy_drop"] = base["accuracy"] - m["accuracy"]
        rows.append(row)
    return rows


def _write_outputs(cfg: SweepConfig, out: Path, rows: list[dict[str, Any]], computed: int, skipped: int,
                   machine: dict[str, Any], start: float) -> SweepResult:
    from compressor.sweep import report

    profiles = list(cfg.profiles) if cfg.bench else []
    fronts = report.frontiers(rows, profiles)
    files = {"csv": str(out / "points.csv"), "json": str(out / "sweep.json"),
             "plot_sparsity": str(out / "accuracy_vs_sparsity.png")}
    report.write_csv(rows, Path(files["csv"]), profiles)
    report.plot_sparsity(rows, fronts["accuracy_vs_sparsity"], Path(files["plot_sparsity"]))
    if profiles:
        files["plot_latency"] = str(out / "accuracy_vs_latency.png")
        report.plot_latency(rows, fronts, profiles, Path(files["plot_latency"]))
    wall = round(time.perf_counter() - start, 2)
    doc = {"config": asdict(cfg), "machine": machine, "wall_s": wall, "computed": computed,
           "skipped": skipped, "frontiers": fronts, "points": rows}
    report.write_json(doc, Path(files["json"]))
    return SweepResult(str(out), rows, fronts, computed, skipped, files, wall)

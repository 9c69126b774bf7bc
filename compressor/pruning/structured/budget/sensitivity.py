"""Per-group sensitivity: the accuracy after pruning one group alone, and the latency that saves.

Li et al. (ICLR 2017) scan each layer's sensitivity before choosing how much to prune where. For
every prunable group and every ratio, a copy of the model loses that fraction of the group's
channels (the method's lowest-scored first) and nothing else; its accuracy on the data's
validation split and the latency it saves (each narrowed layer measured as a one-layer ONNX graph
under the profile, at its exact widths, from the cost-model cache) are recorded. The file it
writes (``sensitivity.json``, with ``sensitivity.csv`` and a PNG beside it) is keyed by the
model's layer shapes; ``prune --sensitivity FILE`` then prices each group's cut by its measured
accuracy drop instead of by its scores, and refuses a file made from another model.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.errors import InputError, UsageError
from compressor.pruning.structured.budget.allocate import Group
from compressor.pruning.structured.budget.pricing import FORMAT, TIE_BREAK, load, priced  # noqa: F401 - the file format

FILES = ("sensitivity.json", "sensitivity.csv", "sensitivity.png")


@dataclass(frozen=True)
class SensitivityConfig:
    """How the scan runs.

    Attributes:
        data: data spec; accuracy is measured on its ``val`` split.
        ratios: fractions of each group's channels removed, one accuracy per ratio.
        method: the scores that order channels within a group (l1, l2 or random).
        profile: the bench profile the saved latency is measured under.
        round_to: widths rounded to multiples of this (as ``prune --round-to``).
        eval_limit: at most this many validation samples per accuracy.
        cost_cache: the cost model's cache folder (None: the default).
        seed: for random scores and the samples taken.
    """

    data: str
    ratios: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    method: str = "l1"
    profile: str = "mobile"
    round_to: int | None = None
    eval_limit: int | None = 2000
    cost_cache: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        from compressor.bench.profiles import get_profile

        if not self.ratios or any(not 0 < r < 1 for r in self.ratios):
            raise UsageError(
                f"--ratios must be fractions in (0, 1), got {list(self.ratios)}", "e.g. --ratios 0.2,0.4"
            )
        if self.method not in ("l1", "l2", "random"):
            raise UsageError(f"sensitivity orders channels by l1, l2 or random scores, not '{self.method}'")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise UsageError(f"--eval-limit must be >= 1, got {self.eval_limit}")
        if self.round_to is not None and self.round_to < 1:
            raise UsageError(f"--round-to must be >= 1, got {self.round_to}")
        get_profile(self.profile)


@dataclass(frozen=True)
class SensitivityResult:
    """The scan: one row per group and ratio, and the files written."""

    output: str
    document: dict[str, Any]
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The sensitivity document plus where it was written."""
        return {"output": self.output, "files": self.files, **self.document}


def width_at(width: int, ratio: float, round_to: int | None) -> int:
    """The width left when ``ratio`` of ``width`` channels go (a multiple of ``round_to``, >= 1)."""
    kept = width * (1 - ratio)
    if round_to:
        return max(round_to, int(round(kept / round_to)) * round_to) if width > round_to else width
    return max(1, int(round(kept)))


def scan(handle, cfg: SensitivityConfig, log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Prune each group alone at each ratio; accuracy and saved latency (the document to write)."""
    from compressor.bench.costmodel import structure_hash
    from compressor.io.data import load_data
    from compressor.progress import progress
    from compressor.pruning.structured import graph, norm, preflight
    from compressor.pruning.structured.budget.allocate import PlanCost
    from compressor.pruning.structured.budget.config import BudgetConfig
    from compressor.pruning.structured.budget.latency import build_latency_model
    from compressor.pruning.structured.budget.structure import find_structure
    from compressor.train.loop import check_classes, evaluate

    model, x = handle.module, handle.example_input()
    graph.check_supported(model)
    ignored = list(graph.ignored_layers(model, x, (), False))
    ignored += list(preflight.run(model, x, ignored, round_to=cfg.round_to))
    importance = lambda: norm.importance(cfg.method, cfg.seed)  # noqa: E731
    structure = find_structure(model, x, importance(), ignored, 1.0, 1)
    val = load_data(cfg.data, "val")
    check_classes(model, val)
    budget = BudgetConfig(target_speedup=2.0, profile=cfg.profile, cost_cache=cfg.cost_cache)
    model_cost = build_latency_model(structure, budget, cfg.round_to or budget.unit, log)
    cost = PlanCost(list(structure.layers.values()), structure.groups, model_cost.layer_ms)
    dense = {g.name: g.width for g in structure.groups}
    base = evaluate(model, val, limit=cfg.eval_limit, progress_bar=False)["accuracy"]
    groups = []
    with progress(len(structure.groups) * len(cfg.ratios), "sensitivity") as advance:
        for g in structure.groups:
            groups.append(
                _group_rows(g, cfg, handle, importance, ignored, cost, model_cost, dense, val, base, advance)
            )
    return {
        "format": FORMAT,
        "model": handle.source or handle.ref,
        "structure": structure_hash(structure.shapes),
        "method": cfg.method,
        "profile": cfg.profile,
        "ratios": list(cfg.ratios),
        "round_to": cfg.round_to,
        "eval_samples": min(cfg.eval_limit or len(val), len(val)),
        "baseline_accuracy": base,
        "dense_layers_ms": cost.total(dense),
        "groups": groups,
    }


def _group_rows(
    g: Group,
    cfg: SensitivityConfig,
    handle,
    importance,
    ignored,
    cost,
    model_cost,
    dense,
    val,
    base: float,
    advance,
) -> dict[str, Any]:
    from compressor.pruning.structured.budget.structure import apply_plan
    from compressor.train.loop import evaluate

    touched = [lay for lay in cost.layers if lay.out_group == g.name or g.name in lay.in_groups]
    rows = []
    for ratio in cfg.ratios:
        width = width_at(g.width, ratio, cfg.round_to)
        plan = {**dense, g.name: width}
        model_cost.ensure({lay.name: cost.widths(lay, plan) for lay in touched})
        saved = cost.touched(g.name, dense) - cost.touched(g.name, plan)
        pruned = copy.deepcopy(handle.module)
        apply_plan(pruned, handle.example_input(), importance, {g.name: width}, ignored)
        acc = evaluate(pruned, val, limit=cfg.eval_limit, progress_bar=False)["accuracy"]
        rows.append(
            {
                "ratio": ratio,
                "width": width,
                "accuracy": acc,
                "accuracy_drop": base - acc,
                "latency_saved_ms": saved,
            }
        )
        advance(1, group=g.name)
    return {"group": g.name, "width": g.width, "layers": [lay.name for lay in touched], "points": rows}


def write(document: dict[str, Any], folder: str) -> list[str]:
    """``sensitivity.json``, ``.csv`` and ``.png`` in ``folder`` (created when missing), atomically."""
    from compressor.io.atomic import atomic_write, atomic_write_text

    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InputError(f"output '{out}' is a file", "give a folder: -o DIR")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in FILES]
    atomic_write_text(paths[0], json.dumps(document, indent=1))
    atomic_write_text(paths[1], _csv(document))
    atomic_write(paths[2], lambda tmp: _plot(document, tmp))
    return [str(p) for p in paths]


def _csv(document: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(
        ["group", "width", "ratio", "kept_width", "accuracy", "accuracy_drop", "latency_saved_ms"]
    )
    for g in document["groups"]:
        for p in g["points"]:
            writer.writerow(
                [
                    g["group"],
                    g["width"],
                    p["ratio"],
                    p["width"],
                    p["accuracy"],
                    p["accuracy_drop"],
                    p["latency_saved_ms"],
                ]
            )
    return buf.getvalue()


def _plot(document: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for g in document["groups"]:
        ax.plot(
            [0] + [p["ratio"] for p in g["points"]],
            [document["baseline_accuracy"]] + [p["accuracy"] for p in g["points"]],
            marker="o",
            label=g["group"],
        )
    ax.set_xlabel("fraction of the group's channels removed (that group alone)")
    ax.set_ylabel("validation accuracy")
    if len(document["groups"]) <= 20:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)

"""Cost: building the measured per-layer latency cost model, fresh and from the cache.

For each model and profile: the layer structure is read (torch-pruning's dependency graph), the
cost model is built in an empty cache folder (every grid point measured on ONNX Runtime), then built
again from that folder (no point measured). Reports the points, the seconds of each build and the
machine's load average, as a JSON line per case and a Markdown table with the command.

    python -m benchmarks.costmodel_build                     # resnet50, mobile
    python -m benchmarks.costmodel_build --models resnet18 mobilenet_v2 --profiles mobile edge

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run costmodel_build   # -> benchmarks/results/costmodel_build.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.breadth_rows import load

RESULTS = Path(__file__).parent / "results"


def case(model: str, profile: str, round_to: int, folder: Path) -> dict:
    """Fresh and cached builds of one model's cost model under one profile."""
    from compressor.io.artifact import load_model
    from compressor.pruning.structured import graph, norm
    from compressor.pruning.structured.budget.config import BudgetConfig
    from compressor.pruning.structured.budget.land import build_latency_model
    from compressor.pruning.structured.budget.structure import find_structure

    handle = load_model(f"torchvision:{model}")
    x = handle.example_input()
    budget = BudgetConfig(target_speedup=2.0, profile=profile, cost_cache=str(folder))
    start = time.perf_counter()
    ignored = list(graph.ignored_layers(handle.module, x, [], False))
    structure = find_structure(handle.module, x, norm.importance("l1"), ignored, 0.9, round_to)
    structure_s = time.perf_counter() - start
    row = {
        "model": model,
        "profile": profile,
        "round_to": round_to,
        "structure_s": structure_s,
        "layers": len(structure.shapes),
        "groups": len(structure.groups),
        "load_start": load(),
    }
    for label in ("fresh", "cached"):
        start = time.perf_counter()
        model_cost = build_latency_model(structure, budget, round_to, lambda line: None)
        row[f"{label}_s"] = time.perf_counter() - start
        row[f"{label}_points_measured"] = model_cost.grid_measured
    row.update(points=len(model_cost.points), load_end=load())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["resnet50"])
    parser.add_argument("--profiles", nargs="*", default=["mobile"])
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--out", default=str(RESULTS / "costmodel_build"))
    args = parser.parse_args()
    command = " ".join(["python -m benchmarks.costmodel_build", *sys.argv[1:]])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for profile in args.profiles:
                rows.append(case(model, profile, args.round_to, Path(tmp) / f"{model}_{profile}"))
                print(json.dumps(rows[-1]), flush=True)
    lines = [
        "# Cost-model build time\n",
        f"Command: `{command}`\n",
        f"{os.cpu_count()} cores. Fresh: every grid point measured into an empty cache folder; "
        "cached: the same build again from that folder. Structure: reading the dependency graph "
        "(paid by every run).\n",
        "| model | profile | layers | points | fresh s | cached s | structure s | load at start | load at end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['profile']} | {r['layers']} | {r['points']} | {r['fresh_s']:.1f} | "
        f"{r['cached_s']:.2f} | {r['structure_s']:.1f} | {r['load_start']} | {r['load_end']} |"
        for r in rows
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Markdown tables from a ``compress sweep`` folder (what results/pruning_studies_sweep.md quotes).

    python -m benchmarks.sweep_report SWEEP_DIR            # tables on stdout
    python -m benchmarks.sweep_report SWEEP_DIR --copy DEST  # + copy csv/json/png/yaml

Reads SWEEP_DIR/sweep.json and SWEEP_DIR/points/*.json (per-step seconds). Prints: accuracy per
method and level, the accuracy-vs-sparsity frontier, robustness per level, time per method and step.

Command (from the repository root; further arguments pass through)::

    python -m benchmarks run sweep_report                                 # -> benchmarks/results/sweep_simple_cnn/points.csv
    python -m benchmarks run sweep_report --config simple_cnn_level0965   # -> benchmarks/results/sweep_simple_cnn_965/points.csv
    python -m benchmarks run sweep_report --config vgg_bn_slim            # -> benchmarks/results/sweep_vgg_bn_slim/points.csv
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import defaultdict
from pathlib import Path


def _f(v, fmt="{:.4f}") -> str:
    return "" if v is None else fmt.format(v)


def accuracy_table(points: list[dict]) -> str:
    """Method rows x level columns: accuracy (sparsity)."""
    levels = sorted({p["level"] for p in points if p["method"] != "baseline"})
    lines = [
        "| method | " + " | ".join(f"level {lv:g}" for lv in levels) + " |",
        "|---|" + "---:|" * len(levels),
    ]
    for method in dict.fromkeys(p["method"] for p in points if p["method"] != "baseline"):
        cells = []
        for lv in levels:
            p = next((q for q in points if q["method"] == method and q["level"] == lv), None)
            if p is None or p["status"] != "ok":
                cells.append(p["status"] if p else "")
            else:
                cells.append(f"{p['accuracy']:.4f} ({p['sparsity']:.1%})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def frontier_table(points: list[dict], ids: list[str]) -> str:
    """The accuracy-vs-sparsity frontier, sparsest last."""
    by = {p["id"]: p for p in points}
    lines = [
        "| point | sparsity | accuracy | drop | robust (FGSM) | compressed bytes | params | MACs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i in ids:
        p = by[i]
        lines.append(
            f"| {i} | {p['sparsity']:.1%} | {p['accuracy']:.4f} | {_f(p['accuracy_drop'], '{:+.4f}')} | "
            f"{_f(p.get('robust_accuracy'))} | {p['compressed_bytes']:,} | {p['params']:,} | {p['macs']:,} |"
        )
    return "\n".join(lines)


def latency_table(points: list[dict], profiles: list[str]) -> str:
    """Median latency per point and profile next to MACs (theoretical)."""
    head = " | ".join(f"p50 ms {p}" for p in profiles)
    lines = [
        f"| point | accuracy | params | MACs (theoretical) | {head} |",
        "|---|---:|---:|---:|" + "---:|" * len(profiles),
    ]
    for p in points:
        if p["status"] == "ok":
            lat = " | ".join(_f(p.get(f"latency_ms_p50_{x}"), "{:.3f}") for x in profiles)
            lines.append(f"| {p['id']} | {p['accuracy']:.4f} | {p['params']:,} | {p['macs']:,} | {lat} |")
    return "\n".join(lines)


def timing_table(folder: Path, points: list[dict]) -> str:
    """Seconds per point, by method, and the share of each step kind."""
    per_method: dict[str, list[float]] = defaultdict(list)
    per_step: dict[str, float] = defaultdict(float)
    for p in points:
        rec = json.loads((folder / "points" / f"{p['id']}.json").read_text())
        per_method[p["method"]].append(rec.get("seconds", 0.0))
        for key, sec in (rec.get("step_seconds") or {}).items():
            per_step[key.split("_", 1)[1]] += sec
    lines = ["| method | points | seconds (sum) | seconds per point |", "|---|---:|---:|---:|"]
    for m, secs in per_method.items():
        lines.append(f"| {m} | {len(secs)} | {sum(secs):.0f} | {sum(secs) / len(secs):.0f} |")
    lines += ["", "| step kind | seconds (sum over points) |", "|---|---:|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in sorted(per_step.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir")
    ap.add_argument("--copy", help="copy points.csv, sweep.json, the plots and point recipes here")
    args = ap.parse_args()
    folder = Path(args.sweep_dir)
    doc = json.loads((folder / "sweep.json").read_text())
    points, profiles = doc["points"], list(doc["config"]["profiles"]) if doc["config"]["bench"] else []
    print(
        f"wall {doc['wall_s']:.0f} s, computed {doc['computed']}, resumed {doc['skipped']}, "
        f"machine {doc['machine']}\n"
    )
    print(accuracy_table(points), "\n")
    print(frontier_table(points, doc["frontiers"]["accuracy_vs_sparsity"]), "\n")
    print(latency_table(points, profiles), "\n")
    print(timing_table(folder, points))
    if args.copy:
        dest = Path(args.copy)
        (dest / "points").mkdir(parents=True, exist_ok=True)
        for name in ("points.csv", "sweep.json", "accuracy_vs_sparsity.png", "accuracy_vs_latency.png"):
            if (folder / name).exists():
                shutil.copy2(folder / name, dest / name)
        for f in (folder / "points").glob("*.yaml"):
            shutil.copy2(f, dest / "points" / f.name)
        for f in (folder / "points").glob("*.json"):
            shutil.copy2(f, dest / "points" / f.name)


if __name__ == "__main__":
    main()

"""Landing: how often a latency budget lands within [0.95 T, 1.15 T] of the target speed-up.

Torchvision models at random init (structure only), pruned with l1 to target speed-ups on the
mobile and edge profiles through the library (``prune`` with a ``BudgetConfig``), each case in a
fresh process-wide run of the landing loop: the cost model (cached per model, profile and machine;
``--fresh-cache`` measures it again and reports its build time), the allocation, the pruned model
measured interleaved with the dense one, the retries. One JSON line per case, then a Markdown table
with the command, the machine's load average at the start and end, and the share of cases landed.

    python -m benchmarks.budget_landing            # 6 models x 1.5, 2 x mobile, edge
    python -m benchmarks.budget_landing --models resnet18 --targets 1.5 --profiles mobile \\
        --runs 20 --min-time 0.3 --out OUT           # the --quick smoke run

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run budget_landing   # -> benchmarks/results/budget_landing.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.breadth_rows import load

RESULTS = Path(__file__).parent / "results"
MODELS = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "convnext_tiny", "regnet_y_800mf"]


def case(model: str, target: float, profile: str, args: argparse.Namespace, out: Path) -> dict:
    """Prune ``model`` to ``target`` on ``profile``; the figures of the landing."""
    from compressor.api import ModelSpec, prune
    from compressor.pruning.base import PruneConfig
    from compressor.pruning.structured.budget.config import BudgetConfig

    budget = BudgetConfig(
        target_speedup=target,
        profile=profile,
        runs=args.runs,
        min_time_s=args.min_time,
        cost_cache=args.cost_cache,
    )
    start, before = time.perf_counter(), load()
    r = prune(
        ModelSpec(f"torchvision:{model}"),
        PruneConfig("l1", budget=budget, round_to=args.round_to),
        str(out / f"{model}_{profile}_{target}.pt"),
        measure_input=False,
    )
    f = r.figures
    return {
        "model": model,
        "profile": profile,
        "target": target,
        "landed": f["landed"],
        "speedup": f["speedup"],
        "dense_ms": f["dense_latency_ms_p50"],
        "pruned_ms": f["latency_ms_p50"],
        "attempts": f["attempts"],
        "mac_reduction_theoretical": r.before["macs"] / r.after["macs"],
        "costmodel_grid_measured": f["costmodel_grid_measured"],
        "costmodel_seconds": f["costmodel_seconds"],
        "seconds": time.perf_counter() - start,
        "load_start": before,
        "load_end": load(),
        "round_to": args.round_to,
    }


def table(rows: list[dict], command: str, start: str, end: str) -> str:
    landed = sum(r["landed"] for r in rows)
    lines = [
        "# Landing on a measured speed-up\n",
        f"Command: `{command}`\n",
        f"l1, torchvision models at random init, ONNX Runtime CPU under each profile; dense and "
        f"pruned timed interleaved, speed-up = median of pair-by-pair ratios. Load average "
        f"(1/5/15 min) {start} at the start, {end} at the end. Landed (within [0.95 T, 1.15 T]): "
        f"{landed} of {len(rows)}. MAC reduction is theoretical.\n",
        "| model | profile | target | landed | measured speed-up | dense ms | pruned ms | attempts | "
        "MAC reduction | cost-model points measured | cost-model s | case s | load at start |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['profile']} | {r['target']}x | {'yes' if r['landed'] else 'no'} | "
            f"{r['speedup']:.2f}x | {r['dense_ms']:.2f} | {r['pruned_ms']:.2f} | {r['attempts']} | "
            f"{r['mac_reduction_theoretical']:.2f}x | {r['costmodel_grid_measured']} | "
            f"{r['costmodel_seconds']:.1f} | {r['seconds']:.0f} | {r['load_start']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--targets", nargs="*", type=float, default=[1.5, 2.0])
    parser.add_argument("--profiles", nargs="*", default=["mobile", "edge"])
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="timed runs per whole-model measurement (default: the profile's)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="minimum seconds per whole-model measurement (default: the profile's)",
    )
    parser.add_argument("--cost-cache", default=None, help="cost-model cache folder (default: the user's)")
    parser.add_argument("--fresh-cache", action="store_true", help="a new empty cache folder for this run")
    parser.add_argument("--out", default=str(RESULTS / "budget_landing"))
    args = parser.parse_args()
    command = " ".join(["python -m benchmarks.budget_landing", *sys.argv[1:]])
    start, rows = load(), []
    with tempfile.TemporaryDirectory() as tmp:
        if args.fresh_cache:
            args.cost_cache = str(Path(tmp) / "costmodel")
        for model in args.models:
            for profile in args.profiles:
                for target in args.targets:
                    rows.append(case(model, target, profile, args, Path(tmp)))
                    print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    Path(args.out + ".md").write_text(table(rows, command, start, load()))


if __name__ == "__main__":
    main()

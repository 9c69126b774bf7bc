"""Overhead: a whole ``compress prune torchvision:resnet50 --method l1 --ratio 0.5`` process against
a bare script that imports torch, builds the model, prunes it with torch-pruning and saves it.

Both are timed as whole processes, interleaved (A B A B ...), median of ``--runs`` (default 5).
Target: ours <= 1.2x bare.

    python -m benchmarks.structured_overhead [--runs 5]

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run structured_overhead   # -> benchmarks/results/structured_overhead.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = """
import torch, torchvision, torch_pruning as tp
model = torchvision.models.resnet50(weights=None).eval()
example = torch.randn(1, 3, 224, 224)
pruner = tp.pruner.BasePruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=1),
                              pruning_ratio=0.5, global_pruning=True, ignored_layers=[model.fc])
pruner.step()
torch.save(model, {out!r})
"""


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    root = Path(__file__).resolve().parents[1]
    parser.add_argument(
        "--out", type=Path, default=root / "benchmarks" / "results" / "structured_overhead.md"
    )
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE.format(out=str(Path(tmp) / "bare.pt")))
        ours_cmd = [
            sys.executable,
            "-W",
            "ignore",
            "-m",
            "compressor",
            "prune",
            "torchvision:resnet50",
            "--method",
            "l1",
            "--ratio",
            "0.5",
            "-o",
            str(Path(tmp) / "ours.pt"),
        ]
        bare_cmd = [sys.executable, "-W", "ignore", str(bare)]
        ours, plain = [], []
        for _ in range(args.runs):
            ours.append(timed(ours_cmd, env))
            plain.append(timed(bare_cmd, env))
    row = {
        "ours_s_median": statistics.median(ours),
        "bare_s_median": statistics.median(plain),
        "ours_s": ours,
        "bare_s": plain,
    }
    row["ratio"] = row["ours_s_median"] / row["bare_s_median"]
    print(json.dumps(row))
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Overhead of `compress prune` over bare torch-pruning (ResNet-50, l1, ratio 0.5)\n\n"
        f"Command: `python -m benchmarks.structured_overhead --runs {args.runs}` "
        "(whole processes, interleaved, medians; shared 2-core machine).\n\n"
        f"| | median s | runs (s) |\n|---|---|---|\n"
        f"| compress prune | {row['ours_s_median']:.2f} | {', '.join(f'{v:.1f}' for v in ours)} |\n"
        f"| bare torch + torch-pruning script | {row['bare_s_median']:.2f} | "
        f"{', '.join(f'{v:.1f}' for v in plain)} |\n| ratio | {row['ratio']:.2f}x | target <= 1.2x |\n"
    )


if __name__ == "__main__":
    main()

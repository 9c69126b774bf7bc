"""Wall time of Wanda calibration + pruning on torchvision ResNet-18 (224x224, 128 samples).

Target: <= 10 s on the 2-core machine. Times ``wanda.run`` (drawing the 128 calibration samples,
one forward pass with the scoring pre-hooks, masks installed) on a fresh copy of the model each
repeat, interleaved with a plain forward pass of the same batch (A B A B ...) so machine noise
shows in both; medians reported, and the median of the per-repeat ratio of the two, which drifts
less with the machine's speed than either time. Conditions (versions, threads, load) are recorded.

    python -m benchmarks.wanda_speed [--repeats 5]

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run wanda_speed   # -> benchmarks/results/wanda_speed.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "results" / "wanda_speed.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from benchmarks.breadth_rows import conditions
    from compressor.io.artifact import load_model
    from compressor.io.data import load_data
    from compressor.pruning.base import PruneConfig, PruneContext
    from compressor.pruning.unstructured import wanda

    base = load_model("torchvision:resnet18")
    train = load_data("random:3,224,224:1000", "train")
    cfg = PruneConfig(method="wanda", sparsity=0.5, data="random:3,224,224:1000", calib_samples=args.samples)
    x, _ = train.take(args.samples, 0)
    wanda_s, forward_s, sparsity = [], [], None
    load_start = round(os.getloadavg()[0], 1)
    for _ in range(args.repeats):
        handle = copy.deepcopy(base)
        start = time.perf_counter()
        report = wanda.run(handle, cfg, PruneContext(train=train))
        wanda_s.append(time.perf_counter() - start)
        sparsity = report.figures["layer_sparsity"]
        start = time.perf_counter()
        with torch.no_grad():
            base.module(x)
        forward_s.append(time.perf_counter() - start)
    result = {
        "model": "torchvision:resnet18",
        "input": f"{args.samples}x3x224x224",
        "calib_samples": args.samples,
        "repeats": args.repeats,
        "wanda_s_median": statistics.median(wanda_s),
        "wanda_s": wanda_s,
        "dense_forward_s_median": statistics.median(forward_s),
        "forward_s": forward_s,
        "layer_sparsity": sparsity,
        "target_s": 10.0,
        "meets_target": statistics.median(wanda_s) <= 10.0,
        "wanda_over_forward_median": statistics.median(w / f for w, f in zip(wanda_s, forward_s)),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_1min_start": load_start,
        "conditions": conditions("torchvision"),  # versions, threads, CPUs, load at the end
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

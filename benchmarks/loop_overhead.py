"""Overhead of ``compressor.train.fit`` against a plain hand-written PyTorch loop.

Both train the same model (same init) on the same batches (same DataLoader, same seed) with Adam
and cross-entropy for ``--steps`` steps. Runs are interleaved (A B, B A, A B, ...) so machine noise hits
both alike; the medians (of the times and of the per-pair ratios) are compared. The loop's extra work per step: gradient masking hooks (no
masks here), a learning-rate schedule step, loss/accuracy bookkeeping, the progress callback, and
per run: class check, best-epoch snapshots.

    python -m benchmarks.loop_overhead --model resnet_small --steps 10 --pairs 10 \
        --out benchmarks/results/loop_overhead.json

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run loop_overhead                # -> benchmarks/results/loop_overhead.md
    python -m benchmarks run loop_overhead --config mlp   # -> benchmarks/results/loop_overhead_mlp.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from compressor.io.atomic import atomic_write_text
from compressor.io.data import load_data
from compressor.io.refs import build
from compressor.train import TrainConfig, fit


def plain_loop(model: nn.Module, loader, steps: int, lr: float, wd: float) -> None:
    """The hand-written reference: forward, loss, zero_grad, backward, step."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    loss_fn = nn.CrossEntropyLoss()
    for x, y in itertools.islice(loader, steps):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_small")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/loop_overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data(args.data, "train")
    cfg = TrainConfig(
        epochs=1, lr=1e-4, weight_decay=1e-4, batch_size=args.batch_size, max_batches=args.steps, device="cpu"
    )
    torch.manual_seed(0)
    init = build(f"sample:{args.model}").state_dict()

    def fresh() -> nn.Module:
        model = build(f"sample:{args.model}")
        model.load_state_dict(init)
        return model

    def run_plain() -> None:
        loader = data.loader(batch_size=args.batch_size, shuffle=True, seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        plain_loop(fresh(), loader, args.steps, cfg.lr, cfg.weight_decay)

    def run_fit() -> None:
        fit(fresh(), data, cfg)

    timed(run_plain), timed(run_fit)  # warm-up: imports, allocator, first-call costs
    plain, ours = [], []
    for i in range(args.pairs):  # A B, then B A: a drifting machine load cancels within two pairs
        if i % 2 == 0:
            plain.append(timed(run_plain))
            ours.append(timed(run_fit))
        else:
            ours.append(timed(run_fit))
            plain.append(timed(run_plain))
    report = summarise(args, plain, ours)
    print(json.dumps(report, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")


def summarise(args, plain: list[float], ours: list[float]) -> dict:
    """Medians, per-pair ratios and the verdict against the 10% target."""
    ratios = [b / a for a, b in zip(plain, ours)]
    med_plain, med_ours = statistics.median(plain), statistics.median(ours)
    return {
        "model": args.model,
        "data": args.data,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "pairs": args.pairs,
        "plain_s_median": round(med_plain, 4),
        "fit_s_median": round(med_ours, 4),
        "overhead_pct_of_medians": round(100 * (med_ours / med_plain - 1), 2),
        "overhead_pct_median_of_pair_ratios": round(100 * (statistics.median(ratios) - 1), 2),
        "plain_s": [round(v, 4) for v in plain],
        "fit_s": [round(v, 4) for v in ours],
        "within_10pct": statistics.median(ratios) <= 1.10,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "note": "2-core machine shared with other benchmark and training jobs: re-run on a quiet machine",
    }


if __name__ == "__main__":
    main()

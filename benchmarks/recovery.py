"""Recovery after pruning: fine-tuning alone against distillation from the unpruned model.

The trained resnet_small is pruned (structurally with ``compress prune --method l1 --ratio 0.5``,
or, with ``--method masked``, by a global 50% magnitude mask made here), then recovered with the
same training budget every time: cross-entropy fine-tuning once, and Hinton KD from the unpruned
model for every (temperature, alpha) pair asked for. Same epochs, batches, optimizer, schedule,
seed and data for every run. Target: KD >= FT and KD >= 99% of the baseline test accuracy.

Each run's figures are cached as JSON in ``--workdir`` (keyed by its settings), so a grid can be
grown run by run; the report lists every cached run with the same budget, the losing ones too.

    python -m benchmarks.recovery --method l1 --ratio 0.5 --epochs 3 --max-batches 0 \
        --temperature 4 2 --alpha 0.9 0.5 --out benchmarks/results/recovery_resnet_small_l1.md

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run recovery                                                # -> benchmarks/results/recovery_resnet_small_l1.md
    python -m benchmarks run recovery --config resnet_small_l1_seed1                 # -> benchmarks/results/recovery_resnet_small_l1_seed1.md
    python -m benchmarks run recovery --config resnet_small_l1_seed2                 # -> benchmarks/results/recovery_resnet_small_l1_seed2.md
    python -m benchmarks run recovery --config resnet_small_l1_alpha0.1_0.25_seed0   # -> benchmarks/results/recovery_resnet_small_l1_alpha0.1_0.25_seed0.md
    python -m benchmarks run recovery --config resnet_small_l1_alpha0.1_0.25_seed1   # -> benchmarks/results/recovery_resnet_small_l1_alpha0.1_0.25_seed1.md
    python -m benchmarks run recovery --config resnet_small_l1_alpha0.1_0.25_seed2   # -> benchmarks/results/recovery_resnet_small_l1_alpha0.1_0.25_seed2.md
    python -m benchmarks run recovery --config simple_cnn_l1                         # -> benchmarks/results/recovery_simple_cnn_l1.md
    python -m benchmarks run recovery --config simple_cnn_l1_alpha0.5                # -> benchmarks/results/recovery_simple_cnn_l1_alpha0.5.md
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from compressor.api import DistillConfig, ModelSpec, distill, finetune
from compressor.io.atomic import atomic_write_text
from compressor.train import TrainConfig

BASELINE = "sample_models/resnet_small.pt"


def prune_l1(baseline: str, ratio: float, out: Path) -> str:
    """``compress prune BASELINE --method l1 --ratio R -o OUT`` through the API."""
    from compressor.api import prune
    from compressor.pruning.base import PruneConfig

    prune(ModelSpec(baseline), PruneConfig(method="l1", ratio=ratio), str(out))
    return str(out)


def prune_masked(baseline: str, sparsity: float, out: Path) -> str:
    """Global magnitude mask over conv and linear weights (the fallback without l1)."""
    from compressor.io.artifact import load_model, save_artifact

    handle = load_model(baseline)
    weights = {
        f"{name}.weight": m.weight
        for name, m in handle.module.named_modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    }
    scores = torch.cat([w.detach().abs().flatten() for w in weights.values()])
    threshold = scores.kthvalue(max(1, int(sparsity * scores.numel()))).values
    handle.masks = {name: w.detach().abs() > threshold for name, w in weights.items()}
    with torch.no_grad():
        for name, w in weights.items():
            w.mul_(handle.masks[name])
    handle.record("prune", "magnitude-global (benchmarks.recovery)", {"sparsity": sparsity})
    save_artifact(handle, out)
    return str(out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--method", choices=("l1", "masked"), default="l1")
    parser.add_argument("--ratio", type=float, default=0.5, help="l1 channel ratio / masked sparsity")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-batches", type=int, default=0, help="steps per epoch (0: full epochs)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, nargs="+", default=[4.0])
    parser.add_argument(
        "--alpha",
        type=float,
        nargs="*",
        default=[0.9],
        help="one KD run per (temperature, alpha) pair; none: fine-tuning only",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "recovery"))
    parser.add_argument("--out", default="benchmarks/results/recovery_resnet_small_l1.md")
    return parser.parse_args()


def budget(args: argparse.Namespace) -> dict:
    """The settings every run of one report shares (the cache key, with the run's own)."""
    return {
        "baseline": args.baseline,
        "method": args.method,
        "ratio": args.ratio,
        "data": args.data,
        "epochs": args.epochs,
        "max_batches": args.max_batches,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "schedule": args.schedule,
        "seed": args.seed,
    }


def run_cached(work: Path, shared: dict, run: dict, train_fn) -> dict:
    """The figures of one run, from the cache in ``work`` or by training now."""
    key = "_".join(f"{v}" for v in {**shared, **run}.values()).replace("/", "-")
    path = work / f"run_{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    start = time.time()
    result = train_fn(str(work / f"{key}.pt"))
    figures = {
        **shared,
        **run,
        "accuracy": result.accuracy_after,
        "accuracy_before": result.accuracy_before,
        "teacher_accuracy": result.teacher_accuracy,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "train_seconds": result.train_seconds,
        "wall_seconds": round(time.time() - start, 1),
        "load_average": round(os.getloadavg()[0], 2),
        "epochs_detail": result.epochs,
    }
    atomic_write_text(path, json.dumps(figures, indent=2) + "\n")
    return figures


def cached_runs(work: Path, shared: dict) -> list[dict]:
    """Every KD run cached in ``work`` with this budget (earlier grids included), by T then alpha."""
    runs = [json.loads(path.read_text()) for path in sorted(work.glob("run_*.json"))]
    runs = [r for r in runs if r["kind"] == "kd" and all(r.get(k) == v for k, v in shared.items())]
    return sorted(runs, key=lambda r: (-r["temperature"], -r["alpha"]))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    shared = budget(args)
    pruned = work / f"pruned_{args.method}_{args.ratio}.pt"
    if not pruned.exists():
        (prune_l1 if args.method == "l1" else prune_masked)(args.baseline, args.ratio, pruned)
    train = TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        optimizer=args.optimizer,
        schedule=args.schedule,
        max_batches=args.max_batches or None,
        seed=args.seed,
        device="cpu",
    )
    base = DistillConfig(ModelSpec(str(pruned)), args.data, train=train)
    runs = [run_cached(work, shared, {"kind": "ft"}, lambda out: finetune(base, out))]
    for t in args.temperature:
        for alpha in args.alpha:
            cfg = DistillConfig(ModelSpec(str(pruned)), args.data, ModelSpec(args.baseline), t, alpha, train)
            runs.append(
                run_cached(
                    work,
                    shared,
                    {"kind": "kd", "temperature": t, "alpha": alpha},
                    lambda out, cfg=cfg: distill(cfg, out),
                )
            )
    runs += [r for r in cached_runs(work, shared) if r not in runs]
    report = summarise(args, str(pruned), runs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out, markdown(report, args))
    print(markdown(report, args))


def summarise(args, pruned: str, runs: list[dict]) -> dict:
    """Every run against the baseline (the teacher) and against fine-tuning."""
    from compressor.api.evaluate import EvalConfig, evaluate
    from compressor.io.artifact import load_model

    baseline = evaluate(EvalConfig(ModelSpec(args.baseline), args.data)).accuracy
    ft = runs[0]["accuracy"]
    for run in runs:
        run["of_baseline"] = run["accuracy"] / baseline
        run["ge_ft"], run["ge_99pct_baseline"] = run["accuracy"] >= ft, run["accuracy"] >= 0.99 * baseline
    params = [sum(p.numel() for p in load_model(m).module.parameters()) for m in (args.baseline, pruned)]
    return {
        **budget(args),
        "params_baseline": params[0],
        "params_pruned": params[1],
        "accuracy_baseline": baseline,
        "accuracy_pruned": runs[0]["accuracy_before"],
        "runs": runs,
    }


def by_epoch(run: dict) -> str:
    """Held-out accuracy of each epoch, the kept one in bold."""
    return " / ".join(
        f"**{e['val_accuracy']:.4f}**" if e["epoch"] == run["best_epoch"] else f"{e['val_accuracy']:.4f}"
        for e in run["epochs_detail"]
    )


def markdown(r: dict, args) -> str:
    """The results table with the command that produced it."""
    base, batches = r["accuracy_baseline"], r["max_batches"] or "all"
    lines = [
        f"# Recovery: {Path(r['baseline']).stem}, {r['method']} ratio {r['ratio']}, {r['data']} "
        "test accuracy",
        "",
        f"Params {r['params_baseline']} -> {r['params_pruned']}. Same budget for every recovery: "
        f"{r['epochs']} epochs x {batches} batches of 128 per epoch, {r['optimizer']} lr {r['lr']}, "
        f"{r['schedule']} schedule, seed {r['seed']}, best val epoch kept, test accuracy reported.",
        "",
        "| recovery | test accuracy | of baseline | >= FT | >= 99% | val accuracy by epoch | train s |",
        "|---|---:|---:|:-:|:-:|---|---:|",
        f"| baseline (unpruned; the teacher) | {base:.4f} | 100.00% | | | | |",
        f"| pruned, no recovery | {r['accuracy_pruned']:.4f} | {r['accuracy_pruned'] / base:.2%} | | | | |",
    ]
    for run in r["runs"]:
        name = (
            "fine-tuning (cross-entropy)"
            if run["kind"] == "ft"
            else f"KD T={run['temperature']:g}, alpha={run['alpha']:g}"
        )
        lines.append(
            f"| {name} | {run['accuracy']:.4f} | {run['of_baseline']:.2%} | "
            f"{'yes' if run['ge_ft'] else 'no'} | {'yes' if run['ge_99pct_baseline'] else 'no'} | "
            f"{by_epoch(run)} | {run['train_seconds']:.0f} |"
        )
    base_cmd = (
        f"OMP_NUM_THREADS=1 python -m benchmarks.recovery --baseline {r['baseline']} "
        f"--method {r['method']} --ratio {r['ratio']} --epochs {r['epochs']} --max-batches "
        f"{r['max_batches']} --lr {r['lr']} --optimizer {r['optimizer']} --schedule {r['schedule']} "
        f"--seed {r['seed']} --workdir {args.workdir} --out {args.out}"
    )
    kd = [run for run in r["runs"] if run["kind"] == "kd"]
    lines += [
        "",
        "Commands, one KD setting each (fine-tuning runs once, in the first; every run is cached in "
        "--workdir and each invocation rewrites this file from all cached runs of the same budget):",
        "",
        "```",
    ]
    lines += [f"{base_cmd} --temperature {run['temperature']:g} --alpha {run['alpha']:g}" for run in kd]
    lines += ["```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

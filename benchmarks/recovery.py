"""Recovery after pruning: fine-tuning alone against distillation from the unpruned model.

The trained resnet_small is pruned (structurally with ``compress prune --method l1 --ratio 0.5``,
or, with ``--method masked``, by a global 50% magnitude mask made here), then recovered twice
with the same training budget: cross-entropy fine-tuning, and Hinton KD from the unpruned model.
Target (issue 6): KD >= FT and KD >= 99% of the baseline test accuracy.

    PYTHONPATH=. python benchmarks/recovery.py --method l1 --ratio 0.5 --epochs 3 \
        --max-batches 100 --out benchmarks/results/recovery_l1.md
"""

from __future__ import annotations

import argparse
import os
import json
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
    weights = {f"{name}.weight": m.weight for name, m in handle.module.named_modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    scores = torch.cat([w.detach().abs().flatten() for w in weights.values()])
    threshold = scores.kthvalue(max(1, int(sparsity * scores.numel()))).values
    handle.masks = {name: w.detach().abs() > threshold for name, w in weights.items()}
    with torch.no_grad():
        for name, w in weights.items():
            w.mul_(handle.masks[name])
    handle.record("prune", "magnitude-global (benchmarks/recovery.py)", {"sparsity": sparsity})
    save_artifact(handle, out)
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--method", choices=("l1", "masked"), default="l1")
    parser.add_argument("--ratio", type=float, default=0.5, help="l1 channel ratio / masked sparsity")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-batches", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.9],
                        help="one KD run per value (same budget each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/recovery")
    parser.add_argument("--out", default="benchmarks/results/recovery.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    pruner = prune_l1 if args.method == "l1" else prune_masked
    pruned = pruner(args.baseline, args.ratio, work / f"pruned_{args.method}.pt")
    train = TrainConfig(epochs=args.epochs, lr=args.lr, optimizer=args.optimizer, schedule=args.schedule,
                        max_batches=args.max_batches, device="cpu")
    base = DistillConfig(ModelSpec(pruned), args.data, train=train)
    ft = finetune(base, str(work / "ft.pt"))
    kd = [distill(DistillConfig(ModelSpec(pruned), args.data, ModelSpec(args.baseline), args.temperature,
                                alpha, train), str(work / f"kd_{alpha}.pt")) for alpha in args.alpha]
    report = summarise(args, pruned, ft, kd, time.time() - start)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out, markdown(report))
    print(markdown(report))


def summarise(args, pruned: str, ft, kds: list, seconds: float) -> dict:
    """Figures of both recoveries against the baseline (the KD runs' teacher accuracy)."""
    from compressor.io.artifact import load_model
    from compressor.stats import count_params

    baseline = kds[0].teacher_accuracy
    kd = [{"alpha": alpha, "accuracy": r.accuracy_after, "seconds": r.train_seconds,
           "ge_ft": r.accuracy_after >= ft.accuracy_after,
           "ge_99pct_baseline": r.accuracy_after >= 0.99 * baseline}
          for alpha, r in zip(args.alpha, kds)]
    return {
        "method": args.method, "ratio": args.ratio, "data": args.data, "epochs": args.epochs,
        "max_batches": args.max_batches, "lr": args.lr, "optimizer": args.optimizer,
        "schedule": args.schedule, "temperature": args.temperature, "alpha": args.alpha,
        "baseline": args.baseline,
        "params_baseline": count_params(load_model(args.baseline).module)[0],
        "params_pruned": count_params(load_model(pruned).module)[0],
        "nonzero_params_pruned": count_params(load_model(pruned).module)[1],
        "accuracy_baseline": baseline, "accuracy_pruned": ft.accuracy_before,
        "accuracy_ft": ft.accuracy_after, "ft_seconds": ft.train_seconds, "kd": kd,
        "total_seconds": round(seconds, 1),
    }


def markdown(r: dict) -> str:
    """The results table with the command that produced it."""
    base = r["accuracy_baseline"]
    rows = [("baseline (unpruned, teacher)", base), ("pruned, no recovery", r["accuracy_pruned"]),
            ("fine-tuning (cross-entropy)", r["accuracy_ft"])]
    rows += [(f"distillation (T={r['temperature']}, alpha={k['alpha']})", k["accuracy"]) for k in r["kd"]]
    name = Path(r["baseline"]).stem
    lines = [f"# Recovery: {name}, {r['method']} ratio {r['ratio']}, {r['data']} test accuracy", "",
             f"Params {r['params_baseline']} -> {r['params_pruned']} ({r['nonzero_params_pruned']} "
             f"non-zero). Same budget for both recoveries: "
             f"{r['epochs']} epochs x {r['max_batches']} batches of 128, {r['optimizer']} lr {r['lr']}, "
             f"{r['schedule']} schedule, best val epoch kept.", "",
             "| model | test accuracy | of baseline |", "|---|---:|---:|"]
    lines += [f"| {name} | {acc:.4f} | {acc / base:.2%} |" for name, acc in rows]
    lines += [""] + [f"KD alpha {k['alpha']}: KD >= FT: {k['ge_ft']}; KD >= 99% of baseline: "
                     f"{k['ge_99pct_baseline']}; train seconds {k['seconds']}." for k in r["kd"]]
    lines += [f"FT train seconds {r['ft_seconds']} (load average {os.getloadavg()[0]:.1f} at the end).", "",
              "Command:", "", "```", f"PYTHONPATH=. python benchmarks/recovery.py --baseline {r['baseline']} --method {r['method']} "
              f"--ratio {r['ratio']} --epochs {r['epochs']} --max-batches {r['max_batches']} --lr {r['lr']} "
              f"--optimizer {r['optimizer']} --schedule {r['schedule']} --temperature {r['temperature']} "
              f"--alpha {' '.join(str(a) for a in r['alpha'])}", "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

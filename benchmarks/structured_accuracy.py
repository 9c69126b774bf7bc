"""Accuracy: trained resnet_small and vgg_bn pruned at ratio 0.5 (l1 and slim) on Fashion-MNIST.

Reads the trained artifacts ``sample_models/NAME.pt`` (from this repository by default), prunes
with at most 3 epochs of training after the cut (l1: fine-tune; slim: sparsity training + fine-tune
counted together), and reports params, MACs, ONNX Runtime latency (1 thread, interleaved with the
dense model, medians) and test accuracy against the baseline. ``--max-batches`` caps each epoch
(to save CPU time on a shared machine; the cap is written into the table).

    python -m benchmarks.structured_accuracy --models sample_models/resnet_small.pt \
        sample_models/vgg_bn.pt --epochs 2 --max-batches 150

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run structured_accuracy                                   # -> benchmarks/results/structured_accuracy_full.md
    python -m benchmarks run structured_accuracy --config simple_cnn_tiny_vit      # -> benchmarks/results/structured_accuracy_simple_cnn_tiny_vit.md
    python -m benchmarks run structured_accuracy --config vgg_slim_cap05           # -> benchmarks/results/structured_accuracy_vgg_slim_cap05.md
    python -m benchmarks run structured_accuracy --config vgg_slim_cap075          # -> benchmarks/results/structured_accuracy_vgg_slim_cap075.md
    python -m benchmarks run structured_accuracy --config vgg_slim_sgd_cap05       # -> benchmarks/results/structured_accuracy_vgg_slim_sgd_cap05.md
    python -m benchmarks run structured_accuracy --config vgg_slim_sgd_cap05_ft3   # -> benchmarks/results/structured_accuracy_vgg_slim_sgd_cap05_ft3.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from compressor.io.artifact import load_model
from compressor.io.data import load_data
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.structured import norm, slimming
from compressor.stats import count_macs, count_params
from compressor.train import TrainConfig, evaluate, fit

RESULTS = Path(__file__).parent / "results"


def context(epochs_cap: int | None, lr: float) -> PruneContext:
    """Fashion-MNIST splits and a fine-tune function whose epochs are capped at ``epochs_cap`` batches."""
    ctx = PruneContext(
        train=load_data("fashion-mnist", "train"),
        val=load_data("fashion-mnist", "val"),
        test=load_data("fashion-mnist", "test"),
        log=lambda line: print(line, file=sys.stderr),
    )

    def finetune(handle, epochs: int) -> dict:
        cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=128, max_batches=epochs_cap)
        r = fit(handle.module, ctx.train, cfg, val=ctx.val, masks=handle.masks, description="fine-tune")
        return {"best_epoch": r.best_epoch, "val_accuracy": r.best_val_accuracy}

    ctx.finetune = finetune
    return ctx


def latency(dense, pruned, tmp: Path) -> tuple[float, float]:
    """ORT 1-thread medians (ms), dense and pruned timed interleaved."""
    from benchmarks.structured_speed import export, interleaved, session

    x = dense.example_input()
    a, b = export(dense.module, x, tmp / "a.onnx"), export(pruned.module, x, tmp / "b.onnx")
    t_dense, t_pruned, _ = interleaved(session(a, 1), session(b, 1), x.numpy(), rounds=200)
    return t_dense, t_pruned


def run(
    path: str,
    method: str,
    epochs: int,
    max_batches: int | None,
    lr: float,
    tmp: Path,
    slim_cap: float = 0.9,
    slim_optimizer: str = "adam",
    slim_lr: float | None = None,
    slim_sparsity_counts: bool = True,
) -> dict:
    dense, handle = load_model(path), load_model(path)
    ctx = context(max_batches, lr)
    base = evaluate(dense.module, ctx.test)["accuracy"]
    if method == "l1":
        cfg = PruneConfig("l1", ratio=0.5, data="fashion-mnist", finetune_epochs=epochs, finetune_lr=lr)
        norm.run(handle, cfg, ctx)
    else:
        opts = {
            "lam": 1e-4,
            "sparsity_epochs": 1,
            "sparsity_lr": slim_lr or lr,
            "max_batches": max_batches,
            "sparsity_optimizer": slim_optimizer,
        }
        ft_epochs = epochs - 1 if slim_sparsity_counts else epochs
        cfg = PruneConfig(
            "slim",
            ratio=0.5,
            data="fashion-mnist",
            finetune_epochs=ft_epochs,
            finetune_lr=lr,
            max_layer_ratio=slim_cap,
            options=opts,
        )
        slimming.run(handle, cfg, ctx)
    acc = evaluate(handle.module, ctx.test)["accuracy"]
    t_dense, t_pruned = latency(dense, handle, tmp)
    x = dense.example_input()
    label = "l1" if method == "l1" else f"slim (cap {slim_cap}, sparsity {slim_optimizer} lr {slim_lr or lr})"
    after_cut = epochs if method == "l1" else cfg.finetune_epochs
    return {
        "model": Path(path).stem,
        "method": label,
        "ratio": 0.5,
        "train_epochs_after_cut": after_cut,
        "sparsity_epochs": 0 if method == "l1" else 1,
        "max_batches_per_epoch": max_batches,
        "params_dense": count_params(dense.module)[0],
        "params": count_params(handle.module)[0],
        "macs_dense": count_macs(dense.module, x),
        "macs": count_macs(handle.module, x),
        "latency_ms_dense": t_dense,
        "latency_ms": t_pruned,
        "accuracy_dense": base,
        "accuracy": acc,
        "kept": acc / base,
    }


def table(rows: list[dict], command: str) -> str:
    lines = [
        "# Structured pruning accuracy on Fashion-MNIST (test split, 10k images)\n",
        f"Command: `{command}`\n",
        "Latency: ONNX Runtime CPU, 1 thread, batch 1, dense and pruned interleaved, medians "
        "(2-core machine). epochs = training epochs after the cut; slim's sparsity-training epoch "
        "(before the cut) is in the sparsity column.\n",
        "| model | method | ratio | sparsity epochs | epochs (batches cap) | params | MACs | latency ms (dense) | "
        "accuracy (dense) | kept |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['method']} | {r['ratio']} | {r.get('sparsity_epochs', '')} | {r['train_epochs_after_cut']} "
            f"({r['max_batches_per_epoch']}) | {r['params']:,} ({r['params_dense']:,}) | "
            f"{r['macs']:,} ({r['macs_dense']:,}) | {r['latency_ms']:.3f} ({r['latency_ms_dense']:.3f}) | "
            f"{r['accuracy']:.4f} ({r['accuracy_dense']:.4f}) | {r['kept']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    samples = Path(__file__).resolve().parents[1] / "sample_models"
    parser.add_argument(
        "--models", nargs="+", default=[str(samples / "resnet_small.pt"), str(samples / "vgg_bn.pt")]
    )
    parser.add_argument(
        "--out",
        default="structured_accuracy",
        help="results file stem: a bare name goes into benchmarks/results/",
    )
    parser.add_argument("--methods", nargs="+", default=["l1", "slim"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-batches", type=int, default=None)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--slim-max-layer-ratio",
        type=float,
        default=0.9,
        help="slim: at most this fraction of one layer's channels (the rest elsewhere)",
    )
    parser.add_argument("--slim-sparsity-optimizer", default="adam", help="slim: sparsity-phase optimizer")
    parser.add_argument(
        "--slim-sparsity-lr", type=float, default=None, help="slim: sparsity-phase lr (default --lr)"
    )
    parser.add_argument(
        "--slim-sparsity-separate",
        action="store_true",
        help="slim: the sparsity epoch (before the cut) is not counted in --epochs",
    )
    args = parser.parse_args()
    command = " ".join(["python -m benchmarks.structured_accuracy", *sys.argv[1:]])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.models:
            for method in args.methods:
                rows.append(
                    run(
                        path,
                        method,
                        args.epochs,
                        args.max_batches,
                        args.lr,
                        Path(tmp),
                        args.slim_max_layer_ratio,
                        args.slim_sparsity_optimizer,
                        args.slim_sparsity_lr,
                        not args.slim_sparsity_separate,
                    )
                )
                print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    if out.parent == Path("."):  # a bare stem goes into benchmarks/results/
        out = RESULTS / out
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(rows, indent=1))
    Path(f"{out}.md").write_text(table(rows, command))


if __name__ == "__main__":
    main()

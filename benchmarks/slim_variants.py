"""Network Slimming variants on vgg_bn (accuracy at ratio 0.5): sparsity-phase optimizer, lr, lambda and
weight decay, per-layer cap, fine-tune epochs, KD during fine-tuning. One row per run, appended to
benchmarks/results/slim_variants.jsonl. Both phases use a cosine schedule here (the library's slim uses
none for the sparsity phase), which is why these rows differ a little from structured_accuracy.py.

    python -m benchmarks.slim_variants --sp-opt sgd --sp-lr 0.01 --sp-wd 5e-4 --cap 0.5 --ft-epochs 2

Command (from the repository root; further arguments pass through)::

    python -m benchmarks run slim_variants   # -> benchmarks/results/slim_variants.jsonl
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from compressor.io.artifact import load_model
from compressor.io.data import load_data
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.structured import slimming
from compressor.stats import count_macs, count_params
from compressor.train import TrainConfig, evaluate, fit
from compressor.train.distill import distill_loss_fn

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sp-opt", default="adam")
    p.add_argument("--sp-lr", type=float, default=1e-3)
    p.add_argument("--sp-epochs", type=int, default=1)
    p.add_argument("--lam", type=float, default=1e-4)
    p.add_argument("--sp-wd", type=float, default=1e-4)
    p.add_argument("--ft-opt", default="adam")
    p.add_argument("--ft-lr", type=float, default=1e-3)
    p.add_argument("--ft-epochs", type=int, default=3)
    p.add_argument("--cap", type=float, default=0.9)
    p.add_argument("--tag", default="x")
    p.add_argument("--kd-alpha", type=float, default=0.0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "slim_variants.jsonl"))
    a = p.parse_args()
    torch.manual_seed(0)
    path = str(ROOT / "sample_models" / "vgg_bn.pt")
    h = load_model(path)
    train, val, test = (
        load_data("fashion-mnist", "train"),
        load_data("fashion-mnist", "val"),
        load_data("fashion-mnist", "test"),
    )

    def log(s):
        print(s, file=sys.stderr, flush=True)

    t0 = time.time()
    bns = slimming.scaled_batchnorms(h.module)
    fit(
        h.module,
        train,
        TrainConfig(
            epochs=a.sp_epochs,
            lr=a.sp_lr,
            optimizer=a.sp_opt,
            weight_decay=a.sp_wd,
            schedule="cosine",
            batch_size=128,
        ),
        val=val,
        after_backward=lambda _: slimming.add_l1_penalty(bns, a.lam),
        description="sparsity",
    )
    acc_sp = evaluate(h.module, test)["accuracy"]
    g = torch.cat([bn.weight.detach().abs().flatten() for bn in bns])
    thr = slimming.gamma_threshold(g, 0.5)
    log(f"after sparsity: test {acc_sp:.4f} thr {thr:.4g} frac<1e-2 {(g < 1e-2).float().mean():.3f}")
    ctx = PruneContext(train=train, val=val, test=test, log=log)
    teacher = load_model(path).module

    def finetune(handle, epochs):
        lf = distill_loss_fn(teacher, 4.0, a.kd_alpha) if a.kd_alpha > 0 else None
        r = fit(
            handle.module,
            train,
            loss_fn=lf,
            cfg=TrainConfig(epochs=epochs, lr=a.ft_lr, optimizer=a.ft_opt, schedule="cosine", batch_size=128),
            val=val,
            masks=handle.masks,
            description="fine-tune",
        )
        return {"best_epoch": r.best_epoch, "val_accuracy": r.best_val_accuracy}

    ctx.finetune = finetune
    cfg = PruneConfig(
        "slim",
        ratio=0.5,
        data="fashion-mnist",
        finetune_epochs=0,
        finetune_lr=a.ft_lr,
        max_layer_ratio=a.cap,
        options={"sparsity_epochs": 0, "lam": a.lam},
    )
    slimming.run(h, cfg, ctx)
    acc_cut = evaluate(h.module, test)["accuracy"]
    finetune(h, a.ft_epochs)
    acc = evaluate(h.module, test)["accuracy"]
    x = h.example_input()
    widths = [m.out_channels for m in h.module.modules() if isinstance(m, torch.nn.Conv2d)]
    row = dict(
        vars(a),
        acc_sparsity=acc_sp,
        acc_cut=acc_cut,
        acc=acc,
        kept=acc / 0.9110,
        macs=count_macs(h.module, x),
        params=count_params(h.module)[0],
        widths=widths,
        seconds=round(time.time() - t0),
    )
    print(json.dumps(row), flush=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

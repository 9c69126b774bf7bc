"""Sparsity vs accuracy of the masked methods on the trained sample models (Fashion-MNIST).

For every model x method x sparsity: prune the trained artifact (no fine-tuning between steps),
measure test accuracy, then fine-tune briefly with the masks kept and measure again. Results are
appended as JSON lines (a re-run skips what is done), then a Markdown table and a Pareto plot
(sparsity vs accuracy) are written.

    python -m benchmarks.unstructured_accuracy            # run + report
    python -m benchmarks.unstructured_accuracy --report   # report only

Budget (2 shared CPU cores): accuracy on a fixed 2000-sample subset of the test set, fine-tune
of 1 epoch capped at 60 batches of 128 (7680 images), Adam lr 1e-3 with a cosine decay; see --help to change.

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run unstructured_accuracy                                    # -> benchmarks/results/unstructured_accuracy.md
    python -m benchmarks run unstructured_accuracy --config wanda_vs_magnitude_noft   # -> benchmarks/results/wanda_vs_magnitude_noft.md
    python -m benchmarks run unstructured_accuracy --config wanda_global_noft         # -> benchmarks/results/wanda_global_noft_table.md
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
METHODS = {  # label -> (method, PruneConfig overrides)
    "magnitude-global": ("magnitude", {"scope": "global"}),
    "magnitude-layer": ("magnitude", {"scope": "layer"}),
    "wanda": ("wanda", {"scope": "row", "calib_samples": 128}),
    "wanda-layer": ("wanda", {"scope": "layer", "calib_samples": 128}),
    # one threshold over the dense network's scores sets each layer's sparsity
    "wanda-global": ("wanda", {"scope": "global", "calib_samples": 128}),
    "magnitude-row": ("magnitude", {"scope": "row"}),
    "sap": ("sap", {"scope": "layer", "steps": 40, "options": {"gamma": 4.0}}),
    "activation": ("activation", {"steps": 1, "calib_samples": 512}),
}
# variants for Wanda vs magnitude without fine-tuning: "-bn" re-estimates BatchNorm statistics on the 128 calibration samples after
# masking (magnitude: opt-in; wanda: its default on BatchNorm models, so "-nobn" turns it off), and
# "-ends" leaves the first and last layer dense (--keep-first-last). "bn" labels run only on models
# with BatchNorm (elsewhere they equal the plain label).
for _label in ("magnitude-global", "magnitude-layer", "magnitude-row"):
    METHODS[f"{_label}-bn"] = (
        METHODS[_label][0],
        {**METHODS[_label][1], "recalibrate_bn": True, "calib_samples": 128},
    )
for _label in ("wanda", "wanda-layer"):
    METHODS[f"{_label}-nobn"] = (METHODS[_label][0], {**METHODS[_label][1], "recalibrate_bn": False})
for _label in [k for k in METHODS if k.startswith(("magnitude", "wanda"))]:
    METHODS[f"{_label}-ends"] = (METHODS[_label][0], {**METHODS[_label][1], "keep_first_last": True})


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="simple_cnn,mlp")
    ap.add_argument("--model-dir", default="sample_models")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--sparsities", default="0.5,0.6,0.7,0.8,0.9,0.95,0.97")
    ap.add_argument("--ft-sparsities", default="0.5,0.8,0.9,0.95,0.97")
    ap.add_argument("--ft-epochs", type=int, default=1)
    ap.add_argument("--ft-batches", type=int, default=60)
    ap.add_argument("--ft-lr", type=float, default=1e-3)
    ap.add_argument("--eval-samples", type=int, default=2000)
    ap.add_argument("--out", default=str(RESULTS / "unstructured_accuracy.jsonl"))
    ap.add_argument("--report", action="store_true", help="only rebuild the table and the plot")
    ap.add_argument("--table", default=None, help="where the Markdown table goes (default: --out as .md)")
    ap.add_argument(
        "--pivot",
        action="store_true",
        help="no-FT accuracy as one row per model x method, one column per sparsity",
    )
    return ap.parse_args()


def run_one(model: str, label: str, sparsity: float, args, data, do_ft: bool) -> dict:
    """Prune one trained model with one method; accuracy before/after a short fine-tune."""
    from compressor.io.artifact import load_model
    from compressor.pruning.base import PruneConfig, PruneContext
    from compressor.train import TrainConfig, fit
    from compressor.train.loop import evaluate

    method, extra = METHODS[label]
    handle = load_model(f"{args.model_dir}/{model}.pt")
    cfg = PruneConfig(method=method, sparsity=sparsity, data="fashion-mnist", **extra)
    start = time.perf_counter()
    impl = importlib.import_module(f"compressor.pruning.unstructured.{method}")
    report = impl.run(handle, cfg, PruneContext(train=data["train"]))
    row = {
        "model": model,
        "method": label,
        "sparsity_target": sparsity,
        "sparsity": report.figures["layer_sparsity"],
        "prune_s": time.perf_counter() - start,
        "model_sparsity": _model_sparsity(handle),
        "bn_recalibrated_layers": report.figures.get("bn_recalibrated_layers", 0),
        "accuracy_noft": evaluate(handle.module, data["test"], limit=args.eval_samples)["accuracy"],
    }
    if method == "sap":
        row["sap_steps"] = len(report.steps)
    if do_ft:
        tc = TrainConfig(epochs=args.ft_epochs, lr=args.ft_lr, max_batches=args.ft_batches, schedule="cosine")
        fit(handle.module, data["train"], tc, masks=handle.masks, description="fine-tune")
        row["accuracy_ft"] = evaluate(handle.module, data["test"], limit=args.eval_samples)["accuracy"]
        row["sparsity_after_ft"] = 1 - _kept(handle) / _total(handle)
    return row


def _model_sparsity(handle) -> float:
    """Zeros among ALL conv/linear weights of the model, masked or not (-ends leaves two dense)."""
    from compressor.pruning.unstructured.layers import layer_kind

    weights = [m.weight for m in handle.module.modules() if layer_kind(m)]
    return 1 - sum(int((w != 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def _has_bn(model: str, args) -> bool:
    from compressor.io.artifact import load_model
    from compressor.pruning.batchnorm import batchnorms

    return bool(batchnorms(load_model(f"{args.model_dir}/{model}.pt").module))


def _kept(handle) -> int:
    params = dict(handle.module.named_parameters())
    return sum(int((params[n] != 0).sum()) for n in handle.masks if n.endswith("weight"))


def _total(handle) -> int:
    params = dict(handle.module.named_parameters())
    return sum(params[n].numel() for n in handle.masks if n.endswith("weight"))


def baseline(model: str, args, data) -> float:
    from compressor.io.artifact import load_model
    from compressor.train.loop import evaluate

    return evaluate(load_model(f"{args.model_dir}/{model}.pt").module, data["test"], limit=args.eval_samples)[
        "accuracy"
    ]


def run_all(args) -> None:
    from compressor.io.data import load_data

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["model"], r["method"], r["sparsity_target"]) for r in read_rows(out)}
    data = {"train": load_data("fashion-mnist", "train"), "test": load_data("fashion-mnist", "test")}
    ft = {float(s) for s in args.ft_sparsities.split(",") if s.strip()}
    for model in args.models.split(","):
        if (model, "baseline", 0.0) not in done:
            _append(
                out,
                {
                    "model": model,
                    "method": "baseline",
                    "sparsity_target": 0.0,
                    "sparsity": 0.0,
                    "accuracy_noft": baseline(model, args, data),
                },
            )
        has_bn = _has_bn(model, args)
        for label in args.methods.split(","):
            if {"bn", "nobn"} & set(label.split("-")) and not has_bn:
                continue
            for s in (float(v) for v in args.sparsities.split(",")):
                if (model, label, s) not in done:
                    row = run_one(model, label, s, args, data, s in ft)
                    _append(
                        out,
                        {
                            **row,
                            "ft_epochs": args.ft_epochs,
                            "ft_schedule": "cosine",
                            "ft_batches": args.ft_batches,
                            "ft_lr": args.ft_lr,
                            "eval_samples": args.eval_samples,
                        },
                    )
                    print(json.dumps(row), flush=True)


def _append(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(args) -> None:
    rows = read_rows(Path(args.out))
    base = {r["model"]: r["accuracy_noft"] for r in rows if r["method"] == "baseline"}
    table = Path(args.table) if args.table else Path(args.out).with_suffix(".md")
    if args.pivot:
        table.write_text(pivot(rows, base))
        plot(rows, base, Path(args.out).with_suffix(".png"))
        return
    lines = [
        "| model | method | sparsity | acc no FT | acc FT | FT / baseline |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(
        (r for r in rows if r["method"] != "baseline"),
        key=lambda r: (r["model"], r["method"], r["sparsity_target"]),
    ):
        ft = r.get("accuracy_ft")
        ratio = f"{ft / base[r['model']]:.3f}" if ft is not None else ""
        lines.append(
            f"| {r['model']} | {r['method']} | {r['sparsity']:.3f} | {r['accuracy_noft']:.4f} | "
            f"{'' if ft is None else f'{ft:.4f}'} | {ratio} |"
        )
    head = ["baseline accuracy: " + ", ".join(f"{m} {a:.4f}" for m, a in base.items()), ""]
    table.write_text("\n".join(head + lines) + "\n")
    plot(rows, base, Path(args.out).with_suffix(".png"))


def pivot(rows: list[dict], base: dict) -> str:
    """No-FT accuracy: one row per model x method (METHODS order), one column per target sparsity.

    A cell reads ``accuracy`` or, when not every conv/linear weight was in the ranking (-ends),
    ``accuracy (s%)`` with the share of zeros among all the model's conv/linear weights.
    """
    levels = sorted({r["sparsity_target"] for r in rows if r["method"] != "baseline"})
    cells = {(r["model"], r["method"], r["sparsity_target"]): r for r in rows}
    lines = [
        "| model (baseline) | method | " + " | ".join(f"{s:g}" for s in levels) + " |",
        "|---|---|" + "---:|" * len(levels),
    ]
    for model in sorted(base):
        for label in METHODS:
            got = [cells.get((model, label, s)) for s in levels]
            if not any(got):
                continue
            text = [_cell(r) for r in got]
            lines.append(f"| {model} ({base[model]:.4f}) | {label} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


def _cell(r: dict | None) -> str:
    if r is None:
        return ""
    overall = r.get("model_sparsity")
    if overall is not None and abs(overall - r["sparsity"]) > 5e-3:
        return f"{r['accuracy_noft']:.4f} ({overall:.1%})"
    return f"{r['accuracy_noft']:.4f}"


def plot(rows: list[dict], base: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(base)
    labels = [m for m in METHODS if any(r["method"] == m for r in rows)]
    styles = {label: (f"C{i % 10}", "--" if i < 10 else ":") for i, label in enumerate(labels)}
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models):
        for label in labels:
            pts = sorted(
                (r for r in rows if r["model"] == model and r["method"] == label), key=lambda r: r["sparsity"]
            )
            if not pts:
                continue
            color, dash = styles[label]
            ax.plot(
                [r["sparsity"] for r in pts],
                [r["accuracy_noft"] for r in pts],
                f"{dash}o",
                color=color,
                alpha=0.6,
                ms=3,
                label=f"{label} (no FT)",
            )
            ft = [r for r in pts if "accuracy_ft" in r]
            if ft:
                ax.plot(
                    [r["sparsity"] for r in ft],
                    [r["accuracy_ft"] for r in ft],
                    "-s",
                    color=color,
                    ms=4,
                    label=f"{label} (FT)",
                )
        ax.axhline(base[model], color="k", lw=0.8, label="dense baseline")
        ax.axhline(0.99 * base[model], color="k", lw=0.5, ls=":", label="99% of baseline")
        evals = {r.get("eval_samples") for r in rows if r["model"] == model and r.get("eval_samples")}
        ax.set(
            title=f"{model}: sparsity vs accuracy (Fashion-MNIST)",
            xlabel="weight sparsity of pruned layers",
            ylabel=f"test accuracy ({'/'.join(map(str, sorted(evals))) or '?'} test images)",
            ylim=(0, 1),
        )
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    ARGS = parse_args()
    if not ARGS.report:
        run_all(ARGS)
    report(ARGS)

"""Breadth: every sample model and every torchvision classification model through ``compress export``.

Each model (random init) is exported with the defaults (dynamo exporter with TorchScript fallback,
dynamic batch, onnxslim, parity at rtol 1e-3 / atol 1e-5 in batches of 1 and 7). Torchvision models
use a small 1x3x64x64 input where their forward accepts it (to save CPU), else their default size.
With ``--pruned`` each model is first pruned with ``compress prune --method l1 --ratio 0.5`` (rows
say so when that method is not available) and the pruned
artifact is exported.

Run from the repository root (rows are appended to OUT.jsonl as they finish; --resume skips models
already there):

    python -m benchmarks.export_breadth --out benchmarks/results/export_breadth.md
    python -m benchmarks.export_breadth --pruned --out benchmarks/results/export_breadth_pruned.md
    python -m benchmarks.export_breadth --table-only   # table from the rows so far

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run export_breadth                       # -> benchmarks/results/export_breadth.md
    python -m benchmarks run export_breadth --config pruned       # -> benchmarks/results/export_breadth_pruned.md
    python -m benchmarks run export_breadth --config big          # -> benchmarks/results/export_breadth_big.md
    python -m benchmarks run export_breadth --config pruned_big   # -> benchmarks/results/export_breadth_pruned_big.md
    python -m benchmarks run export_breadth --config diag         # -> benchmarks/results/export_breadth_diag.md
    python -m benchmarks run export_breadth --config large        # -> benchmarks/results/export_breadth_large.md
    python -m benchmarks run export_breadth --config bncal        # -> benchmarks/results/export_breadth_bncal.md
    python -m benchmarks run export_breadth --config native       # -> benchmarks/results/export_breadth_native.md
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.breadth_rows import load

SMALL = (1, 3, 64, 64)


def model_refs(only: list[str] | None) -> list[str]:
    """sample:* then torchvision:* references (or just ``only``)."""
    from compressor.io.refs import torchvision_models
    from compressor.registry import SAMPLES

    refs = [f"sample:{s}" for s in SAMPLES] + sorted(
        (f"torchvision:{n}" for n in torchvision_models()), key=_published_params
    )
    return [r for r in refs if not only or r.split(":", 1)[1] in only]


def _published_params(ref: str) -> int:
    """Parameter count from torchvision's weight metadata (no model built), for smallest-first order."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(ref.split(":", 1)[1])
        return min(w.meta.get("num_params", 0) for w in weights)
    except Exception:  # noqa: BLE001 - unknown: last
        return 10**12


def randomise_zero_weights(module) -> int:
    """Give all-zero weight tensors (torchvision zero-inits some heads) small random values.

    With a zero head every output is constant and the parity check would be trivial.
    """
    import torch

    count = 0
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim >= 2 and not p.any():
                p.normal_(0.0, 0.02)
                count += 1
    return count


def calibrate_batchnorm(module, shape: tuple[int, ...], batches: int = 4) -> int:
    """Set BatchNorm running statistics from random N(0, 1) batches (train-mode forwards, no weight
    change), as training would; returns the number of BatchNorm layers.

    A random-init network keeps the default statistics (mean 0, variance 1). Tried on the
    deep ResNets that fail parity at the default tolerances: it does not make them pass (ResNet-50's
    max abs error went from 4.8e-5 to 1.4e-4), so it stays an option and rows say when it was used.
    """
    from compressor.pruning.batchnorm import statistics_pass

    with torch.no_grad(), statistics_pass(module) as count:
        for _ in range(batches if count else 0):
            module(torch.randn((8, *shape[1:])))
    return count


def pick_shape(ref: str, module, native: bool = False) -> tuple[int, ...]:
    """The small shape when the forward accepts it, else (or with ``native``) the reference's default."""
    import torch

    from compressor.io.refs import default_input_shape

    default = default_input_shape(ref)
    if ref.startswith("sample:") or native:
        return default
    try:
        with torch.no_grad():
            module(torch.zeros((2, *SMALL[1:])))
        return SMALL
    except Exception:  # noqa: BLE001 - any failure: use the model's own size
        return default


def one(ref: str, pruned: bool, max_params: int, calibrate_bn: bool = False, native: bool = False) -> dict:
    """Export one model; a row with the figures or the error."""
    from compressor.api.common import ModelSpec
    from compressor.api.export import export
    from compressor.errors import CompressorError
    from compressor.export.config import ExportConfig
    from compressor.io.artifact import load_model, save_artifact

    torch.manual_seed(0)  # random init: the same weights on every run (older rows: unseeded)
    handle = load_model(ref)
    params = sum(p.numel() for p in handle.module.parameters())
    row: dict = {"model": ref, "params": params}
    if max_params and params > max_params:
        return {**row, "status": "skipped", "error": f"more than {max_params:,} params (--max-params)"}
    shape = pick_shape(ref, handle.module, native)
    handle.input_shape = shape
    row.update(
        input_shape="x".join(map(str, shape)), zero_weights_randomised=randomise_zero_weights(handle.module)
    )
    if calibrate_bn and not ref.startswith("sample:"):
        row["bn_calibrated"] = calibrate_batchnorm(handle.module, shape)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            save_artifact(handle, f"{tmp}/model.pt")
            del handle
            source = prune_first(f"{tmp}/model.pt", shape, tmp) if pruned else f"{tmp}/model.pt"
            r = export(ModelSpec(source, input_shape=shape), ExportConfig(output=f"{tmp}/m.onnx")).figures
            row.update(
                status="ok" if r["parity_passed"] else "parity failed",
                exporter=r["exporter"],
                nodes_before=r["nodes_before"],
                nodes_after=r["nodes_after"],
                max_abs_error=r["max_abs_error"],
                max_rel_error=r["max_rel_error"],
                top1_agreement=r["top1_agreement"],
                output_max_abs=r["output_max_abs"],
                size_bytes=r["size_bytes"],
                params_after=r["torch_params"],
                passed_by=r.get("parity_passed_by", "tolerances") if r["parity_passed"] else None,
            )
        except CompressorError as exc:
            row.update(status=f"exit {exc.exit_code}", error=exc.one_line()[:300])
        except Exception as exc:  # noqa: BLE001 - a benchmark row, not a crash
            row.update(status="error", error=f"{type(exc).__name__}: {str(exc)[:300]}")
    row["seconds"] = round(time.perf_counter() - start, 1)
    row["load"] = load()
    return row


def prune_first(source: str, shape: tuple[int, ...], tmp: str) -> str:
    """``compress prune --method l1 --ratio 0.5`` to ``tmp/pruned.pt``."""
    import importlib

    from compressor import registry
    from compressor.api import prune
    from compressor.api.common import ModelSpec
    from compressor.errors import UnsupportedError
    from compressor.pruning.base import PruneConfig

    try:
        importlib.import_module(registry.method("l1").module)
    except ImportError:
        raise UnsupportedError("prune --method l1 is not available in this installation") from None
    out = f"{tmp}/pruned.pt"
    prune(ModelSpec(source, input_shape=shape), PruneConfig(method="l1", ratio=0.5), out)
    return out


def table(rows: list[dict]) -> str:
    """Markdown table."""
    cols = (
        "model",
        "params",
        "params_after",
        "input_shape",
        "status",
        "exporter",
        "nodes_before",
        "nodes_after",
        "max_abs_error",
        "max_rel_error",
        "top1_agreement",
        "output_max_abs",
        "passed_by",
        "size_bytes",
        "seconds",
        "bn_calibrated",
        "error",
    )
    fmt = {
        "max_abs_error": "{:.2e}",
        "max_rel_error": "{:.2e}",
        "top1_agreement": "{:.3f}",
        "output_max_abs": "{:.2e}",
        "params": "{:,}",
        "params_after": "{:,}",
        "size_bytes": "{:,}",
    }
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [fmt.get(c, "{}").format(r[c]) if r.get(c) is not None else "" for c in cols]
        lines.append("| " + " | ".join(cells).replace("\n", " ") + " |")
    ok = sum(r["status"] == "ok" for r in rows)
    flat = sum(r["status"] == "ok" and r.get("output_max_abs", 1.0) < 1e-6 for r in rows)
    return (
        f"{ok} of {len(rows)} models exported with parity; in {flat} of them the random-init outputs "
        "are below 1e-6 (output_max_abs), so their parity is weak evidence.\n\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/export_breadth.md")
    parser.add_argument("--pruned", action="store_true", help="prune with l1 at 0.5 before exporting")
    parser.add_argument("--models", nargs="*", help="only these names (e.g. resnet18 simple_cnn)")
    parser.add_argument("--max-params", type=int, default=100_000_000, help="skip bigger models (0: none)")
    parser.add_argument("--resume", action="store_true", help="skip models already in OUT.jsonl")
    parser.add_argument("--table-only", action="store_true", help="only rewrite OUT from OUT.jsonl")
    parser.add_argument(
        "--native-shape",
        action="store_true",
        help="export at the model's own input size (224x224 for most) instead of 64x64",
    )
    parser.add_argument(
        "--calibrate-bn",
        action="store_true",
        help="set random-init BatchNorm statistics from random batches first (rows say so)",
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = out.with_suffix(".jsonl")
    if args.table_only:
        write_table(out, lines, args, total=len(model_refs(args.models)))
        return
    done = (
        {json.loads(line)["model"] for line in lines.read_text().splitlines()}
        if args.resume and lines.exists()
        else set()
    )
    if not args.resume and lines.exists():
        lines.unlink()
    for ref in model_refs(args.models):
        if ref in done:
            continue
        row = one(ref, args.pruned, args.max_params, args.calibrate_bn, args.native_shape)
        print(json.dumps(row), flush=True)
        with lines.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
    write_table(out, lines, args, total=len(model_refs(args.models)))


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this table (every option that changes a row)."""
    parts = ["python -m benchmarks.export_breadth"]
    parts += ["--pruned"] if args.pruned else []
    parts += ["--calibrate-bn"] if args.calibrate_bn else []
    parts += ["--native-shape"] if args.native_shape else []
    parts += ["--models", *args.models] if args.models else []
    parts += [f"--max-params {args.max_params}"] if args.max_params != 100_000_000 else []
    return " ".join([*parts, f"--out {args.out}"])


def write_table(out: Path, lines: Path, args: argparse.Namespace, total: int) -> None:
    """Rewrite the markdown table from the JSON lines."""
    pruned = args.pruned
    rows = [json.loads(line) for line in lines.read_text().splitlines()] if lines.exists() else []
    title = "pruned with l1 at 0.5, then " if pruned else ""
    missing = (
        f"{total - len(rows)} of {total} models not run yet (continue with --resume).\n\n"
        if len(rows) < total
        else ""
    )
    command = command_line(args)
    out.write_text(
        f"# Export breadth: {title}compress export with default settings\n\nCommand: `{command}`\n\n"
        + missing
        + "Random-init models (all-zero weight tensors, e.g. zero-initialised heads, get N(0, 0.02) values so "
        "outputs are not constant). bn_calibrated: rows run with `--calibrate-bn` (BatchNorm statistics "
        "of the random-init model set from 4 random batches first).\n\n" + conditions_line(rows) + table(rows)
    )


def conditions_line(rows: list[dict]) -> str:
    """The 1-minute load average over the rows (their seconds depend on it); the runner's
    ``## Conditions`` section states versions, threads and the machine."""
    loads = [float(r["load"].split("/")[0]) for r in rows if r.get("load")]
    spread = f"1-minute load average {min(loads):.1f} to {max(loads):.1f} over the rows; " if loads else ""
    return f"{spread}seconds (prune, export, simplify and parity) are indicative.\n\n"


if __name__ == "__main__":
    main()

"""Do masked zeros speed up a dense runtime? Measured with ``compress bench --baseline``.

The trained simple_cnn (or an untrained ``sample:NAME``) gets 0%, 50% and 90% of its conv/linear
weights zeroed by global magnitude (no fine-tuning: accuracy is not the point here), is exported
to ONNX, and each sparse export is benched against the dense export, interleaved run by run, under
the mobile profile. The expected answer, which ``compress bench`` prints as a note, is: the
compressed file shrinks, the latency does not.

Usage (from the repository root)::

    python -m benchmarks.bench_sparse_latency --out benchmarks/results/sparse_latency

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run sparse_latency   # -> benchmarks/results/sparse_latency.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / "sample_models" / "simple_cnn.pt"


def zero_smallest(module, fraction: float) -> None:
    """Zero the ``fraction`` of conv/linear weights with the smallest |W|, globally."""
    import torch

    from compressor.stats import PRUNABLE

    weights = [m.weight for m in module.modules() if isinstance(m, PRUNABLE)]
    if fraction <= 0:
        return
    threshold = torch.quantile(torch.cat([w.detach().abs().flatten() for w in weights]), fraction)
    with torch.no_grad():
        for w in weights:
            w[w.abs() <= threshold] = 0


def export(module, path: Path) -> Path:
    """ONNX export with a dynamic batch axis."""
    import torch

    torch.onnx.export(
        module,
        (torch.randn(1, 1, 28, 28),),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


def bench_pair(model: Path, baseline: Path, min_time: float) -> dict:
    """``compress bench MODEL --baseline BASELINE`` through the library API."""
    from compressor.api import ModelSpec
    from compressor.api.bench import BenchConfig, bench
    from compressor.bench.profiles import get_profile

    profile = get_profile("mobile").override(min_time_s=min_time)
    doc = bench(BenchConfig(ModelSpec(str(model)), profile, ModelSpec(str(baseline)))).to_json()
    keys = (
        "sparsity",
        "latency_ms_p50",
        "baseline_latency_ms_p50",
        "speedup",
        "runs",
        "size_bytes",
        "compressed_bytes",
        "baseline_compressed_bytes",
        "latency_cv",
        "baseline_latency_cv",
    )
    return {k: doc[k] for k in keys}


def main() -> None:
    """Export, bench, write OUT.json and OUT.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=str(TRAINED.relative_to(ROOT)) if TRAINED.exists() else "sample:simple_cnn"
    )
    parser.add_argument("--min-time", type=float, default=3.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sparse_latency"))
    args = parser.parse_args()
    from compressor.io.artifact import load_model
    from compressor.io.atomic import atomic_write_text

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dense = export(load_model(args.model).module.eval(), Path(tmp) / "dense.onnx")
        for fraction in (0.0, 0.5, 0.9):
            module = load_model(args.model).module.eval()
            zero_smallest(module, fraction)
            rows.append(
                {
                    "zeroed": fraction,
                    **bench_pair(export(module, Path(tmp) / f"s{fraction}.onnx"), dense, args.min_time),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    doc = {
        "model": args.model,
        "profile": "mobile",
        "min_time_s": args.min_time,
        "rows": rows,
        "load_avg_1_5_15_end": os.getloadavg(),
        "command": "python -m benchmarks.bench_sparse_latency " + shlex.join(sys.argv[1:]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps(doc, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(doc))
    print(markdown(doc))


def markdown(doc: dict) -> str:
    """Summary table."""
    lines = [
        f"# Masked zeros vs latency: {doc['model']} (ONNX Runtime CPU, mobile profile)",
        "",
        f"Command: `{doc['command']}`",
        "",
        "Each sparse export benched against the dense export in one run, interleaved run by run "
        f"(at least {doc['min_time_s']} s). Machine: 2 CPUs shared with other benchmark and training jobs, "
        f"load average at the end {'/'.join(f'{v:.1f}' for v in doc['load_avg_1_5_15_end'])}.",
        "",
        "| weights zeroed | sparsity (all params) | p50 ms | dense p50 ms | speed-up (paired median) "
        "| file bytes | compressed bytes | dense compressed bytes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['zeroed']:.0%} | {r['sparsity']:.1%} | {r['latency_ms_p50']:.4f} | "
            f"{r['baseline_latency_ms_p50']:.4f} | {r['speedup']:.3f}x | {r['size_bytes']:,} | "
            f"{r['compressed_bytes']:,} | {r['baseline_compressed_bytes']:,} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

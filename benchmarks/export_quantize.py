"""Int8 and fp16 ONNX exports of the trained sample models on Fashion-MNIST.

Target: the int8 file <= 30% of the fp32 file with <= 1 point accuracy loss.
Accuracy is measured with ONNX Runtime on the Fashion-MNIST test split for the fp32, int8 and fp16
graphs (the fp32 graph passed the default parity check against PyTorch first).

Run from the repository root:

    python -m benchmarks.export_quantize --models-dir sample_models \
        --out benchmarks/results/export_quantize.md

Each model's row is appended to ``OUT.jsonl`` as soon as it is measured, so a partial run keeps
its rows; the markdown table is rewritten from the JSON lines at the end.

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run export_quantize   # -> benchmarks/results/export_quantize.md
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SAMPLES = ("mlp", "simple_cnn", "vgg_bn", "resnet_small", "tiny_vit")
TARGET_RATIO, TARGET_DROP = 0.30, 0.01


def measure(artifact: Path, eval_samples: int | None) -> dict:
    """fp32 / int8 / fp16 sizes and accuracies of one artifact."""
    from compressor.api.common import ModelSpec
    from compressor.api.export import export
    from compressor.export.config import ExportConfig

    spec = ModelSpec(str(artifact))
    row: dict = {"model": artifact.stem}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        q = export(
            spec,
            ExportConfig(
                output=f"{tmp}/int8.onnx", quantize="int8", data="fashion-mnist", eval_samples=eval_samples
            ),
        ).figures
        h = export(
            spec,
            ExportConfig(
                output=f"{tmp}/fp16.onnx", fp16=True, data="fashion-mnist", eval_samples=eval_samples
            ),
        ).figures
        row["seconds"] = round(time.perf_counter() - start, 1)
    row.update(
        fp32_bytes=q["fp32_size_bytes"],
        fp32_parity=q["parity_passed"],
        accuracy_fp32=q["accuracy_fp32"],
        int8_mode=q["quant_mode"],
        int8_bytes=q["size_bytes"],
        int8_ratio=q["size_ratio"],
        int8_accuracy=q["accuracy"],
        int8_delta=q["accuracy_delta"],
        int8_agreement=q["int8_top1_agreement_data"],
        fp16_bytes=h["size_bytes"],
        fp16_ratio=h["size_ratio"],
        fp16_delta=h["accuracy_delta"],
        eval_samples=eval_samples or "all",
    )
    row["meets_target"] = row["int8_ratio"] <= TARGET_RATIO and row["int8_delta"] >= -TARGET_DROP
    return row


def table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    head = (
        "| model | fp32 bytes | int8 mode | int8 bytes | int8/fp32 | acc fp32 | acc int8 | delta (points) "
        "| int8 vs fp32 top-1 agreement | fp16 bytes | fp16/fp32 | fp16 delta (points) | target met |\n|"
        + "---|" * 13
        + "\n"
    )
    body = "".join(
        f"| {r['model']} | {r['fp32_bytes']:,} | {r['int8_mode']} | {r['int8_bytes']:,} | {r['int8_ratio']:.1%} "
        f"| {r['accuracy_fp32']:.4f} | {r['int8_accuracy']:.4f} | {100 * r['int8_delta']:+.2f} "
        f"| {r.get('int8_agreement', float('nan')):.4f} "
        f"| {r['fp16_bytes']:,} | {r['fp16_ratio']:.1%} | {100 * r['fp16_delta']:+.2f} "
        f"| {'yes' if r['meets_target'] else 'NO'} |\n"
        for r in rows
    )
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default="sample_models")
    parser.add_argument("--models", nargs="*", default=list(SAMPLES))
    parser.add_argument("--eval-samples", type=int, default=None, help="default: the whole test split")
    parser.add_argument("--out", default="benchmarks/results/export_quantize.md")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = out.with_suffix(".jsonl")
    for name in args.models:
        artifact = Path(args.models_dir) / f"{name}.pt"
        if not artifact.is_file():
            print(f"skip {name}: {artifact} not found")
            continue
        row = measure(artifact, args.eval_samples)
        print(json.dumps(row))
        with lines.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
    rows = {r["model"]: r for r in map(json.loads, lines.read_text().splitlines())} if lines.exists() else {}
    missing = [m for m in SAMPLES if m not in rows]
    out.write_text(
        f"# int8 / fp16 export on Fashion-MNIST (test split)\n\nTarget: int8 <= {TARGET_RATIO:.0%} of fp32, "
        f"accuracy loss <= {100 * TARGET_DROP:.0f} point. Accuracy with ONNX Runtime on the whole test split "
        "(10,000 images) unless eval_samples says otherwise.\n\nCommand: `python -m "
        "benchmarks.export_quantize --models-dir sample_models`\n\n"
        + table(list(rows.values()))
        + (
            f"\nNot measured yet (no trained artifact when this ran): {', '.join(missing)}.\n"
            if missing
            else ""
        )
    )
    print(out.read_text())


if __name__ == "__main__":
    main()

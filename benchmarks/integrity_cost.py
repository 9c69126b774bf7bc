"""What the SHA-256 integrity check adds to loading an artifact and an ONNX file of about 100 MB.

The same model (torchvision resnet50, random init, 25.6M parameters, ~102 MB) is saved twice: as
written today (with a digest) and with the digest removed (as written before digests existed, so
loading skips the check). The two are loaded alternately, pair by pair, and the overhead is the
median of the per-pair ratios. The ONNX file is measured the same way through ``load_onnx`` (what
``info`` and ``bench`` read first) and through ``compress info`` as a whole. Target: the check adds at most 5% to loading the artifact.

    python -m benchmarks.integrity_cost [--pairs 15] [--out benchmarks/results/integrity_cost.md]

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run integrity_cost   # -> benchmarks/results/integrity_cost.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _timed(load, path: Path) -> float:
    start = time.perf_counter()
    load(path)
    return time.perf_counter() - start


def _pairs(load, sealed: Path, plain: Path, pairs: int) -> dict[str, float]:
    load(sealed), load(plain)  # warm the page cache and the imports
    with_check, without, ratios = [], [], []
    for i in range(pairs):
        order = (sealed, plain) if i % 2 == 0 else (plain, sealed)
        times = {p: _timed(load, p) for p in order}
        with_check.append(times[sealed])
        without.append(times[plain])
        ratios.append(times[sealed] / times[plain])
    return {
        "with_s": statistics.median(with_check),
        "without_s": statistics.median(without),
        "overhead": statistics.median(ratios) - 1.0,
    }


def _files(folder: Path) -> dict[str, Path]:
    import onnx

    from compressor.io import integrity
    from compressor.io.artifact import load_model, save_artifact

    torch.manual_seed(0)
    sealed = folder / "resnet50.pt"
    save_artifact(load_model("torchvision:resnet50"), sealed)
    payload = torch.load(sealed, weights_only=True)
    del payload[integrity.ARTIFACT_KEY]
    plain = folder / "resnet50-plain.pt"
    torch.save(payload, plain)
    graph = folder / "resnet50.onnx"
    torch.onnx.export(load_model(sealed).module, (torch.randn(1, 3, 224, 224),), str(graph), dynamo=False)
    model = onnx.load(str(graph))
    integrity.stamp_onnx(model)
    onnx.save(model, str(graph))
    integrity._drop_digest(model)
    onnx.save(model, str(folder / "resnet50-plain.onnx"))
    return {"pt": sealed, "pt_plain": plain, "onnx": graph, "onnx_plain": folder / "resnet50-plain.onnx"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/integrity_cost.md")
    parser.add_argument(
        "--note", default="", help="the machine's conditions during the run, written with the table"
    )
    args = parser.parse_args()
    from compressor.api import info
    from compressor.api.common import ModelSpec
    from compressor.io.artifact import load_model
    from compressor.io.onnx_file import load_onnx

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        files = _files(Path(tmp))
        sizes = {k: v.stat().st_size for k, v in files.items()}
        rows = {
            "artifact (load_model)": (
                _pairs(load_model, files["pt"], files["pt_plain"], args.pairs),
                sizes["pt"],
            ),
            "ONNX (load_onnx)": (
                _pairs(load_onnx, files["onnx"], files["onnx_plain"], args.pairs),
                sizes["onnx"],
            ),
            "ONNX (`compress info`, in process)": (
                _pairs(
                    lambda p: info(ModelSpec(str(p))),
                    files["onnx"],
                    files["onnx_plain"],
                    max(args.pairs // 3, 3),
                ),
                sizes["onnx"],
            ),
        }
    lines = [
        "# Cost of the integrity check on load",
        "",
        f"Command: `python -m benchmarks.integrity_cost --pairs {args.pairs}"
        + (f' --note "{args.note}"`' if args.note else "`"),
        "",
        "torchvision resnet50 (random init), saved with and without its SHA-256 digest, loaded "
        f"alternately {args.pairs} times each (one torch thread; medians; the overhead is the median "
        "of the per-pair time ratios; the `compress info` row uses a third of the pairs). Target: at most "
        "+5% on loading the artifact. The ONNX check cannot overlap the ONNX checker (it holds "
        "Python's GIL), so it adds its full hashing time to `load_onnx`; the info row shows what that is "
        "worth in a command.",
        "",
        f"torch {torch.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPU cores. "
        f"{args.note}",
        "",
        "| file | size (MB) | load with check (s) | load without (s) | overhead |",
        "|---|---|---|---|---|",
    ]
    for name, (row, size) in rows.items():
        lines.append(
            f"| {name} | {size / 1e6:.1f} | {row['with_s']:.3f} | {row['without_s']:.3f} | "
            f"{row['overhead']:+.1%} |"
        )
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

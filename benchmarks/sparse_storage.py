"""Artifact size of masked models: dense file vs compact sparse storage (values + bit-packed mask).

For each trained sample model and sparsity (magnitude, global scope): the artifact's bytes, its
zlib-compressed bytes, and the bytes the same artifact would take with dense tensors plus bool
masks (the format before compact storage). Target: a 90%-sparse artifact <= 20% of the dense one.

    python -m benchmarks.sparse_storage

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run sparse_storage   # -> benchmarks/results/sparse_storage.md
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "results" / "sparse_storage"
MODELS = ("simple_cnn", "mlp")
SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95)


def dense_mask_bytes(handle) -> int:
    """Bytes of a payload holding the dense state_dict and bool masks (no packing)."""
    from compressor.io.artifact import to_payload

    payload = to_payload(handle)
    from compressor.io.packing import unpack

    for name, entry in payload.pop("sparse").items():
        payload["state_dict"][name], payload["masks"][name] = unpack(entry)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return len(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--sparsities", nargs="*", type=float, default=list(SPARSITIES))
    parser.add_argument("--model-dir", default="sample_models")
    parser.add_argument("--out", type=Path, default=OUT, help="OUT.json and OUT.md are written")
    args = parser.parse_args()
    model_dir, out = args.model_dir, args.out
    from compressor.io.artifact import load_model, save_artifact
    from compressor.pruning.base import PruneConfig, PruneContext
    from compressor.pruning.unstructured import magnitude
    from compressor.stats import compressed_bytes

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            dense = None
            for s in args.sparsities:
                handle = load_model(f"{model_dir}/{model}.pt")
                if s:
                    magnitude.run(handle, PruneConfig(method="magnitude", sparsity=s), PruneContext())
                path = Path(tmp) / f"{model}_{s}.pt"
                save_artifact(handle, path)
                size = path.stat().st_size
                dense = dense or size
                back = load_model(str(path))
                x = handle.example_input(2)
                rows.append(
                    {
                        "model": model,
                        "sparsity": s,
                        "artifact_bytes": size,
                        "artifact_zlib_bytes": compressed_bytes(path.read_bytes()),
                        "dense_tensors_plus_bool_masks_bytes": dense_mask_bytes(handle),
                        "ratio_to_dense": round(size / dense, 4),
                        "reload_exact": bool(torch.equal(back.module(x), handle.module(x))),
                    }
                )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| model | sparsity | artifact bytes | ratio to dense | zlib bytes | dense+bool masks bytes | reload exact |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['sparsity']} | {r['artifact_bytes']} | {r['ratio_to_dense']} | "
        f"{r['artifact_zlib_bytes']} | {r['dense_tensors_plus_bool_masks_bytes']} | {r['reload_exact']} |"
        for r in rows
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

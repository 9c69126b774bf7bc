"""Breadth: every torchvision classifier at ratio 0.5 (l1) prunes, runs, saves, reloads and exports.

Each model runs in its own forked process with a time limit, so a hang is a failure, not a stall.
Small inputs where the architecture allows (CPU is scarce); ViTs are built with a small
``image_size``. Results go to ``benchmarks/results/structured_breadth.jsonl`` (one line per model,
appended as they finish) and the table ``benchmarks/results/structured_breadth.md``.

    python -m benchmarks.structured_breadth            # all 80 models
    python -m benchmarks.structured_breadth resnet18 vit_b_16
    python -m benchmarks.structured_breadth --table    # rebuild the table only

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run structured_breadth   # -> benchmarks/results/structured_breadth.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
LIMIT_S = 600

# Smallest inputs each family accepts; ViTs get a matching image_size.
# AlexNet/VGG: adaptive pooling to 6x6/7x7 exports to ONNX only when the size divides evenly.
SHAPES = {
    "inception_v3": (1, 3, 96, 96),
    "maxvit_t": (1, 3, 224, 224),
    "alexnet": (1, 3, 224, 224),
    **{f"vgg{d}{bn}": (1, 3, 224, 224) for d in (11, 13, 16, 19) for bn in ("", "_bn")},
}
VIT_SIZE = {"vit_b_16": 32, "vit_b_32": 32, "vit_l_16": 32, "vit_l_32": 32, "vit_h_14": 28}


def case(name: str) -> tuple[tuple[int, ...], dict]:
    """Input shape and build kwargs for one torchvision model."""
    if name in VIT_SIZE:
        size = VIT_SIZE[name]
        return (1, 3, size, size), {"image_size": size}
    return SHAPES.get(name, (1, 3, 64, 64)), {}


def check(name: str, out_dir: str) -> dict:
    """Prune one model with the library and check forward, save, reload, ONNX export.

    Calls the method module directly (not ``api.prune``) to skip the zlib size figures, which
    cost more than the pruning on big models and say nothing about breadth.
    """
    import torch

    from compressor.errors import CompressorError
    from compressor.io.artifact import load_model, save_artifact
    from compressor.pruning.base import PruneConfig, PruneContext
    from compressor.pruning.structured import norm
    from compressor.stats import count_macs, count_params

    shape, kwargs = case(name)
    row: dict = {"model": name, "input": "x".join(map(str, shape[1:]))}
    out = Path(out_dir) / f"{name}.pt"
    handle = load_model(f"torchvision:{name}", arch_kwargs=kwargs, input_shape=shape)
    x = handle.example_input()
    row.update(params_before=count_params(handle.module)[0], macs_before=count_macs(handle.module, x))
    try:
        report = norm.run(handle, PruneConfig("l1", ratio=0.5), PruneContext())
    except CompressorError as exc:
        return {**row, "status": f"refused (exit {exc.exit_code})", "detail": exc.one_line()[:200]}
    row.update(
        params_after=count_params(handle.module)[0],
        macs_after=count_macs(handle.module, x),
        notes="; ".join(n for n in report.notes if "classifier head" not in n)[:160],
    )
    save_artifact(handle, out)
    reloaded = load_model(out)
    y = reloaded.module(x)
    assert tuple(y.shape) == (1, 1000), f"output shape {tuple(y.shape)}"
    assert torch.allclose(y, handle.module(x), atol=1e-5), "reloaded model differs"
    torch.onnx.export(reloaded.module, (x,), str(out.with_suffix(".onnx")), dynamo=False)
    return {**row, "status": "pass"}


def _child(name: str, out_dir: str, queue) -> None:
    try:
        queue.put(check(name, out_dir))
    except Exception as exc:  # noqa: BLE001 - a failure of any kind is the result
        from compressor.errors import first_line

        first = first_line(exc, empty="")
        queue.put({"model": name, "status": "FAIL", "detail": f"{type(exc).__name__}: {first}"})


def run_one(name: str) -> dict:
    """One model in a forked process (imports shared, state not) under the time limit."""
    import multiprocessing as mp
    import tempfile

    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        proc = ctx.Process(target=_child, args=(name, tmp, queue))
        proc.start()
        try:
            row = queue.get(timeout=LIMIT_S)
        except Exception:  # noqa: BLE001 - queue.Empty: over the limit, or the child died
            row = {"model": name, "status": f"FAIL: no result within {LIMIT_S} s (exit {proc.exitcode})"}
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    row["seconds"] = round(time.time() - start, 1)
    return row


def table(rows: list[dict]) -> str:
    """Markdown table of the sweep."""
    passed = sum(r["status"] == "pass" for r in rows)
    refused = sum(r["status"].startswith("refused") for r in rows)
    head = [
        "# Structured pruning breadth (l1, ratio 0.5, torchvision classifiers)\n",
        f"{passed} pass, {refused} refused up front, {len(rows) - passed - refused} fail "
        f"(of {len(rows)} run).\n",
        "Command: `python -m benchmarks.structured_breadth` (shared 2-core machine; "
        "seconds include model build, pruning, MAC counting, save, reload and ONNX export).\n",
        "| model | input | status | params before | params after | MACs after / before | s | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    body = []
    for r in sorted(rows, key=lambda r: r["model"]):
        ratio = f"{r['macs_after'] / r['macs_before']:.3f}" if r.get("macs_before") else ""
        body.append(
            f"| {r['model']} | {r.get('input', '')} | {r['status']} | {r.get('params_before', '')} | "
            f"{r.get('params_after', '')} | {ratio} | {r.get('seconds', '')} | "
            f"{r.get('notes') or r.get('detail', '')} |"
        )
    return "\n".join(head + body) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="torchvision names (default: every classifier)")
    parser.add_argument("--table", action="store_true", help="rebuild the table from OUT.jsonl only")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "structured_breadth",
        help="OUT.jsonl (rows appended) and OUT.md (the table)",
    )
    args = parser.parse_args(argv)
    jsonl, table_path = args.out.with_suffix(".jsonl"), args.out.with_suffix(".md")
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    if not args.table:
        import torch  # noqa: F401 - imported once; every forked child shares it
        import torchvision  # noqa: F401

        import compressor.api  # noqa: F401
        from compressor.io.refs import torchvision_models

        for name in args.models or torchvision_models():
            row = run_one(name)
            print(json.dumps(row), flush=True)
            with jsonl.open("a") as f:
                f.write(json.dumps(row) + "\n")
    rows = {}
    for line in jsonl.read_text().splitlines():
        row = json.loads(line)
        rows[row["model"]] = row  # the latest run of each model wins
    table_path.write_text(table(list(rows.values())))


if __name__ == "__main__":
    main(sys.argv[1:])

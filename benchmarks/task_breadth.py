"""Breadth: torchvision segmentation and video models through prune (l1, ratio 0.3) -> export -> parity.

Each model is built with random weights and a reduced number of classes at a small input, pruned
with ``compress prune``'s library call, checked for unchanged output shapes, and exported to ONNX
with the parity check on every output. Results go to ``benchmarks/results/task_breadth.jsonl``
(one line per model) and the table ``benchmarks/results/task_breadth.md`` (``--out STEM`` writes
``STEM.jsonl`` and ``STEM.md`` instead).

    python -m benchmarks run task_breadth                               # the default cases
    python -m benchmarks.task_breadth r3d_18 fcn_resnet50               # some of them
    python -m benchmarks.task_breadth --table                           # rebuild the table only
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

CASES: dict[str, tuple[int, ...]] = {
    "lraspp_mobilenet_v3_large": (1, 3, 128, 128),
    "deeplabv3_mobilenet_v3_large": (1, 3, 128, 128),
    "fcn_resnet50": (1, 3, 64, 64),
    "deeplabv3_resnet50": (1, 3, 64, 64),
    "r3d_18": (1, 3, 4, 32, 32),
    "mc3_18": (1, 3, 4, 32, 32),
    "r2plus1d_18": (1, 3, 4, 32, 32),
}


def run_one(name: str, shape: tuple[int, ...]) -> dict:
    """Prune, compare output shapes, export with parity; a failure is recorded, not raised."""
    from compressor import outputs
    from compressor.api import ExportConfig, PruneConfig, export, prune
    from compressor.api.common import ModelSpec
    from compressor.errors import CompressorError
    from compressor.io.artifact import load_model

    row: dict = {"model": name, "input_shape": list(shape)}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        spec = ModelSpec(f"torchvision:{name}", arch_kwargs={"num_classes": 3}, input_shape=shape)
        try:
            before = outputs.model_shapes(spec.load().module, _example(shape))
            result = prune(spec, PruneConfig("l1", ratio=0.3), f"{tmp}/p.pt")
            after = outputs.model_shapes(load_model(f"{tmp}/p.pt").module, _example(shape))
            row.update(
                params_before=result.before["params"],
                params_after=result.after["params"],
                outputs=after,
                shapes_kept=before == after,
                kept=[n for n in result.notes if "makes output" in n or "classifier head" in n],
            )
            done = export(f"{tmp}/p.pt", ExportConfig(output=f"{tmp}/p.onnx", samples=4))
            row.update(
                exporter=done.figures.get("exporter"),
                parity_passed=done.figures.get("parity_passed"),
                parity=[
                    {k: r.get(k) for k in ("name", "shape", "max_abs_error", "passed")} for r in done.outputs
                ],
            )
        except CompressorError as exc:
            row["error"] = f"exit {exc.exit_code}: {exc.one_line()}"[:300]
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def _others() -> list[str]:
    """Segmentation and video models of the torchvision table that are not among the cases."""
    from compressor.io import zoo

    return [
        n
        for task in zoo.TASKS
        if task.package in ("segmentation", "video")
        for n in zoo.models(task)
        if n not in CASES
    ]


def _example(shape: tuple[int, ...]):
    import torch

    return torch.randn(*shape)


def conditions() -> str:
    import torch
    import torchvision

    return (
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f} when the table was written (seconds are wall time on a machine shared with other jobs)"
    )


def table(rows: list[dict], command: str) -> str:
    lines = [
        "# Segmentation and video models: prune (l1, ratio 0.3) -> export -> parity",
        "",
        f"`{command}`",
        "",
        conditions(),
        "",
        "| model | input | params before -> after | outputs (after) | shapes kept | layers kept for outputs "
        "| exporter | parity per output (max abs error) | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['model']} | {'x'.join(map(str, r['input_shape']))} | {r['error']} | | | | | | "
                f"{r['seconds']} |"
            )
            continue
        outs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in r["outputs"].items())
        parity = ", ".join(
            f"{p['name']} {p['max_abs_error']:.2g} {'ok' if p['passed'] else 'FAILED'}"
            for p in r.get("parity", [])
        )
        lines.append(
            f"| {r['model']} | {'x'.join(map(str, r['input_shape']))} | {r['params_before']:,} -> "
            f"{r['params_after']:,} | {outs} | {r['shapes_kept']} | {'; '.join(r['kept'])} | "
            f"{r.get('exporter', '')} | {parity} | {r['seconds']} |"
        )
    missing = [n for n in CASES if n not in {r["model"] for r in rows}]
    if missing:
        lines += ["", f"Not in this run: {', '.join(missing)}."]
    lines += [
        "",
        f"Not among the cases (heavier: 224x224 inputs or deeper backbones): {', '.join(_others())}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    stem = RESULTS / "task_breadth"
    if "--out" in argv:
        at = argv.index("--out")
        stem, argv = Path(argv[at + 1]), argv[:at] + argv[at + 2 :]
    jsonl, md = stem.with_suffix(".jsonl"), stem.with_suffix(".md")
    command = "python -m benchmarks.task_breadth" + "".join(f" {n}" for n in argv if n != "--table")
    if "--table" not in argv:
        stem.parent.mkdir(parents=True, exist_ok=True)
        jsonl.write_text("")
        for name in argv or list(CASES):
            row = run_one(name, CASES[name])
            print(json.dumps(row), flush=True)
            with jsonl.open("a") as f:  # appended as each model finishes
                f.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    md.write_text(table(rows, command))


if __name__ == "__main__":
    main(sys.argv[1:])

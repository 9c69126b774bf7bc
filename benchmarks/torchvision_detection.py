"""Breadth: every torchvision detection and optical-flow model through prune -> export -> bench.

Each model runs the CLI as a user would: ``compress prune torchvision:NAME --method l1 --ratio 0.5``,
``compress export`` of the pruned artifact (ONNX, parity against PyTorch per output) and
``compress bench`` of the exported file, each step with a time limit (a hang is a failure). The
adapters' default inputs are used (:mod:`compressor.io.detection`). Rows go to
``benchmarks/results/torchvision_detection.jsonl`` (appended as models finish; the latest row of a
model wins) and the table ``benchmarks/results/torchvision_detection.md``.

    python -m benchmarks run torchvision_detection                      # every model
    python -m benchmarks.torchvision_detection raft_small ssd300_vgg16
    python -m benchmarks.torchvision_detection --table                  # rebuild the table only
    python -m benchmarks.torchvision_detection --out DIR/STEM ...       # STEM.jsonl and STEM.md
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
JSONL = RESULTS / "torchvision_detection.jsonl"
TABLE = RESULTS / "torchvision_detection.md"
LIMIT_S = 900  # per step
EXPORT_FLAGS = ("--samples", "8", "--no-simplify")  # CPU is scarce: 8 parity inputs (batches 1 and 7)


ORDER = [
    "ssdlite320_mobilenet_v3_large",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "raft_small",
    "retinanet_resnet50_fpn",
    "fcos_resnet50_fpn",
    "ssd300_vgg16",
    "fasterrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn",
    "keypointrcnn_resnet50_fpn",
]  # the cheap and the representative first


def cli(*args: str) -> tuple[int, dict, str, float]:
    """(exit code, JSON document or {}, last stderr line, seconds) of one CLI call."""
    start = time.time()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "compressor", *args, "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=LIMIT_S,
        )
    except subprocess.TimeoutExpired:
        return -1, {}, f"no result within {LIMIT_S} s", time.time() - start
    try:
        doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        doc = {}
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("error", "hint"))]
    return proc.returncode, doc, " ".join(lines)[:240], time.time() - start


def run_one(name: str, folder: Path) -> dict:
    """Prune, export and bench one model; a refused step ends the row with its reason."""
    pruned, onnx = folder / f"{name}.pt", folder / f"{name}.onnx"
    row: dict = {"model": name}
    rc, doc, err, secs = cli(
        "prune", f"torchvision:{name}", "--method", "l1", "--ratio", "0.5", "-o", str(pruned)
    )
    row.update(
        prune_rc=rc,
        prune_s=round(secs, 1),
        macs_before=doc.get("macs_before"),
        macs_after=doc.get("macs_after"),
        params_before=doc.get("params_before"),
        params_after=doc.get("params_after"),
    )
    if rc != 0:
        return {**row, "detail": err}
    rc, doc, err, secs = cli("export", str(pruned), "-o", str(onnx), *EXPORT_FLAGS)
    row.update(
        export_rc=rc,
        export_s=round(secs, 1),
        exporter=doc.get("exporter"),
        parity=[_parity_row(o) for o in doc.get("outputs", [])],
        parity_passed=doc.get("parity_passed"),
    )
    if rc != 0:
        return {**row, "detail": err}
    rc, doc, err, secs = cli("bench", str(onnx), "--runs", "5", "--warmup", "1", "--max-time", "30")
    row.update(bench_rc=rc, bench_s=round(secs, 1), latency_ms_p50=doc.get("latency_ms_p50"))
    return {**row, "detail": err} if rc else row


def _parity_row(out: dict) -> dict:
    return {
        "shape": out.get("shape"),
        "max_abs_error": out.get("max_abs_error"),
        "reference_max_abs": out.get("reference_max_abs"),
        "passed": out.get("passed"),
    }


def conditions() -> str:
    """Versions, threads and machine load, for the table's header."""
    import onnxruntime
    import torch
    import torchvision

    from benchmarks.breadth_rows import torch_pruning_version

    load = os.getloadavg()[0]
    return (
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, torch-pruning "
        f"{torch_pruning_version()}, onnxruntime {onnxruntime.__version__}; {platform.machine()} "
        f"{os.cpu_count()} cores, default threads; 1-minute load average {load:.1f} when the table was written"
    )


def _macs(r: dict) -> str:
    if not r.get("macs_before") or not r.get("macs_after"):
        return ""
    return f"{r['macs_before'] / 1e9:.2f} G -> {r['macs_after'] / 1e9:.2f} G ({r['macs_after'] / r['macs_before']:.2f})"


def _parity(r: dict) -> str:
    cells = [
        f"{'ok' if p['passed'] else 'FAIL'} {p['max_abs_error']:.1e}/{p['reference_max_abs']:.1e}"
        for p in r.get("parity") or []
        if p.get("max_abs_error") is not None and p.get("reference_max_abs") is not None
    ]
    return "; ".join(cells)


def table(rows: list[dict]) -> str:
    """The Markdown table."""
    head = [
        "# torchvision detection and optical flow: prune (l1 0.5) -> export -> parity -> bench\n",
        "Command: `python -m benchmarks run torchvision_detection`\n",
        f"Conditions: {conditions()}. Seconds are wall time on a shared machine (other jobs running): "
        "compare them with each other only; p50 is the ONNX Runtime median latency of the pruned "
        "graph at batch 1, under the same load.\n",
        "Each model is built behind its one-tensor adapter at the adapter's default input (raw head "
        "outputs, no post-processing; see docs/detection.md). Parity: per output, `ok max abs error / "
        "largest |output|` of ONNX Runtime against PyTorch on 8 random inputs fed in batches of 1 and 7 (`--samples 8 --no-simplify`). "
        "rc: exit code of the step (3: refused with the reason in the last column).\n",
        "| model | prune rc | MACs before -> after (ratio) | export rc | exporter | parity per output | "
        "bench rc | p50 ms | s (prune / export / bench) | refusal or failure |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    from compressor.io.detection import MODELS

    done = {r["model"] for r in rows}
    rows = rows + [
        {
            "model": m,
            "prune_rc": "not run",
            "detail": f"not run yet: `python -m benchmarks.torchvision_detection {m}`",
        }
        for m in MODELS
        if m not in done
    ]
    body = []
    for r in sorted(rows, key=lambda r: r["model"]):
        secs = " / ".join(str(r.get(k, "")) for k in ("prune_s", "export_s", "bench_s"))
        p50 = f"{r['latency_ms_p50']:.0f}" if r.get("latency_ms_p50") else ""
        body.append(
            f"| {r['model']} | {r['prune_rc']} | {_macs(r)} | {r.get('export_rc', '')} | "
            f"{r.get('exporter') or ''} | {_parity(r)} | {r.get('bench_rc', '')} | {p50} | {secs} | "
            f"{r.get('detail', '')} |"
        )
    return "\n".join(head + body) + "\n"


def main(argv: list[str]) -> None:
    global JSONL, TABLE
    if "--out" in argv:  # another place for the two files (a smoke run)
        at = argv.index("--out")
        stem, argv = Path(argv[at + 1]), argv[:at] + argv[at + 2 :]
        JSONL, TABLE = stem.with_suffix(".jsonl"), stem.with_suffix(".md")
    JSONL.parent.mkdir(parents=True, exist_ok=True)
    if argv != ["--table"]:
        from compressor.io.detection import MODELS

        with tempfile.TemporaryDirectory() as tmp:
            for name in argv or ORDER + [m for m in MODELS if m not in ORDER]:
                row = run_one(name, Path(tmp))
                print(json.dumps(row), flush=True)
                with JSONL.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    rows = {}
    for line in JSONL.read_text().splitlines():
        row = json.loads(line)
        rows[row["model"]] = row
    TABLE.write_text(table(list(rows.values())))


if __name__ == "__main__":
    main(sys.argv[1:])

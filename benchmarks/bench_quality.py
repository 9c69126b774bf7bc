"""Measurement quality of ``compress bench``: is its median repeatable, and is it the true one?

The same ONNX model is timed in three ways, in rounds interleaved so that machine noise hits all
three alike (round r: in-process bench, separate-process bench, hand-written loop):

* ``compressor.api.bench`` called 5 times in this one process,
* ``python -m compressor bench --json`` run 5 times as separate processes,
* a hand-written onnxruntime timing loop (no compressor code) at the same settings:
  one intra-op thread, one inter-op thread, sequential execution, full graph optimisation,
  batch 1, the same warm-up and the same stopping rule (at least N runs and T seconds);
* and, as a noise-free check of compressor's own overhead, its ORT backend and the hand-written
  session alternating run by run (A B, B A) in one process: the median per-run ratio.

Targets: all 10 compressor medians within 5% of each other (max / min - 1), and their
median within 10% of the hand-written loop's median. Those two targets need a quiet machine; the
minima and the run-by-run ratio show whether a miss is machine noise or compressor.

Usage (from the repository root)::

    python -m benchmarks.bench_quality --out benchmarks/results/bench_quality

Writes ``OUT.json`` (every number) and ``OUT.md`` (the summary), atomically.

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run bench_quality                                  # -> benchmarks/results/bench_quality.md
    python -m benchmarks run bench_quality --config resnet_small            # -> benchmarks/results/bench_quality_resnet_small.md
    python -m benchmarks run bench_quality --config resnet_small_mintime8   # -> benchmarks/results/bench_quality_resnet_small_mintime8.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export(ref: str, path: Path) -> Path:
    """Export a sample model (or a .pt artifact) to ONNX with a dynamic batch."""
    import torch

    from compressor.io.artifact import load_model

    module = load_model(ref).module.eval()
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


def in_process(path: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(median, min) ms from the library API, in this process."""
    from compressor.api import ModelSpec
    from compressor.api.bench import BenchConfig, bench
    from compressor.bench.profiles import get_profile

    profile = get_profile("mobile").override(min_runs=args.runs, warmup=args.warmup, min_time_s=args.min_time)
    stats = bench(BenchConfig(ModelSpec(str(path)), profile)).model.stats
    return stats.latency_ms_p50, stats.latency_ms_min


def separate_process(path: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(median, min) ms from ``python -m compressor bench --json`` in a fresh process."""
    cmd = [
        sys.executable,
        "-m",
        "compressor",
        "bench",
        str(path),
        "--profile",
        "mobile",
        "--json",
        "--runs",
        str(args.runs),
        "--warmup",
        str(args.warmup),
        "--min-time",
        str(args.min_time),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    doc = json.loads(out.stdout)
    return doc["latency_ms_p50"], doc["latency_ms_min"]


def hand_session(path: Path):
    """A plain onnxruntime session at the mobile settings, and its input feed."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {"input": np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)}
    return session, feed


def hand_loop(path: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(median, min) ms of a plain onnxruntime loop at the same settings (no compressor code)."""
    session, feed = hand_session(path)
    for _ in range(args.warmup + 1):
        session.run(None, feed)
    times: list[float] = []
    begin = time.perf_counter()
    while len(times) < args.runs or time.perf_counter() - begin < args.min_time:
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def paired(path: Path, args: argparse.Namespace) -> float:
    """Median of per-run ratios: compressor's ORT backend / the hand session, run by run (A B, B A)."""
    from compressor.bench.profiles import get_profile
    from compressor.bench.runner import OrtBackend

    backend = OrtBackend(str(path), get_profile("mobile"))
    session, feed = hand_session(path)

    def hand() -> float:
        start = time.perf_counter()
        session.run(None, feed)
        return (time.perf_counter() - start) * 1000

    ratios = []
    for i in range(args.warmup + max(args.runs, 2000)):
        if i % 2:  # alternate who goes first (A B, B A), as compress bench does
            theirs, ours = hand(), backend.run()
        else:
            ours, theirs = backend.run(), hand()
        if i >= args.warmup:
            ratios.append(ours / theirs)
    return statistics.median(ratios)


def spread(values: list[float]) -> float:
    """max / min - 1."""
    return max(values) / min(values) - 1


def summarize(
    rows: dict[str, list[tuple[float, float]]],
    ratios: list[float],
    args: argparse.Namespace,
    load_start: tuple[float, ...],
) -> dict:
    """Spreads and ratios against the targets, for the medians and (as a noise check) the minima."""
    med = {k: [m for m, _ in v] for k, v in rows.items()}
    mins = {k: [m for _, m in v] for k, v in rows.items()}
    compressor_medians = med["in_process"] + med["separate_process"]
    ratio = statistics.median(compressor_medians) / statistics.median(med["hand_loop"])
    return {
        "model": args.model,
        "runs_per_measurement": args.runs,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "min_time_s": args.min_time,
        "medians_ms": med,
        "minima_ms": mins,
        **{f"spread_{k}": spread(v) for k, v in med.items()},
        **{f"spread_min_{k}": spread(v) for k, v in mins.items()},
        "spread_all_compressor": spread(compressor_medians),
        "spread_min_all_compressor": spread(mins["in_process"] + mins["separate_process"]),
        "compressor_over_hand_loop": ratio,
        "min_compressor_over_hand_loop": (
            statistics.median(mins["in_process"] + mins["separate_process"])
            / statistics.median(mins["hand_loop"])
        ),
        "paired_run_by_run_ratios": ratios,
        "target_spread_met": spread(compressor_medians) <= 0.05,
        "target_hand_loop_met": abs(ratio - 1) <= 0.10,
        "note": args.note,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1_5_15_start": load_start,
            "load_avg_1_5_15_end": os.getloadavg(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "command": "python -m benchmarks.bench_quality " + shlex.join(sys.argv[1:]),
    }


def _load(values) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def markdown(doc: dict) -> str:
    """The summary table."""
    med, mins = doc["medians_ms"], doc["minima_ms"]
    lines = [
        f"# bench quality: {doc['model']} (ONNX, mobile profile: batch 1, 1 thread)",
        "",
        f"Command: `{doc['command']}`",
        "",
        f"Machine: {doc['machine']['cpus']} CPUs; load average (1, 5, 15 min) "
        f"{_load(doc['machine']['load_avg_1_5_15_start'])} at the start, "
        f"{_load(doc['machine']['load_avg_1_5_15_end'])} at the end; {doc['machine']['platform']}.",
        "",
        f"Conditions: {doc['note']}" if doc["note"] else "",
        "",
        f"{doc['rounds']} interleaved rounds; each measurement = at least {doc['runs_per_measurement']} "
        f"timed runs and {doc['min_time_s']} s, after {doc['warmup']} warm-up runs.",
        "",
        "| measurement | medians (ms) | spread of medians | minima (ms) | spread of minima |",
        "|---|---|---:|---|---:|",
    ]
    for key in ("in_process", "separate_process", "hand_loop"):
        lines.append(
            f"| {key.replace('_', ' ')} | {', '.join(f'{v:.4f}' for v in med[key])} | "
            f"{doc['spread_' + key]:.1%} | {', '.join(f'{v:.4f}' for v in mins[key])} | "
            f"{doc['spread_min_' + key]:.1%} |"
        )
    lines += [
        "",
        f"- all 10 compressor medians: spread {doc['spread_all_compressor']:.1%} "
        f"(target <= 5%: {'met' if doc['target_spread_met'] else 'NOT met'})",
        f"- compressor median / hand-written loop median: {doc['compressor_over_hand_loop']:.3f} "
        f"(target within 10%: {'met' if doc['target_hand_loop_met'] else 'NOT met'})",
        f"- noise check on the minima: spread {doc['spread_min_all_compressor']:.1%}, "
        f"compressor / hand loop {doc['min_compressor_over_hand_loop']:.3f}",
        "- run by run (compressor's ORT backend and the hand session alternating A B, B A in one "
        "process), median per-run ratio per round: "
        + ", ".join(f"{r:.3f}" for r in doc["paired_run_by_run_ratios"]),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the rounds and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sample:simple_cnn", help="sample:NAME or a .pt artifact")
    parser.add_argument("--runs", type=int, default=50, help="minimum timed runs (mobile default)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up runs (mobile default)")
    parser.add_argument("--min-time", type=float, default=2.0, help="minimum seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--note", default="", help="conditions to record, e.g. 'machine shared'")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_quality"))
    args = parser.parse_args()
    from compressor.io.atomic import atomic_write_text

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    onnx_path = export(args.model, out.parent / "bench_quality_model.onnx")
    rows: dict[str, list[tuple[float, float]]] = {"in_process": [], "separate_process": [], "hand_loop": []}
    ratios = []
    for r in range(args.rounds):
        for key, fn in (
            ("in_process", in_process),
            ("separate_process", separate_process),
            ("hand_loop", hand_loop),
        ):
            rows[key].append(fn(onnx_path, args))
        ratios.append(paired(onnx_path, args))
        print(
            f"round {r + 1}: "
            + ", ".join(f"{k} {v[-1][0]:.4f} ms" for k, v in rows.items())
            + f", paired ratio {ratios[-1]:.3f}",
            file=sys.stderr,
        )
    onnx_path.unlink()
    doc = summarize(rows, ratios, args, load_start)
    atomic_write_text(out.with_suffix(".json"), json.dumps(doc, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()

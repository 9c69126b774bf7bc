"""Speed: theoretical MAC reduction against measured ONNX Runtime CPU latency speed-up.

ResNet-18, ResNet-50 and MobileNetV2 at 224x224 and the sample models, pruned with l1 at ratios
0.3 / 0.5 / 0.7 (torchvision models also with ``round_to=8``), exported to ONNX, timed at batch 1
with 1 and 2 intra-op threads. Dense and pruned sessions are timed interleaved (A B A B ...) and
medians are reported, so load on a shared machine hits both alike. efficiency = speed-up / MAC
reduction (1.0: latency falls exactly as the MACs do).

With 2 threads, ``--spin --block 50`` is the protocol of the "Spinning on, as deployed" results: ORT's default
thread spinning (as deployed), models timed in blocks of 50 runs whose medians are paired, so the idle
session's spinning pool slows only a block's first runs. Without ``--spin`` the 2-thread sessions run
with spinning off, which understates the speed-up of thin pruned layers (see
results/structured_speed_layer.md).

    python -m benchmarks.structured_speed                  # everything
    python -m benchmarks.structured_speed --models resnet18 --ratios 0.5 --rounds 20

Command (from the repository root; ``--quick`` for a smoke run, further arguments pass through)::

    python -m benchmarks run structured_speed                                           # -> benchmarks/results/structured_speed.md
    python -m benchmarks run structured_speed --config resnet                           # -> benchmarks/results/structured_speed_resnet.md
    python -m benchmarks run structured_speed --config resnet_nospin                    # -> benchmarks/results/structured_speed_resnet_nospin.md
    python -m benchmarks run structured_speed --config resnet_roundto                   # -> benchmarks/results/structured_speed_resnet_roundto.md
    python -m benchmarks run structured_speed --config resnet_spin                      # -> benchmarks/results/structured_speed_resnet_spin.md
    python -m benchmarks run structured_speed --config mobilenet                        # -> benchmarks/results/structured_speed_mobilenet.md
    python -m benchmarks run structured_speed --config mobilenet_nospin                 # -> benchmarks/results/structured_speed_mobilenet_nospin.md
    python -m benchmarks run structured_speed --config mobilenet_nospin_keep_residual   # -> benchmarks/results/structured_speed_mobilenet_nospin_keep_residual.md
    python -m benchmarks run structured_speed --config mobilenet_nospin_roundto         # -> benchmarks/results/structured_speed_mobilenet_nospin_roundto.md
    python -m benchmarks run structured_speed --config mobilenet_spin                   # -> benchmarks/results/structured_speed_mobilenet_spin.md
    python -m benchmarks run structured_speed --config mobilenet_spin_ratio05_07        # -> benchmarks/results/structured_speed_mobilenet_spin_ratio05_07.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from compressor.io.artifact import load_model
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.structured import norm
from compressor.stats import count_macs

RESULTS = Path(__file__).parent / "results"
TORCHVISION = ["resnet18", "resnet50", "mobilenet_v2"]
SAMPLES = ["simple_cnn", "resnet_small", "vgg_bn", "mlp", "tiny_vit"]


def session(path: Path, threads: int, spin: bool = False):
    """A CPU session with a fixed thread count and full graph optimisation.

    Sessions are timed interleaved, so with several threads spinning is off (as in ``compress
    bench --baseline``): an idle pool's spinning worker would take the core the other session needs.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if threads > 1 and not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def interleaved(
    a, b, x: np.ndarray, rounds: int, warmup: int = 3, block: int = 1
) -> tuple[float, float, float]:
    """Median latency (ms) of sessions ``a`` and ``b`` timed A B, B A, ..., and the median of the
    per-pair ratios a/b (each pair runs back to back, so a slow spell of the machine cancels).

    ``block`` > 1 times ``block`` runs of one session, then ``block`` of the other, and pairs the
    blocks' medians: with ORT's thread spinning on, the idle pool of the session that just ran spins
    for a moment and slows only the first run of the next block, which the block median ignores.
    """
    feeds = {a.get_inputs()[0].name: x}
    times: tuple[list[float], list[float]] = ([], [])
    order = [(a, times[0]), (b, times[1])]
    for i in range(warmup + rounds):
        for sess, store in order:
            runs = []
            for _ in range(block):
                start = time.perf_counter()
                sess.run(None, feeds)
                runs.append((time.perf_counter() - start) * 1e3)
            if i >= warmup:
                store.append(statistics.median(runs))
        order.reverse()
    pairs = [ta / tb for ta, tb in zip(*times)]
    return statistics.median(times[0]), statistics.median(times[1]), statistics.median(pairs)


def export(model: torch.nn.Module, x: torch.Tensor, path: Path) -> Path:
    """Legacy TorchScript-based export (static shapes, batch 1)."""
    torch.onnx.export(model.eval(), (x,), str(path), dynamo=False, input_names=["x"])
    return path


def ref_of(name: str) -> str:
    return f"sample:{name}" if name in SAMPLES else f"torchvision:{name}"


def bench_model(
    name: str,
    ratios: list[float],
    rounds: int,
    tmp: Path,
    scope: str = "global",
    round_tos: list[int] | None = None,
    keep_residual: tuple[bool, ...] = (False,),
    spin: bool = False,
    block: int = 1,
    ignore: tuple[str, ...] = (),
) -> list[dict]:
    """Every ratio / round_to variant of one model against its dense baseline."""
    dense = load_model(ref_of(name), input_shape=None)
    x = dense.example_input()
    base_macs = count_macs(dense.module, x)
    base_onnx = export(dense.module, x, tmp / f"{name}.onnx")
    rows = []
    for ratio in ratios:
        variants = [
            (r, k)
            for r in (round_tos or ([None, 8] if name in TORCHVISION else [None]))
            for k in keep_residual
        ]
        for round_to, keep in variants:
            handle = load_model(ref_of(name))
            norm.run(
                handle,
                PruneConfig(
                    "l1",
                    ratio=ratio,
                    round_to=round_to or None,
                    scope=scope,
                    keep_residual=keep,
                    ignore=ignore,
                ),
                PruneContext(),
            )
            macs = count_macs(handle.module, x)
            pruned = export(handle.module, x, tmp / f"{name}_{ratio}_{round_to}_{keep}.onnx")
            for threads in (1, 2):
                t_dense, t_pruned, paired = interleaved(
                    session(base_onnx, threads, spin),
                    session(pruned, threads, spin),
                    x.numpy(),
                    rounds,
                    block=block,
                )
                row = {
                    "model": name,
                    "scope": scope,
                    "ratio": ratio,
                    "round_to": round_to or 1,
                    "keep_residual": keep,
                    "ignore": list(ignore),
                    "threads": threads,
                    "macs_dense": base_macs,
                    "macs_pruned": macs,
                    "mac_reduction": base_macs / macs,
                    "latency_ms_dense": t_dense,
                    "latency_ms_pruned": t_pruned,
                    "speedup": paired,
                    "speedup_of_medians": t_dense / t_pruned,
                }
                row["efficiency"] = row["speedup"] / row["mac_reduction"]
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def table(rows: list[dict], command: str, load: str, spin: bool = False, block: int = 1) -> str:
    lines = [
        "# Structured pruning: MAC reduction vs measured ONNX Runtime CPU speed-up\n",
        f"Command: `{command}`\n",
        "l1, batch 1, ONNX Runtime CPU, medians of interleaved dense/pruned "
        f"runs on this 2-core machine ({load}). The interleaving makes the ratios comparable "
        "when other jobs run. MAC reduction is theoretical; speed-up is measured: the median of the "
        "per-pair ratios (dense run / pruned run, back to back, order alternating); efficiency = "
        "speed-up / MAC reduction. residual: `--keep-residual` (channels joined by residual "
        "additions kept; only channels inside blocks pruned). 2-thread sessions run with ONNX Runtime's "
        f"thread spinning {'ON (--spin)' if spin else 'off'}: interleaved, a spinning idle pool takes "
        f"the core the other session needs. Runs per interleaved block: {block} (pairs compare "
        "block medians; blocks of several runs let a spinning pool slow only the first run of a block).\n",
        "| model | scope | ratio | round_to | residual | ignored | threads | MACs dense | MACs pruned | "
        "MAC reduction | dense ms | pruned ms | speed-up | efficiency |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kept = "kept" if r.get("keep_residual") else "pruned"
        lines.append(
            f"| {r['model']} | {r.get('scope', 'global')} | {r['ratio']} | {r['round_to']} | {kept} | {' '.join(r.get('ignore', [])) or '-'} | {r['threads']} | {r['macs_dense']:,} | "
            f"{r['macs_pruned']:,} | {r['mac_reduction']:.2f}x | {r['latency_ms_dense']:.2f} | "
            f"{r['latency_ms_pruned']:.2f} | {r['speedup']:.2f}x | {r['efficiency']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=TORCHVISION + SAMPLES)
    parser.add_argument("--ratios", nargs="*", type=float, default=[0.3, 0.5, 0.7])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--scope", default="global", choices=["global", "layer"])
    parser.add_argument(
        "--round-to",
        nargs="*",
        type=int,
        default=None,
        help="round_to variants (1: none); default: 1 and 8 for torchvision models",
    )
    parser.add_argument(
        "--keep-residual",
        nargs="*",
        default=["off"],
        choices=["off", "on"],
        help="--keep-residual variants to measure (off, on or both)",
    )
    parser.add_argument(
        "--ignore",
        nargs="*",
        default=[],
        help="module-name patterns never pruned (compress prune --ignore), e.g. features.0.0",
    )
    parser.add_argument("--out", default=str(RESULTS / "structured_speed"))
    parser.add_argument(
        "--spin",
        action="store_true",
        help="keep ONNX Runtime's default thread spinning with 2 threads (how a deployed "
        "session runs; the first results used it with --block 1); pair it with "
        "--block 50 so the idle session's spinning pool slows only a block's first runs",
    )
    parser.add_argument(
        "--block",
        type=int,
        default=1,
        help="runs per interleaved block (A x N, B x N, ...); pairs compare block medians",
    )
    args = parser.parse_args()
    import sys

    command = " ".join(["python -m benchmarks.structured_speed", *sys.argv[1:]])
    rows = []
    start = "/".join(f"{v:.1f}" for v in os.getloadavg())
    keep = tuple(v == "on" for v in args.keep_residual)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows += bench_model(
                name,
                args.ratios,
                args.rounds,
                Path(tmp),
                args.scope,
                args.round_to,
                keep,
                args.spin,
                args.block,
                tuple(args.ignore),
            )
    load = (
        f"load average (1/5/15 min) {start} at the start, "
        + "/".join(f"{v:.1f}" for v in os.getloadavg())
        + " at the end"
    )
    RESULTS.mkdir(exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1))
    Path(args.out + ".md").write_text(table(rows, command, load, args.spin, args.block))


if __name__ == "__main__":
    main()

"""Latency of each run after a switch between two 2-thread ONNX Runtime sessions (spinning on, ORT's
default): A x K, B x K, repeated; the median per position in the block. Shows how long the idle
session's spinning pool slows the other one, which is why ``compress bench --baseline`` with several
threads times in blocks after a settle (docs/bench.md).

    python -m benchmarks.switch_profile A.onnx B.onnx [--block 10] [--rounds 40]

Command (from the repository root; further arguments pass through)::

    python -m benchmarks run switch_profile   # -> benchmarks/results/switch_profile.md
"""

import argparse
import statistics
import time

import numpy as np

from benchmarks.structured_speed import session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs=2)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sessions = [session(m, args.threads, spin=True) for m in args.models]
    shape = [d if isinstance(d, int) else 1 for d in sessions[0].get_inputs()[0].shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    feeds = [{s.get_inputs()[0].name: x} for s in sessions]
    times = [[[] for _ in range(args.block)] for _ in sessions]
    for _ in range(args.rounds):
        for s, f, per in zip(sessions, feeds, times):
            for i in range(args.block):
                start = time.perf_counter()
                s.run(None, f)
                per[i].append((time.perf_counter() - start) * 1e3)
    for name, per in zip(args.models, times):
        print(
            f"{name}: median ms by run after the switch: "
            + " ".join(f"{statistics.median(v):.2f}" for v in per)
        )


if __name__ == "__main__":
    main()

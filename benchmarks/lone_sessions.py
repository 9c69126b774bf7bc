"""Latency of ONNX models each timed alone (one session at a time, ORT defaults, spinning on), at 1 and
2 intra-op threads: the check that block-interleaved timing (structured_speed.py --spin --block 50)
reproduces what a deployed session sees. Each model runs 30 warm-up + 300 timed runs, twice, in turn.

    python -m benchmarks.lone_sessions dense.onnx pruned.onnx

Command (from the repository root; further arguments pass through)::

    python -m benchmarks run lone_sessions   # -> benchmarks/results/structured_speed_layer.md
"""

import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

from benchmarks.structured_speed import session


def median_ms(path: str, threads: int, x: np.ndarray, runs: int = 300) -> float:
    sess = session(path, threads, spin=True)  # the benchmark's session settings, ORT's default spinning
    feeds = {sess.get_inputs()[0].name: x}
    for _ in range(30):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    dense, pruned = sys.argv[1:3]
    shape = [d if isinstance(d, int) else 1 for d in ort.InferenceSession(dense).get_inputs()[0].shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for threads in (1, 2):
        res = {m: [] for m in (dense, pruned)}
        for _ in range(2):
            for m in (dense, pruned):
                res[m].append(median_ms(m, threads, x))
        ratio = statistics.mean(res[dense]) / statistics.mean(res[pruned])
        print(
            f"threads {threads}: "
            + ", ".join(f"{m} {' / '.join(f'{v:.2f}' for v in vs)} ms" for m, vs in res.items())
            + f"; speed-up {ratio:.2f}"
        )


if __name__ == "__main__":
    main()

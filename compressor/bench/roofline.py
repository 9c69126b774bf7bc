"""Roofline floor: the fastest a model could run if every MAC ran at the machine's peak.

The peak FLOP/s is measured, not looked up: a float32 matrix product (the best case for any
BLAS) is timed a few times with the profile's thread count, once per process and setting.
The floor is ``2 * MACs * batch / peak``; efficiency is ``floor / median latency`` (1.0 would
be a model that is pure matmul at peak speed; small, memory-bound models sit far below).
"""

from __future__ import annotations

import functools
import time

PROBE_N_CPU = 384
PROBE_N_CUDA = 4096
PROBE_S = 0.25  # long enough for a stable best-of, short enough for every bench call


def floor_ms(macs: int, batch: int, peak_flops: float) -> float:
    """Lower bound on latency in ms: 2 FLOPs per MAC at the peak rate."""
    return 2.0 * macs * batch / peak_flops * 1000.0 if peak_flops > 0 else 0.0


def efficiency(floor: float, median_ms: float) -> float:
    """Share of the peak the measured median reaches (floor / median)."""
    return floor / median_ms if median_ms > 0 else 0.0


@functools.cache
def peak_flops(device: str = "cpu", threads: int = 1) -> float:
    """Best float32 matmul FLOP/s on ``device`` with ``threads`` CPU threads (cached per process).

    More threads can never lower the true peak, so a multi-thread probe that lost to a busy
    machine falls back to the single-thread figure.
    """
    probe = _probe(device, threads)
    return max(probe, _probe(device, 1)) if device == "cpu" and threads > 1 else probe


@functools.cache
def _probe(device: str, threads: int) -> float:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        n = PROBE_N_CUDA if device == "cuda" else PROBE_N_CPU
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        best = _best_time(lambda: torch.mm(a, b), device)
    finally:
        torch.set_num_threads(previous)
    return 2.0 * n**3 / best


def _best_time(fn, device: str) -> float:
    """Shortest wall time of ``fn`` over at least 3 calls and ``PROBE_S`` seconds."""
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn()
    sync()
    best, start, calls = float("inf"), time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - start < PROBE_S:
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return best

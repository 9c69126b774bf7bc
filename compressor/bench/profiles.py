"""Bench profiles: named presets of one dataclass; every field can be overridden by a flag.

Pure Python (no torch) so that ``compress list`` and ``--help`` stay fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    """How to measure latency for one deployment target."""

    name: str
    summary: str
    batch: int = 1  # mobile/edge serve one request at a time
    threads: int = 1  # phones pin inference to one big core
    provider: str = "cpu"
    graph_optimization: str = "all"  # ORT's full graph optimisation, as deployed
    warmup: int = 10  # enough to fill caches and let ORT pick kernels
    min_runs: int = 50  # enough runs for p90/p99 to mean something
    min_time_s: float = 1.0  # and at least this long, so short models get many runs

    def override(self, **changes) -> "Profile":
        """A copy with the non-None ``changes`` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile("mobile", "batch 1, one thread: a phone-class CPU core"),
        Profile("edge", "batch 1, 2 threads: a small multi-core edge board", threads=2),
        Profile("server", "batch 32, all cores (or the GPU): throughput serving", batch=32,
                threads=os.cpu_count() or 1, min_runs=20),
    ]
}

"""Bench profiles: named presets of one dataclass; every field can be overridden by a flag.

Pure Python (no torch) so that ``compress list`` and ``--help`` stay fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from compressor.errors import UsageError, unknown_name

DEVICES = ("cpu", "cuda", "auto")
GRAPH_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class Profile:
    """How to measure latency for one deployment target.

    Attributes:
        name: preset name.
        summary: one line for ``compress list``.
        batch: samples per inference; mobile/edge serve one request at a time.
        threads: intra-op threads; phones pin inference to one big core.
        device: cpu, cuda or auto (the GPU when there is one, else the CPU).
        graph_optimization: ONNX Runtime graph optimisation level; ``all`` is what is deployed.
        warmup: untimed runs first, enough to fill caches and let ORT pick kernels.
        min_runs: at least this many timed runs, so p90/p99 mean something.
        min_time_s: and at least this long, so fast models get many runs.
        max_time_s: stop after this long even below ``min_runs`` (0: no limit), so slow models end.
    """

    name: str
    summary: str
    batch: int = 1
    threads: int = 1
    device: str = "cpu"
    graph_optimization: str = "all"
    warmup: int = 10
    min_runs: int = 50
    min_time_s: float = 1.0
    max_time_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("batch", "threads", "min_runs"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "min_time_s", "max_time_s"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.device not in DEVICES:
            raise unknown_name("device", self.device, DEVICES)
        if self.graph_optimization not in GRAPH_LEVELS:
            raise unknown_name("graph optimisation level", self.graph_optimization, GRAPH_LEVELS)

    def override(self, **changes) -> Profile:
        """A copy with the non-None ``changes`` applied; unknown fields are usage errors."""
        known = {f.name for f in fields(self)}
        for key in changes:
            if key not in known:
                raise unknown_name("profile field", key, known)
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile("mobile", "batch 1, one thread: a phone-class CPU core"),
        Profile("edge", "batch 1, 2 threads: a small multi-core edge board", threads=2),
        # Throughput serving batches requests and owns the machine; 20 runs of a big batch
        # already take long enough for stable medians.
        Profile(
            "server",
            "batch 32, all cores or the GPU: throughput serving",
            batch=32,
            threads=os.cpu_count() or 1,
            device="auto",
            min_runs=20,
        ),
    ]
}


def get_profile(name: str) -> Profile:
    """The preset called ``name`` (exit 2 with the valid names otherwise)."""
    if name not in PROFILES:
        raise unknown_name("profile", name, PROFILES)
    return PROFILES[name]

"""Latency statistics: pure functions over a list of per-run times in milliseconds.

Percentiles use linear interpolation between order statistics (numpy's default), so p50 is
the usual median. The coefficient of variation (std / mean) flags noisy measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from compressor.errors import UsageError

CV_WARNING = 0.10  # above this, the run-to-run spread is too large to trust small differences


@dataclass(frozen=True)
class LatencyStats:
    """Summary of ``runs`` timed inferences of ``batch`` samples each."""

    runs: int
    batch: int
    latency_ms_p50: float
    latency_ms_mean: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_min: float
    latency_ms_iqr: float
    latency_cv: float
    throughput_samples_per_s: float

    def to_json(self) -> dict[str, float | int]:
        """Flat keys with units."""
        return asdict(self)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation."""
    return float(np.percentile(np.asarray(samples, dtype=float), q))


def iqr(samples: Sequence[float]) -> float:
    """Inter-quartile range p75 - p25."""
    return percentile(samples, 75) - percentile(samples, 25)


def cv(samples: Sequence[float]) -> float:
    """Coefficient of variation: population std / mean (0 for a constant or zero mean)."""
    arr = np.asarray(samples, dtype=float)
    mean = float(arr.mean())
    return float(arr.std() / mean) if mean > 0 else 0.0


def throughput(median_ms: float, batch: int) -> float:
    """Samples per second at the median latency."""
    return batch * 1000.0 / median_ms if median_ms > 0 else float("inf")


def summarize(samples_ms: Sequence[float], batch: int = 1) -> LatencyStats:
    """All figures of one latency sample."""
    if len(samples_ms) == 0:
        raise UsageError("no timed runs to summarise", "use --runs 1 or more")
    arr = np.asarray(samples_ms, dtype=float)
    p50 = percentile(arr, 50)
    return LatencyStats(
        runs=len(arr),
        batch=batch,
        latency_ms_p50=p50,
        latency_ms_mean=float(arr.mean()),
        latency_ms_p90=percentile(arr, 90),
        latency_ms_p99=percentile(arr, 99),
        latency_ms_min=float(arr.min()),
        latency_ms_iqr=iqr(arr),
        latency_cv=cv(arr),
        throughput_samples_per_s=throughput(p50, batch),
    )


def paired_ratios(numerator_ms: Sequence[float], denominator_ms: Sequence[float]) -> list[float]:
    """Pairwise ``numerator[i] / denominator[i]`` over interleaved runs (the shorter length)."""
    n = min(len(numerator_ms), len(denominator_ms))
    return [numerator_ms[i] / denominator_ms[i] for i in range(n) if denominator_ms[i] > 0]


def speedup(model_ms: Sequence[float], baseline_ms: Sequence[float]) -> float:
    """Median of the pair-by-pair speed-ups baseline / model (>1: the model is faster)."""
    ratios = paired_ratios(baseline_ms, model_ms)
    if not ratios:
        raise UsageError("no paired runs to compare", "use --runs 1 or more")
    return float(np.median(ratios))


def noisy_warning(stats: LatencyStats, label: str = "") -> str | None:
    """A warning line when the CV is above 10%, else None."""
    if stats.latency_cv <= CV_WARNING:
        return None
    who = f"{label}: " if label else ""
    return (
        f"{who}latency varies a lot (CV {stats.latency_cv:.0%} > {CV_WARNING:.0%}): the machine is "
        "busy or the run is short; raise --min-time or close other work before trusting it"
    )

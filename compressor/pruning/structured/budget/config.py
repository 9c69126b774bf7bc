"""The budget a structured method prunes to, and how it lands on it: one dataclass, torch-free.

Exactly one target: a measured speed-up or latency on the profile's runtime, or a fraction of the
MACs or parameters, or the bytes of the exported ONNX file. Every default of the budget engine
lives here; the CLI, recipes and the Python API read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressor.errors import UsageError, unknown_name

TARGETS = ("target_speedup", "target_latency_ms", "target_macs", "target_params", "target_size")
MEASURED = ("speedup", "latency_ms")  # noisy: landed within the speed-up band; the rest are exact


def flag(name: str) -> str:
    """``target_speedup`` -> ``--target-speedup``."""
    return "--" + name.replace("_", "-")


CHANNEL_BLOCK = 8  # channels ONNX Runtime's x86 CPU kernels process at once (AVX2; 16 with AVX-512)


@dataclass(frozen=True)
class BudgetConfig:
    """A budget and the settings of the engine that lands on it.

    Attributes:
        target_speedup: measured speed-up over the dense model on the profile (> 1).
        target_latency_ms: measured median latency on the profile, in ms.
        target_macs: keep at most this fraction of the dense MACs, in (0, 1).
        target_params: keep at most this fraction of the dense parameters, in (0, 1).
        target_size: at most these bytes of the exported ONNX file ("2MB", "500KiB" or bytes).
        profile: the bench profile latency is measured under (threads, batch, graph optimisation).
        runs / warmup / min_time_s: override the profile's timed runs, warm-up runs and minimum
            seconds of the whole-model measurements (None: the profile's).
        speedup_low / speedup_high: a latency target has landed when the measured speed-up is
            within [low * T, high * T] (a latency target L: T = dense latency / L); MAC, parameter
            and size targets have landed at or under the target and within 1 / high of it.
        retries: after the first plan, at most this many re-planned attempts when the measured
            figure is outside the band (the internal target is rescaled by what was measured).
        cost_cache: the cost model's cache folder (None: ``$COMPRESSOR_COSTMODEL_DIR``, else
            ``~/.cache/compressor/costmodel``).
        grid: fractions of each dense width at which every layer's latency is measured.
        unit: latency targets: widths are multiples of this when ``--round-to`` is not given:
            vector kernels run whole blocks of 8 (AVX2) or 16 (AVX-512) channels, so other counts
            save little (MAC, parameter and size targets step by one channel).
        point_runs / point_time_s / point_passes: timed runs (at least, and at least this long)
            per cost-model point in each of ``point_passes`` passes over the points; the median is
            kept. One point timed in one go lasts a few milliseconds and a spell of a slower
            machine skews it: two builds of mobilenet_small's cost model on an idle machine
            differed by a median 12 us a point (one go of 5 runs, at least 20 ms) against
            about 3 us with the points timed in passes.
        lookahead: the allocation compares cutting each group by 1 to this many width steps, so
            a cut that pays only past a kernel's block boundary is still seen.
        exporter: the ONNX exporter of the measured graphs (as ``compress export --exporter``).
        sensitivity: a ``sensitivity.json`` of this model (``compress sensitivity``): each group's
            cut is priced by its measured accuracy drop instead of by its channels' scores.
        reach_share: a latency target beyond the cost model's reach (over the floor plan's
            predicted speed-up) is planned to this share of the largest predicted time saving, not
            to the floor: the last cuts before the floor buy little time for much accuracy
            (resnet_small at 3x: the floor plan measured 2.1-2.3x and kept 48% accuracy after
            fine-tuning, a uniform cut at 2.25x kept 86%).
        closest_share: when even the fastest measured plan falls short of a latency target, the
            least-cut plan measured within this share of the fastest one is kept (found by a
            bisection of at most ``retries`` more plans): near the floor, the cost model promises
            time that op overhead does not give back.
    """

    target_speedup: float | None = None
    target_latency_ms: float | None = None
    target_macs: float | None = None
    target_params: float | None = None
    target_size: str | None = None
    profile: str = "mobile"
    runs: int | None = None
    warmup: int | None = None
    min_time_s: float | None = None
    speedup_low: float = 0.95
    speedup_high: float = 1.15
    retries: int = 3
    cost_cache: str | None = None
    grid: tuple[float, ...] = (1.0, 0.75, 0.5, 0.3, 0.1)
    unit: int = CHANNEL_BLOCK
    point_runs: int = 5
    point_time_s: float = 0.005
    point_passes: int = 7
    lookahead: int = 4
    exporter: str = "auto"
    sensitivity: str | None = None
    reach_share: float = 0.95
    closest_share: float = 0.95

    def __post_init__(self) -> None:
        given = [name for name in TARGETS if getattr(self, name) is not None]
        if len(given) != 1:
            raise UsageError(
                f"a budget takes exactly one target, got {len(given)}"
                + (f" ({', '.join(flag(n) for n in given)})" if given else ""),
                f"give one of {', '.join(flag(n) for n in TARGETS)}",
            )
        self._check_target()
        from compressor.bench.profiles import get_profile

        get_profile(self.profile)
        self._check_settings()

    def _check_target(self) -> None:
        if self.target_speedup is not None and not self.target_speedup > 1:
            raise UsageError(
                f"--target-speedup must be > 1, got {self.target_speedup}", "e.g. --target-speedup 2"
            )
        if self.target_latency_ms is not None and not self.target_latency_ms > 0:
            raise UsageError(f"--target-latency-ms must be > 0, got {self.target_latency_ms}")
        for name in ("reach_share", "closest_share"):
            if not 0 < getattr(self, name) <= 1:
                raise UsageError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        for name in ("target_macs", "target_params"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise UsageError(
                    f"{flag(name)} must be a fraction in (0, 1), got {value}",
                    f"e.g. {flag(name)} 0.5 keeps half",
                )
        if self.target_size is not None and not self.size_bytes > 0:
            raise UsageError(f"--target-size must be > 0, got {self.target_size}", "e.g. --target-size 2MB")

    def _check_settings(self) -> None:
        if not 0 < self.speedup_low <= 1 <= self.speedup_high:
            raise UsageError(
                f"the landing band needs 0 < low <= 1 <= high, got [{self.speedup_low}, {self.speedup_high}]"
            )
        for name in ("retries", "warmup"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{flag(name)[2:]} must be >= 0, got {value}")
        for name in ("unit", "point_runs", "point_passes", "lookahead", "runs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name.replace('_', ' ')} must be >= 1, got {value}")
        if not self.grid or any(not 0 < f <= 1 for f in self.grid):
            raise UsageError(f"grid fractions must be in (0, 1], got {self.grid}")
        from compressor.export.config import EXPORTERS

        if self.exporter not in EXPORTERS:
            raise unknown_name("exporter", self.exporter, EXPORTERS)

    @property
    def kind(self) -> str:
        """``speedup``, ``latency_ms``, ``macs``, ``params`` or ``size``."""
        return next(n for n in TARGETS if getattr(self, n) is not None).removeprefix("target_")

    @property
    def measured(self) -> bool:
        """Whether the target is a latency (timed, noisy) rather than an exact count."""
        return self.kind in MEASURED

    @property
    def size_bytes(self) -> int:
        """``target_size`` in bytes."""
        from compressor.bench.gates import parse_size

        return parse_size(self.target_size)

    @property
    def value(self) -> float:
        """The target as a number (bytes for a size)."""
        return float(self.size_bytes) if self.kind == "size" else float(getattr(self, f"target_{self.kind}"))

    def option(self) -> str:
        """The target as its flag, e.g. ``--target-speedup 2``."""
        name = f"target_{self.kind}"
        return f"{flag(name)} {getattr(self, name)}"

    def describe(self) -> str:
        """``speed-up 2x``, ``latency 3.5 ms``, ``MACs 0.5 of dense`` ... for reports."""
        return {
            "speedup": f"speed-up {self.value:g}x",
            "latency_ms": f"latency {self.value:g} ms",
            "macs": f"MACs at most {self.value:g} of dense",
            "params": f"params at most {self.value:g} of dense",
            "size": f"ONNX file at most {int(self.value):,} bytes",
        }[self.kind]

    def bench_profile(self):
        """The profile with the run overrides applied."""
        from compressor.bench.profiles import get_profile

        return get_profile(self.profile).override(
            min_runs=self.runs, warmup=self.warmup, min_time_s=self.min_time_s
        )


def from_options(settings: dict[str, object]) -> BudgetConfig | None:
    """A budget from flag values (None: not given); None when no target and no budget setting is
    given. A budget setting (``--profile``) without a target is a usage error."""
    given = {k: v for k, v in settings.items() if v is not None}
    if not given:
        return None
    if not any(k in TARGETS for k in given):
        names = ", ".join(flag(k) for k in given)
        raise UsageError(f"{names} applies to a target", f"add one of {', '.join(flag(n) for n in TARGETS)}")
    return BudgetConfig(**given)

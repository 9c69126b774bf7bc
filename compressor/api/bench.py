"""``compress bench``: latency, size and cost of a model under a profile, with CI gates.

Latency is measured, never derived from MACs: MACs and the roofline floor are printed beside it
as theoretical figures. With a baseline both models are timed interleaved in one process and the
speed-up is the median of the pair-by-pair ratios, so machine noise hits both alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from compressor.api.common import ModelSpec, Progress, with_model
from compressor.bench.config import BenchConfig
from compressor.bench.gates import GateResult, GateSpec, load_gate_file, parse_size
from compressor.bench.latency import LatencyStats
from compressor.bench.profiles import PROFILES, Profile, get_profile

__all__ = [
    "BenchConfig",
    "BenchResult",
    "ModelBench",
    "bench",
    "GateSpec",
    "load_gate_file",
    "parse_size",
    "PROFILES",
    "Profile",
    "get_profile",
]

RSS_NOTE = "peak RSS is the whole process (Python, libraries and every model loaded in this run)"


@dataclass(frozen=True)
class ModelBench:
    """Figures of one measured model."""

    path: str
    backend: str
    batch: int
    session_ms: float
    first_inference_ms: float
    stats: LatencyStats
    figures: dict[str, Any]
    samples_ms: list[float]
    roofline_floor_ms: float
    roofline_efficiency: float
    accuracy: float | None = None

    def flat(self) -> dict[str, Any]:
        """Flat keys with units."""
        return {
            "path": self.path,
            "backend": self.backend,
            "batch": self.batch,
            "session_ms": self.session_ms,
            "first_inference_ms": self.first_inference_ms,
            **self.stats.to_json(),
            **{k: v for k, v in self.figures.items() if k in FIGURE_KEYS},
            "roofline_floor_ms": self.roofline_floor_ms,
            "roofline_efficiency": self.roofline_efficiency,
            "accuracy": self.accuracy,
            "latency_ms_samples": self.samples_ms,
        }


FIGURE_KEYS = ("params", "nonzero_params", "sparsity", "macs", "size_bytes", "compressed_bytes")


@dataclass(frozen=True)
class BenchResult:
    """The model's figures, the baseline's, the comparison and the gates."""

    profile: Profile
    device: str
    model: ModelBench
    baseline: ModelBench | None
    speedup: float | None
    size_ratio: float | None
    peak_flops: float
    peak_rss_bytes: int
    gates: list[GateResult]
    notes: list[str]
    warnings: list[str]
    plot: str | None = None

    @property
    def passed(self) -> bool:
        """True when every requested gate passed."""
        return all(g.passed for g in self.gates)

    def to_json(self) -> dict[str, Any]:
        """One flat document: model keys bare, baseline keys prefixed ``baseline_``."""
        doc = {
            "profile": self.profile.name,
            "device": self.device,
            "threads": self.profile.threads,
            "warmup": self.profile.warmup,
            "min_time_s": self.profile.min_time_s,
            "graph_optimization": self.profile.graph_optimization,
            **self.model.flat(),
            "peak_gflops": self.peak_flops / 1e9,
            "peak_rss_bytes": self.peak_rss_bytes,
        }
        if self.baseline:
            doc.update({f"baseline_{k}": v for k, v in self.baseline.flat().items()})
            doc.update(
                {
                    "speedup": self.speedup,
                    "size_ratio": self.size_ratio,
                    "accuracy_drop": _drop(self.baseline.accuracy, self.model.accuracy),
                }
            )
        doc.update(
            {
                "gates": [asdict(g) for g in self.gates],
                "gates_passed": self.passed,
                "notes": self.notes,
                "warnings": self.warnings,
                "plot": self.plot,
            }
        )
        return doc


def _drop(base: float | None, model: float | None) -> float | None:
    return None if base is None or model is None else base - model


def bench(
    model: ModelSpec | str | BenchConfig | None,
    config: BenchConfig | None = None,
    output: None = None,
    *,
    progress: Progress | None = None,
) -> BenchResult:
    """Measure ``model`` (and the baseline, interleaved), evaluate the gates, write the plot.

    ``bench(config)``, with the model in ``config.model``, is the older call and still works.
    """
    from compressor.bench import roofline, runner

    if isinstance(model, BenchConfig):  # bench(config)
        model, config = None, model
    cfg, spec = with_model(config if config is not None else BenchConfig(), "model", model)
    if cfg.plot:
        from compressor.io.atomic import check_writable

        check_writable(cfg.plot)
    specs = [spec] + ([cfg.baseline] if cfg.baseline else [])
    from compressor import registry

    device = runner.resolve_device(
        cfg.profile.device, [registry.backend_for(s.path).onnxruntime for s in specs]
    )
    backends = [runner.make_backend(s, cfg.profile, device) for s in specs]
    timings = runner.measure(backends, cfg.profile)
    peak = roofline.peak_flops(device, cfg.profile.threads)
    benches = [_model_bench(s, b, t, peak, cfg) for s, b, t in zip(specs, backends, timings, strict=True)]
    result = _result(cfg, device, benches, peak, backends)
    if cfg.plot:
        from compressor.bench.report import plot

        plot(result.to_json(), cfg.plot)
    return result


def _model_bench(spec: ModelSpec, backend, timing, peak: float, cfg: BenchConfig) -> ModelBench:
    from compressor.bench import roofline
    from compressor.bench.latency import summarize

    stats = summarize(timing.samples_ms, backend.batch)
    floor = roofline.floor_ms(backend.figures["macs"], backend.batch, peak)
    return ModelBench(
        spec.path,
        backend.name,
        backend.batch,
        backend.session_ms,
        timing.first_inference_ms,
        stats,
        backend.figures,
        timing.samples_ms,
        floor,
        roofline.efficiency(floor, stats.latency_ms_p50),
        _accuracy(spec, cfg),
    )


def _accuracy(spec: ModelSpec, cfg: BenchConfig) -> float | None:
    if not cfg.data:
        return None
    from compressor.api.evaluate import EvalConfig, evaluate

    return evaluate(
        spec, EvalConfig(data=cfg.data, split="test", limit=cfg.eval_limit, output=cfg.output)
    ).accuracy


def _result(cfg: BenchConfig, device: str, benches: list[ModelBench], peak: float, backends) -> BenchResult:
    from compressor.bench import runner
    from compressor.bench.gates import evaluate_gates
    from compressor.bench.latency import noisy_warning, speedup

    model, base = benches[0], (benches[1] if len(benches) > 1 else None)
    ratio = speed = None
    notes = list(dict.fromkeys(n for b in backends for n in b.notes)) + [RSS_NOTE]
    if base:  # per sample, so that a fixed-batch export still compares fairly
        speed = speedup(
            [t / model.batch for t in model.samples_ms], [t / base.batch for t in base.samples_ms]
        )
        ratio = model.figures["size_bytes"] / max(base.figures["size_bytes"], 1)
        if base.batch != model.batch:
            notes.append(f"batch {model.batch} vs baseline batch {base.batch}: speed-up is per sample")
    figures = {
        **model.flat(),
        "speedup": speed,
        "accuracy_drop": _drop(base.accuracy, model.accuracy) if base else None,
    }
    if any(b.figures["sparsity"] > 0.2 for b in benches):
        from compressor.stats import MASK_NOTE

        notes.insert(0, MASK_NOTE)
    warnings = [w for b in benches if (w := noisy_warning(b.stats, b.path))]
    if any(b.roofline_efficiency > 1 for b in benches):
        warnings.append(
            "measured faster than the roofline floor: the peak FLOP/s probe ran on a busy "
            "machine, so the floor and efficiency are not meaningful in this run"
        )
    return BenchResult(
        cfg.profile,
        device,
        model,
        base,
        speed,
        ratio,
        peak,
        runner.peak_rss_bytes(),
        evaluate_gates(cfg.gates, figures),
        notes,
        warnings,
        cfg.plot,
    )

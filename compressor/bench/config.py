"""The ``compress bench`` config: what to measure, how, and which gates to apply."""

from __future__ import annotations

from dataclasses import dataclass, field

from compressor.bench.gates import GateSpec
from compressor.bench.profiles import PROFILES, Profile
from compressor.errors import UsageError
from compressor.io.spec import ModelSpec


@dataclass(frozen=True)
class BenchConfig:
    """What to measure, how, and which gates to apply.

    Attributes:
        model: the model to bench (.onnx via ONNX Runtime, anything else via PyTorch); None when
            it is given to the API call instead (``bench(model, config)``).
        profile: measurement settings (a preset with flag overrides).
        baseline: a model to compare against, timed interleaved with ``model``.
        gates: requested limits.
        data: data spec for accuracy (needed by the accuracy gates).
        eval_limit: evaluate accuracy on at most this many samples.
        output: the model output the accuracy is measured on, by name (as ``compress eval
            --output``); None: the only one, or the first of several.
        plot: write a PNG of the latency distribution here.
    """

    model: ModelSpec | None = None
    profile: Profile = PROFILES["mobile"]
    baseline: ModelSpec | None = None
    gates: GateSpec = field(default_factory=GateSpec)
    data: str | None = None
    eval_limit: int | None = None
    plot: str | None = None
    output: str | None = None

    def __post_init__(self) -> None:
        self.gates.check_inputs(self.baseline is not None, self.data is not None)
        if self.eval_limit is not None and self.eval_limit <= 0:
            raise UsageError(f"--eval-limit must be > 0, got {self.eval_limit}")

"""What a budget is measured by, and each layer's share of it.

A meter gives the dense model's figure once and compares a pruned model with it: latency targets
export both to ONNX (as ``compress export`` writes them) and time them interleaved on ONNX Runtime
under the profile (the speed-up is the median of the pair-by-pair ratios); size targets export and
read the file's bytes; MAC and parameter targets count. Each figure also has a per-layer cost
function of the layer's input and output widths: the measured latency cost model, or the layer's
MACs, parameters or float32 weight bytes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from compressor.bench.layergraph import LayerShape
from compressor.pruning.structured.budget.config import BudgetConfig

UNITS = {
    "speedup": "latency_ms",
    "latency_ms": "latency_ms",
    "macs": "macs",
    "params": "params",
    "size": "bytes",
}


@dataclass(frozen=True)
class Reading:
    """One comparison of a pruned model with the dense one.

    Attributes:
        dense / pruned: the figure of each (median ms, MACs, parameters or file bytes).
        factor: how many times smaller the pruned figure is (for latency: the measured speed-up,
            the median of the pair-by-pair ratios of interleaved runs).
        figures: flat extra figures (p50s, spread, runs, ONNX file bytes).
        notes: what the measurement wants said (busy machine, blocked timing).
    """

    dense: float
    pruned: float
    factor: float
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Meter(Protocol):
    """Measures the budget's figure."""

    def dense(self) -> float:
        """The dense model's figure."""

    def compare(self, module: nn.Module) -> Reading:
        """A pruned variant of the dense model against the dense one."""


def export_file(handle, module: nn.Module, path: Path, exporter: str) -> int:
    """Export ``module`` (with ``handle``'s metadata) to ``path`` as ``compress export`` would
    (parity is checked by ``compress export``, not here); returns the file's bytes."""
    from compressor.export.config import ExportConfig
    from compressor.export.pipeline import Inputs, run_onnx

    shape = tuple(handle.input_shape)
    example = torch.randn((2, *shape[1:]), generator=torch.Generator().manual_seed(0))
    inputs = Inputs(dataclasses.replace(handle, module=module.eval()), example, np.empty(0))
    out = run_onnx(inputs, ExportConfig(output=str(path), verify=False, exporter=exporter))
    return int(out.figures["size_bytes"])


@dataclass
class LatencyMeter:
    """Median latency on ONNX Runtime under the budget's profile, pruned and dense interleaved."""

    handle: Any
    budget: BudgetConfig
    folder: Path
    _dense: Any = None
    _dense_ms: float | None = None
    _count: int = 0

    def dense(self) -> float:
        from compressor.bench import runner
        from compressor.bench.latency import summarize

        if self._dense_ms is None:
            path = self.folder / "dense.onnx"
            self.dense_bytes = export_file(self.handle, self.handle.module, path, self.budget.exporter)
            self._dense = runner.OrtBackend(str(path), self.budget.bench_profile(), "cpu")
            timing = runner.measure([self._dense], self.budget.bench_profile())[0]
            self._dense_ms = summarize(timing.samples_ms, self._dense.batch).latency_ms_p50
        return self._dense_ms

    def compare(self, module: nn.Module) -> Reading:
        from compressor.bench import runner
        from compressor.bench.latency import noisy_warning, speedup, summarize

        self.dense()
        self._count += 1
        path = self.folder / f"pruned_{self._count}.onnx"
        size = export_file(self.handle, module, path, self.budget.exporter)
        pruned = runner.OrtBackend(str(path), self.budget.bench_profile(), "cpu")
        profile = self.budget.bench_profile()
        t_pruned, t_dense = runner.measure([pruned, self._dense], profile)
        s_pruned, s_dense = summarize(t_pruned.samples_ms), summarize(t_dense.samples_ms)
        factor = speedup(t_pruned.samples_ms, t_dense.samples_ms)
        notes = list(
            dict.fromkeys(
                pruned.notes
                + [w for w in (noisy_warning(s_pruned, "pruned"), noisy_warning(s_dense, "dense")) if w]
            )
        )
        figures = {
            "dense_latency_ms_p50": s_dense.latency_ms_p50,
            "latency_ms_p50": s_pruned.latency_ms_p50,
            "dense_latency_cv": s_dense.latency_cv,
            "latency_cv": s_pruned.latency_cv,
            "runs": s_pruned.runs,
            "speedup": factor,
            "dense_onnx_bytes": self.dense_bytes,
            "onnx_bytes": size,
        }
        return Reading(s_dense.latency_ms_p50, s_pruned.latency_ms_p50, factor, figures, notes)


@dataclass
class SizeMeter:
    """Bytes of the exported ONNX file."""

    handle: Any
    budget: BudgetConfig
    folder: Path
    _dense: int | None = None
    _count: int = 0

    def dense(self) -> float:
        if self._dense is None:
            self._dense = export_file(
                self.handle, self.handle.module, self.folder / "dense.onnx", self.budget.exporter
            )
        return float(self._dense)

    def compare(self, module: nn.Module) -> Reading:
        self._count += 1
        size = export_file(
            self.handle, module, self.folder / f"pruned_{self._count}.onnx", self.budget.exporter
        )
        dense = self.dense()
        return Reading(dense, float(size), dense / size, {"dense_onnx_bytes": int(dense), "onnx_bytes": size})


@dataclass
class CountMeter:
    """MACs (one forward pass at batch 1) or parameters."""

    handle: Any
    kind: str
    _dense: float | None = None

    def count(self, module: nn.Module) -> float:
        from compressor.stats import count_macs, count_params

        if self.kind == "macs":
            return float(count_macs(module, self.handle.example_input()))
        return float(count_params(module)[0])

    def dense(self) -> float:
        if self._dense is None:
            self._dense = self.count(self.handle.module)
        return self._dense

    def compare(self, module: nn.Module) -> Reading:
        dense, pruned = self.dense(), self.count(module)
        return Reading(dense, pruned, dense / pruned if pruned else math.inf)


def default_meter(budget: BudgetConfig, handle, folder: Path) -> Meter:
    """The meter of the budget's target."""
    if budget.measured:
        return LatencyMeter(handle, budget, folder)
    if budget.kind == "size":
        return SizeMeter(handle, budget, folder)
    return CountMeter(handle, budget.kind)


def out_spatial(shape: LayerShape) -> tuple[int, ...]:
    """A conv's output spatial dims."""
    return tuple(
        (d + 2 * p - dl * (k - 1) - 1) // s + 1
        for d, k, s, p, dl in zip(shape.spatial, shape.kernel, shape.stride, shape.padding, shape.dilation)
    )


def layer_macs(shape: LayerShape, cin: int, cout: int) -> float:
    """Multiply-accumulates of one layer at widths (cin, cout), batch 1."""
    if shape.kind == "linear":
        return float(cin * cout * math.prod(shape.spatial))
    return float(
        cout * (cin // shape.groups_at(cin)) * math.prod(shape.kernel) * math.prod(out_spatial(shape))
    )


def layer_params(shape: LayerShape, cin: int, cout: int) -> float:
    """Weights and bias of one layer at widths (cin, cout) (BatchNorm folds into the bias on export)."""
    if shape.kind == "linear":
        return float(cin * cout + cout)
    return float(cout * (cin // shape.groups_at(cin)) * math.prod(shape.kernel) + cout)


def count_fn(kind: str, shapes: dict[str, LayerShape]):
    """The per-layer cost function of a MAC, parameter or size target."""
    if kind == "macs":
        return lambda name, cin, cout: layer_macs(shapes[name], cin, cout)
    scale = 4.0 if kind == "size" else 1.0  # float32 bytes in the exported file
    return lambda name, cin, cout: scale * layer_params(shapes[name], cin, cout)


def intensity(shape: LayerShape, cin: int, cout: int) -> float:
    """MACs per float32 byte the layer reads and writes (input, output, weights): below a few
    dozen, a CPU layer waits on memory rather than on arithmetic."""
    if shape.kind == "linear":
        moved = math.prod(shape.spatial) * (cin + cout) + cin * cout
    else:
        moved = (
            cin * math.prod(shape.spatial)
            + cout * math.prod(out_spatial(shape))
            + cout * (cin // shape.groups_at(cin)) * math.prod(shape.kernel)
        )
    return layer_macs(shape, cin, cout) / max(4.0 * moved, 1.0)

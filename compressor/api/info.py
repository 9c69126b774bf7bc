"""``compress info``: what a model file holds and what it costs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from compressor.api.common import ModelSpec, as_spec

VERIFIED = "sha256 verified"
MASK_NOTE = ("masked zeros shrink the compressed file but do not speed up dense runtimes "
             "(ONNX Runtime on CPU runs them as dense weights)")


@dataclass(frozen=True)
class InfoResult:
    """Figures of one model file."""

    path: str
    kind: str
    ref: str | None
    params: int
    nonzero_params: int
    sparsity: float
    macs: int
    size_bytes: int
    compressed_bytes: int
    input_shape: list[int]
    layers: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    masked_layers: int = 0
    integrity: str = "no digest"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Flat keys with units."""
        return asdict(self)


def info(model: ModelSpec | str) -> InfoResult:
    """Inspect a PyTorch model (artifact, state_dict + arch, reference) or an ``.onnx`` file.

    The one API call outside ``f(model, config, output=None, *, progress=None)``: there is nothing
    to configure and nothing written.
    """
    spec = as_spec(model)
    if spec.is_onnx:
        return _onnx_info(spec)
    from compressor.stats import ESTIMATE_NOTE, compressed_is_estimate, layer_table, model_figures

    handle = spec.load()
    source = spec.path if handle.source_kind != "reference" else None
    figures = model_figures(handle.module, handle.example_input(), source)
    notes = [MASK_NOTE] if handle.masks or figures["sparsity"] > 0.2 else []
    notes += [ESTIMATE_NOTE] * (source is not None and compressed_is_estimate(figures["size_bytes"]))
    return InfoResult(
        path=spec.path, kind=handle.source_kind, ref=handle.ref, **figures,
        input_shape=list(handle.input_shape), layers=layer_table(handle.module),
        history=handle.history, metrics=handle.metrics, masked_layers=len(handle.masks),
        integrity=VERIFIED if handle.verified else "no digest", notes=notes)


def _onnx_info(spec: ModelSpec) -> InfoResult:
    from compressor.io import integrity
    from compressor.io.onnx_file import onnx_figures
    from compressor.stats import ESTIMATE_NOTE

    fig = onnx_figures(spec.path)
    shape = fig["inputs"][0]["shape"] if fig["inputs"] else []
    notes = [MASK_NOTE] if fig["sparsity"] > 0.2 else []
    history = [{"command": "export", "metadata": fig["metadata"]}] if fig["metadata"] else []
    return InfoResult(
        path=spec.path, kind="onnx", ref=fig["metadata"].get("compressor.ref"),
        params=fig["params"], nonzero_params=fig["nonzero_params"], sparsity=fig["sparsity"],
        macs=fig["macs"], size_bytes=fig["size_bytes"], compressed_bytes=fig["compressed_bytes"],
        input_shape=[d if isinstance(d, int) else 1 for d in shape], history=history,
        integrity=VERIFIED if integrity.ONNX_KEY in fig["metadata"] else "no digest",
        notes=notes + [f"opset {fig['opset']}, {fig['nodes']} nodes"]
        + [f"weights in {', '.join(fig['external_data'])} beside it (ONNX external data; file size counts "
           "both)"] * bool(fig["external_data"]) + [ESTIMATE_NOTE] * fig["compressed_estimated"])

"""``compress info``: what a model file holds and what it costs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from compressor.api.common import ModelSpec, as_spec


@dataclass(frozen=True)
class InfoResult:
    """Figures of one model file; ``outputs``: output name (:mod:`compressor.outputs`) -> shape on
    the input shape (ONNX: as the graph declares it, ``batch`` for a dynamic axis)."""

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
    outputs: dict[str, list[Any]] = field(default_factory=dict)
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
    """Inspect a PyTorch model (artifact, state_dict + arch, reference) or a file in one of the
    registry's export formats (``.onnx``, ...), which that format's module reads.

    The one API call outside ``f(model, config, output=None, *, progress=None)``: there is nothing
    to configure and nothing written.
    """
    spec = as_spec(model)
    if spec.format is not None:
        return InfoResult(path=spec.path, **spec.reader().describe(spec.path))
    from compressor.io.integrity import VERIFIED
    from compressor.outputs import model_shapes
    from compressor.stats import ESTIMATE_NOTE, MASK_NOTE, compressed_is_estimate, layer_table, model_figures

    handle = spec.load()
    source = spec.path if handle.source_kind != "reference" else None
    figures = model_figures(handle.module, handle.example_input(), source)
    notes = [MASK_NOTE] if handle.masks or figures["sparsity"] > 0.2 else []
    notes += [ESTIMATE_NOTE] * (source is not None and compressed_is_estimate(figures["size_bytes"]))
    return InfoResult(
        path=spec.path,
        kind=handle.source_kind,
        ref=handle.ref,
        **figures,
        input_shape=list(handle.input_shape),
        outputs=model_shapes(handle.module, handle.example_input()),
        layers=layer_table(handle.module),
        history=handle.history,
        metrics=handle.metrics,
        masked_layers=len(handle.masks),
        integrity=VERIFIED if handle.verified else "no digest",
        notes=notes,
    )

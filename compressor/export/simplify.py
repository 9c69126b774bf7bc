"""Graph simplification with onnxslim (constant folding, dead-node removal, fusions).

onnxslim (github.com/inisis/OnnxSlim) rewrites the graph without changing what it computes; the
caller keeps the result only when the parity check still passes, and reports node counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressor.errors import first_line
from compressor.export.onnx_export import quiet


@dataclass
class Simplified:
    """The simplified model (or the original when simplification failed) and node counts."""

    model: object  # onnx.ModelProto
    nodes_before: int
    nodes_after: int
    note: str | None = None


def node_count(model) -> int:
    """Nodes of the main graph."""
    return len(model.graph.node)


def simplify(model) -> Simplified:
    """Run onnxslim on a copy of ``model``; on failure return the original with a note."""
    import onnx
    import onnxslim

    before = node_count(model)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    try:
        with quiet():
            slim = onnxslim.slim(copy)
    except Exception as exc:  # noqa: BLE001 - onnxslim raises many types; keep the original
        return Simplified(
            model, before, before, f"onnxslim failed ({first_line(exc)}); kept the exported graph"
        )
    if slim is None:
        return Simplified(model, before, before, "onnxslim returned nothing; kept the exported graph")
    return Simplified(slim, before, node_count(slim))

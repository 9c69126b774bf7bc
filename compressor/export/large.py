"""ONNX graphs over protobuf's 2 GiB limit: the weights go to an external-data file beside the graph.

Protobuf cannot size, copy or serialise a message over 2 GiB, so such a graph never becomes one
``ModelProto``: the dynamo exporter's IR model is saved straight to ``model.onnx`` (the graph) and
``model.onnx.data`` (every tensor over 256 bytes, ONNX's external-data format), and every later
step works from the path: the metadata stamp on the graph file alone, ``onnx.checker`` on the
path, ONNX Runtime loading from the path. The two files are made in a private folder beside the
output and renamed into place only after the checks pass, so a failed export leaves nothing (a
process killed mid-export, e.g. for memory, can leave that hidden ``.OUT.onnx.*`` folder behind).
"""

from __future__ import annotations

import os
from pathlib import Path

LIMIT = 2**31 - 2**24  # protobuf's 2 GiB, less 16 MiB of headroom for the graph (tests lower it)


def data_name(name: str) -> str:
    """The external-data file that belongs to the graph file ``name``."""
    return f"{name}.data"


def weight_bytes(ir_model) -> int:
    """Bytes of the initializers of an ``onnx_ir`` model (what decides whether it is large)."""
    return sum(
        v.const_value.nbytes for v in ir_model.graph.initializers.values() if v.const_value is not None
    )


def is_large(ir_model) -> bool:
    """Whether the model must be written with external data."""
    return weight_bytes(ir_model) >= LIMIT


def save(ir_model, path: Path) -> tuple[Path, Path]:
    """Write ``ir_model`` as ``path`` + ``path.data``; returns both paths."""
    import onnx_ir as ir

    data = path.with_name(data_name(path.name))
    ir.save(ir_model, path, external_data=data.name)
    return path, data


def load_graph(path: Path):
    """The graph file as a ``ModelProto`` without its weights (small; rewrite it with :func:`rewrite`)."""
    import onnx

    return onnx.load(str(path), load_external_data=False)


def rewrite(graph, path: Path) -> None:
    """Write a graph loaded by :func:`load_graph` back; its tensors still point at the data file."""
    path.write_bytes(graph.SerializeToString())


def move_into_place(graph: Path, data: Path, output: Path) -> list[Path]:
    """Rename the data file, then the graph, to ``output`` and its data file. A pair already there
    is moved aside into the graph's folder first and put back if a rename fails, so the output is
    always the old pair or the new one, never one of each."""
    data_file = output.with_name(data_name(output.name))
    aside = [(dst, graph.parent / f"previous-{dst.name}") for dst in (output, data_file) if dst.exists()]
    done: list[Path] = []
    try:
        for src, dst in aside:
            os.replace(src, dst)
        for src, dst in ((data, data_file), (graph, output)):  # the graph names the data file: data first
            os.replace(src, dst)
            done.append(dst)
    except BaseException:
        for dst in done:
            dst.unlink(missing_ok=True)
        for src, dst in aside:
            if dst.exists():
                os.replace(dst, src)
        raise
    return [output, data_file]


def data_files_of(path: Path) -> list[Path]:
    """The external-data files an existing graph file names (none when it is missing or unreadable)."""
    from compressor.io.onnx_file import external_files

    try:
        return external_files(load_graph(path), path.parent) if path.is_file() else []
    except Exception:  # noqa: BLE001 - not an ONNX file: it names no data
        return []

"""Reading ``.onnx`` files: figures for ``info`` and an ONNX Runtime session for ``eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import InputError, first_line
from compressor.io import integrity
from compressor.stats import files_figures


def load_onnx(path: str | Path):
    """Load and check an ONNX model without its external data (a graph over 2 GiB keeps its weights
    in a file beside it; they are read tensor by tensor where needed); unreadable files, and files
    whose content does not match the digest written with them, are input errors (exit 2)."""
    import onnx

    file = Path(path)
    if not file.is_file() or file.stat().st_size == 0:
        raise InputError(f"{file}: missing or empty ONNX file")
    try:
        model = onnx.load(str(file), load_external_data=False)
        with integrity.checking_onnx(model, file):  # hashes while the checker runs
            onnx.checker.check_model(str(file))  # by path: the checker takes graphs over 2 GiB no other way
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types
        raise InputError(f"{file}: not a valid ONNX model ({first_line(exc, 160)})") from None
    return model


def onnx_figures(path: str | Path) -> dict[str, Any]:
    """params, nonzero_params, sparsity, macs, size_bytes (the graph and its external data),
    compressed_bytes (estimated when compressed_estimated), external_data (the data files' names),
    inputs, outputs."""
    model = load_onnx(path)
    folder = Path(path).parent
    files = [Path(path), *external_files(model, folder)]
    return {
        **weight_figures(model, folder),
        "macs": onnx_macs(model),
        **files_figures(files),
        "external_data": [f.name for f in files[1:]],
        "nodes": len(model.graph.node),
        "opset": max((o.version for o in model.opset_import), default=0),
        "inputs": [
            _io(v) for v in model.graph.input if v.name not in {i.name for i in model.graph.initializer}
        ],
        "outputs": [_io(v) for v in model.graph.output],
        "metadata": {p.key: p.value for p in model.metadata_props},
    }


def weight_figures(model, folder: Path | None = None) -> dict[str, Any]:
    """params, nonzero_params and sparsity over dense and sparse initializers; external data is
    read from ``folder`` one tensor at a time."""
    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import uses_external_data

    params = nonzero = 0
    for init in model.graph.initializer:
        tensor = init
        if uses_external_data(init):  # a small proto: older onnx would fill it with the data it reads
            tensor = onnx.TensorProto()
            tensor.CopyFrom(init)
        arr = numpy_helper.to_array(tensor, base_dir=str(folder or ""))
        params, nonzero = params + arr.size, nonzero + int(np.count_nonzero(arr))
    for sp in model.graph.sparse_initializer:
        params += int(np.prod(sp.dims))
        nonzero += int(np.count_nonzero(numpy_helper.to_array(sp.values)))
    return {"params": params, "nonzero_params": nonzero, "sparsity": 1.0 - nonzero / max(params, 1)}


def external_files(model, folder: Path) -> list[Path]:
    """The external-data files ``model`` (loaded without them) names, in ``folder``, in order of use."""
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    names = dict.fromkeys(
        ExternalDataInfo(t).location for t in _get_all_tensors(model) if uses_external_data(t)
    )
    return [folder / name for name in names]


def _io(value) -> dict[str, Any]:
    dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    return {"name": value.name, "shape": dims}


def onnx_macs(model) -> int:
    """MACs of Conv, Gemm and MatMul nodes at batch 1, from inferred shapes (``model`` may be loaded
    without its external data: only the dims count)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - figures stay best-effort for exotic graphs
        return 0
    shapes = {
        v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]
        for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    }
    shapes.update({i.name: list(i.dims) for i in inferred.graph.initializer})
    total = 0
    for node in inferred.graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        if not out:
            continue
        if node.op_type == "Conv" and node.input[1] in shapes:
            w = shapes[node.input[1]]
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul") and node.input[0] in shapes:
            total += int(np.prod(out)) * int(shapes[node.input[0]][-1])
    return total


def ort_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session on a file checked by :func:`load_onnx` first."""
    import onnxruntime as ort

    load_onnx(path)

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: ONNX Runtime cannot load it ({first_line(exc, 160)})") from None

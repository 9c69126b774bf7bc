"""Compact storage of mostly-zero weights as ONNX sparse initializers.

ONNX ``SparseTensorProto`` keeps the non-zero values and their linearised int64 indices (the only
index type ``onnx.checker`` accepts), so a tensor gets smaller only when its density is below
about element_bytes / (element_bytes + 8): one third for float32. ONNX Runtime turns sparse
initializers back into dense tensors when it loads the model, so this shrinks the file, not the
run time. Only tensors that get smaller are converted; the caller keeps the result only when the
whole file is smaller and ONNX Runtime still loads it with parity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INDEX_BYTES = 8
MIN_ELEMENTS = 64  # tiny tensors (biases) are not worth a sparse entry


@dataclass
class SparseResult:
    """The converted model and what was converted."""

    model: object  # onnx.ModelProto
    tensors: int
    dense_bytes: int
    sparse_bytes: int


def sparse_bytes(nnz: int, itemsize: int) -> int:
    """Bytes of a sparse tensor's payload: values plus int64 linear indices."""
    return nnz * (itemsize + INDEX_BYTES)


def worth_it(array: np.ndarray) -> bool:
    """True when the sparse payload is smaller than the dense one."""
    if array.size < MIN_ELEMENTS or array.dtype.kind not in "fiu":
        return False
    return sparse_bytes(int(np.count_nonzero(array)), array.itemsize) < array.nbytes


def to_sparse(model) -> SparseResult:
    """A copy of ``model`` with every initializer that shrinks stored as a sparse initializer."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep, names, dense, sparse = [], set(), 0, 0
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if not worth_it(array):
            keep.append(init)
            continue
        flat = array.reshape(-1)
        idx = np.flatnonzero(flat).astype(np.int64)
        values = numpy_helper.from_array(flat[idx], init.name)
        indices = numpy_helper.from_array(idx, f"{init.name}__indices")
        graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, list(array.shape)))
        names.add(init.name)
        dense += array.nbytes
        sparse += sparse_bytes(len(idx), array.itemsize)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    _drop_value_info(graph, names)
    return SparseResult(out, len(names), dense, sparse)


def _drop_value_info(graph, names: set[str]) -> None:
    """Dense value_info entries of converted tensors would contradict their sparse type."""
    keep = [v for v in graph.value_info if v.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(keep)

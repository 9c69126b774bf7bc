"""Concatenation widths read from the traced tensors where torch-pruning cannot infer them.

torch-pruning maps a channel through ``torch.cat`` by the width of each input, which it infers
from the layers around the concatenation. Where an input's width cannot be inferred (an input
that is a residual sum: timm CSPNet's ``cat([blocks(x1), x2])``; a class token sliced off and put
back: timm CoaT's ``cat((cls, feat), dim=1)``) the inferred width is None and torch-pruning 1.6
fails while building the graph (``int + NoneType``). :class:`Recorder` notes the width of every
concatenated tensor while the graph is traced; :func:`fill` gives a concatenation whose inferred
widths have a None the traced ones instead. Along dim 1 of token tensors ``(batch, tokens,
channels)`` the concatenation joins tokens, not channels: each channel stays where it is, so no
index mapping is set there (torch-pruning's own choice where it could not infer the widths).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch_pruning import ops
from torch_pruning.dependency import shape_infer

CATS = (torch.cat, torch.concat, torch.concatenate)
CHANNEL_DIM = 1  # the only concatenation dimension torch-pruning maps


class Recorder(TorchFunctionMode):
    """While active, every concatenation's output ``grad_fn`` -> (rank, width of each input along
    the concatenated dimension), or None for a dimension other than :data:`CHANNEL_DIM`."""

    def __init__(self) -> None:
        super().__init__()
        self.widths: dict[Any, tuple[int, list[int]] | None] = {}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in CATS and isinstance(out, torch.Tensor) and out.grad_fn is not None:
            tensors = list(args[0] if args else kwargs["tensors"])
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            rank = out.dim()
            channel = (dim % rank if rank else 0) == CHANNEL_DIM
            self.widths[out.grad_fn] = (rank, [int(t.shape[dim]) for t in tensors]) if channel else None
        return out


def fill(graph: Any, widths: dict[Any, tuple[int, list[int]] | None]) -> list[Any]:
    """Give each concatenation of ``graph`` whose inferred input widths have a None the traced
    ``widths``; returns the concatenation nodes filled (after :func:`shape_infer.init_shape_information`)."""
    shape_infer.init_shape_information(graph)
    filled = []
    for node in graph.module2node.values():
        if node.type != ops.OPTYPE.CONCAT or node.module.concat_sizes is not None:
            continue
        traced = widths.get(node.grad_fn)
        inferred = [shape_infer.infer_channels_between(graph, n, node) for n in node.inputs]
        if traced is None or None not in inferred:
            continue
        rank, sizes = traced
        sizes = _input_widths(graph, node.grad_fn, sizes)
        if len(sizes) != len(node.inputs):
            continue  # the graph's inputs do not line up with the tensors: left as torch-pruning has it
        node.module.concat_sizes = sizes
        if rank == 3:  # (batch, tokens, channels): tokens are joined, channels keep their places
            node.enable_index_mapping = False
        filled.append(node)
    return filled


def _input_widths(graph: Any, grad_fn: Any, sizes: list[int]) -> list[int]:
    """The widths of the concatenated tensors the graph has as inputs of the concatenation, in
    its order (torch-pruning leaves out tensors without a gradient and parameters it does not prune)."""
    unwrapped = [p for p, _ in graph.unwrapped_parameters]
    kept = []
    for (fn, _), size in zip(grad_fn.next_functions, sizes, strict=False):
        if fn is None:
            continue
        if "accumulategrad" in fn.name().lower() and not any(fn.variable is p for p in unwrapped):
            continue
        kept.append(size)
    return kept

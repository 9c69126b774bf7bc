"""Concatenation widths read from the traced tensors where torch-pruning cannot infer them.

torch-pruning maps a channel through ``torch.cat`` by the width of each input, which it infers
from the layers around the concatenation. Where an input's width cannot be inferred (an input
that is a residual sum: timm CSPNet's ``cat([blocks(x1), x2])``; a class token sliced off and put
back: timm CoaT's ``cat((cls, feat), dim=1)``) the inferred width is None and torch-pruning 1.6
fails while building the graph (``int + NoneType``). :class:`Recorder` notes the width of every
concatenated tensor while the graph is traced; :func:`fill` gives a concatenation whose inferred
widths have a None the traced ones instead. Along dim 1 of ``(batch, tokens, channels)``
tensors (the layers around read channels last) the concatenation joins tokens, not channels:
each channel stays where it is, so no index mapping is set there.

``unbind`` is mapped the same way, from the trace: torch-pruning splits an unbound tensor's
channels into as many equal parts as the graph has consumers of its outputs, the i-th consumer
taking the i-th part. Where one part feeds two operations (rotary embeddings read q and k twice:
timm's DeepSeek ViT) that was five parts of a fused qkv instead of three, and the walks through
the misplaced offsets multiplied until they filled the memory. :func:`map_unbind` gives each
consumer the part it reads (the output number its gradient function names) out of the number of
parts the trace saw.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch_pruning import ops
from torch_pruning.dependency import index_mapping, shape_infer

CATS = (torch.cat, torch.concat, torch.concatenate)
UNBINDS = (torch.unbind, torch.Tensor.unbind)
CHANNEL_DIM = 1  # the only concatenation dimension torch-pruning maps
OTHER_DIM = "compressor_joins_other_dim"  # a node attribute: traced along another dimension
PARTS = "compressor_parts"  # an unbind node's module attribute: the tensors the trace saw it make


class Recorder(TorchFunctionMode):
    """While active, every concatenation's output ``grad_fn`` -> (its rank, the width of each input
    along the concatenated dimension), or None for a dimension other than :data:`CHANNEL_DIM`
    (``widths``); every unbind's ``grad_fn`` -> the number of tensors it made (``parts``)."""

    def __init__(self) -> None:
        super().__init__()
        self.widths: dict[Any, tuple[int, list[int]] | None] = {}
        self.parts: dict[Any, int] = {}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in CATS and isinstance(out, torch.Tensor) and out.grad_fn is not None:
            self.widths[out.grad_fn] = _widths(out, args, kwargs)
        elif func in UNBINDS and out and getattr(out[0], "grad_fn", None) is not None:
            self.parts[out[0].grad_fn] = len(out)
        return out


def _widths(out: torch.Tensor, args: Any, kwargs: dict) -> tuple[int, list[int]] | None:
    """(rank, the width of each input) of a concatenation along :data:`CHANNEL_DIM`; None for
    another dimension or a call this does not read (a named dimension)."""
    tensors = list(args[0] if args else kwargs.get("tensors", ()))
    dim = args[1] if len(args) > 1 else kwargs.get("dim", kwargs.get("axis", 0))
    rank = out.dim()
    if not isinstance(dim, int) or dim % rank != CHANNEL_DIM:
        return None
    # a 1-D empty tensor may join tensors of any rank (legacy torch.cat): it adds no width
    return rank, [int(t.shape[dim]) if t.dim() == rank else 0 for t in tensors]


def fill(
    graph: Any, widths: dict[Any, tuple[int, list[int]] | None], parts: dict[Any, int] | None = None
) -> list[Any]:
    """Give each concatenation of ``graph`` whose inferred input widths have a None the traced
    ``widths``, and each unbind the traced number of ``parts`` (:data:`PARTS`); returns the
    concatenations filled (after :func:`shape_infer.init_shape_information`).

    A join of ``(batch, tokens, channels)`` tensors along dim 1 (:func:`joins_tokens`) leaves
    every channel where it is, so it gets no index mapping, now or when the mappings are updated
    after a cut.
    """
    shape_infer.init_shape_information(graph)
    filled = []
    for node in graph.module2node.values():
        if node.type == ops.OPTYPE.UNBIND and node.grad_fn in (parts or {}):
            setattr(node.module, PARTS, parts[node.grad_fn])  # type: ignore[index]
        if node.type != ops.OPTYPE.CONCAT or node.module.concat_sizes is not None:
            continue
        if node.grad_fn in widths and widths[node.grad_fn] is None:  # traced along another dim
            setattr(node, OTHER_DIM, True)
            node.enable_index_mapping = False
            continue
        traced = widths.get(node.grad_fn)
        inferred = [shape_infer.infer_channels_between(graph, n, node) for n in node.inputs]
        if traced is None or None not in inferred:
            continue
        rank, sizes = traced[0], _input_widths(graph, node.grad_fn, traced[1])
        if len(sizes) != len(node.inputs):
            continue  # the graph's inputs do not line up with the tensors: left as torch-pruning has it
        node.module.concat_sizes = sizes
        if rank == 3 and joins_tokens(node):
            node.enable_index_mapping = False
        filled.append(node)
    return filled


CHANNELS_LAST = (nn.Linear, nn.LayerNorm)  # layers that read a 3-D tensor's last dim as channels
CHANNELS_FIRST = (nn.Conv1d, nn.BatchNorm1d, nn.InstanceNorm1d, nn.GroupNorm)  # ... its dim 1


def joins_tokens(node: Any, reach: int = 200) -> bool:
    """Whether the nearest layer around a 3-D concatenation (within ``reach`` graph nodes, through
    operations that are not layers) reads channels last: it joins tokens, not channels."""
    seen, queue = {node}, deque([*node.outputs, *node.inputs])
    while queue and len(seen) < reach:
        near = queue.popleft()
        if near in seen:
            continue
        seen.add(near)
        if isinstance(near.module, CHANNELS_LAST):
            return True
        if isinstance(near.module, CHANNELS_FIRST):
            return False
        if not isinstance(near.module, (nn.Conv2d, nn.Conv3d, nn.modules.batchnorm._BatchNorm)):
            queue.extend([*near.outputs, *near.inputs])
    return False


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


def map_unbind(graph: Any, node: Any) -> bool:
    """Set the index mappings of an unbind ``node`` along dim 0 (torch-pruning maps no other):
    each consumer gets the part of the input's channels it reads. False (nothing set) where the
    part each consumer reads cannot be told: a consumer of two parts, one the graph reaches
    through operations it does not list, or an input whose channels cannot be inferred."""
    if getattr(node.grad_fn, "_saved_dim", 0) != 0:
        return True  # torch-pruning maps nothing there either
    part_of = {}
    for out in node.outputs:
        numbers = {n for f, n in getattr(out.grad_fn, "next_functions", ()) if f is node.grad_fn}
        if len(numbers) != 1:
            return False
        part_of[out] = numbers.pop()
    parts = getattr(node.module, PARTS, None) or max(part_of.values(), default=0) + 1
    channels = None
    for near in node.inputs:
        channels = shape_infer.infer_out_channels_recursively(graph, near, [0])
        if channels is not None:
            break
    if channels is None:
        return False
    offsets = [i * channels // parts for i in range(parts + 1)]
    node.module.offsets = offsets
    if not node.enable_index_mapping:
        return True
    for dep in node.dependencies:
        if dep.target in part_of:
            part = offsets[part_of[dep.target] : part_of[dep.target] + 2]
            dep.index_mapping[0] = index_mapping._SplitIndexMapping(offset=part, reverse=False)
    for out, number in part_of.items():
        for dep in out.dependencies:
            if dep.target is node:
                part = offsets[number : number + 2]
                dep.index_mapping[0] = index_mapping._SplitIndexMapping(offset=part, reverse=True)
    return True

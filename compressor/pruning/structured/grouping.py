"""Coupled groups in linear time: torch-pruning's dependency graph with each channel followed once.

torch-pruning finds the group of one layer's output channels by walking its dependency graph from
that layer, carrying the channel indices through every edge (concatenation, split, slice, reshape
offsets). It stops a walk only where the same layer, pruning function and whole index list were
already reached, so where paths join with different index lists (a residual added onto a channel
slice, ``torch.cat([y[:, :c] + x, y[:, c:]])`` in timm ReXNet) every path is walked again: the
walks multiply with each such block, and one group of ReXNet-1.0 took minutes to list. Where a
reshape folds channels with positions (timm EfficientViT-MSRA attention), the indices it carries
grow past the layers' widths and the walk filled the memory. :class:`Graph` walks each (layer,
pruning function, channel, root channel) once: an edge passes on only the channels its target has
not seen; and a walk that carries a channel past the width of a conv, linear or BatchNorm layer,
or at any other operation past the channels of all those layers together (EfficientViT-MSRA folds
channels with positions between two operations, with no layer on the cycle), ends there: the group
is marked ``unmapped`` and :func:`coupling.keep_unmapped` keeps its root (the layers it did not
reach are listed as roots of their own groups, and checked in turn). Every index mapping
torch-pruning has maps channels one by one, so every other group is torch-pruning's, merged the
same way. Groups are remembered until one of them is pruned.

Every graph our structured methods build is a :class:`Graph`: :func:`build` for the ones we read
ourselves, :func:`pruners_use_graph` while a torch-pruning pruner builds its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from numbers import Number
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning import ops
from torch_pruning._helpers import _HybridIndex as Index
from torch_pruning.dependency import index_mapping

from compressor.pruning.structured import concat_widths, layer_rules


class Group(tp.Group):
    """A group of a :class:`Graph`: pruning it forgets the graph's remembered groups (widths change)
    and cuts the per-output-channel parameters torch-pruning's conv pruner leaves (timm's
    ``ScaledStdConv2d`` gain, :mod:`.layer_rules`) with the conv's channels. ``unmapped``: its walk
    carried a channel past a width, or met a mapping that cannot carry it (the group is only the
    part found)."""

    unmapped = False

    def prune(self, idxs: Any = None, record_history: bool = True) -> Any:
        self._DG.forget()
        if idxs is not None:  # torch-pruning regroups by these indices and prunes that group
            return super().prune(idxs, record_history)
        out_fns = (tp.prune_conv_out_channels, tp.prune_depthwise_conv_out_channels)
        cuts = layer_rules.out_channel_cuts(self, out_fns)
        result = super().prune(None, record_history)
        for layer, removed in cuts:
            layer_rules.prune_extra(layer, removed)
        return result


class Graph(tp.DependencyGraph):
    """torch-pruning's ``DependencyGraph`` whose groups are found with each channel walked once and
    remembered until one of them is pruned (a pruner lists every group two or three times: to count
    channels, to find unmappable groups, to rank)."""

    builds = 0  # graphs built in this process (read by tests: one prune builds a bounded number)
    walks = 0  # groups walked (not answered from memory) in this process

    def __init__(self) -> None:
        super().__init__()
        self.forget()

    def build_dependency(self, model: nn.Module, *args: Any, **kwargs: Any) -> Graph:
        """torch-pruning's build, with token mixers hidden from the trace (:mod:`.layer_rules`).

        One example tensor is passed whole (``model(example)``) through ``forward_fn``: torch-pruning
        calls ``model(*example)`` first, which splits a tensor along its batch and, for a model that
        accepts the unbatched input, traced that call instead (torchvision's R-CNN adapters then
        pooled regions of images that do not exist, and the process crashed inside ``roi_align``);
        and it retries any failure of that call with a bare ``except``, which also swallowed the
        preflight's deadline (:class:`preflight.PreflightTimeout`) and retried with the wrong call."""
        if kwargs.get("forward_fn") is None and len(args) <= 1:
            example = args[0] if args else kwargs.get("example_inputs")
            if isinstance(example, torch.Tensor):
                kwargs["forward_fn"] = _call_with_one_tensor
        type(self).builds += 1
        self.forget()
        self.unmapped: set[nn.Module] = set()  # roots whose channels an index mapping cannot carry
        with layer_rules.hidden_token_mixers(model) as mixers, unknown_widths_kept():
            self.IGNORED_LAYERS_IN_TRACING.extend(mixers)
            return super().build_dependency(model, *args, **kwargs)

    def _trace(self, *args: Any, **kwargs: Any) -> Any:
        with concat_widths.Recorder() as recorder:
            traced = super()._trace(*args, **kwargs)
        self._cat_widths, self._unbind_parts = recorder.widths, recorder.parts
        return traced

    def _build_dependency(self, module2node: Any) -> None:
        """torch-pruning's, then the concatenation widths it cannot infer taken from the trace
        (:mod:`.concat_widths`; without them building the graph fails)."""
        super()._build_dependency(module2node)
        concat_widths.fill(self, getattr(self, "_cat_widths", {}), getattr(self, "_unbind_parts", {}))
        self._cat_widths, self._unbind_parts = {}, {}

    def forget(self) -> None:
        """Drop the remembered groups (the model's widths are about to change)."""
        self._remembered: dict[tuple[Any, ...], Group] = {}
        self._total: int | None = None  # channels of all layers (widths change on a cut)

    def get_pruning_group(
        self, module: nn.Module, pruning_fn: Callable, idxs: Sequence[int] | int
    ) -> tp.Group:
        """The group of slices coupled to ``idxs`` of ``module`` under ``pruning_fn`` (as torch-pruning's)."""
        channels: tuple[int, ...] = (int(idxs),) if isinstance(idxs, Number) else tuple(idxs)  # type: ignore[arg-type]
        key = (module, pruning_fn, channels)
        if key not in self._remembered:
            self._remembered[key] = self._group(module, pruning_fn, channels)
        group = Group()  # a copy: callers may replace its items
        group._group, group._DG = list(self._remembered[key]._group), self
        group.unmapped = self._remembered[key].unmapped
        return group

    def _group(self, module: nn.Module, pruning_fn: Callable, idxs: Sequence[int]) -> Group:
        type(self).walks += 1
        if module not in self.module2node:
            raise ValueError(f"Module {module} is not in the dependency graph.")
        if (
            isinstance(module, ops.TORCH_CONV)
            and module.groups == module.out_channels
            and module.out_channels > 1
        ):
            pruning_fn = tp.pruner.function.prune_depthwise_conv_out_channels
        with unknown_widths_kept():
            index_mapping.update_index_mapping(self)
        root = self.module2node[module]
        start = tp.dependency.Dependency(pruning_fn, pruning_fn, source=root, target=root)
        try:
            found = walk(start, idxs, self._width)
        except Unmappable as stop:
            self.unmapped.add(module)
            found = stop.found
        group = self._merged(found)
        dep, last = found[-1]
        group.unmapped = module in self.unmapped or outside(last, self._width(dep.target, dep.handler))
        return group

    def _width(self, node: Any, handler: Callable) -> int | None:
        """Channels a conv, linear or BatchNorm layer has where ``handler`` cuts; at any other node,
        the channels of all such layers of the graph together: no channel index of the model lies
        past that (a concatenation joins at most them; None: the graph has no such layer)."""
        width = layer_width(node.module, self.is_out_channel_pruning_fn(handler))
        return width if width is not None else self._all_channels()

    def _all_channels(self) -> int | None:
        if self._total is None:
            self._total = sum(layer_width(m, True) or 0 for m in self.module2node) + sum(
                layer_width(m, False) or 0 for m in self.module2node
            )
        return self._total or None

    def _merged(self, found: list[tuple[Any, list[Index]]]) -> Group:
        """torch-pruning's merge: one item per (layer, function) with its channels in the order first
        reached (the first root channel of each), ignored parameters left out."""
        items: dict[tuple[Any, Any], tuple[Any, dict[int, Index]]] = {}
        for dep, idxs in found:
            if isinstance(dep.target.module, nn.Parameter) and any(
                dep.target.module is p for p in self.ignored_params
            ):
                continue
            channels = items.setdefault((dep.target, dep.handler), (dep, {}))[1]
            for i in idxs:
                channels.setdefault(i.idx, i)
        merged = Group()
        for dep, channels in items.values():
            merged.add_dep(dep, [i.idx for i in channels.values()])
            merged[len(merged) - 1].root_idxs = [i.root_idx for i in channels.values()]
        merged._DG = self
        return merged


class Unmappable(Exception):
    """An index mapping on the walk cannot carry the channels (torch-pruning's grouped-query head
    mapping built with a zero head width, from an ``expand`` it took for one: timm GCViT, Twins,
    Hiera; concatenation offsets the channels overrun: torchvision's quantizable ShuffleNetV2).
    ``found``: the part walked before it; the root is kept (:func:`coupling.keep_unmapped`)."""

    def __init__(self, found: list[tuple[Any, list[Index]]]) -> None:
        super().__init__("an index mapping cannot carry the channels")
        self.found = found


@contextmanager
def unknown_widths_kept() -> Iterator[None]:
    """torch-pruning maps a reshape's channels by the ratio of the widths it infers on either side,
    and infers 0 where it cannot tell (timm SHViT: the attention output, reshaped after a batched
    matmul, feeds another reshape); it then divided by zero. Such a reshape keeps the identity
    mapping, as one whose widths are not inferred at all does; a group it maps wrongly breaks the
    trial cut and is kept by the preflight.

    A concatenation the trace saw along another dimension than channels
    (:func:`concat_widths.fill` marks it) gets no index mapping: torch-pruning tells one from its
    saved dimension, which this torch stores for ``dim=-1`` as 2**64 - 1, so it took every
    ``cat(..., dim=-1)`` (rotary embeddings: timm Gemma4 ViT) for a channel join and failed
    inferring its widths.

    A split along another dimension than dim 1 is mapped only where the widths torch-pruning
    infers for its parts add up to the traced size of that dimension (the channels of a
    ``(batch, tokens, channels)`` tensor split along the last: timm's GLU MLPs). torch-pruning
    skips such splits only where the saved dimension is below the tensor's rank, so it mapped every
    ``split(..., dim=-1)``, also the head dimension halved by a rotary embedding's
    ``rotate_half``: its offsets, inferred through the attention, were negative, and each pass
    through the rotary block of DeepSeek ViT moved the channels further below zero, a walk
    without end.

    An unbind maps each consumer to the part it reads (:func:`concat_widths.map_unbind`)."""
    original = index_mapping.update_reshape_index_mapping
    original_cat = index_mapping.update_concat_index_mapping
    original_unbind = index_mapping.update_unbind_index_mapping
    original_split = index_mapping.update_split_index_mapping

    def guarded(graph: Any, node: Any) -> None:
        try:
            original(graph, node)
        except ZeroDivisionError:  # raised before any mapping of this reshape is set
            pass

    def channel_joins_only(graph: Any, node: Any) -> None:
        if not getattr(node, concat_widths.OTHER_DIM, False):
            original_cat(graph, node)

    def channel_splits_only(graph: Any, node: Any) -> None:
        dim = split_dim(node.grad_fn)
        if dim in (None, concat_widths.CHANNEL_DIM) or parts_add_up(
            node.module.offsets, node.grad_fn._saved_self_sym_sizes[dim]
        ):
            original_split(graph, node)

    def parts_read(graph: Any, node: Any) -> None:
        if node.type == ops.OPTYPE.UNBIND and not concat_widths.map_unbind(graph, node):
            original_unbind(graph, node)

    index_mapping.update_reshape_index_mapping = guarded
    index_mapping.update_concat_index_mapping = channel_joins_only
    index_mapping.update_unbind_index_mapping = parts_read
    index_mapping.update_split_index_mapping = channel_splits_only
    try:
        yield
    finally:
        index_mapping.update_reshape_index_mapping = original
        index_mapping.update_concat_index_mapping = original_cat
        index_mapping.update_unbind_index_mapping = original_unbind
        index_mapping.update_split_index_mapping = original_split


def parts_add_up(offsets: Sequence[int | None] | None, size: int) -> bool:
    """Whether split ``offsets`` rise from 0 to ``size``."""
    if not offsets or any(o is None for o in offsets):
        return False
    rising = all(b > a for a, b in zip(offsets, offsets[1:]))  # type: ignore[operator]
    return rising and offsets[0] == 0 and offsets[-1] == size


def split_dim(grad_fn: Any) -> int | None:
    """The dimension a split's gradient function saved, counted from 0 (torch stores a negative
    one as an unsigned 64-bit integer); None where it saved no dimension or no input sizes."""
    dim, sizes = getattr(grad_fn, "_saved_dim", None), getattr(grad_fn, "_saved_self_sym_sizes", None)
    if not isinstance(dim, int) or not sizes:
        return None
    return (dim - 2**64 if dim >= 2**63 else dim) % len(sizes)


def layer_width(layer: Any, out: bool) -> int | None:
    """Output (``out``) or input channels of a conv, linear or BatchNorm layer (None: not one)."""
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        return layer.num_features
    if not isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return None
    if isinstance(layer, nn.Linear):
        return layer.out_features if out else layer.in_features
    return layer.out_channels if out else layer.in_channels


# A layer coupled with more parts than this is not chunked: its channels are coupled all together.
MAX_PARTS = 8


def chunked_layers(dg: Any, layers: Sequence[nn.Module]) -> dict[nn.Module, int]:
    """Of ``layers`` (convs and linears of the graph ``dg``), those whose output channel 0 is
    coupled with the same channel of each of ``k`` equal parts of their outputs -> ``k``
    (2 to :data:`MAX_PARTS` parts of at least 2 channels: a layer whose channels are all coupled
    with each other, as through timm's ECA attention, is not split into parts of one channel).
    Such a layer is ranked per part (:mod:`.layer_rules` explains why)."""
    found: dict[nn.Module, int] = {}
    for layer in layers:
        if layer not in dg.module2node:
            continue
        width = layer_width(layer, True) or 0
        group = dg.get_pruning_group(layer, dg.get_pruner_of_module(layer).prune_out_channels, [0])
        if getattr(group, "unmapped", False):
            continue
        own = sorted(
            {
                i
                for dep, idxs in group
                if dep.target.module is layer and dg.is_out_channel_pruning_fn(dep.handler)
                for i in idxs
            }
        )
        parts = len(own)
        if not 1 < parts <= min(MAX_PARTS, width // 2) or width % parts:
            continue
        if own == [p * width // parts for p in range(parts)]:
            found[layer] = parts
    return found


def walk(
    start: Any, idxs: Sequence[int], width: Callable[[Any, Callable], int | None]
) -> list[tuple[Any, list[Index]]]:
    """Every (dependency, channels) reached from ``start`` carrying ``idxs``, depth first in
    torch-pruning's order; each (target, function, channel, root channel) is passed on once.

    A walk that carries a channel past the ``width`` of a node it reaches, or below 0, ends there
    (that entry is the last one found): the graph maps that group's channels wrongly (a reshape that folds
    channels with positions), so :func:`coupling.keep_unmapped` keeps its root.
    Where channels are reached from so many root channels that a walk passes :data:`ROOTED_LIMIT`
    entries, each (target, function, channel) is passed on once, with the first root channel; a
    walk that still passes :data:`UNROOTED_LIMIT` entries is :class:`Unmappable`.
    """
    found = _walk(start, idxs, width, rooted=True)
    return found if found is not None else _walk(start, idxs, width, rooted=False) or []


ROOTED_LIMIT = 200_000  # (target, channel, root channel) entries before a walk drops later roots
# (target, channel) entries of one walk past which its group is taken as unmappable: mappings that
# fan each channel out to many (a reshape torch-pruning reads as an expansion, repeated through a
# stack of blocks: timm's DeepSeek ViT with rotary embeddings) grew one walk by about 1 GB every
# 30 s; a group of real channels stays far below (every layer's channels of a 400M-parameter ViT:
# about 500,000)
UNROOTED_LIMIT = 2_000_000


def _walk(
    start: Any, idxs: Sequence[int], width: Callable[[Any, Callable], int | None], rooted: bool
) -> list[tuple[Any, list[Index]]] | None:
    """:func:`walk` keyed by (channel, root channel) (``rooted``; None past the limit) or by channel."""
    first = [Index(idx=i, root_idx=i) for i in idxs]
    found: list[tuple[Any, list[Index]]] = [(start, first)]
    seen: dict[tuple[Any, Any], set[Any]] = {(start.target, start.handler): set(first if rooted else idxs)}
    stack, size = [(start, first)], len(first)
    while stack:
        dep, channels = stack.pop()
        for nxt in dep.target.dependencies:
            if not nxt.is_triggered_by(dep.handler):
                continue
            mapped = channels
            try:
                for mapping in nxt.index_mapping:
                    if mapping is not None:
                        mapped = mapping(mapped)
            except (ZeroDivisionError, IndexError):  # a mapping built from widths it misread
                raise Unmappable(found) from None
            fresh = _fresh(mapped, seen.setdefault((nxt.target, nxt.handler), set()), rooted)
            if not fresh:
                continue
            size += len(fresh)
            if rooted and size > ROOTED_LIMIT:
                return None
            if size > UNROOTED_LIMIT:  # kept whole: the root alone stands for it (memory)
                raise Unmappable(found[:1])
            found.append((nxt, fresh))
            if outside(fresh, width(nxt.target, nxt.handler)):
                return found  # past the layer's channels: the group cannot be mapped, nor pruned
            stack.append((nxt, fresh))
    return found


def outside(channels: list[Index], width: int | None) -> bool:
    """Whether a channel lies below 0 or at or past ``width`` (None: no bound known)."""
    lowest, highest = min(i.idx for i in channels), max(i.idx for i in channels)
    return lowest < 0 or (width is not None and highest >= width)


def _fresh(mapped: list[Index], known: set[Any], rooted: bool) -> list[Index]:
    """The channels of ``mapped`` not yet ``known`` at their target (then known)."""
    fresh: dict[Any, Index] = {}
    for i in mapped:
        key = i if rooted else i.idx
        if key not in known:
            fresh.setdefault(key, i)
    known.update(fresh)
    return list(fresh.values())


def _call_with_one_tensor(model: nn.Module, example: torch.Tensor) -> Any:
    return model(example)


def build(model: nn.Module, example: Any, **kwargs: Any) -> Graph:
    """A :class:`Graph` of ``model`` traced on ``example`` (keyword arguments as torch-pruning's)."""
    graph = Graph()
    graph.build_dependency(model, example_inputs=example, verbose=False, **kwargs)
    return graph


@contextmanager
def pruners_use_graph() -> Iterator[None]:
    """While a torch-pruning pruner is constructed, the graph it builds is a :class:`Graph` (it stays
    one: its ``step`` and our reads of ``pruner.DG`` use the same walk)."""
    module = tp.dependency
    previous = module.DependencyGraph
    module.DependencyGraph = Graph  # type: ignore[misc]
    try:
        yield
    finally:
        module.DependencyGraph = previous  # type: ignore[misc]

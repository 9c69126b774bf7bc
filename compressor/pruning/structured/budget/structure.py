"""What the budget engine needs from a model: its layers' shapes, the coupled groups, their scores,
and how a plan of group widths is applied through torch-pruning's dependency graph."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compressor.bench.layergraph import LayerShape
from compressor.pruning.structured import graph
from compressor.pruning.structured.budget.allocate import Group, Layer


@dataclass(frozen=True)
class Structure:
    """A model's layers and prunable groups.

    Attributes:
        shapes: layer name -> shape (dense widths, input spatial dims).
        layers: layer name -> which groups set its widths.
        groups: the prunable groups, each with its per-channel scores.
    """

    shapes: dict[str, LayerShape]
    layers: dict[str, Layer]
    groups: list[Group]

    def variable(self) -> dict[str, tuple[bool, bool]]:
        """Layer -> (its input width can change, its output width can change)."""
        return {
            n: (
                bool(lay.in_groups) or (lay.depthwise and lay.out_group is not None),
                lay.out_group is not None,
            )
            for n, lay in self.layers.items()
        }

    def multiples(self) -> dict[str, int]:
        """Layer -> its widths must be multiples of this (a grouped, not depthwise, conv)."""
        return {n: s.groups for n, s in self.shapes.items() if s.groups > 1 and not s.depthwise}


def layer_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, LayerShape]:
    """Every conv/linear layer's shape, with the input dims of one forward pass on ``example``."""
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str, args: tuple) -> None:  # a pre-hook returning a value would replace the input
        seen.setdefault(name, tuple(args[0].shape))

    hooks = [
        m.register_forward_pre_hook(lambda mod, args, n=n: record(n, args))
        for n, m in model.named_modules()
        if isinstance(m, graph.PRUNABLE)
    ]
    try:
        graph.run_forward(model, example)
    finally:
        for h in hooks:
            h.remove()
    table = dict(model.named_modules())
    return {n: _shape(table[n], dims) for n, dims in seen.items()}


def _shape(m: nn.Module, dims: tuple[int, ...]) -> LayerShape:
    if isinstance(m, nn.Linear):
        return LayerShape("linear", m.in_features, m.out_features, spatial=tuple(dims[1:-1]))
    depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
    return LayerShape(
        "conv",
        m.in_channels,
        m.out_channels,
        tuple(m.kernel_size),
        tuple(m.stride),
        _padding(m),
        tuple(m.dilation),
        m.groups,
        depthwise,
        tuple(dims[2:]),
    )


def _padding(m: nn.Module) -> tuple[int, ...]:
    if isinstance(m.padding, str):  # "valid" or "same" (stride 1): symmetric as far as it goes
        return tuple(
            0 if m.padding == "valid" else d * (k - 1) // 2 for k, d in zip(m.kernel_size, m.dilation)
        )
    return tuple(m.padding)


def find_structure(
    model: nn.Module,
    example: torch.Tensor,
    importance: Any,
    ignored: Iterable[str],
    max_layer_ratio: float,
    step: int,
) -> Structure:
    """Layers, shapes and the prunable groups (roots not in ``ignored``) with ascending scores."""
    shapes = layer_shapes(model, example)
    names = {m: n for n, m in model.named_modules()}
    outs: dict[str, str] = {}
    ins: dict[str, list[str]] = {}
    groups: list[Group] = []
    with graph.tracer_errors():
        for pruner in graph.make_pruners(model, example, importance, ratio=0.0, ignored=list(ignored)):
            for group in pruner.DG.get_all_groups(
                ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types
            ):
                found = _group(pruner, group, names, shapes, max_layer_ratio, step, outs, ins)
                if found is not None:
                    groups.append(found)
    widths = {g.name: g.width for g in groups}
    layers = {
        n: Layer(
            n,
            s.cin,
            s.cout,
            outs.get(n),
            tuple(ins.get(n, ())),
            s.depthwise,
            _in_scale(s.cin, [widths[g] for g in ins.get(n, ()) if g in widths]),
        )
        for n, s in shapes.items()
    }
    return Structure(shapes, layers, groups)


def _in_scale(cin: int, feeding: list[int]) -> int:
    """Input features per channel of the one group feeding a layer (H*W after a flatten), else 1."""
    if len(feeding) == 1 and cin > feeding[0] and cin % feeding[0] == 0:
        return cin // feeding[0]
    return 1


def _group(
    pruner,
    group,
    names: dict,
    shapes: dict[str, LayerShape],
    max_layer_ratio: float,
    step: int,
    outs: dict[str, str],
    ins: dict[str, list[str]],
) -> Group | None:
    """One torch-pruning group as a :class:`Group`; records which layers it sets."""
    root = group[0].dep.target.module
    name = names.get(root)
    if name is None or name in outs or not isinstance(root, graph.PRUNABLE):
        return None
    scores = pruner.importance(group)
    if scores is None:
        return None
    width = graph.out_channels(root)
    multiple, touched = 1, set()
    for dep, _ in group:
        target = names.get(dep.target.module)
        if target not in shapes or not isinstance(dep.target.module, graph.PRUNABLE):
            continue
        touched.add(target)
        if pruner.DG.is_out_channel_pruning_fn(dep.handler):
            outs.setdefault(target, name)
        elif name not in ins.setdefault(target, []):
            ins[target].append(name)
        if shapes[target].groups > 1 and not shapes[target].depthwise:
            multiple = math.lcm(multiple, shapes[target].groups)
    floor = max(math.ceil((1 - max_layer_ratio) * width - 1e-9), 1)
    values = sorted(abs(float(v)) for v in scores.flatten()[:width])
    # Each layer the group narrows is worth 1, shared by the group's channels by their scores:
    # halving a thin layer costs as much as halving a wide one, and a residual stream that
    # narrows nine layers costs nine times a group that narrows one conv and its consumer.
    worth, total = len(touched) or 1, sum(values)
    shares = tuple(worth * v / total for v in values) if total > 0 else tuple(worth / width for _ in values)
    return Group(name, width, floor, math.lcm(step, multiple), shares, relative=True)


def apply_plan(
    model: nn.Module,
    example: torch.Tensor,
    importance: Callable[[], Any],
    plan: dict[str, int],
    ignored: Iterable[str],
) -> None:
    """Prune each group of ``plan`` (group -> width) to its width, lowest-scored channels first."""
    table = dict(model.named_modules())
    ratios = {}
    for name, width in plan.items():
        dense = graph.out_channels(table[name])
        if width < dense:  # int(dense * (1 - r)) == width: torch-pruning keeps exactly ``width``
            ratios[table[name]] = (dense - width - 0.5) / dense
    if ratios:
        with graph.tracer_errors():
            for pruner in graph.make_pruners(
                model, example, importance(), ratio=0.0, ignored=list(ignored), ratios=ratios
            ):
                pruner.step()
    graph.sync_attributes(model)

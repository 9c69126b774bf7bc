"""Layers torch-pruning would prune or trace wrongly, and what the dependency graph does for each.

Per-output-channel parameters. timm's ``ScaledStdConv2d`` and ``ScaledStdConv2dSame`` (NFNet,
NF-RegNet, NF-ResNet) standardize their weight per output channel and multiply it by a ``gain`` of
shape ``(out_channels, 1, 1, 1)`` inside their forward. torch-pruning prunes them as plain convs
(weight, bias, ``out_channels``), so the ``gain`` kept its old length and the cut model failed
("weight should contain 66 elements not 88"). Registered as custom layers they would drop out of
the magnitude importance (it scores only torch-pruning's own conv functions), so they stay convs
and every group that cuts a conv's output channels also cuts the same rows of these parameters
(:func:`prune_extra`, called by :class:`grouping.Group`). ``scale`` (gamma / sqrt(fan-in), fixed
at construction) is kept: the remaining channels keep their learned scaling. ``StdConv2d`` has no
extra parameter and reads ``out_channels`` at each call, so it needs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

# Layer class name -> parameters of shape (out_channels, ...) the conv pruner does not cut.
EXTRA_OUT_PARAMS: dict[str, tuple[str, ...]] = {
    "ScaledStdConv2d": ("gain",),
    "ScaledStdConv2dSame": ("gain",),
}


def extra_params(layer: nn.Module) -> tuple[str, ...]:
    """Names of ``layer``'s per-output-channel parameters beyond weight and bias (by class name)."""
    for cls in type(layer).__mro__:
        if cls.__name__ in EXTRA_OUT_PARAMS:
            return EXTRA_OUT_PARAMS[cls.__name__]
    return ()


def prune_extra(layer: nn.Module, idxs: Sequence[int]) -> None:
    """Remove rows ``idxs`` of ``layer``'s extra per-output-channel parameters (none: nothing)."""
    drop = {int(i) for i in idxs}
    for name in extra_params(layer):
        param = getattr(layer, name, None)
        if not isinstance(param, torch.Tensor):
            continue
        keep = torch.tensor([i for i in range(param.shape[0]) if i not in drop], device=param.device)
        setattr(layer, name, nn.Parameter(param.data.index_select(0, keep), param.requires_grad))


def out_channel_cuts(group: Any, out_fns: Sequence[Any]) -> list[tuple[nn.Module, list[int]]]:
    """The (layer, removed output channels) of ``group``'s items that cut, through one of
    ``out_fns`` (torch-pruning's conv functions), a layer with extra per-output-channel parameters."""
    cuts = []
    for dep, idxs in group:
        layer = dep.target.module
        if isinstance(layer, nn.Module) and extra_params(layer) and any(dep.handler == f for f in out_fns):
            cuts.append((layer, list(idxs)))
    return cuts

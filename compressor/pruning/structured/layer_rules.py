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

Token mixers. timm's gMLP ``SpatialGatingUnit`` chunks the hidden channels into ``u`` and ``v``,
normalizes ``v``, mixes it across tokens with ``proj`` (a ``Linear(seq_len, seq_len)`` applied to
the transposed tensor) and returns ``u * v``: channel ``i`` of ``u`` is coupled with channel ``i``
of ``v``. The tracer reads ``proj`` as a layer over channels, so it coupled channels with token
positions and cut the gate's norm and ``proj`` apart from the channels they see. While the graph
is traced, ``proj`` hands its input on unchanged and is left out of the trace
(:func:`hidden_token_mixers`): the graph then sees ``u * norm(v)`` and couples both halves of the
hidden channels, the norm and the next layer's inputs, and never cuts ``proj``, whose width is the
number of tokens.

Chunked layers. A layer whose outputs are chunked into parts that are multiplied together (``fc1``
of timm's ``GatedMlp`` above, and of its ``GluMlp``: SwiGLU in DeepSeek ViT, Qwen3 ViT, EVA) has
channel ``i`` coupled with ``i + part`` in its own group. torch-pruning counts the channels to
cut on the layer's width but cuts every part of each ranked channel, so a ratio of 0.5 removed
seven eighths of the hidden channels. Such a layer is ranked in as many channel groups as it has
parts (:func:`grouping.chunked_layers`, found on the dependency graph): channel ``i`` of every part is
scored and cut together, and a ratio removes that fraction of the hidden channels.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

# Layer class name -> parameters of shape (out_channels, ...) the conv pruner does not cut.
EXTRA_OUT_PARAMS: dict[str, tuple[str, ...]] = {
    "ScaledStdConv2d": ("gain",),
    "ScaledStdConv2dSame": ("gain",),
}
# (timm module, class, attribute): a layer that mixes tokens, not channels, inside that class.
TOKEN_MIXERS: tuple[tuple[str, str, str], ...] = (("timm.models.mlp_mixer", "SpatialGatingUnit", "proj"),)


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


def _timm_class(module_name: str, cls_name: str) -> type | None:
    """A timm class if its module was imported (a model holding one has imported it), else None."""
    cls = getattr(sys.modules.get(module_name), cls_name, None)
    return cls if isinstance(cls, type) else None


def token_mixers(model: nn.Module) -> list[nn.Module]:
    """The layers of ``model`` that mix tokens inside a block the tracer would read as channels
    (:data:`TOKEN_MIXERS`; a class whose module was never imported cannot be in the model)."""
    found = []
    for module_name, cls_name, attr in TOKEN_MIXERS:
        cls = _timm_class(module_name, cls_name)
        if cls is None:
            continue
        found += [getattr(m, attr) for m in model.modules() if isinstance(m, cls)]
    return [m for m in found if isinstance(m, nn.Module)]


def _pass_input(module: nn.Module, args: tuple, output: Any) -> Any:
    """A forward hook: the layer hands on its input (same shape: a token mixer keeps the tokens)."""
    return args[0] if args and getattr(args[0], "shape", None) == getattr(output, "shape", None) else output


@contextmanager
def hidden_token_mixers(model: nn.Module) -> Iterator[list[nn.Module]]:
    """While tracing, every token mixer of ``model`` passes its input on; yields the mixers (to be
    left out of the trace)."""
    mixers = token_mixers(model)
    hooks = [m.register_forward_hook(_pass_input) for m in mixers]
    try:
        yield mixers
    finally:
        for h in hooks:
            h.remove()

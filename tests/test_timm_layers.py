"""timm layers the dependency graph handles by rule: the scaled weight-standardized convs of NFNets
(their per-channel ``gain`` is cut with the conv)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compressor.model import ModelHandle
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.structured import norm

timm = pytest.importorskip("timm")
from timm.layers import ScaledStdConv2d, ScaledStdConv2dSame  # noqa: E402


def nf_net() -> nn.Module:
    """Two scaled weight-standardized convs (one with TF 'SAME' padding) and a classifier, each
    gain distinct per channel so a gain cut out of step with its conv changes the output."""
    torch.manual_seed(0)
    model = nn.Sequential(
        ScaledStdConv2d(3, 8, 3),
        nn.ReLU(),
        ScaledStdConv2dSame(8, 12, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(12, 4),
    ).eval()
    for conv in (model[0], model[2]):
        with torch.no_grad():
            conv.gain.copy_(torch.linspace(0.5, 2.0, conv.out_channels).view(-1, 1, 1, 1))
    return model


def kept_rows(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    """Indices of ``before``'s rows that ``after`` keeps (rows are matched exactly)."""
    return [next(i for i, row in enumerate(before) if torch.equal(row, kept)) for kept in after]


def test_scaled_std_conv_gain_is_cut_with_its_channels():
    model = nf_net()
    x = torch.randn(2, 3, 12, 12)
    weight, dense = model[0].weight.detach().clone(), model[0](x).detach()
    handle = ModelHandle(module=model, ref=None, input_shape=(1, 3, 12, 12))
    norm.run(handle, PruneConfig("l1", ratio=0.5), PruneContext())
    first, second = handle.module[0], handle.module[2]
    assert first.out_channels < 8 and second.out_channels < 12
    assert first.gain.shape == (first.out_channels, 1, 1, 1)
    assert second.gain.shape == (second.out_channels, 1, 1, 1)
    # The first conv keeps its input: the channels it keeps give the dense conv's outputs exactly.
    keep = kept_rows(weight, first.weight.detach())
    assert torch.allclose(first(x), dense[:, keep], atol=1e-5)
    assert handle.module(x).shape == (2, 4)

"""Small models that structured pruning cannot cut as they are, each for one preflight finding."""

from __future__ import annotations

import time

import torch
from torch import nn


class FixedReshape(nn.Module):
    """``body``'s output is flattened to a hard-coded width: cutting its channels breaks the head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.body = nn.Conv2d(16, 32, 3, padding=1)
        self.head = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.body(torch.relu(self.stem(x))))
        return self.head(x.reshape(x.shape[0], 32 * 8 * 8))


class FixedReshapes(nn.Module):
    """``n`` branches, each flattened to a hard-coded width into its own head (the heads' outputs
    summed): each branch is a group of its own, and cutting any one of them breaks the model."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branches = nn.ModuleList(nn.Conv2d(8, 4, 3, padding=1) for _ in range(n))
        self.heads = nn.ModuleList(nn.Linear(4 * 8 * 8, 10) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        flat = [torch.relu(b(x)).reshape(x.shape[0], 4 * 8 * 8) for b in self.branches]
        return torch.stack([h(f) for h, f in zip(self.heads, flat)]).sum(0)


class TwoInputs(nn.Module):
    """A forward that needs two tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.conv(y)


class NoLayers(nn.Module):
    """Nothing to prune: no conv or linear layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class SlowWhenCut(FixedReshape):
    """Like :class:`FixedReshape`, but a forward with cut channels takes minutes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.body.out_channels != 32:
            time.sleep(120)
        return super().forward(x)


def fixed_reshape() -> nn.Module:
    return FixedReshape()


def two_inputs() -> nn.Module:
    return TwoInputs()


def no_layers() -> nn.Module:
    return NoLayers()


class CatIntoGroupedConv(nn.Module):
    """Two convs (8 and 4 channels) concatenated into a conv of 3 groups: neither one's channels split
    evenly over the 3 groups, so torch-pruning's ranking cannot reshape their scores."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(3, 4, 1)
        self.g = nn.Conv2d(12, 12, 3, padding=1, groups=3)
        self.head = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.g(torch.relu(torch.cat([self.a(x), self.b(x)], 1)))
        return self.head(y.mean((2, 3)))


def cat_into_grouped_conv() -> nn.Module:
    torch.manual_seed(0)
    return CatIntoGroupedConv()


def res2next_small() -> nn.Module:
    """timm's Res2NeXt with one block per stage: cutting the first 1x1 conv of a stage's first
    block (its output is split into scales for grouped convs) makes torch-pruning index channels
    past a layer's width while it cuts (a RuntimeError from the cut, not from the forward)."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("res2next50", layers=[1, 1, 1, 1], num_classes=10)


class CatIntoGroupedConvBN(CatIntoGroupedConv):
    """:class:`CatIntoGroupedConv` with BatchNorm after each conv (Network Slimming scores by it)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8))
        self.b = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
        self.g = nn.Sequential(nn.Conv2d(12, 12, 3, padding=1, groups=3), nn.BatchNorm2d(12))


def cat_into_grouped_conv_bn() -> nn.Module:
    torch.manual_seed(0)
    return CatIntoGroupedConvBN()


class InputWidthAttention(nn.Module):
    """timm NesT's attention: ``qkv`` reshaped to heads of the *input's* width (``C // num_heads``),
    so cutting ``qkv`` breaks the reshape in every block of this class."""

    def __init__(self, c: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class AttentionBlocks(nn.Module):
    """Four :class:`InputWidthAttention` blocks on a residual stream, then a classifier."""

    def __init__(self, c: int = 8, depth: int = 4) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(InputWidthAttention(c) for _ in range(depth))
        self.head = nn.Linear(c, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return self.head(x.mean(1))


class ConvBlock(nn.Module):
    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, 2 * c, 3, padding=1)
        self.conv2 = nn.Conv2d(2 * c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(torch.relu(self.conv1(x))))


class LastBlockFlattened(nn.Module):
    """Three :class:`ConvBlock` in a row, the last one's output flattened at a fixed width into the
    head: only the last block's ``conv2`` breaks the model when cut."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.blocks = nn.ModuleList(ConvBlock() for _ in range(3))
        self.head = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.reshape(x.shape[0], 4 * 6 * 6))

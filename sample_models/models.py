"""Sample model definitions. Each factory takes ``num_classes`` and returns an ``nn.Module``.

simple_cnn and resnet_small follow the SimpleCNN and ResNetSmall of a magnitude-pruning study
(20/50/80% sparsity, Adam fine-tuning), adapted to 1x28x28 input.
vgg_bn is the Network Slimming target, mlp the Wanda target, tiny_vit has attention heads.
mobilenet_small is a MobileNetV2-style network (inverted residuals, depthwise 3x3 convs), where a
layer's share of the MACs and its share of the measured latency part ways.
"""

from __future__ import annotations

import torch
from torch import nn


def simple_cnn(num_classes: int = 10) -> nn.Module:
    """Two 3x3 conv layers with pooling, then two linear layers."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(128, num_classes),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BatchNorm and an identity or 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    """Three stages of two basic blocks (widths 16/32/64), global pooling, linear head."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(cin, w, stride), BasicBlock(w, w)]
            cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def resnet_small(num_classes: int = 10) -> nn.Module:
    """The residual sample model."""
    return ResNetSmall(num_classes)


def resnet_wide(num_classes: int = 10) -> nn.Module:
    """The residual sample model at 1.5x the width: about 1 ms per image on one phone-class core."""
    return ResNetSmall(num_classes, widths=(24, 48, 96))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion, depthwise 3x3, linear 1x1 projection; identity shortcut
    when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.residual else out


# (expansion, output channels, blocks, stride of the first block), as in MobileNetV2's table
MOBILENET_SMALL = ((1, 16, 1, 1), (4, 32, 3, 2), (6, 64, 4, 2), (6, 96, 4, 1))


class MobileNetSmall(nn.Module):
    """MobileNetV2 for 28x28: a 3x3 stem, 12 inverted residual blocks at 28/14/7 pixels, a 1x1
    head conv, global pooling and a linear classifier."""

    def __init__(
        self, num_classes: int = 10, setting: tuple[tuple[int, int, int, int], ...] = MOBILENET_SMALL
    ):
        super().__init__()
        stem, head = 32, 640
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(1, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU6())
        ]
        cin = stem
        for expand, cout, blocks, stride in setting:
            for i in range(blocks):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers.append(nn.Sequential(nn.Conv2d(cin, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU6()))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def mobilenet_small(num_classes: int = 10) -> nn.Module:
    """The depthwise sample model: about 1 ms per image on one phone-class core."""
    return MobileNetSmall(num_classes)


def vgg_bn(num_classes: int = 10) -> nn.Module:
    """VGG-style conv + BatchNorm + ReLU stacks, global pooling, linear head."""
    cfg = [32, "M", 64, "M", 128, 128]
    layers: list[nn.Module] = []
    cin = 1
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        layers += [nn.Conv2d(cin, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU()]
        cin = v
    return nn.Sequential(
        nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)
    )


def mlp(num_classes: int = 10) -> nn.Module:
    """784 -> 512 -> 256 -> classes with ReLU."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Linear(256, num_classes),
    )


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (timm layout).

    ``num_heads`` and ``head_dim`` are attributes so that head pruning can change them.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # indexing qkv[0] would trace as one element-wise op, mixing q/k/v
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch-embedding ViT for 28x28: 7x7 patches (16 tokens) plus a class token."""

    def __init__(
        self,
        num_classes: int = 10,
        dim: int = 64,
        depth: int = 3,
        num_heads: int = 4,
        mlp_dim: int = 128,
        patch: int = 7,
    ):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        n_tokens = (28 // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp_dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def tiny_vit(num_classes: int = 10) -> nn.Module:
    """The attention sample model."""
    return TinyViT(num_classes)

"""Models that return several tensors, as user code (``tests.multi_output_models:build_net``).

``build_net`` is a small encoder-decoder: a stride-2 stem, an encoder, a decoder that upsamples
the encoder's features, a skip branch from the stem concatenated with the decoder, and a 1x1 head.
It returns ``{"seg": head(cat(decoder, skip)), "aux": encoder_features.mean((2, 3))}``: ``seg`` is
made by the head, ``aux`` by the encoder's last convolution, which is in the middle of the network.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class SegAux(nn.Module):
    """Segmentation logits at half resolution plus pooled encoder features."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = _block(3, 16, 2)
        self.encoder = nn.Sequential(_block(16, 32, 2), _block(32, 64))
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=2.0), _block(64, 32))
        self.skip = _block(16, 16)
        self.head = nn.Conv2d(48, classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.stem(x)
        e = self.encoder(s)
        d = self.decoder(e)
        return {"seg": self.head(torch.cat([d, self.skip(s)], 1)), "aux": e.mean((2, 3))}


def build_net(classes: int = 5) -> SegAux:
    """The encoder-decoder with a segmentation and an auxiliary output."""
    return SegAux(classes)


class Nested(nn.Module):
    """Returns a tuple whose second item is a dict holding a list: every naming rule at once."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor):
        f = torch.relu(self.conv(x))
        pooled = f.mean((2, 3))
        return self.fc(pooled), {"feat map": f, "out": [pooled, pooled * 2]}


def build_nested() -> Nested:
    """The nested-output model."""
    return Nested()

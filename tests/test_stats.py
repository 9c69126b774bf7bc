"""Size and cost figures of a PyTorch model (compressor.stats) on hand-made modules."""

from __future__ import annotations

import torch
from torch import nn

from compressor.stats import count_macs


class ClassToken(nn.Module):
    """A learned token expanded to the batch and fed to a layer, as vision transformers with a class
    token do (PiT): a view of a parameter that reaches a module as its input."""

    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 4))
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.token.expand(x.shape[0], -1)) + x.sum()


def test_macs_of_a_model_that_feeds_a_parameter_view_to_a_layer():
    model = ClassToken()
    assert count_macs(model, torch.zeros(1, 4)) == 4 * 3  # the one Linear at batch 1
    assert all(p.requires_grad for p in model.parameters())  # training still gets gradients

"""BatchNorm running statistics re-estimated on calibration samples, with no weight update.

Masking or removing weights changes what every BatchNorm behind the pruned layer sees, while eval
mode keeps normalising with the dense network's running mean and variance. Inside
:func:`statistics_pass` only the BatchNorm layers are in train mode, from reset statistics with a
cumulative average (``momentum=None``): forward passes re-estimate the running statistics and
normalise with the batch's own ones, which is what the layers downstream then see. Every other
module stays in eval mode (no dropout); no parameter changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

BatchNorm = nn.modules.batchnorm._BatchNorm


def batchnorms(model: nn.Module) -> list[BatchNorm]:
    """The BatchNorm layers of ``model`` that track running statistics."""
    return [m for m in model.modules() if isinstance(m, BatchNorm) and m.track_running_stats]


@contextmanager
def statistics_pass(model: nn.Module) -> Iterator[int]:
    """Forward passes inside re-estimate the BatchNorm statistics; yields how many layers.

    On exit the momenta and the train/eval flags of every module are restored.
    """
    layers = batchnorms(model)
    flags = [(m, m.training) for m in model.modules()]
    momenta = [(m, m.momentum) for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch of the pass
        m.train()
    try:
        yield len(layers)
    finally:
        for m, momentum in momenta:
            m.momentum = momentum
        for m, training in flags:
            m.training = training


@torch.no_grad()
def recalibrate(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> int:
    """Re-estimate the BatchNorm statistics of ``model`` on ``x``; returns how many layers."""
    with statistics_pass(model) as count:
        if count:
            for chunk in x.split(batch_size):
                model(chunk)
    return count

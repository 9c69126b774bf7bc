"""The own settings of Network Slimming (``compress slim``; ``PruneConfig.settings`` of method
``slim``), with the reason for each default. Torch-free, so ``--help`` and ``compress list`` show
them; :mod:`compressor.pruning.structured.slimming` reads them from ``cfg.settings``.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressor.errors import UsageError
from compressor.pruning.settings import MethodSettings
from compressor.train.config import OPTIMIZERS


@dataclass(frozen=True)
class SlimmingConfig(MethodSettings):
    """Network Slimming's sparsity phase and what follows the channel removal (Liu et al., ICCV 2017).

    :class:`~compressor.pruning.base.SlimConfig` (every ``compress slim`` option) takes its
    defaults for these fields from here.

    Attributes:
        lam: L1 strength on BatchNorm scales (>= 0); 1e-4, the paper's value for VGG (it uses 1e-5
            for ResNet and DenseNet).
        sparsity_epochs: epochs of sparsity training before the threshold (0: use the gammas as they
            are); 1, a short phase on a trained model (the paper trains from scratch with the
            penalty), so a command run stays minutes on a CPU.
        sparsity_lr: learning rate of sparsity training; none: the fine-tune rate, so one rate
            drives both phases.
        sparsity_optimizer: adam, adamw or sgd; adam, the fine-tune's optimizer. Adam normalises
            the L1 step away (every gamma moves about lr per step whatever lambda is); with sgd,
            the paper's optimizer, the step is lr * lambda (benchmarks/results/structured_accuracy.md:
            sgd at --sparsity-lr 0.01 kept vgg_bn 0.5 points more accurate at the same width).
        weight_threshold: after fine-tuning, zero weights with |w| below this (>= 0; 0: off, the
            paper removes channels only).
        gamma_plot: PNG path for a histogram of |gamma| with the threshold (none: no plot).
        max_batches: cap batches per epoch of both phases (none: whole epochs; smoke runs, and
            sweeps splitting one epoch between the phases).
    """

    title = "slim"

    lam: float = 1e-4
    sparsity_epochs: int = 1
    sparsity_lr: float | None = None
    sparsity_optimizer: str = "adam"
    weight_threshold: float = 0.0
    gamma_plot: str | None = None
    max_batches: int | None = None

    def check(self) -> None:
        if self.lam < 0:
            raise UsageError(f"--lambda must be >= 0, got {self.lam}", "the paper uses 1e-4 or 1e-5")
        if self.sparsity_epochs < 0:
            raise UsageError(f"--sparsity-epochs must be >= 0, got {self.sparsity_epochs}")
        if self.weight_threshold < 0:
            raise UsageError(f"--weight-threshold must be >= 0, got {self.weight_threshold}")
        if self.sparsity_optimizer not in OPTIMIZERS:
            raise UsageError(
                f"unknown --sparsity-optimizer '{self.sparsity_optimizer}'",
                f"use one of {', '.join(OPTIMIZERS)}",
            )
        if self.sparsity_lr is not None and not self.sparsity_lr > 0:
            raise UsageError(f"--sparsity-lr must be > 0, got {self.sparsity_lr}")
        if self.max_batches is not None and self.max_batches < 1:
            raise UsageError(f"--max-batches must be >= 1, got {self.max_batches}")

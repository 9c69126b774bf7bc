"""``compress slim``: Network Slimming (sparsity training, global gamma threshold, removal, fine-tune)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compressor.api.common import ModelSpec
from compressor.api.prune import PruneResult, prune
from compressor.defaults import SLIM_RATIO
from compressor.pruning.structured.budget.config import BudgetConfig


@dataclass(frozen=True)
class SlimConfig:
    """Every ``compress slim`` option; validated when turned into a :class:`PruneConfig`.

    Attributes:
        data: data spec for sparsity training, BN recalibration, fine-tuning and accuracy.
        ratio: fraction of BatchNorm channels removed (the global |gamma| percentile), in (0, 1);
            None: ``SLIM_RATIO`` (0.4) unless a budget is given.
        budget: prune to a target (measured speed-up or latency, MACs, parameters, file bytes)
            instead of a ratio; the widths are planned per group, trading the same gammas.
        lam: L1 strength on BatchNorm scales.
        sparsity_epochs: epochs of sparsity training before the threshold.
        finetune_epochs: epochs of fine-tuning after the removal.
        lr: learning rate of fine-tuning (Adam), and of sparsity training unless ``sparsity_lr``.
        finetune_schedule: learning-rate schedule of the fine-tune: none, cosine or step.
        sparsity_lr: learning rate of sparsity training (None: ``lr``).
        sparsity_optimizer: adam, adamw or sgd for sparsity training (sgd: the paper's setting).
        weight_threshold: after fine-tuning, zero weights with |w| below this (0: off).
        gamma_plot: PNG path for the |gamma| histogram (None: no plot).
        max_batches: cap batches per epoch of both phases (smoke runs; sweeps split one epoch).
        keep_residual: keep channels joined by residual additions (prune inside blocks only).
        device: where both phases train: auto (CUDA when present), cpu or cuda.
    """

    data: str
    ratio: float | None = None
    budget: BudgetConfig | None = None
    lam: float = 1e-4
    sparsity_epochs: int = 1
    finetune_epochs: int = 1
    lr: float = 1e-3
    finetune_schedule: str = "none"
    sparsity_lr: float | None = None
    sparsity_optimizer: str = "adam"
    batch_size: int = 128
    round_to: int | None = None
    max_layer_ratio: float = 0.9
    keep_residual: bool = False
    ignore: tuple[str, ...] = ()
    weight_threshold: float = 0.0
    gamma_plot: str | None = None
    max_batches: int | None = None
    seed: int = 0
    device: str = "auto"

    def to_prune_config(self):
        """The shared :class:`compressor.pruning.base.PruneConfig` with the slim options."""
        from compressor.pruning.base import PruneConfig

        opts: dict[str, Any] = {"lam": self.lam, "sparsity_epochs": self.sparsity_epochs,
                                "sparsity_lr": self.lr if self.sparsity_lr is None else self.sparsity_lr,
                                "sparsity_optimizer": self.sparsity_optimizer, "weight_threshold": self.weight_threshold,
                                "gamma_plot": self.gamma_plot, "max_batches": self.max_batches}
        ratio = SLIM_RATIO if self.ratio is None and self.budget is None else self.ratio
        return PruneConfig(method="slim", ratio=ratio, budget=self.budget, data=self.data, round_to=self.round_to,
                           max_layer_ratio=self.max_layer_ratio, keep_residual=self.keep_residual,
                           ignore=self.ignore,
                           finetune_epochs=self.finetune_epochs, finetune_lr=self.lr,
                           finetune_schedule=self.finetune_schedule,
                           finetune_batches=self.max_batches,
                           batch_size=self.batch_size, seed=self.seed, device=self.device, options=opts)


def slim(model: ModelSpec, cfg: SlimConfig, output: str | None, dry_run: bool = False,
         log=lambda line: None, measure_input: bool = True) -> PruneResult:
    """Slim ``model``; write the artifact to ``output`` unless ``dry_run``."""
    from compressor.pruning.structured.slimming import options

    pcfg = cfg.to_prune_config()
    options(pcfg.options)  # validate before any loading or training
    return prune(model, pcfg, output, dry_run=dry_run, log=log, measure_input=measure_input)

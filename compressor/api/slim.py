"""``compress slim``: Network Slimming (sparsity training, global gamma threshold, removal, fine-tune)."""

from __future__ import annotations

from compressor.api.common import ModelSpec
from compressor.api.prune import PruneResult, prune
from compressor.pruning.base import SlimConfig

__all__ = ["SlimConfig", "slim"]


def slim(model: ModelSpec, cfg: SlimConfig, output: str | None, dry_run: bool = False,
         log=lambda line: None, measure_input: bool = True) -> PruneResult:
    """Slim ``model``; write the artifact to ``output`` unless ``dry_run``."""
    from compressor.pruning.structured.slimming import options

    pcfg = cfg.to_prune_config()
    options(pcfg.options)  # validate before any loading or training
    return prune(model, pcfg, output, dry_run=dry_run, log=log, measure_input=measure_input)

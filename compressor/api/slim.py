"""``compress slim``: Network Slimming (sparsity training, global gamma threshold, removal, fine-tune)."""

from __future__ import annotations

from compressor.api.common import ModelSpec, Progress
from compressor.api.prune import PruneResult, prune
from compressor.pruning.base import SlimConfig

__all__ = ["SlimConfig", "slim"]


def slim(
    model: ModelSpec | str,
    config: SlimConfig,
    output: str | None = None,
    *,
    progress: Progress | None = None,
    dry_run: bool = False,
    measure_input: bool = True,
) -> PruneResult:
    """Slim ``model``; write the artifact to ``output`` unless ``dry_run``."""
    pcfg = config.to_prune_config()  # validated (settings included) before any loading or training
    return prune(model, pcfg, output, progress=progress, dry_run=dry_run, measure_input=measure_input)

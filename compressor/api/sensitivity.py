"""``compress sensitivity``: each prunable group pruned alone at several ratios: accuracy and saved latency."""

from __future__ import annotations

from collections.abc import Callable

from compressor.api.common import ModelSpec
from compressor.pruning.structured.budget.sensitivity import SensitivityConfig, SensitivityResult


def sensitivity(
    model: ModelSpec, cfg: SensitivityConfig, output: str, log: Callable[[str], None] = lambda line: None
) -> SensitivityResult:
    """Scan ``model`` and write ``sensitivity.json``, ``.csv`` and ``.png`` into the folder ``output``."""
    from compressor.pruning.structured.budget import sensitivity as scan_module

    if not output:
        from compressor.errors import UsageError

        raise UsageError("no output folder", "add -o DIR")
    document = scan_module.scan(model.load(), cfg, log)
    return SensitivityResult(output, document, scan_module.write(document, output))

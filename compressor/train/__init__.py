"""One training loop for every command that trains (fine-tune, slim, SAP, lottery, distill).

The loop's names resolve on first use, so that the torch-free configs
(:mod:`compressor.train.config`) import without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from compressor.train.config import TrainConfig

_LAZY = {
    "TrainResult": "compressor.train.loop",
    "evaluate": "compressor.train.loop",
    "fit": "compressor.train.loop",
    "distill_loss_fn": "compressor.train.distill",
    "kd_loss": "compressor.train.distill",
}

__all__ = ["TrainConfig", "TrainResult", "evaluate", "fit", "distill_loss_fn", "kd_loss"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value

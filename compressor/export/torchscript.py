"""TorchScript (``torch.jit.trace``): a program PyTorch runs without the model's Python code.

The trace records the operations of one forward pass on the example input, so control flow that
depends on the data is frozen to the path that input took; the parity check runs the saved file
against the model (batches of 1 and 7 with a dynamic batch) before it is written. Loaded back with
``torch.jit.load``; the ``compressor.*`` metadata is an extra file in the archive
(:mod:`compressor.export.program`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressor.export import program
from compressor.export.config import ExportConfig
from compressor.export.parity import Predictor
from compressor.export.pipeline import Inputs, Outcome


def save(module: nn.Module, example: torch.Tensor, path: Path, dynamic: bool, extra: dict[str, str]) -> None:
    """Trace ``module`` on ``example`` and save it with the extra files (a trace has no fixed batch)."""
    traced = torch.jit.trace(module, (example,), check_trace=False)
    torch.jit.save(traced, str(path), _extra_files=extra)


def load(path: Path, extra: dict[str, str]) -> Any:
    """The saved script module; fills in ``extra``."""
    return torch.jit.load(str(path), _extra_files=extra)


def write(inputs: Inputs, cfg: ExportConfig) -> Outcome:
    """Export, verify and write ``cfg.output``."""
    return program.write(inputs, cfg, save, load)


def describe(path: str) -> dict[str, Any]:
    """The figures ``compress info`` shows."""
    return program.describe(path, load, "torchscript")


def predictor(path: str) -> Predictor:
    """The file ready to run on batches."""
    return program.predictor(path, load)


def read_metadata(path: str) -> dict[str, str]:
    """The ``compressor.*`` metadata stored in the file."""
    return program.read_metadata(path, load)

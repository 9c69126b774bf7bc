"""ExportedProgram (``torch.export``): the model's graph of ATen operations with its weights.

``torch.export`` traces the forward pass symbolically; with a dynamic batch the first input's
axis 0 is exported as a symbolic dimension, otherwise the program takes the example's batch only.
The parity check runs the saved file against the model before it is written. Loaded back with
``torch.export.load``; the ``compressor.*`` metadata is an extra file in the archive
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
    """Export ``module`` on ``example`` (batch axis symbolic when ``dynamic``) and save it."""
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    exported = torch.export.export(module, (example,), dynamic_shapes=shapes)
    torch.export.save(exported, str(path), extra_files=extra)


def load(path: Path, extra: dict[str, str]) -> Any:
    """The saved program as a callable module; fills in ``extra``."""
    return torch.export.load(str(path), extra_files=extra).module()


def write(inputs: Inputs, cfg: ExportConfig) -> Outcome:
    """Export, verify and write ``cfg.output``."""
    return program.write(inputs, cfg, save, load)


def describe(path: str) -> dict[str, Any]:
    """The figures ``compress info`` shows."""
    return program.describe(path, load, "exported-program")


def predictor(path: str) -> Predictor:
    """The file ready to run on batches."""
    return program.predictor(path, load)


def read_metadata(path: str) -> dict[str, str]:
    """The ``compressor.*`` metadata stored in the file."""
    return program.read_metadata(path, load)

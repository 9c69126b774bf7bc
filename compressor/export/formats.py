"""Non-ONNX formats: TorchScript (``torch.jit.trace``) and ExportedProgram (``torch.export``).

Both carry the same ``compressor.*`` metadata as the ONNX file (as an extra file named
``compressor.json``) and are verified the same way: the saved file is loaded back and compared
with the PyTorch model on the parity inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compressor.errors import UnsupportedError, first_line
from compressor.export.onnx_export import flatten_outputs, quiet

META_FILE = "compressor.json"


def save(fmt: str, module: nn.Module, example: torch.Tensor, path: Path, dynamic: bool,
         meta: dict[str, str]) -> None:
    """Write ``module`` to ``path`` in ``fmt`` (torchscript or exported-program)."""
    extra = {META_FILE: json.dumps(meta)}
    try:
        with quiet():
            if fmt == "torchscript":
                traced = torch.jit.trace(module, (example,), check_trace=False)
                torch.jit.save(traced, str(path), _extra_files=extra)
            else:
                shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
                program = torch.export.export(module, (example,), dynamic_shapes=shapes)
                torch.export.save(program, str(path), extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - tracers raise many types
        raise UnsupportedError(f"{fmt} export failed: {first_line(exc)}",
                               "try --format onnx or another format") from None


def runner(fmt: str, path: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Load a saved TorchScript / ExportedProgram file and return a numpy runner for parity."""
    with quiet():
        if fmt == "torchscript":
            module = torch.jit.load(str(path))
        else:
            module = torch.export.load(str(path)).module()

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.detach().float().numpy() for t in flatten_outputs(module(torch.from_numpy(x)))]

    return run


def read_metadata(fmt: str, path: Path) -> dict[str, str]:
    """The ``compressor.*`` metadata stored beside the program."""
    extra = {META_FILE: ""}
    with quiet():
        if fmt == "torchscript":
            torch.jit.load(str(path), _extra_files=extra)
        else:
            torch.export.load(str(path), extra_files=extra)
    return json.loads(extra[META_FILE] or "{}")

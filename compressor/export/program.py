"""What the formats PyTorch runs itself (TorchScript, ExportedProgram) share: writing, verifying
and reading back a saved program.

A format module passes its own ``save(module, example, path, dynamic, extra_files)`` and
``load(path, extra_files) -> module`` (``load`` fills in the values of the extra files it is given).
The ``compressor.*`` metadata that ONNX files carry travels as the extra file ``compressor.json``.
Writing saves into a private folder, loads the file back, compares it with the PyTorch model on
the parity inputs and only then moves it into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressor import registry
from compressor.errors import InputError, UnsupportedError, first_line
from compressor.export import onnx_export, parity
from compressor.export.config import ExportConfig
from compressor.export.onnx_export import quiet
from compressor.export.pipeline import Inputs, Outcome, extra_metadata, gate, written
from compressor.io.atomic import atomic_write

META_FILE = "compressor.json"

Save = Callable[[nn.Module, torch.Tensor, Path, bool, dict[str, str]], None]
Load = Callable[[Path, dict[str, str]], Any]


def write(inputs: Inputs, cfg: ExportConfig, save: Save, load: Load) -> Outcome:
    """Save ``cfg.format`` in a private folder, load it back, verify, move it to ``cfg.output``."""
    out = Outcome()
    props = onnx_export.metadata(inputs.handle, cfg.format, extra_metadata(cfg))
    suffix = registry.export_format(cfg.format).suffixes[0]
    with tempfile.TemporaryDirectory(prefix="compressor-export-") as tmp:
        saved = Path(tmp) / f"model{suffix}"
        try:
            with quiet():
                save(inputs.handle.module, inputs.example, saved, cfg.dynamic, {META_FILE: json.dumps(props)})
        except Exception as exc:  # noqa: BLE001 - tracers raise many types
            others = [name for name in registry.FORMATS if name != cfg.format]
            raise UnsupportedError(
                f"{cfg.format} export failed: {first_line(exc)}", f"try another --format: {', '.join(others)}"
            ) from None
        if cfg.verify:
            with quiet():
                runner = parity.torch_runner(load(saved, {}))
            result = parity.check(
                parity.torch_runner(inputs.handle.module),
                runner,
                inputs.parity_inputs,
                cfg.fixed_batch,
                cfg.rtol,
                cfg.atol,
                inputs.output_names,
                inputs.scaled_outputs,
            )
            gate(result, cfg, out, inputs, lambda: runner)
        atomic_write(cfg.output, lambda dst: shutil.copyfile(saved, dst))
    out.figures.update(
        exporter=cfg.format,
        batch="dynamic" if cfg.dynamic else cfg.fixed_batch,
        **written([Path(cfg.output)], out),
    )
    return out


def read(path: str | Path, load: Load) -> tuple[Any, dict[str, str]]:
    """(the loaded program, its ``compressor.*`` metadata); an unreadable file is exit 2."""
    file = Path(path)
    if not file.is_file() or file.stat().st_size == 0:
        raise InputError(f"{file}: missing or empty file")
    extra = {META_FILE: ""}
    try:
        with quiet():
            module = load(file, extra)
        meta = json.loads(extra[META_FILE] or "{}")
    except Exception as exc:  # noqa: BLE001 - the loaders raise many types
        fmt = registry.format_of(str(file))
        title = fmt.title if fmt else "PyTorch program"
        raise InputError(f"{file}: not a readable {title} file ({first_line(exc, 160)})") from None
    return module, meta


def read_metadata(path: str | Path, load: Load) -> dict[str, str]:
    """The ``compressor.*`` metadata stored beside the program."""
    return read(path, load)[1]


def _fixed_batch(meta: dict[str, str]) -> int | None:
    batch = meta.get("compressor.batch", "dynamic")
    return int(batch) if batch.isdigit() and int(batch) > 0 else None


def predictor(path: str | Path, load: Load) -> parity.Predictor:
    """The loaded program as a numpy runner, with the batch size it was exported for if fixed."""
    module, meta = read(path, load)
    return parity.Predictor(parity.torch_runner(module), _fixed_batch(meta))


def describe(path: str | Path, load: Load, kind: str) -> dict[str, Any]:
    """The figures ``compress info`` shows: params and non-zeros of the loaded program, MACs of one
    sample (counted at the fixed batch when there is one), file sizes, the export metadata."""
    from compressor.stats import ESTIMATE_NOTE, MASK_NOTE, count_params, files_figures, forward_macs

    module, meta = read(path, load)
    params, nonzero = count_params(module)
    shape = json.loads(meta.get("compressor.input_shape", "null")) or []
    batch = _fixed_batch(meta) or 1
    macs = forward_macs(module, torch.zeros((batch, *shape[1:]))) // batch if shape else 0
    sizes = files_figures([path])
    sparsity = 1.0 - nonzero / max(params, 1)
    notes = [MASK_NOTE] * (sparsity > 0.2) + [ESTIMATE_NOTE] * sizes["compressed_estimated"]
    notes += [] if shape else ["no input shape in the file's metadata: MACs not counted"]
    return {
        "kind": kind,
        "ref": meta.get("compressor.ref") or None,
        "params": params,
        "nonzero_params": nonzero,
        "sparsity": sparsity,
        "macs": macs,
        "size_bytes": sizes["size_bytes"],
        "compressed_bytes": sizes["compressed_bytes"],
        "input_shape": list(shape),
        "history": [{"command": "export", "metadata": meta}] if meta else [],
        "notes": notes,
    }

"""``compress export``: a verified file in one of the registry's formats (ONNX by default)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from compressor.api.common import ModelSpec, Progress, as_spec, quiet
from compressor.export.config import ExportConfig

__all__ = ["ExportConfig", "ExportResult", "export"]


@dataclass(frozen=True)
class ExportResult:
    """What was written and how well it matches PyTorch.

    ``figures`` holds the flat keys: size_bytes, compressed_bytes, max_abs_error, max_rel_error,
    top1_agreement, parity_passed, nodes_before, nodes_after, params, nonzero_params, sparsity,
    torch_params, torch_nonzero_params, and with int8/fp16 fp32_size_bytes, size_ratio,
    accuracy_fp32, accuracy, accuracy_delta; external_data (the weights' file) for a graph over 2 GiB,
    whose size_bytes and compressed_bytes then count both files; compressed_estimated (True when
    compressed_bytes is estimated from samples, for files over 512 MiB).
    """

    output: str
    format: str
    figures: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """One flat document: output, format, the figures, per-output parity rows, notes."""
        return {
            "output": self.output,
            "format": self.format,
            **self.figures,
            "outputs": self.outputs,
            "notes": self.notes,
        }


def export(
    model: ModelSpec | str,
    config: ExportConfig,
    output: str | None = None,
    *,
    progress: Progress | None = None,
) -> ExportResult:
    """Export ``model`` as ``config`` says, to ``output`` (None: ``config.output``).

    Raises CheckFailed (exit 1) when parity fails.
    """
    from compressor import registry
    from compressor.io.atomic import check_writable

    model, log = as_spec(model), progress or quiet
    cfg = config if output is None else replace(config, output=output)
    check_writable(cfg.output)
    inputs = prepare(model, cfg, log)
    outcome = registry.export_format(cfg.format).load().write(inputs, cfg)
    figures = {**outcome.figures, **_torch_counts(inputs.handle.module)}
    notes = outcome.notes + ([] if cfg.verify else ["--no-verify: parity was not checked"])
    note = getattr(inputs.handle.module, "export_note", None)  # an adapter says what its graph computes
    if callable(note):
        notes.append(note())
    if figures.get("sparsity", 0) > 0.2:
        notes.append(
            "zeros shrink the compressed file, not the run time: dense runtimes such as "
            "ONNX Runtime on CPU compute them like any weight"
        )
    return ExportResult(cfg.output, cfg.format, figures, outcome.outputs, notes)


def prepare(model: ModelSpec, cfg: ExportConfig, log: Callable[[str], None]):
    """Load the model, check its forward pass, and gather parity / calibration / test samples."""
    import torch

    from compressor.export.onnx_export import forward_outputs, output_names
    from compressor.export.parity import make_inputs
    from compressor.export.pipeline import Inputs

    handle = model.load()
    shape = tuple(handle.input_shape)
    gen = torch.Generator().manual_seed(cfg.seed)
    example = torch.randn((cfg.fixed_batch or 2, *shape[1:]), generator=gen)  # 2: no 0/1 specialising
    names = output_names(forward_outputs(handle.module, example))
    real, calib, test = _samples(cfg, cfg.data, shape) if cfg.data else (None, None, None)
    count = max(cfg.samples, cfg.fixed_batch or 0)
    scaled = tuple(getattr(handle.module, "parity_scaled", ()))  # an adapter's outputs in pixels
    inputs = make_inputs(shape, count, cfg.seed, real)
    return Inputs(handle, example, inputs, calib, test, names, log, scaled)


def _samples(cfg: ExportConfig, data: str, shape: tuple[int, ...]):
    """(real parity samples, calibration samples or None, (x, y) test samples) from ``data``."""
    from compressor.errors import InputError
    from compressor.io.data import load_data

    test = load_data(data, "test")
    if tuple(test.input_shape[1:]) != tuple(shape[1:]):
        raise InputError(
            f"--data {data} gives inputs {tuple(test.input_shape[1:])} but the model "
            f"takes {tuple(shape[1:])}",
            "pass data the model was made for, or --input-shape",
        )
    real = test.take(min(cfg.samples, len(test)), cfg.seed)[0].numpy()
    x, y = test.take(min(cfg.eval_samples or len(test), len(test)), cfg.seed + 1)
    calib = None
    if cfg.quantize:
        train = load_data(data, "train")
        calib = train.take(min(cfg.calib_samples, len(train)), cfg.seed)[0].numpy()
    return real, calib, (x.numpy(), y.numpy())


def _torch_counts(module) -> dict[str, int]:
    from compressor.stats import count_params

    params, nonzero = count_params(module)
    return {"torch_params": params, "torch_nonzero_params": nonzero}

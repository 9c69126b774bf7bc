"""``compress eval``: top-1 accuracy and loss on a data split, for .pt and .onnx.

A model with several outputs is scored on one of them (``EvalConfig.output``; by default the
first, which the result's notes name): :func:`compressor.outputs.scored` chooses it, for PyTorch
models and exported files alike, and ``compress bench``'s accuracy gates evaluate through here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from compressor.api.common import ModelSpec, Progress, with_model
from compressor.outputs import SINGLE
from compressor.train.config import EvalConfig

__all__ = ["EvalConfig", "EvalResult", "evaluate"]


@dataclass(frozen=True)
class EvalResult:
    """Accuracy and loss on ``samples`` samples, of the output named ``output``."""

    path: str
    data: str
    accuracy: float
    loss: float
    samples: int
    backend: str
    attack: str | None = None
    eps: float | None = None
    robust_accuracy: float | None = None
    output: str = SINGLE
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Flat keys."""
        return asdict(self)


def evaluate(
    model: ModelSpec | str | EvalConfig | None,
    config: EvalConfig | None = None,
    output: None = None,
    *,
    progress: Progress | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``config.data`` (writes nothing; progress is a bar on a terminal).

    A PyTorch model runs in PyTorch; a file in an export format runs on that format's runtime
    (ONNX Runtime for ``.onnx``), through the format's ``predictor``.

    ``evaluate(config)``, with the model in ``config.model``, is the older call and still works.
    """
    from compressor.io.data import load_data

    if isinstance(model, EvalConfig):  # evaluate(config)
        model, config = None, model
    cfg, spec = with_model(config if config is not None else EvalConfig(), "model", model)
    data = load_data(cfg.data, cfg.split)
    if spec.format is not None:
        figures = _eval_file(spec.reader().predictor(spec.path), data, cfg)
        backend = spec.format.runtime
    else:
        from compressor.train.loop import check_classes
        from compressor.train.loop import evaluate as torch_eval

        handle = spec.load()
        handle.module, name, notes = _scored_module(handle.module, data, cfg.output)
        check_classes(handle.module, data)
        figures = {
            **torch_eval(handle.module, data, cfg.batch_size, cfg.limit),
            "output": name,
            "notes": notes,
        }
        backend = "pytorch"
        if cfg.attack is not None:
            return _attacked(cfg, spec, handle, data, figures)
    return EvalResult(
        spec.path,
        data.name,
        figures["accuracy"],
        figures["loss"],
        figures["samples"],
        backend,
        output=figures["output"],
        notes=tuple(figures["notes"]),
    )


def _scored_module(module, data, wanted: str | None) -> tuple[Any, str, list[str]]:
    """``module`` returning only its scored output (``module`` itself when it has one output), the
    output's name and the notes; the names come from one forward pass on the first sample."""
    import torch

    from compressor.outputs import named_tensors, pick, run_forward, scored

    sample = data.dataset[0][0].unsqueeze(0) if len(data) else None
    names = [n for n, _ in named_tensors(run_forward(module, sample))] if sample is not None else [SINGLE]
    index, notes = scored(names, wanted)
    if len(names) == 1:
        return module, names[0], notes

    class Scored(torch.nn.Module):
        """The model, returning the scored output only."""

        def __init__(self) -> None:
            super().__init__()
            self.model = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return pick(self.model(x), index)

    return Scored(), names[index], notes


def _attacked(cfg: EvalConfig, spec: ModelSpec, handle, data, figures: dict[str, Any]) -> EvalResult:
    from compressor.robustness import robust_accuracy

    attack = cfg.attack_config()
    robust = robust_accuracy(handle.module, data, attack, cfg.batch_size, cfg.limit)
    return EvalResult(
        spec.path,
        data.name,
        figures["accuracy"],
        figures["loss"],
        figures["samples"],
        "pytorch",
        attack.name,
        attack.eps,
        robust["robust_accuracy"],
        figures["output"],
        tuple(figures["notes"]),
    )


def _eval_file(predictor, data, cfg: EvalConfig) -> dict[str, Any]:
    """Accuracy and loss of an exported file (a :class:`~compressor.export.parity.Predictor`) on
    its scored output."""
    import torch

    from compressor.outputs import scored
    from compressor.progress import progress

    fixed = predictor.fixed_batch
    loader = data.loader(batch_size=fixed or cfg.batch_size, limit=cfg.limit)
    total_loss, correct, seen = 0.0, 0, 0
    index, notes = scored(list(predictor.names) or [SINGLE], cfg.output)
    with progress(len(loader), "eval") as advance:
        for x, y in loader:
            if fixed and len(x) != fixed:
                break  # a fixed-batch model cannot take the ragged last batch
            logits = torch.from_numpy(np.asarray(predictor.run(x.numpy())[index]))
            total_loss += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            advance(1)
    return {
        "accuracy": correct / max(seen, 1),
        "loss": total_loss / max(seen, 1),
        "samples": seen,
        "output": (list(predictor.names) or [SINGLE])[index],
        "notes": notes,
    }

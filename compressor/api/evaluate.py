"""``compress eval``: top-1 accuracy and loss on a data split, for .pt and .onnx."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from compressor.api.common import ModelSpec
from compressor.errors import UsageError


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate on, and optionally which adversarial attack to measure.

    Attributes:
        attack: None, fgsm or pgd (:mod:`compressor.robustness`); PyTorch models only.
        eps: the attack's L-infinity budget in [0, 1] pixel units.
        steps / alpha: PGD iterations and step size (None: 2.5 * eps / steps).
    """

    model: ModelSpec
    data: str = "fashion-mnist"
    split: str = "test"
    batch_size: int = 256
    limit: int | None = None
    attack: str | None = None
    eps: float = 0.03
    steps: int = 10
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise UsageError(f"--batch-size must be > 0, got {self.batch_size}")
        if self.limit is not None and self.limit <= 0:
            raise UsageError(f"--limit must be > 0, got {self.limit}")
        if self.attack is not None:
            self.attack_config()  # validates
            if self.model.is_onnx:
                raise UsageError("--attack needs gradients, which an .onnx file does not give",
                                 "attack the .pt model the ONNX file was exported from")

    def attack_config(self):
        """The :class:`compressor.robustness.AttackConfig` (None without --attack)."""
        if self.attack is None:
            return None
        from compressor.robustness import AttackConfig

        return AttackConfig(self.attack, self.eps, self.steps, self.alpha)


@dataclass(frozen=True)
class EvalResult:
    """Accuracy and loss on ``samples`` samples."""

    path: str
    data: str
    accuracy: float
    loss: float
    samples: int
    backend: str
    attack: str | None = None
    eps: float | None = None
    robust_accuracy: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Flat keys."""
        return asdict(self)


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Evaluate a model file on ``cfg.data``."""
    from compressor.io.data import load_data

    data = load_data(cfg.data, cfg.split)
    if cfg.model.is_onnx:
        figures = _eval_onnx(cfg.model.path, data, cfg)
        backend = "onnxruntime"
    else:
        from compressor.train.loop import check_classes, evaluate as torch_eval

        handle = cfg.model.load()
        check_classes(handle.module, data)
        figures = torch_eval(handle.module, data, cfg.batch_size, cfg.limit)
        backend = "pytorch"
        if cfg.attack is not None:
            return _attacked(cfg, handle, data, figures)
    return EvalResult(cfg.model.path, data.name, figures["accuracy"], figures["loss"],
                      figures["samples"], backend)


def _attacked(cfg: EvalConfig, handle, data, figures: dict[str, Any]) -> EvalResult:
    from compressor.robustness import robust_accuracy

    attack = cfg.attack_config()
    robust = robust_accuracy(handle.module, data, attack, cfg.batch_size, cfg.limit)
    return EvalResult(cfg.model.path, data.name, figures["accuracy"], figures["loss"],
                      figures["samples"], "pytorch", attack.name, attack.eps, robust["robust_accuracy"])


def _eval_onnx(path: str, data, cfg: EvalConfig) -> dict[str, Any]:
    import torch

    from compressor.io.onnx_file import ort_session
    from compressor.progress import progress

    session = ort_session(path)
    inp = session.get_inputs()[0]
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
    loader = data.loader(batch_size=fixed or cfg.batch_size, limit=cfg.limit)
    total_loss, correct, seen = 0.0, 0, 0
    with progress(len(loader), "eval") as advance:
        for x, y in loader:
            if fixed and len(x) != fixed:
                break  # a fixed-batch model cannot take the ragged last batch
            logits = torch.from_numpy(np.asarray(session.run(None, {inp.name: x.numpy()})[0]))
            total_loss += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            advance(1)
    return {"accuracy": correct / max(seen, 1), "loss": total_loss / max(seen, 1), "samples": seen}

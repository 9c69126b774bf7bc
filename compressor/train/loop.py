"""The training loop: optimizer, schedule, masks kept, held-out evaluation, best epoch kept.

Defaults follow the seed 003 fine-tuning protocol: Adam, lr 1e-4, weight decay 1e-4.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compressor.errors import UsageError
from compressor.io.data import Data
from compressor.progress import progress

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Validated on construction; the CLI, recipes and the API share it."""

    epochs: int = 1
    lr: float = 1e-4
    weight_decay: float = 1e-4
    optimizer: str = "adam"
    schedule: str = "none"
    batch_size: int = 128
    seed: int = 0
    momentum: float = 0.9
    label_smoothing: float = 0.0
    max_batches: int | None = None  # cap per epoch (tests, smoke runs)

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise UsageError(f"epochs must be >= 0, got {self.epochs}")
        if self.lr <= 0:
            raise UsageError(f"learning rate must be > 0, got {self.lr}", "try 1e-4 for fine-tuning")
        if self.weight_decay < 0:
            raise UsageError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.batch_size <= 0:
            raise UsageError(f"batch size must be > 0, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer '{self.optimizer}'", f"valid: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule '{self.schedule}'", f"valid: {', '.join(SCHEDULES)}")


@dataclass
class TrainResult:
    """What a run did: per-epoch figures and the epoch kept."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float | None = None


def fit(model: nn.Module, train: Data, cfg: TrainConfig, val: Data | None = None,
        masks: dict[str, torch.Tensor] | None = None, loss_fn: LossFn | None = None,
        after_backward: Callable[[nn.Module], None] | None = None,
        batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        description: str = "train") -> TrainResult:
    """Train ``model`` in place; keep the best epoch on ``val`` when given.

    Args:
        masks: parameter name -> bool mask; masked weights and their gradients stay zero.
        loss_fn: ``loss_fn(logits, targets, inputs)``; cross-entropy when None.
        after_backward: called between backward and step (e.g. an L1 penalty on BN gammas).
        batch_transform: augmentation applied to each input batch.
    """
    torch.manual_seed(cfg.seed)
    if cfg.epochs == 0:
        return TrainResult()
    loader = train.loader(batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
    steps = min(len(loader), cfg.max_batches or len(loader))
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, steps)
    ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    loss_fn = loss_fn or (lambda logits, y, x: ce(logits, y))
    masked = _masked_params(model, masks or {})
    result, best_state = TrainResult(), None
    apply_masks(masked)
    with progress(cfg.epochs * steps, description) as advance:
        for epoch in range(cfg.epochs):
            stats = _train_epoch(model, loader, steps, optimizer, scheduler, loss_fn, masked,
                                 after_backward, batch_transform, advance)
            if val is not None:
                stats.update({f"val_{k}": v for k, v in evaluate(model, val).items()})
                if result.best_val_accuracy is None or stats["val_accuracy"] > result.best_val_accuracy:
                    result.best_val_accuracy, result.best_epoch = stats["val_accuracy"], epoch
                    best_state = copy.deepcopy(model.state_dict())
            result.epochs.append({"epoch": epoch, **stats})
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = cfg.epochs - 1
    model.eval()
    return result


def _train_epoch(model, loader, steps, optimizer, scheduler, loss_fn, masked, after_backward,
                 batch_transform, advance) -> dict[str, float]:
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for i, (x, y) in enumerate(loader):
        if i >= steps:
            break
        if batch_transform is not None:
            x = batch_transform(x)
        logits = model(x)
        loss = loss_fn(logits, y, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            after_backward(model)
        for param, mask in masked:
            if param.grad is not None:
                param.grad.mul_(mask)
        optimizer.step()
        apply_masks(masked)
        scheduler.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        advance(1, loss=total_loss / seen, acc=correct / seen)
    return {"train_loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1)}


def _masked_params(model: nn.Module, masks: dict[str, torch.Tensor]) -> list[tuple[nn.Parameter, torch.Tensor]]:
    params = dict(model.named_parameters())
    return [(params[name], mask.to(params[name].dtype)) for name, mask in masks.items() if name in params]


@torch.no_grad()
def apply_masks(masked: list[tuple[nn.Parameter, torch.Tensor]]) -> None:
    """Zero the masked-out weights."""
    for param, mask in masked:
        param.mul_(mask)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named in the config."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=True)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A per-step learning-rate schedule."""
    total = max(cfg.epochs * steps_per_epoch, 1)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(total // 3, 1), gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, batch_size: int = 512, limit: int | None = None,
             description: str = "eval") -> dict[str, Any]:
    """Top-1 accuracy and mean cross-entropy loss of ``model`` on ``data``."""
    was_training = model.training
    model.eval()
    loader = data.loader(batch_size=batch_size, limit=limit)
    total_loss, correct, seen = 0.0, 0, 0
    with progress(len(loader), description) as advance:
        for x, y in loader:
            logits = model(x)
            total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            advance(1)
    model.train(was_training)
    return {"accuracy": correct / max(seen, 1), "loss": total_loss / max(seen, 1), "samples": seen}

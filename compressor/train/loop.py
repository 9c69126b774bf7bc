"""The training loop: optimizer, schedule, masks kept, held-out evaluation, best epoch kept.

Defaults (:class:`~compressor.train.config.TrainConfig`): Adam, one-cycle schedule peaking at lr 3e-3,
weight decay 1e-4, chosen by what one epoch recovers after a structured cut. The same
loop serves every command that trains (prune fine-tuning, slim, SAP, lottery, distill); it runs
on CPU or CUDA (``device``), with optional mixed precision (``amp``: CUDA float16 with a grad
scaler, CPU bfloat16 autocast), and under ``torchrun`` with DDP (:mod:`compressor.train.distributed`).
On CPU a given seed gives identical weights run after run.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compressor.errors import InputError, UsageError
from compressor.io.data import Data
from compressor.progress import progress
from compressor.train import distributed
from compressor.train.config import TrainConfig

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Masked = list[tuple[nn.Parameter, torch.Tensor]]


@dataclass
class TrainResult:
    """What a run did: per-epoch figures and the epoch kept.

    Attributes:
        epochs: one dict per finished epoch (train_loss, train_accuracy, val_accuracy, ...).
        best_epoch: index of the epoch whose weights were kept (-1: none finished).
        best_val_accuracy: its held-out accuracy (None without a val split).
        interrupted: Ctrl-C stopped the run; the model holds the best finished epoch.
        seconds: wall time of the training epochs; device / world_size: where it ran.
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float | None = None
    interrupted: bool = False
    seconds: float = 0.0
    device: str = "cpu"
    world_size: int = 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is a usage error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but no CUDA GPU is available", "use --device cpu or auto")
    return distributed.local_device(name)


def fit(
    model: nn.Module,
    train: Data,
    cfg: TrainConfig,
    val: Data | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    loss_fn: LossFn | None = None,
    after_backward: Callable[[nn.Module], None] | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    description: str = "train",
    stop_on_interrupt: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place; keep the best epoch on ``val`` (else the last epoch).

    Args:
        masks: parameter name -> bool mask; masked weights and their gradients stay zero.
        loss_fn: ``loss_fn(logits, targets, inputs)``; cross-entropy when None.
        after_backward: called between backward and step (e.g. an L1 penalty on BN gammas).
        batch_transform: augmentation applied to each input batch.
        stop_on_interrupt: on Ctrl-C keep the best finished epoch and return with
            ``interrupted=True`` instead of raising KeyboardInterrupt.
        on_epoch: called with each epoch's figures (rank 0 only).

    Raises:
        InputError: the data has labels outside the model's output classes.
    """
    torch.manual_seed(cfg.seed)
    if cfg.epochs == 0:
        return TrainResult()
    device, home = resolve_device(cfg.device), _device_of(model)
    model.to(device)
    check_classes(model, train)
    run = _Run(model, train, cfg, device, masks or {}, loss_fn, after_backward, batch_transform)
    result = TrainResult(device=str(device), world_size=distributed.world_size())
    best_state, start = _snapshot(model), time.perf_counter()
    try:
        with progress(cfg.epochs * run.steps, description, enabled=_bar_enabled()) as advance:
            for epoch in range(cfg.epochs):
                stats = run.epoch(epoch, advance)
                if _keep(result, stats, epoch, val, model):
                    best_state = _snapshot(model)
                result.epochs.append({"epoch": epoch, **stats})
                if on_epoch is not None and distributed.is_main():
                    on_epoch(result.epochs[-1])
    except KeyboardInterrupt:
        if not stop_on_interrupt:
            model.to(home)
            raise
        result.interrupted = True
    result.seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    model.to(home).eval()
    return result


def _keep(
    result: TrainResult, stats: dict[str, float], epoch: int, val: Data | None, model: nn.Module
) -> bool:
    """Evaluate on ``val``; record and return whether this epoch is the best so far."""
    if val is not None:
        stats.update({f"val_{k}": v for k, v in evaluate(model, val, progress_bar=False).items()})
        if result.best_val_accuracy is not None and stats["val_accuracy"] <= result.best_val_accuracy:
            return False
        result.best_val_accuracy = stats["val_accuracy"]
    result.best_epoch = epoch
    return True


class _Run:
    """One training run's fixed parts: loader, optimizer, schedule, masks, precision."""

    def __init__(
        self,
        model: nn.Module,
        train: Data,
        cfg: TrainConfig,
        device: torch.device,
        masks: dict[str, torch.Tensor],
        loss_fn: LossFn | None,
        after_backward: Callable[[nn.Module], None] | None,
        batch_transform: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> None:
        self.model, self.cfg, self.device = model, cfg, device
        self.net = distributed.wrap(model, device)
        self.sampler = distributed.sampler(train.dataset, cfg.seed)
        self.loader = train.loader(
            batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed, sampler=self.sampler
        )
        self.steps = min(len(self.loader), cfg.max_batches or len(self.loader))
        self.optimizer = make_optimizer(model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg, self.steps)
        ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.loss_fn = loss_fn or (lambda logits, y, x: ce(logits, y))
        self.masked = masked_params(model, masks)
        self.after_backward, self.batch_transform = after_backward, batch_transform
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
        apply_masks(self.masked)

    def epoch(self, epoch: int, advance: Callable[..., None]) -> dict[str, float]:
        """Train one epoch; return its mean loss and accuracy (over all processes)."""
        self.model.train()
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        total_loss, correct, seen = 0.0, 0, 0
        for x, y in itertools.islice(self.loader, self.steps):
            loss, logits = self.step(x.to(self.device), y.to(self.device))
            total_loss += loss * len(y)
            correct += (logits.argmax(1) == y.to(logits.device)).sum().item()
            seen += len(y)
            advance(1, loss=total_loss / seen, acc=correct / seen)
        total_loss, correct, seen = distributed.all_sum([total_loss, correct, seen])
        return {"train_loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1)}

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
        """One optimisation step; masked weights and gradients stay zero."""
        if self.batch_transform is not None:
            x = self.batch_transform(x)
        with autocast(self.device, self.cfg.amp):
            logits = self.net(x)
            loss = self.loss_fn(logits, y, x)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        if self.after_backward is not None:
            self.after_backward(self.model)
        for param, mask in self.masked:
            if param.grad is not None:
                param.grad.mul_(mask)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        apply_masks(self.masked)
        self.scheduler.step()
        return loss.item(), logits.detach()


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision for ``device``: float16 on CUDA, bfloat16 on CPU; no-op when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def check_classes(model: nn.Module, data: Data) -> None:
    """Labels must index the model's outputs: ``data.num_classes <= model outputs``."""
    if len(data) == 0:
        raise InputError(f"{data.name} has no samples", "pass a data set with samples")
    was_training = model.training
    model.eval()
    x = data.dataset[0][0].unsqueeze(0).to(_device_of(model))
    out = model(x)
    model.train(was_training)
    if out.ndim != 2 or out.shape[1] < data.num_classes:
        raise InputError(
            f"{data.name} has labels 0..{data.num_classes - 1} but the model outputs "
            f"shape {tuple(out.shape)}",
            "train on data with the model's classes, or rebuild the head (e.g. --arch-kwargs num_classes=N)",
        )


def masked_params(model: nn.Module, masks: dict[str, torch.Tensor]) -> Masked:
    """(parameter, float mask on its device) pairs for the masks naming a parameter."""
    params = dict(model.named_parameters())
    return [
        (params[name], mask.to(device=params[name].device, dtype=params[name].dtype))
        for name, mask in masks.items()
        if name in params
    ]


_masked_params = masked_params  # the foundation's name


@torch.no_grad()
def apply_masks(masked: Masked) -> None:
    """Zero the masked-out weights."""
    for param, mask in masked:
        param.mul_(mask)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named in the config."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
        )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A per-step learning-rate schedule."""
    total = max(cfg.epochs * steps_per_epoch, 1)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(total // 3, 1), gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Data,
    batch_size: int = 512,
    limit: int | None = None,
    description: str = "eval",
    progress_bar: bool | None = None,
) -> dict[str, Any]:
    """Top-1 accuracy and mean cross-entropy loss of ``model`` on ``data`` (on its device)."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    loader = data.loader(batch_size=batch_size, limit=limit)
    total_loss, correct, seen = 0.0, 0, 0
    enabled = _bar_enabled() if progress_bar is None else progress_bar and _bar_enabled()
    with progress(len(loader), description, enabled=enabled) as advance:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x).float()
            total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            advance(1)
    model.train(was_training)
    return {"accuracy": correct / max(seen, 1), "loss": total_loss / max(seen, 1), "samples": seen}


def _bar_enabled() -> bool | None:
    """Progress bars only on rank 0 (None: decide by whether stderr is a terminal)."""
    return None if distributed.is_main() else False


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(model.state_dict())

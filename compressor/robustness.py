"""Adversarial robustness under an L-infinity budget: FGSM and PGD.

FGSM (Goodfellow et al., ICLR 2015, arXiv:1412.6572): one step x' = x + eps * sign(grad_x loss).
PGD (Madry et al., ICLR 2018, arXiv:1706.06083): a random start in the eps-ball, then ``steps``
steps of size ``alpha`` along sign(grad), each projected back into the ball. ``eps`` and ``alpha``
are in pixel units of [0, 1] images (eps 0.03 is about 8/255). Our data sources hand out
normalised inputs (x - mean) / std, so the attack runs in normalised space with a per-channel
budget eps / std and clamps to the normalised images of pixel values 0 and 1; data without a
mean/std (tensors, random) is attacked in its own units without clamping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compressor.errors import UsageError, unknown_name

ATTACKS = ("fgsm", "pgd")


@dataclass(frozen=True)
class AttackConfig:
    """One attack.

    Attributes:
        name: fgsm or pgd.
        eps: L-infinity budget in [0, 1] pixel units (0 measures clean accuracy).
        steps: PGD iterations.
        alpha: PGD step size in pixel units (None: 2.5 * eps / steps, Madry et al.'s rule).
        seed: seed of PGD's random start.
    """

    name: str = "fgsm"
    eps: float = 0.03
    steps: int = 10
    alpha: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in ATTACKS:
            raise unknown_name("attack", self.name, ATTACKS)
        if not 0 <= self.eps <= 1:
            raise UsageError(f"--eps must be in [0, 1] (pixel units), got {self.eps}", "e.g. --eps 0.03")
        if self.steps < 1:
            raise UsageError(f"--steps must be >= 1, got {self.steps}")
        if self.alpha is not None and self.alpha <= 0:
            raise UsageError(f"--alpha must be > 0, got {self.alpha}")

    @property
    def step_size(self) -> float:
        """PGD's step in pixel units."""
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps


def pixel_bounds(
    mean: list[float] | None, std: list[float] | None, channels: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(low, high, scale) of shape (1, C, 1, 1): normalised images of 0 and 1, and 1 / std."""
    if mean is None or std is None:
        inf = torch.full((1, channels, 1, 1), float("inf"))
        return -inf, inf, torch.ones((1, channels, 1, 1))
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (0 - m) / s, (1 - m) / s, 1 / s


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = nn.functional.cross_entropy(model(x), y)
        return torch.autograd.grad(loss, x)[0]


def _clamp(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.minimum(x, high), low)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    low: torch.Tensor,
    high: torch.Tensor,
    scale: torch.Tensor,
) -> torch.Tensor:
    """One signed-gradient step of ``eps`` pixels, clamped to valid images."""
    return _clamp(x + eps * scale * _input_grad(model, x, y).sign(), low, high).detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: AttackConfig,
    low: torch.Tensor,
    high: torch.Tensor,
    scale: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """Projected gradient descent from a random start in the eps-ball."""
    budget, step = cfg.eps * scale, cfg.step_size * scale
    noise = torch.rand(x.shape, generator=gen) * 2 - 1
    adv = _clamp(x + noise * budget, low, high)
    for _ in range(cfg.steps):
        adv = adv + step * _input_grad(model, adv, y).sign()
        adv = _clamp(torch.maximum(torch.minimum(adv, x + budget), x - budget), low, high)
    return adv.detach()


def robust_accuracy(
    model: nn.Module, data, cfg: AttackConfig, batch_size: int = 256, limit: int | None = None
) -> dict[str, Any]:
    """Clean and adversarial top-1 accuracy of ``model`` on ``data`` (at most ``limit`` samples)."""
    from compressor.progress import progress

    model.eval()
    low, high, scale = pixel_bounds(data.mean, data.std, data.input_shape[1])
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = data.loader(batch_size=batch_size, limit=limit)
    clean = robust = seen = 0
    with progress(len(loader), f"{cfg.name} eps={cfg.eps}") as advance:
        for x, y in loader:
            with torch.no_grad():
                clean += (model(x).argmax(1) == y).sum().item()
            adv = (
                x
                if cfg.eps == 0
                else (
                    fgsm(model, x, y, cfg.eps, low, high, scale)
                    if cfg.name == "fgsm"
                    else pgd(model, x, y, cfg, low, high, scale, gen)
                )
            )
            with torch.no_grad():
                robust += (model(adv).argmax(1) == y).sum().item()
            seen += len(y)
            advance(1)
    return {"clean_accuracy": clean / max(seen, 1), "robust_accuracy": robust / max(seen, 1), "samples": seen}

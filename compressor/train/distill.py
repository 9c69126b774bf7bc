"""Knowledge distillation loss (Hinton, Vinyals & Dean, 2015, arXiv:1503.02531).

The student matches the teacher's temperature-softened distribution and the labels:
``L = alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE(z_s, y)`` with ``p = softmax(z / T)``.
The KL term takes the teacher as the target distribution, ``sum p_t * (log p_t - log p_s)``,
which is Hinton's soft-target cross-entropy minus the teacher's (constant) entropy; it is what
``F.kl_div(log_softmax(z_s / T), softmax(z_t / T))`` computes. (Some summaries write the arguments
in the other order; the formula implemented here is the paper's.) ``T^2`` keeps the soft-target
gradients on the scale of the hard-label ones when T changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from compressor.defaults import KD_ALPHA, KD_TEMPERATURE
from compressor.errors import InputError, UsageError


def check_kd(temperature: float, alpha: float) -> None:
    """Reject a temperature <= 0 or an alpha outside [0, 1] (exit 2)."""
    if not temperature > 0:
        raise UsageError(f"--temperature must be > 0, got {temperature}", "T = 4 is common")
    if not 0 <= alpha <= 1:
        raise UsageError(
            f"--alpha must be in [0, 1], got {alpha}", "alpha weighs the teacher term; 0.5-0.9 is common"
        )


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over the batch of KL(softmax(z_t/T) || softmax(z_s/T))."""
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = KD_TEMPERATURE,
    alpha: float = KD_ALPHA,
) -> torch.Tensor:
    """Hinton's loss: ``alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE(z_s, y)``."""
    soft = soft_kl(student_logits, teacher_logits, temperature) * temperature**2
    hard = F.cross_entropy(student_logits.float(), targets)
    return alpha * soft + (1 - alpha) * hard


def check_same_outputs(student_out: torch.Tensor, teacher_out: torch.Tensor) -> None:
    """Teacher and student must give logits of the same shape (exit 2 otherwise)."""
    if student_out.shape != teacher_out.shape:
        raise InputError(
            f"teacher outputs shape {tuple(teacher_out.shape)} but the student "
            f"outputs {tuple(student_out.shape)}",
            "distil from a teacher trained on the same classes (same head size)",
        )


def distill_loss_fn(
    teacher: nn.Module, temperature: float, alpha: float
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``loss_fn(logits, targets, inputs)`` for :func:`compressor.train.fit`.

    The teacher is frozen: eval mode, no gradients; it runs on the same inputs as the student.
    """
    check_kd(temperature, alpha)
    teacher.eval()
    teacher.requires_grad_(False)

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        _follow(teacher, inputs.device)
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        check_same_outputs(logits, teacher_logits)
        return kd_loss(logits, teacher_logits, targets, temperature, alpha)

    return loss_fn


def _follow(module: nn.Module, device: torch.device) -> None:
    """Move ``module`` to ``device`` when it is elsewhere (the loop moves the student)."""
    param = next(module.parameters(), None)
    if param is not None and param.device != device:
        module.to(device)

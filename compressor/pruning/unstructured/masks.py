"""Pure tensor functions behind every masked method: scores in, bool masks (True = kept) out.

Top-k masks at global / layer / row scope, N:M masks, Wanda scores, the PQ index and SAP's
keep/prune amounts (Diao et al., ICLR 2023). No hooks, no modules: each function is tested on
hand-made tensors in ``tests/test_masks_math.py``.
"""

from __future__ import annotations

import math

import torch


def n_pruned(count: int, sparsity: float) -> int:
    """How many of ``count`` weights a ``sparsity`` removes (rounded to nearest)."""
    return min(count, max(0, int(round(count * sparsity))))


def topk_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the highest scores, removing exactly ``round(numel * sparsity)`` (ties by position)."""
    flat = scores.reshape(-1)
    k = n_pruned(flat.numel(), sparsity)
    mask = torch.ones(flat.numel(), dtype=torch.bool)
    if k:
        order = torch.argsort(flat, stable=True)
        mask[order[:k]] = False
    return mask.view(scores.shape)


def row_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Per output row (dim 0): remove the lowest ``sparsity`` fraction of every row.

    Every row keeps at least one weight: an empty row is a dead neuron that fine-tuning cannot
    bring back (a 3x3 filter at 95% would otherwise lose all 9 weights).
    """
    rows = scores.reshape(scores.shape[0], -1)
    k = min(n_pruned(rows.shape[1], sparsity), max(rows.shape[1] - 1, 0))
    mask = torch.ones_like(rows, dtype=torch.bool)
    if k:
        order = torch.argsort(rows, dim=1, stable=True)
        mask.scatter_(1, order[:, :k], False)
    return mask.view(scores.shape)


def global_masks(scores: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """One ranking across all tensors: the lowest ``sparsity`` fraction of all scores is removed."""
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1) for n in names])
    mask = topk_mask(flat, sparsity)
    out, start = {}, 0
    for name in names:
        size = scores[name].numel()
        out[name] = mask[start : start + size].view(scores[name].shape)
        start += size
    return out


def global_allocation(
    scores: dict[str, torch.Tensor],
    sparsity: float,
    normalize: str = "mean",
    max_layer_sparsity: float = 0.99,
) -> dict[str, float]:
    """Per-tensor sparsity from one threshold over all ``scores`` (overall: ``sparsity``).

    Args:
        scores: name -> scores of one tensor (higher = more important).
        sparsity: fraction of all the scores removed.
        normalize: ``mean`` divides each tensor's scores by their mean first (scale-free across
            tensors), ``raw`` compares them as they are.
        max_layer_sparsity: no tensor gives up more than this fraction (at least one score of
            every tensor survives); the others take up the rest so the total stays ``sparsity``.
            A cap below ``sparsity`` rises to it (one allocation, every tensor at the cap, fits).
    """
    if normalize not in ("mean", "raw"):
        raise ValueError(f"unknown normalisation '{normalize}' (mean or raw)")
    max_layer_sparsity = max(max_layer_sparsity, sparsity)
    guarded = {}
    for name, s in scores.items():
        flat = s.detach().reshape(-1).double()
        if normalize == "mean":
            flat = flat / flat.mean().clamp_min(torch.finfo(torch.float64).tiny)
        keep = max(1, flat.numel() - n_pruned(flat.numel(), max_layer_sparsity))
        guarded[name] = flat.index_fill(0, torch.topk(flat, keep).indices, float("inf"))
    masks = global_masks(guarded, sparsity)
    return {name: 1.0 - m.double().mean().item() for name, m in masks.items()}


def scoped_mask(scores: torch.Tensor, sparsity: float, scope: str) -> torch.Tensor:
    """``row`` -> :func:`row_mask`, anything else -> :func:`topk_mask` over the tensor."""
    return row_mask(scores, sparsity) if scope == "row" else topk_mask(scores, sparsity)


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """In every block of ``m`` consecutive inputs of a row keep the ``n`` highest scores.

    Rows are dim 0; the inputs are the remaining dims flattened (conv: C*kh*kw). The row length
    must be divisible by ``m`` (callers check and name the layer).
    """
    rows = scores.reshape(scores.shape[0], -1)
    if rows.shape[1] % m:
        raise ValueError(f"row length {rows.shape[1]} is not divisible by {m}")
    blocks = rows.reshape(rows.shape[0], -1, m)
    order = torch.argsort(blocks, dim=2, stable=True)
    mask = torch.ones_like(blocks, dtype=torch.bool)
    mask.scatter_(2, order[:, :, : m - n], False)
    return mask.view(scores.shape)


def wanda_scores(weight: torch.Tensor, input_norm: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """S_ij = |W_ij| * ||X_j||_2 (Sun et al., 2023).

    Args:
        weight: linear [out, in] or conv [out, in/groups, *kernel].
        input_norm: L2 norm of each input feature (linear) or input channel (conv) over the
            calibration samples (and positions), shape [in].
        groups: conv groups; output row o sees the input channels of its group.
    """
    if weight.dim() == 2:
        return weight.abs() * input_norm.view(1, -1)
    out_ch, per_group = weight.shape[:2]
    norms = input_norm.view(groups, per_group).repeat_interleave(out_ch // groups, dim=0)
    return weight.abs() * norms.view(out_ch, per_group, *([1] * (weight.dim() - 2)))


def input_sq_sum(x: torch.Tensor, conv: bool) -> torch.Tensor:
    """Sum of squares of each input feature (linear) or channel (conv) over batch and positions.

    Linear input [..., in] -> [in]; conv input [B, C, *spatial] -> [C]. Summed over batches, its
    square root is ||X_j||_2. Reduced in float32 without copying the activation (torch's reductions
    sum pairwise, so large batches keep their precision).
    """
    x = x.detach().float()
    dims = [0, *range(2, x.dim())] if conv else list(range(x.dim() - 1))
    return x.pow(2).sum(dim=dims)


def pq_index(w: torch.Tensor, p: float = 0.5, q: float = 1.0) -> float:
    """PQ index I(w) = 1 - d^(1/q - 1/p) * ||w||_p / ||w||_q of the d given weights.

    0 for a vector of equal magnitudes, approaching 1 as it gets sparser. An empty or all-zero
    vector counts as maximally sparse (1.0 is never reached by a non-zero vector).
    """
    if not 0 < p < q:
        raise ValueError(f"PQ index needs 0 < p < q, got p={p}, q={q}")
    a = w.detach().reshape(-1).double().abs()
    d = a.numel()
    norm_q = a.pow(q).sum().pow(1 / q).item() if d else 0.0
    if norm_q == 0.0:
        return 1.0
    norm_p = a.pow(p).sum().pow(1 / p).item()
    return 1.0 - d ** (1 / q - 1 / p) * norm_p / norm_q


def sap_amounts(
    d: int,
    index: float,
    p: float = 0.5,
    q: float = 1.0,
    eta_r: float = 0.0,
    gamma: float = 1.0,
    beta: float = 0.9,
) -> tuple[float, int]:
    """SAP's weights to keep r and to prune c at one step, for ``d`` unpruned weights.

    r = d * (1 + eta_r)^(-q/(q-p)) * (1 - I)^(q*p/(q-p));
    c = floor(d * min(gamma * (1 - r/d), beta)).
    """
    if d == 0:
        return 0.0, 0
    r = d * (1 + eta_r) ** (-q / (q - p)) * (1 - index) ** (q * p / (q - p))
    c = math.floor(d * min(gamma * (1 - r / d), beta) + 1e-9)
    return r, max(0, min(c, d))


def prune_smallest(magnitude: torch.Tensor, alive: torch.Tensor, count: int) -> torch.Tensor:
    """Remove the ``count`` smallest-magnitude weights among those still ``alive`` (bool)."""
    scores = torch.where(alive, magnitude, torch.full_like(magnitude, float("inf")))
    flat, mask = scores.reshape(-1), alive.reshape(-1).clone()
    count = min(count, int(mask.sum()))
    if count > 0:
        mask[torch.argsort(flat, stable=True)[:count]] = False
    return mask.view(alive.shape)


def sparsity_of(masks: dict[str, torch.Tensor]) -> float:
    """Fraction of masked-out entries over all masks."""
    total = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / max(total, 1)

"""Compact storage of masked tensors in the artifact: kept values plus a bit-packed mask.

A float32 weight at sparsity s costs 4 (1 - s) + 1/8 bytes per entry instead of 4: at 90% the
artifact shrinks to about 13% of the dense one. Everything is a plain tensor, so the artifact
still loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import torch

_BITS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Bool tensor -> uint8 tensor of ceil(numel / 8) bytes, most significant bit first."""
    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, torch.zeros(pad, dtype=torch.uint8)])
    return (flat.view(-1, 8) * _BITS).sum(1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: the first ``numel`` bits as a flat bool tensor."""
    bits = (packed.view(-1, 1) & _BITS).ne(0)
    return bits.reshape(-1)[:numel]


def pack(tensor: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor | list[int]]:
    """``{"values", "bits", "shape"}``: the entries where ``mask`` is True, and the mask itself."""
    mask = mask.to(torch.bool).reshape(tensor.shape)
    return {"values": tensor.detach()[mask].clone(), "bits": pack_bits(mask), "shape": list(tensor.shape)}


def unpack(entry: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(dense tensor with zeros where masked, bool mask) from a :func:`pack` entry."""
    shape = tuple(entry["shape"])
    numel = 1
    for dim in shape:
        numel *= dim
    mask = unpack_bits(entry["bits"], numel)
    dense = torch.zeros(numel, dtype=entry["values"].dtype)
    dense[mask] = entry["values"]
    return dense.view(shape), mask.view(shape)


def worth_packing(mask: torch.Tensor, itemsize: int) -> bool:
    """Whether packing saves bytes: kept values + mask bits < dense values."""
    kept = int(mask.sum())
    return kept * itemsize + (mask.numel() + 7) // 8 < mask.numel() * itemsize

"""Attention layers under structured pruning: which layers hold heads, and what to update after.

A fused-qkv attention layer (timm's ``Attention`` in ViT/DeiT/MobileViT blocks, our sample
``Attention``) projects the tokens with one linear layer into ``3 * num_heads * head_dim`` channels,
reshapes them to ``(3, num_heads, head_dim)`` and splits q, k and v with ``unbind``.
torch-pruning traces that split (through ``F.scaled_dot_product_attention`` as well as through
timm's explicit ``softmax(q @ k^T * scale) @ v`` path) and, told the number of heads, removes the
same positions from every head of q, k and v: each head keeps ``head_dim`` channels, q and k keep
matching dimensions, and the output projection loses the inputs of the removed v channels. So the
layer's own forward runs unchanged while the graph is traced; only the attributes it reads are
updated afterwards: ``head_dim``, ``attn_dim`` and ``scale``.

``scale`` follows ``head_dim``: timm sets it to ``head_dim ** -0.5`` and its fused path
(``scaled_dot_product_attention`` without a scale) uses the width of q it is given, so after
pruning both paths compute the same function only when ``scale`` is rescaled with ``head_dim``.
"""

from __future__ import annotations

import inspect

from torch import nn

ROTARY_REASON = "rotary position embedding (its width fixes the head width)"


def is_qkv_attention(module: nn.Module) -> bool:
    """A fused-qkv attention layer: a linear ``qkv`` and integer ``num_heads`` and ``head_dim``."""
    return (
        isinstance(getattr(module, "qkv", None), nn.Linear)
        and isinstance(getattr(module, "num_heads", None), int)
        and isinstance(getattr(module, "head_dim", None), int)
    )


def takes_rotary_embedding(module: nn.Module) -> bool:
    """A fused-qkv attention layer whose forward takes rotary position embeddings (timm's
    ``AttentionRope``, ``EvaAttention``: a ``rope`` argument). The embedding is as wide as each
    head, so a head cannot lose channels: its ``qkv`` is kept (whole heads are never removed)."""
    if not is_qkv_attention(module):
        return False
    try:
        return "rope" in inspect.signature(type(module).forward).parameters
    except (TypeError, ValueError):  # a forward without a signature to read
        return False


def attention_heads(model: nn.Module) -> dict[nn.Module, int]:
    """Layers whose outputs are split into heads -> number of heads."""
    heads: dict[nn.Module, int] = {}
    for sub in model.modules():
        if isinstance(sub, nn.MultiheadAttention):
            heads[sub] = sub.num_heads
        elif is_qkv_attention(sub):
            heads[sub.qkv] = sub.num_heads
    return heads


def sync_heads(module: nn.Module) -> None:
    """Update ``head_dim`` (and ``attn_dim``, ``scale``) of a fused-qkv layer to its pruned width.

    The width of the heads is read from the output projection, whose inputs are every head's
    (``num_heads * head_dim``), where it is a linear layer: ``qkv`` is not always three parts
    (timm GCViT's global attention projects keys and values only, its queries come from
    elsewhere). Without such a ``proj``, from ``qkv``'s three parts."""
    proj = getattr(module, "proj", None)
    width = proj.in_features if isinstance(proj, nn.Linear) else module.qkv.out_features // 3
    head_dim = width // module.num_heads
    old = module.head_dim
    if head_dim == old:
        return
    module.head_dim = head_dim
    if isinstance(getattr(module, "attn_dim", None), int):
        module.attn_dim = module.num_heads * head_dim
    if isinstance(getattr(module, "scale", None), float):
        module.scale = module.scale * (old / head_dim) ** 0.5

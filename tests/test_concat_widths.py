"""Concatenations whose input widths torch-pruning cannot infer take them from the traced tensors
(timm CSPNet's cross stage, timm CoaT's class token put back): the graph builds and the model prunes."""

from __future__ import annotations

import torch
from torch import nn
from torch_pruning import ops

from compressor.pruning.structured import graph, grouping
from tests.conftest import prune_l1_half


class CrossStage(nn.Module):
    """timm CSPNet's stage: half the expanded channels pass a residual block, the other half joins
    them again; the residual sum is the input whose width torch-pruning infers as None."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.half = c
        self.expand = nn.Conv2d(c, 2 * c, 1)
        self.conv1 = nn.Conv2d(c, c, 1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.transition = nn.Conv2d(2 * c, 2 * c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.expand(x).split(self.half, dim=1)
        x1 = self.conv2(torch.relu(self.conv1(x1))) + x1
        return self.transition(torch.cat([x1, x2], dim=1))


class ClassTokenConv(nn.Module):
    """timm CoaT's convolutional position encoding: the class token is sliced off the tokens, the
    others pass a depthwise conv, and the two are joined again along the tokens. Around it, chains
    of residual sums as deep as CoaT's stages: torch-pruning gives up inferring the widths through
    them (its search has a step limit), so every width at the join is unknown to it."""

    def __init__(self, c: int = 8, side: int = 3) -> None:
        super().__init__()
        self.side = side
        self.embed = nn.Linear(6, c)
        self.proj = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.norm = nn.LayerNorm(c)
        self.hidden = nn.Linear(c, 2 * c)
        self.head = nn.Linear(2 * c, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = deep(self.embed(x))
        cls, tokens = x[:, :1], x[:, 1:]
        b, n, c = tokens.shape
        feat = tokens.transpose(1, 2).view(b, c, self.side, self.side)
        feat = (self.proj(feat) + feat).flatten(2).transpose(1, 2)
        x = self.norm(deep(torch.cat((cls, feat), dim=1)))
        return self.head(torch.relu(self.hidden(x[:, 0])))


def deep(x: torch.Tensor, blocks: int = 10) -> torch.Tensor:
    for _ in range(blocks):
        x = x + torch.tanh(x)
    return x


def csp_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), CrossStage(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3)
    ).eval()


def concats(dg: grouping.Graph) -> list:
    return [n for n in dg.module2node.values() if n.type == ops.OPTYPE.CONCAT]


def test_cross_stage_concat_takes_the_traced_widths():
    """Both joined halves are 8 channels wide: a channel of the second half is channel 8 + i of the
    transition's input."""
    model = csp_net()
    dg = grouping.build(model, torch.randn(1, 3, 10, 10))
    (cat,) = concats(dg)
    assert cat.module.concat_sizes == [8, 8]
    assert cat.module.offsets == [0, 8, 16]


def test_cross_stage_prunes_and_keeps_its_output():
    model = csp_net()
    before = graph.out_widths(model)
    handle, _ = prune_l1_half(model, (1, 3, 10, 10))
    after = graph.out_widths(handle.module)
    assert handle.module(torch.randn(2, 3, 10, 10)).shape == (2, 3)
    assert after["1.conv1"] < before["1.conv1"]
    assert sum(after.values()) < sum(before.values())


def test_token_concat_maps_no_channels():
    """Joining the class token with the others along the tokens leaves every channel in place: the
    concatenation sets no channel offsets, and the embedding's channels reach the norm unshifted."""
    model = ClassTokenConv().eval()
    dg = grouping.build(model, torch.randn(1, 10, 6))
    group = dg.get_pruning_group(model.embed, dg.get_pruner_of_module(model.embed).prune_out_channels, [5])
    reached = {item.dep.target.module: item.idxs for item in group}
    assert reached[model.proj] == [5]
    assert reached[model.norm] == [5]
    (joined,) = [n for n in concats(dg) if n.module.concat_sizes == [1, 9]]
    assert not joined.enable_index_mapping


def test_token_concat_model_prunes_and_keeps_its_output():
    model = ClassTokenConv().eval()
    handle, _ = prune_l1_half(model, (1, 10, 6))
    assert handle.module.hidden.out_features < 16
    assert handle.module(torch.randn(2, 10, 6)).shape == (2, 4)


class RotaryHalves(nn.Module):
    """A rotary embedding's ``rotate_half``: q's head dimension (the last) split in two and joined
    again as ``cat((-x2, x1), dim=-1)``, a join along the last dimension, not the channels."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.out = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q(x).reshape(x.shape[0], x.shape[1], 2, 4)
        x1, x2 = q[..., :2], q[..., 2:]
        rotated = torch.cat((-x2, x1), dim=-1)
        return self.out((q + rotated).flatten(2))


def test_a_join_along_the_last_dimension_maps_no_channels():
    """torch stores ``dim=-1`` as 2**64 - 1, which torch-pruning read as a channel join (and failed
    inferring its widths on timm Gemma4 ViT): the traced dimension decides, and it gets no mapping."""
    from compressor.pruning.structured import concat_widths

    torch.manual_seed(0)
    model = RotaryHalves().eval()
    dg = grouping.build(model, torch.randn(2, 5, 8))
    cats = [n for n in dg.module2node.values() if n.type == ops.OPTYPE.CONCAT]
    assert len(cats) == 1 and getattr(cats[0], concat_widths.OTHER_DIM, False)
    assert cats[0].module.offsets is None or not cats[0].enable_index_mapping
    side = grouping.build(CrossStage().eval(), torch.randn(1, 8, 6, 6))  # a channel join: mapped
    (join,) = [n for n in side.module2node.values() if n.type == ops.OPTYPE.CONCAT]
    assert not getattr(join, concat_widths.OTHER_DIM, False) and join.module.offsets == [0, 8, 16]


class RotaryAttention(nn.Module):
    """timm's rotary attention (``AttentionRope``: DeepSeek ViT, EVA): a fused qkv unbound into q, k
    and v, and q and k each read twice by the rotary embedding (``x * cos + rotate_half(x) * sin``),
    so the unbind has more consumers than parts."""

    def __init__(self, c: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.attn_dim = heads, c // heads, c
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        self.head = nn.Linear(c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        y = nn.functional.scaled_dot_product_attention(rotary(q), rotary(k), v)
        return self.head(self.proj(y.transpose(1, 2).reshape(b, n, self.attn_dim)).mean(1))


def rotary(x: torch.Tensor) -> torch.Tensor:
    """``x * cos + rotate_half(x) * sin`` as timm's ``apply_rot_embed_cat(half=True)``: the head
    dimension (the last of ``(batch, heads, tokens, head_dim)``) split in halves and swapped."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * 0.6 + torch.cat((-x2, x1), dim=-1) * 0.8


def test_an_unbind_maps_each_consumer_to_the_part_it_reads():
    """q, k and v are a third of the qkv channels each, whatever number of operations read them:
    a channel of v (the third part) is the same channel of the attention output."""
    torch.manual_seed(0)
    model = RotaryAttention().eval()
    dg = grouping.build(model, torch.randn(1, 5, 16))
    (unbind,) = [n for n in dg.module2node.values() if n.type == ops.OPTYPE.UNBIND]
    assert len(unbind.outputs) > 3  # q and k read by several operations each
    group = dg.get_pruning_group(model.qkv, dg.get_pruner_of_module(model.qkv).prune_out_channels, [32 + 3])
    assert unbind.module.offsets == [0, 16, 32, 48]
    reached = {item.dep.target.module: item.idxs for item in group}
    assert reached[model.proj] == [3]


def test_a_split_of_the_head_dimension_maps_no_channels():
    """The rotary halves are a split along the last dimension of a 4-D tensor: mapped as channels,
    its offsets (inferred through the attention) sent the walk below channel 0, and on through
    every block. The group of a qkv channel ends where it should, its channels all in range."""
    torch.manual_seed(0)
    model = RotaryAttention().eval()
    dg = grouping.build(model, torch.randn(1, 5, 16))
    splits = [n for n in dg.module2node.values() if n.type == ops.OPTYPE.SPLIT]
    assert len(splits) == 2 and not any(split_mappings(n) for n in splits)
    group = dg.get_pruning_group(model.qkv, dg.get_pruner_of_module(model.qkv).prune_out_channels, [1])
    assert not group.unmapped
    assert all(i >= 0 for item in group for i in item.idxs)
    reached = {item.dep.target.module: sorted(item.idxs) for item in group}
    assert reached[model.qkv] == [1, 17, 33]  # the same channel of q, k and v


def split_mappings(node) -> list:
    """The channel mappings set on the edges between a split ``node`` and its parts."""
    from torch_pruning.dependency.index_mapping import _SplitIndexMapping

    edges = [dep for dep in node.dependencies if dep.target in node.outputs]
    edges += [dep for out in node.outputs for dep in out.dependencies if dep.target is node]
    return [m for dep in edges for m in dep.index_mapping if isinstance(m, _SplitIndexMapping)]


class TokenGlu(nn.Module):
    """timm's ``GluMlp`` on tokens: the hidden channels (the last dimension) split in two halves."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(a * torch.sigmoid(b)).mean(1)


def test_a_split_of_token_channels_stays_mapped():
    """Split along the last dimension of ``(batch, tokens, channels)``, the halves' widths add up to
    the traced size: a channel split, mapped (hidden channel 3 is gated by channel 8 + 3)."""
    model = TokenGlu().eval()
    dg = grouping.build(model, torch.randn(1, 4, 6))
    (split,) = [n for n in dg.module2node.values() if n.type == ops.OPTYPE.SPLIT]
    assert len(split_mappings(split)) == 4  # to and from each half
    group = dg.get_pruning_group(model.fc1, dg.get_pruner_of_module(model.fc1).prune_out_channels, [3])
    reached = {item.dep.target.module: sorted(item.idxs) for item in group}
    assert reached[model.fc1] == [3, 11]
    assert reached[model.fc2] == [3]


def test_rotary_attention_prunes_and_keeps_its_output():
    torch.manual_seed(0)
    model = RotaryAttention().eval()
    handle, _ = prune_l1_half(model, (1, 5, 16))
    assert handle.module.qkv.out_features < 48
    assert handle.module(torch.randn(2, 5, 16)).shape == (2, 3)

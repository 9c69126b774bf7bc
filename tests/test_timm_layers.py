"""timm layers the dependency graph handles by rule: the scaled weight-standardized convs of NFNets
(their per-channel ``gain`` is cut with the conv), gMLP's spatial gating unit (both halves of the
hidden channels are cut alike; the token-mixing ``proj`` is never cut), GLU MLPs (a ratio cuts that
fraction of the hidden channels, both halves alike), and the head width of an attention layer whose
``qkv`` is not three parts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compressor.model import ModelHandle
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.structured import graph, norm
from tests.conftest import prune_l1_half

timm = pytest.importorskip("timm")
from timm.layers import GatedMlp, GluMlp, ScaledStdConv2d, ScaledStdConv2dSame  # noqa: E402
from timm.models.mlp_mixer import MlpMixer, SpatialGatingBlock  # noqa: E402


def nf_net() -> nn.Module:
    """Two scaled weight-standardized convs (one with TF 'SAME' padding) and a classifier, each
    gain distinct per channel so a gain cut out of step with its conv changes the output."""
    torch.manual_seed(0)
    model = nn.Sequential(
        ScaledStdConv2d(3, 8, 3),
        nn.ReLU(),
        ScaledStdConv2dSame(8, 12, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(12, 4),
    ).eval()
    for conv in (model[0], model[2]):
        with torch.no_grad():
            conv.gain.copy_(torch.linspace(0.5, 2.0, conv.out_channels).view(-1, 1, 1, 1))
    return model


def kept_rows(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    """Indices of ``before``'s rows that ``after`` keeps (rows are matched exactly)."""
    return [next(i for i, row in enumerate(before) if torch.equal(row, kept)) for kept in after]


def test_scaled_std_conv_gain_is_cut_with_its_channels():
    model = nf_net()
    x = torch.randn(2, 3, 12, 12)
    weight, dense = model[0].weight.detach().clone(), model[0](x).detach()
    handle, _ = prune_l1_half(model, (1, 3, 12, 12))
    first, second = handle.module[0], handle.module[2]
    assert first.out_channels < 8 and second.out_channels < 12
    assert first.gain.shape == (first.out_channels, 1, 1, 1)
    assert second.gain.shape == (second.out_channels, 1, 1, 1)
    # The first conv keeps its input: the channels it keeps give the dense conv's outputs exactly.
    keep = kept_rows(weight, first.weight.detach())
    assert torch.allclose(first(x), dense[:, keep], atol=1e-5)
    assert handle.module(x).shape == (2, 4)


def gmlp() -> nn.Module:
    """A one-block timm gMLP: 16 hidden channels (two halves of 8) over 16 tokens."""
    torch.manual_seed(0)
    return MlpMixer(
        num_classes=5,
        img_size=32,
        patch_size=8,
        num_blocks=1,
        embed_dim=8,
        mlp_ratio=2,
        block_layer=SpatialGatingBlock,
        mlp_layer=GatedMlp,
    ).eval()


def test_spatial_gating_cuts_both_halves_alike_and_keeps_the_token_mixer():
    model = gmlp()
    mlp = model.blocks[0].mlp_channels
    fc1 = mlp.fc1.bias.detach().clone()  # distinct per channel; the input width may be cut too
    handle = ModelHandle(module=model, ref=None, input_shape=(1, 3, 32, 32))
    norm.run(handle, PruneConfig("l1", ratio=0.5, scope="layer"), PruneContext())  # every group cut
    half = 8
    keep = kept_rows(fc1, mlp.fc1.bias.detach())
    assert len(keep) == half  # ratio 0.5 of the hidden channels
    assert [i + half for i in keep if i < half] == [i for i in keep if i >= half]
    assert mlp.gate.norm.normalized_shape == (len(keep) // 2,)
    assert mlp.fc2.in_features == len(keep) // 2
    assert (mlp.gate.proj.in_features, mlp.gate.proj.out_features) == (16, 16)
    assert handle.module(torch.randn(2, 3, 32, 32)).shape == (2, 5)


class GluBlock(nn.Module):
    """timm's ``GluMlp`` (SwiGLU: ``fc1``'s 64 outputs chunked into a value and a gate half) on
    tokens, then a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = GluMlp(16, 64, act_layer=nn.SiLU)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mlp(x).mean(1))


def test_a_glu_ratio_cuts_that_fraction_of_its_hidden_channels_in_both_halves():
    """Half the hidden channels go at ratio 0.5 (it removed seven eighths when every ranked channel
    was cut in both halves while the count was taken on the whole width), value and gate alike."""
    torch.manual_seed(0)
    model = GluBlock().eval()
    fc1 = model.mlp.fc1.bias.detach().clone()
    handle = ModelHandle(module=model, ref=None, input_shape=(1, 5, 16))
    norm.run(handle, PruneConfig("l1", ratio=0.5, scope="layer"), PruneContext())  # each layer by 0.5
    keep = kept_rows(fc1, handle.module.mlp.fc1.bias.detach())
    assert len(keep) == 32 and handle.module.mlp.fc2.in_features == 16
    assert [i + 32 for i in keep if i < 32] == [i for i in keep if i >= 32]
    assert handle.module(torch.randn(2, 5, 16)).shape == (2, 3)


def test_a_layer_whose_channels_are_all_coupled_is_not_ranked_in_parts():
    """Through timm's ECA attention (a 1-D conv across the channels) every channel of the conv
    before it is coupled with every other: that is no GLU, and parts of one channel each would
    leave nothing to cut. The GLU's ``fc1`` is found with its two halves."""
    from timm.layers import EcaModule

    from compressor.pruning.structured import grouping

    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3)
    layers = (conv, EcaModule(8), nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    model = nn.Sequential(*layers).eval()
    dg = grouping.build(model, torch.randn(1, 3, 8, 8))
    group = dg.get_pruning_group(conv, dg.get_pruner_of_module(conv).prune_out_channels, [0])
    assert sorted(group[0].idxs) == list(range(8))  # channel 0 reaches all eight
    assert grouping.chunked_layers(dg, [conv]) == {}
    glu = GluBlock().eval()
    assert grouping.chunked_layers(grouping.build(glu, torch.randn(1, 5, 16)), [glu.mlp.fc1]) == {
        glu.mlp.fc1: 2
    }


def test_token_mixer_is_left_out_of_the_graph():
    model = gmlp()
    pruner = graph.make_pruner(model, torch.randn(1, 3, 32, 32), lambda g: None, ratio=0.5)
    assert model.blocks[0].mlp_channels.gate.proj not in pruner.DG.module2node
    assert model.blocks[0].mlp_channels.fc1 in pruner.DG.module2node


def test_shvit_prunes_where_the_reshape_width_is_not_inferred():
    """timm SHViT's attention output is reshaped after a batched matmul into a reshape whose width
    torch-pruning infers as 0; the graph is still built and the model pruned, and it runs."""
    from timm.models.shvit import SHViT

    torch.manual_seed(0)
    model = SHViT(
        num_classes=5,
        embed_dim=(16, 24, 32),
        partial_dim=(4, 8, 8),
        qk_dim=(4, 4, 4),
        depth=(1, 1, 1),
        types=("i", "s", "s"),
    ).eval()
    before = graph.out_widths(model)
    handle, _ = prune_l1_half(model, (1, 3, 64, 64))
    after = graph.out_widths(handle.module)
    assert sum(after.values()) < 0.8 * sum(before.values())
    assert handle.module(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_head_width_of_a_keys_and_values_projection_is_read_from_proj():
    """GCViT's global attention projects keys and values only (``qkv`` is 2 x dim wide): after any
    cut the head width was recomputed as a third of that (21 for 64 channels and 2 heads), and every
    GCViT MLP cut broke the attention's reshape. Unpruned, it stays; pruned, it follows proj."""
    from timm.models.gcvit import WindowAttentionGlobal

    from compressor.pruning.structured import attention

    torch.manual_seed(0)
    attn = WindowAttentionGlobal(dim=64, num_heads=2, window_size=(7, 7))
    attention.sync_heads(attn)
    assert attn.head_dim == 32
    assert attn(torch.randn(4, 49, 64), torch.randn(1, 49, 64)).shape == (4, 49, 64)  # 4 windows
    attn.proj = nn.Linear(48, 64)  # each head cut to 24 channels
    attention.sync_heads(attn)
    assert attn.head_dim == 24

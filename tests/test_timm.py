"""timm models under structured pruning: timm's own attention layers traced as they are, heads kept
consistent, the attributes timm's forward reads updated, a small ViT through prune -> export ->
parity, the guard against pruned models that break, and (slow) one model per tricky family."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from torch import nn

from compressor.errors import UnsupportedError

timm = pytest.importorskip("timm")
from timm.layers import Attention  # noqa: E402

from compressor.api import ExportConfig, ModelSpec, export, prune  # noqa: E402
from compressor.pruning.base import PruneConfig  # noqa: E402
from compressor.pruning.structured import coupling, graph  # noqa: E402
from compressor.pruning.structured.norm import importance  # noqa: E402


def test_timm_attention_has_the_api_pruning_relies_on():
    """Pruning updates ``head_dim``/``attn_dim``/``scale`` and lets timm's forward (fused or not,
    with an ``attn_mask``) run unchanged; when timm renames these or its forward stops reading them,
    this fails instead of pruned ViTs computing something else."""
    from timm.models import vision_transformer

    assert vision_transformer.Attention is Attention
    attn = Attention(48, num_heads=3, qkv_bias=True)
    for name in (
        "qkv",
        "proj",
        "q_norm",
        "k_norm",
        "num_heads",
        "head_dim",
        "attn_dim",
        "scale",
        "fused_attn",
    ):
        assert hasattr(attn, name), name
    assert isinstance(attn.qkv, nn.Linear) and attn.qkv.out_features == 3 * attn.num_heads * attn.head_dim
    assert {"attn_mask", "is_causal"} <= set(inspect.signature(Attention.forward).parameters)
    source = inspect.getsource(Attention.forward)
    for read in ("self.head_dim", "self.attn_dim", "self.scale", "unbind(0)", "scaled_dot_product_attention"):
        assert read in source, read


class OneAttention(nn.Module):
    """One timm Attention on a token sequence; its output projection makes the outputs (kept)."""

    def __init__(self, qk_norm: bool = False):
        super().__init__()
        self.attn = Attention(
            48, num_heads=3, qkv_bias=True, qk_norm=qk_norm, norm_layer=nn.LayerNorm if qk_norm else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


def prune_half(model: nn.Module, example: torch.Tensor) -> None:
    graph.prune_step(
        model,
        example,
        lambda: importance("l1", 0),
        ratio=0.5,
        global_pruning=True,
        round_to=None,
        max_layer_ratio=0.9,
        ignored=["attn.proj"],
        original=graph.out_widths(model),
    )


def kept_rows(bias: torch.Tensor) -> list[tuple[int, int, int]]:
    """(part q/k/v, head, position in head) of each qkv row left, read from a bias tagged with the row index."""
    return [(r // 48, r % 48 // 16, r % 16) for r in bias.round().long().tolist()]


def test_heads_are_pruned_alike_in_q_k_and_v():
    """torch-pruning, told the number of heads, removes the same positions from every head of q, k
    and v: the pruned layer equals the dense one with those rows (and the matching proj inputs)
    zeroed. Pruning q and k at different positions (no ``num_heads``) changes every dot product."""
    model = OneAttention().eval()
    model.attn.fused_attn = False
    with torch.no_grad():
        model.attn.qkv.bias.copy_(torch.arange(144.0))  # tags each row; l1 scores weights only
    dense, x = copy.deepcopy(model), torch.randn(2, 5, 48)
    prune_half(model, x)
    attn = model.attn
    rows = kept_rows(attn.qkv.bias)
    positions = {(part, head): {d for p, h, d in rows if (p, h) == (part, head)} for part, head, _ in rows}
    assert len(set(map(frozenset, positions.values()))) == 1 and len(positions) == 9  # uniform in all 9
    assert attn.head_dim == len(rows) // 9 < 16
    keep = torch.zeros(144, dtype=torch.bool)
    keep[[p * 48 + h * 16 + d for p, h, d in rows]] = True
    with torch.no_grad():
        dense.attn.qkv.weight[~keep] = 0
        dense.attn.qkv.bias.copy_(torch.where(keep, dense.attn.qkv.bias, 0))
    attn.scale = 16**-0.5  # the dense scale: zeroed rows then add nothing to the dot products
    # equal up to float32 rounding (1e-6 of outputs about 10); a q/k/v mix-up moves them by whole units
    assert torch.allclose(model(x), dense(x), atol=1e-4)


def test_pruned_attention_agrees_fused_and_explicit():
    """After pruning, ``scale`` follows ``head_dim``: timm's fused path (scaled_dot_product_attention,
    which scales by the pruned q width) and its explicit path compute the same; with the dense scale
    left in place they differ by the ratio of the head widths inside the softmax."""
    model = OneAttention().eval()
    x = torch.randn(2, 5, 48)
    prune_half(model, x)
    attn = model.attn
    assert attn.head_dim < 16 and attn.attn_dim == 3 * attn.head_dim == attn.proj.in_features
    assert attn.scale == pytest.approx(attn.head_dim**-0.5)
    attn.fused_attn = True
    fused = model(x)
    attn.fused_attn = False
    assert torch.allclose(model(x), fused, atol=1e-5)  # rounding 1e-7; a wrong scale moves them by ~1e-1
    mask = torch.zeros(5, 5).masked_fill(torch.eye(5, dtype=torch.bool).roll(1, 1), float("-inf"))
    assert attn(x, attn_mask=mask).shape == (2, 5, 48)


def test_attention_with_qk_norm_keeps_its_heads_whole():
    """q_norm/k_norm normalise over one head's width, a coupling the graph cannot map per head: the
    layer keeps its heads (the group is kept) and still runs, instead of being cut wrongly."""
    model = OneAttention(qk_norm=True).eval()
    x = torch.randn(2, 5, 48)
    prune_half(model, x)
    assert model.attn.head_dim == 16 and model.attn.qkv.out_features == 144
    assert model(x).shape == (2, 5, 48)


def test_small_vit_prunes_exports_and_keeps_parity(tmp_path):
    spec = ModelSpec(
        "timm:vit_tiny_patch16_224", arch_kwargs={"img_size": 64, "depth": 2}, input_shape=(1, 3, 64, 64)
    )
    result = prune(spec, PruneConfig("l1", ratio=0.5), str(tmp_path / "vit.pt"), measure_input=False)
    assert result.after["macs"] < 0.6 * result.before["macs"]
    done = export(str(tmp_path / "vit.pt"), ExportConfig(str(tmp_path / "vit.onnx"), samples=4))
    assert [o["shape"][1:] for o in done.outputs] == [[1000]]
    assert all(o["passed"] for o in done.outputs)


def test_rotary_vit_keeps_its_head_width_and_prunes_its_mlp(tmp_path):
    """timm's DeepSeek ViT: rotary embeddings as wide as a head (qkv kept, by rule and named), a
    SwiGLU MLP (pruned), through prune -> export -> parity."""
    spec = ModelSpec(
        "timm:deepseek_vit_412m",
        arch_kwargs={"img_size": 56, "depth": 2, "embed_dim": 64, "num_heads": 2},
        input_shape=(1, 3, 56, 56),
    )
    result = prune(spec, PruneConfig("l1", ratio=0.5), str(tmp_path / "ds.pt"), measure_input=False)
    assert result.after["macs"] < 0.85 * result.before["macs"]
    (note,) = [n for n in result.notes if "rotary" in n]
    assert "encoder.blocks.0.attn.qkv" in note and "encoder.blocks.1.attn.qkv" in note
    done = export(str(tmp_path / "ds.pt"), ExportConfig(str(tmp_path / "ds.onnx"), samples=2))
    assert all(o["passed"] for o in done.outputs)


def test_pruned_model_that_breaks_is_refused_with_the_block_named():
    model = nn.Sequential(nn.Linear(8, 8), nn.Sequential(nn.ReLU(), nn.Linear(8, 4)))
    x = torch.randn(1, 8)
    model[0] = nn.Linear(8, 6)  # a wrongly coupled cut: the next layer still expects 8 inputs
    with pytest.raises(UnsupportedError, match="'1.1'") as err:  # the innermost block that failed
        coupling.check_pruned(model, x)
    assert "--ignore '1.1*'" in err.value.hint
    model[0] = nn.Linear(8, 8)
    coupling.check_pruned(model, x)  # runs again: passes (output shapes are compared by the caller)


FAMILIES = [
    ("vit_tiny_patch16_224", (1, 3, 96, 96), {"img_size": 96}),
    ("deit_tiny_patch16_224", (1, 3, 96, 96), {"img_size": 96}),
    ("mobilevit_xxs", (1, 3, 96, 96), {}),
    ("levit_128s", (1, 3, 224, 224), {}),
    ("fastvit_t8", (1, 3, 96, 96), {}),
    ("edgenext_xx_small", (1, 3, 96, 96), {}),
    ("efficientformer_l1", (1, 3, 224, 224), {}),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,shape,kwargs", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_timm_family_prunes_exports_and_keeps_parity(name, shape, kwargs, tmp_path):
    spec = ModelSpec(f"timm:{name}", arch_kwargs=kwargs, input_shape=shape)
    result = prune(spec, PruneConfig("l1", ratio=0.5), str(tmp_path / "p.pt"), measure_input=False)
    assert result.after["macs"] < 0.9 * result.before["macs"]
    done = export(str(tmp_path / "p.pt"), ExportConfig(str(tmp_path / "p.onnx"), samples=4))
    assert [o["shape"][1:] for o in done.outputs] == [[1000]] * len(done.outputs)
    assert all(o["passed"] for o in done.outputs)


RESTRICTED_TIMM = [
    "levit_128s",
    "edgenext_xx_small",
    "xcit_nano_12_p16_224",
    "vit_relpos_small_patch16_224",
    "pvt_v2_b0",
    "coat_tiny",
    "gcvit_xxtiny",
    "twins_pcpvt_small",
    "tnt_s_legacy_patch16_224",
    "davit_tiny",
    "crossvit_tiny_240",
    "volo_d1_224",
]


@pytest.mark.parametrize("name", RESTRICTED_TIMM)
def test_restricted_timm_architectures_are_recognised(name):
    """Restrictions name timm classes and sub-block names: when timm renames either, the model would
    be pruned whole (and refused or cut wrongly), so this fails first. Built on the meta device."""
    with torch.device("meta"):
        model = timm.create_model(name)
    rule = graph.restriction(model)
    assert rule is not None, type(model).__name__
    assert graph.matched_layers(model, rule.blocks)


def test_coat_prunes_only_its_mlp_hidden_channels():
    """A parallel CoaT block calls one MLP on three token grids of different sizes: the MLP keeps
    each call's own input while the blocks are found, loses hidden channels, and the model runs."""
    from timm.models.coat import CoaT

    from compressor.model import ModelHandle
    from compressor.pruning.base import PruneContext
    from compressor.pruning.structured import norm

    dims = (16, 16, 16, 16)
    model = CoaT(
        img_size=32,
        patch_size=4,
        embed_dims=dims,
        serial_depths=(1, 1, 1, 1),
        parallel_depth=1,
        num_heads=8,
        mlp_ratios=(2, 2, 2, 2),
        num_classes=5,
    ).eval()
    before = graph.out_widths(model)
    handle = ModelHandle(module=model, ref=None, input_shape=(1, 3, 32, 32))
    norm.run(handle, PruneConfig("l1", ratio=0.5), PruneContext())
    after = graph.out_widths(handle.module)
    changed = sorted(n for n in after if after[n] != before[n])
    assert "parallel_blocks.0.mlp2.fc1" in changed
    assert all(n.endswith((".mlp.fc1", ".mlp2.fc1")) for n in changed)
    assert handle.module(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_enum_attributes_survive_the_artifact(tmp_path):
    """A ViT with ``dynamic_img_size`` keeps its patch tokens NHWC through ``output_fmt``, a ``str``
    enum; the artifact's manifest once stored it as the string ``"Format.NHWC"`` and the reloaded
    model (every pruned EVA, DINOv3 ViT) failed its first forward."""
    from compressor.io.artifact import load_model, save_artifact

    torch.manual_seed(0)
    kwargs = {"img_size": 32, "patch_size": 8, "depth": 1, "dynamic_img_size": True}
    handle = load_model("timm:vit_tiny_patch16_224", arch_kwargs=kwargs, input_shape=(1, 3, 32, 32))
    save_artifact(handle, tmp_path / "vit.pt")
    again = load_model(str(tmp_path / "vit.pt")).module.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), handle.module.eval()(x))


def test_a_five_dimensional_expand_is_kept_not_a_crash():
    """GCViT expands its global query over the windows (a 5-D ``expand``), which torch-pruning takes
    for grouped-query attention and maps with a zero head width: listing the groups divided by
    zero. Those groups are now unmappable: their roots (the global-query blocks' qkv) are kept."""
    from compressor.pruning.structured import grouping

    torch.manual_seed(0)
    model = timm.create_model("gcvit_xxtiny", img_size=96).eval()
    dg = grouping.build(model, torch.randn(1, 3, 96, 96))
    groups = list(dg.get_all_groups(root_module_types=graph.PRUNABLE))
    names = {m: n for n, m in model.named_modules()}
    unmapped = sorted(names[m] for m in dg.unmapped)
    assert len(groups) > 30 and unmapped and all(n.endswith(".attn.qkv") for n in unmapped)
    assert "stages.0.blocks.1.attn.qkv" in unmapped and "stages.0.blocks.0.attn.qkv" not in unmapped


@pytest.mark.parametrize("rotary_rule", [True, False])
def test_a_rotary_attention_keeps_its_qkv_and_the_rest_prunes(tmp_path, monkeypatch, rotary_rule):
    """Qwen3-VL's vision blocks: rotary embeddings fix the head width, so qkv is kept by that rule
    and named. Without the rule the unbind of q, k and v is mapped part by part (read as more parts
    than three, the attention group was ranked with 461 scores for 12 heads and kept as one
    torch-pruning cannot map); the trial cut then breaks the rotary product, and the preflight
    keeps qkv. Either way the rest prunes."""
    from compressor.pruning.base import PruneConfig

    if not rotary_rule:
        monkeypatch.setattr(graph, "takes_rotary_embedding", lambda module: False)
    torch.manual_seed(0)
    spec = ModelSpec("timm:qwen3_vit_88m", arch_kwargs={"depth": 1}, input_shape=(1, 3, 64, 64))
    done = prune(spec, PruneConfig("l1", ratio=0.5), str(tmp_path / "p.pt"), measure_input=False)
    why = "rotary position embedding" if rotary_rule else "cutting it breaks the model"
    kept = [n for n in done.notes if why in n]
    assert len(kept) == 1 and kept[0].endswith(": encoder.blocks.0.attn.qkv")
    assert not any("cannot map the channels" in n for n in done.notes)
    assert done.after["macs"] < done.before["macs"]

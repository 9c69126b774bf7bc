"""Structured pruning (l1, l2, random): real channel removal on the sample models, exact reload,
re-pruning, dry runs, restricted architectures, bad input and exit codes."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from compressor.api import ModelSpec, prune
from compressor.errors import UnsupportedError, UsageError
from compressor.io.artifact import load_model
from compressor.model import ModelHandle
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.structured import graph, norm
from compressor.pruning.structured.budget.config import BudgetConfig
from compressor.registry import SAMPLES
from compressor.stats import count_macs

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m compressor ARGS`` with this checkout first on the path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "compressor", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def handle_of(module: nn.Module, shape: tuple[int, ...]) -> ModelHandle:
    return ModelHandle(module=module.eval(), ref=None, input_shape=shape)


def test_l1_removes_the_smallest_norm_filters():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1, 1], [0.1, 0.1, 0.1], [2, 2, 2], [0.2, 0.2, 0.2]]))
        model[0].bias.zero_()
        model[2].weight.fill_(0.5)
    kept = model[0].weight[[0, 2]].clone()
    handle = handle_of(model, (1, 3))
    norm.run(handle, PruneConfig("l1", ratio=0.5, scope="layer"), PruneContext())
    assert handle.module[0].out_features == 2
    assert torch.equal(handle.module[0].weight, kept)
    assert handle.module[2].in_features == 2  # the coupled input columns went with them
    assert handle.module[2].out_features == 2  # the classifier head is never pruned


def test_capped_ratio_keeps_the_layer_floor():
    assert graph.capped_ratio(64, 64, 16, 0.5) == 0.25  # under the cap: as planned
    assert graph.capped_ratio(64, 64, 60, 0.5) == 0.5  # capped at half of the original 64
    assert graph.capped_ratio(40, 64, 20, 0.5) == pytest.approx(8 / 40)  # 32 must stay of the 64
    assert graph.capped_ratio(3, 3, 3, 1.0) == pytest.approx(2 / 3)  # never the last channel


def test_step_ratio_reaches_the_total_over_equal_steps():
    left = 1.0
    for step in range(1, 5):
        left *= 1 - norm.step_ratio(0.6, step, 4)
        assert left == pytest.approx(1 - 0.6 * step / 4)


def test_output_layer_is_the_last_executed_conv_or_linear():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 5, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    assert graph.output_layers(model, torch.randn(1, 3, 8, 8)) == [model[2]]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_models_prune_shrink_and_reload_exactly(name, tmp_path):
    out = tmp_path / "p.pt"
    r = prune(ModelSpec(f"sample:{name}"), PruneConfig("l1", ratio=0.5), str(out))
    assert r.after["params"] < 0.7 * r.before["params"]
    assert r.after["macs"] < 0.7 * r.before["macs"]
    assert any(row["channels_after"] < row["channels_before"] for row in r.layers)
    reloaded = load_model(out)
    x = reloaded.example_input(3)
    y = reloaded.module(x)
    assert y.shape == (3, 10)
    # a second load gives the very same function: the architecture is rebuilt exactly
    assert torch.equal(load_model(out).module(x), y)
    assert count_macs(reloaded.module, reloaded.example_input()) == r.after["macs"]


def test_reload_matches_the_in_memory_pruned_model(tmp_path):
    from compressor.io.artifact import save_artifact

    handle = load_model("sample:resnet_small")
    norm.run(handle, PruneConfig("l2", ratio=0.4), PruneContext())
    save_artifact(handle, tmp_path / "a.pt")
    x = handle.example_input(4)
    assert torch.equal(load_model(tmp_path / "a.pt").module(x), handle.module(x))


def test_pruning_a_pruned_artifact_accumulates_history(tmp_path):
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    r1 = prune(ModelSpec("sample:vgg_bn"), PruneConfig("l1", ratio=0.3), str(first))
    r2 = prune(ModelSpec(str(first)), PruneConfig("random", ratio=0.3), str(second))
    assert r2.before["params"] == r1.after["params"]
    assert r2.after["params"] < r1.after["params"]
    history = load_model(second).history
    assert [h["method"] for h in history] == ["l1", "random"]


def test_layer_scope_round_to_keeps_multiples():
    handle = load_model("sample:resnet_small")
    norm.run(handle, PruneConfig("l1", ratio=0.5, scope="layer", round_to=8), PruneContext())
    widths = [m.out_channels for m in handle.module.modules() if isinstance(m, nn.Conv2d)]
    assert all(w % 8 == 0 for w in widths)
    assert min(widths) < 16


def test_a_ratio_leaving_widths_off_the_channel_block_suggests_round_to():
    unaligned = norm.run(load_model("sample:resnet_small"), PruneConfig("l1", ratio=0.3), PruneContext())
    hint = [n for n in unaligned.notes if "--round-to 8" in n]
    assert len(hint) == 1 and "off multiples of 8" in hint[0]
    aligned = norm.run(
        load_model("sample:resnet_small"), PruneConfig("l1", ratio=0.3, round_to=8), PruneContext()
    )
    assert not any("--round-to" in n for n in aligned.notes)
    assert graph.misaligned_note({"a": 32, "b": 10}, {"a": 24, "b": 7}, 8) == []  # 10 was off already


def test_max_layer_ratio_caps_every_layer():
    handle = load_model("sample:vgg_bn")
    before = [m.out_channels for m in handle.module.modules() if isinstance(m, nn.Conv2d)]
    norm.run(handle, PruneConfig("l1", ratio=0.8, max_layer_ratio=0.5), PruneContext())
    after = [m.out_channels for m in handle.module.modules() if isinstance(m, nn.Conv2d)]
    assert all(a >= b // 2 for a, b in zip(after, before))


def test_target_macs_is_reached():
    handle = load_model("sample:simple_cnn")
    base = count_macs(handle.module, handle.example_input())
    report = norm.run(handle, PruneConfig("l1", budget=BudgetConfig(target_macs=0.5)), PruneContext())
    macs = count_macs(handle.module, handle.example_input())
    assert macs <= 0.5 * base
    assert macs > 0.3 * base  # it stops soon after the target
    assert report.figures["macs_kept"] <= 0.5 and report.figures["landed"]


def test_iterative_steps_rescore_and_shrink_each_step():
    handle = load_model("sample:resnet_small")
    report = norm.run(handle, PruneConfig("l1", ratio=0.5, steps=3), PruneContext())
    macs = [row["macs"] for row in report.steps]
    assert len(macs) == 3 and macs[0] > macs[1] > macs[2]


def test_random_control_is_fixed_by_its_seed():
    """One model, pruned three times while the global random state moves on: the same --seed removes
    the same channels, another seed other channels."""
    dense = load_model("sample:vgg_bn")

    def pruned(seed: int) -> dict[str, torch.Tensor]:
        handle = copy.deepcopy(dense)
        norm.run(handle, PruneConfig("random", ratio=0.5, seed=seed), PruneContext())
        return handle.module.state_dict()

    first, again, other = pruned(0), pruned(0), pruned(1)
    assert first["0.0.weight"].shape[0] < dense.module.state_dict()["0.0.weight"].shape[0]
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert any(first[k].shape != other[k].shape or not torch.equal(first[k], other[k]) for k in first)


def test_ignore_pattern_keeps_the_layer():
    handle = load_model("sample:vgg_bn")
    norm.run(handle, PruneConfig("l1", ratio=0.5, ignore=("0.0",)), PruneContext())
    assert handle.module[0][0].out_channels == 32


def test_global_ratio_removes_more_as_it_grows():
    """torch-pruning's own global step skips groups that would lose every channel, so a higher
    ratio can leave more parameters (simple_cnn: 13k at 0.8, 68k at 0.9); the capped plan does not."""
    left = []
    for ratio in (0.5, 0.8, 0.9):
        handle = load_model(str(ROOT / "sample_models" / "simple_cnn.pt"))
        norm.run(handle, PruneConfig("l1", ratio=ratio), PruneContext())
        left.append(sum(p.numel() for p in handle.module.parameters()))
        assert handle.module(handle.example_input(2)).shape == (2, 10)
    assert left[0] > left[1] > left[2]


def test_the_global_cut_reuses_the_plans_graph_and_cuts_what_a_fresh_pruner_would():
    """The global step plans on one graph and cuts with the same pruners (no second trace): the
    model comes out as a pruner built afresh with the plan's per-layer ratios and the channel
    multiple leaves it; a layer outside the ratios keeps its channels."""
    torch.manual_seed(0)
    handle = load_model("sample:resnet_small")
    model, example = handle.module.eval(), handle.example_input()
    original = graph.out_widths(model)
    ignored = ["fc"]

    def imp():
        return norm.importance("l1", 0)

    def cut_both(ratios: dict[str, float], reuse: nn.Module, fresh: nn.Module) -> None:
        pruners = graph.make_pruners(reuse, example, imp(), ratio=0.4, ignored=ignored)  # as the plan's
        layers = dict(reuse.named_modules())
        for pruner in pruners:
            graph.cut_at_ratios(pruner, {layers[n]: r for n, r in ratios.items()}, 8, imp())
        layers = dict(fresh.named_modules())
        graph._prune_ratios(fresh, example, imp, {layers[n]: r for n, r in ratios.items()}, 8, ignored)

    one, fresh = copy.deepcopy(model), copy.deepcopy(model)
    cut_both({"layers.2.conv1": 0.2}, one, fresh)  # 32 channels: 6.4 rounded to keep a multiple of 8
    assert graph.out_widths(one) == graph.out_widths(fresh) == {**original, "layers.2.conv1": 24}

    kw = {"ratio": 0.4, "max_layer_ratio": 0.9, "ignored": ignored, "original": original}
    fresh = copy.deepcopy(model)
    taken = graph.capped_global_plan(fresh, example, imp, **kw)
    ratios = {m: n / graph.out_channels(m) for m, n in taken.items() if n}
    graph._prune_ratios(fresh, example, imp, ratios, 8, ignored)
    graph.prune_step(model, example, imp, global_pruning=True, round_to=8, **kw)
    assert graph.out_widths(model) == graph.out_widths(fresh) != original
    expected = fresh.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())


def test_keep_residual_prunes_only_inside_blocks():
    dense = load_model("sample:resnet_small").module
    handle = load_model("sample:resnet_small")
    norm.run(handle, PruneConfig("l1", ratio=0.5, scope="layer", keep_residual=True), PruneContext())
    pruned = handle.module
    residual = graph.residual_layers(dense.eval(), handle.example_input())
    assert "stem.0" in residual and "layers.0.conv2" in residual and "layers.0.conv1" not in residual
    for name, layer in pruned.named_modules():
        if isinstance(layer, nn.Conv2d):
            original = dict(dense.named_modules())[name].out_channels
            if name in residual:
                assert layer.out_channels == original, name  # the stream keeps its width
            elif name.endswith("conv1"):
                assert layer.out_channels == original // 2, name  # inside the block: halved
    assert pruned(handle.example_input(2)).shape == (2, 10)


def test_keep_residual_finds_no_stream_in_a_plain_network():
    handle = load_model("sample:vgg_bn")
    assert graph.residual_layers(handle.module.eval(), handle.example_input()) == []


def test_bn_recalibration_uses_data():
    handle = load_model("sample:resnet_small")
    bn = handle.module.stem[1]
    before = bn.running_mean.clone()
    from compressor.io.data import load_data

    ctx = PruneContext(train=load_data("random:1,28,28:10", "train"))
    report = norm.run(handle, PruneConfig("l1", ratio=0.3), ctx)
    assert report.steps[0]["bn_batches"] > 0
    assert not torch.equal(bn.running_mean[: len(before)], before[: bn.num_features])


def test_tiny_vit_heads_stay_consistent():
    handle = load_model("sample:tiny_vit")
    norm.run(handle, PruneConfig("l1", ratio=0.5), PruneContext())
    for block in handle.module.blocks:
        attn = block.attn
        assert attn.qkv.out_features == 3 * attn.num_heads * attn.head_dim
        assert attn.proj.in_features == attn.num_heads * attn.head_dim
        assert attn.head_dim < 16
    assert handle.module(handle.example_input(2)).shape == (2, 10)


@pytest.mark.parametrize(
    "ref,shape", [("torchvision:resnet18", "1,3,32,32"), ("torchvision:squeezenet1_1", "1,3,64,64")]
)
def test_torchvision_models_prune_and_export(ref, shape, tmp_path):
    out = tmp_path / "p.pt"
    spec = ModelSpec(ref, input_shape=tuple(int(v) for v in shape.split(",")))
    r = prune(spec, PruneConfig("l1", ratio=0.5), str(out))
    assert r.after["macs"] < 0.6 * r.before["macs"]
    handle = load_model(out)  # weights: prune's seeded init (--seed 0), pruned
    x = handle.example_input()
    expected = handle.module(x)
    assert expected.shape == (1, 1000)
    torch.onnx.export(handle.module, (x,), str(tmp_path / "p.onnx"), dynamo=False)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    y = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    # float32 rounding puts ORT about 1e-6 of the output's size away; a layer the graph computes
    # differently (a BatchNorm left in training mode, a wrong channel) a sizeable part of it
    assert (y - expected).abs().max() < 1e-3 * expected.abs().max()


def test_restricted_architecture_prunes_only_inside_blocks():
    from torchvision.models import shufflenet_v2_x0_5

    model = shufflenet_v2_x0_5(num_classes=10)
    handle = handle_of(model, (1, 3, 32, 32))
    report = norm.run(handle, PruneConfig("l1", ratio=0.5), PruneContext())
    block = handle.module.stage2[1]
    assert block.branch2[0].out_channels < 24  # inside the branch: pruned
    assert block.branch2[5].out_channels == 24  # the branch output (before the shuffle): kept
    assert handle.module(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert any("shuffle" in n for n in report.notes)


def test_unsupported_layer_type_is_refused_up_front():
    class Rnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = nn.GRU(4, 8, batch_first=True), nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    with pytest.raises(UnsupportedError, match="GRU") as info:
        norm.run(handle_of(Rnn(), (1, 5, 4)), PruneConfig("l1", ratio=0.5), PruneContext())
    assert info.value.exit_code == 3


def test_row_scope_is_a_usage_error():
    with pytest.raises(UsageError):
        norm.run(load_model("sample:mlp"), PruneConfig("l1", ratio=0.5, scope="row"), PruneContext())


def test_cli_json_and_dry_run_writes_nothing(tmp_path):
    out = tmp_path / "dry.pt"
    proc = cli(
        "prune",
        "sample:resnet_small",
        "--method",
        "l1",
        "--ratio",
        "0.5",
        "--dry-run",
        "-o",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] is True and not out.exists()
    assert any(row.get("status") == "prune" and row["remove"] > 0 for row in doc["plan"])
    assert any(row["group"] == "fc" and row["status"].startswith("kept") for row in doc["plan"])


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["--method", "l1", "--ratio", "1.5"], 2, "between 0 and 1"),
        (["--method", "l3", "--ratio", "0.5"], 2, "l1"),
        (["--method", "l1", "--ratio", "0.5", "--input-shape", "1,3,8,8"], 3, "input shape"),
    ],
)
def test_cli_bad_input_exits_without_output(args, code, needle, tmp_path):
    out = tmp_path / "bad.pt"
    proc = cli("prune", "sample:simple_cnn", *args, "-o", str(out))
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_prune_writes_a_loadable_artifact(tmp_path):
    out = tmp_path / "small.pt"
    proc = cli(
        "prune",
        "sample:vgg_bn",
        "--method",
        "l2",
        "--ratio",
        "0.5",
        "--round-to",
        "8",
        "-o",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["macs_after"] < doc["macs_before"] and doc["size_bytes_after"] == out.stat().st_size
    assert isinstance(load_model(out).module, nn.Module)


# Smallest inputs each torchvision family accepts (CPU is scarce); ViTs get a matching image_size.
# AlexNet/VGG: adaptive pooling to 6x6/7x7 exports to ONNX only when the size divides evenly.
_BREADTH_SHAPES = {
    "inception_v3": (1, 3, 96, 96),
    "maxvit_t": (1, 3, 224, 224),
    "alexnet": (1, 3, 224, 224),
    **{f"vgg{d}{bn}": (1, 3, 224, 224) for d in (11, 13, 16, 19) for bn in ("", "_bn")},
}
_VIT_SIZE = {"vit_b_16": 32, "vit_b_32": 32, "vit_l_16": 32, "vit_l_32": 32, "vit_h_14": 28}


def _prune_save_reload_export(name: str, tmp: Path) -> str:
    """``pass``, or ``refused (exit N)`` when l1 refuses the model up front; anything else raises."""
    from compressor.errors import CompressorError
    from compressor.io.artifact import save_artifact

    size = _VIT_SIZE.get(name)
    shape = (1, 3, size, size) if size else _BREADTH_SHAPES.get(name, (1, 3, 64, 64))
    handle = load_model(
        f"torchvision:{name}", arch_kwargs={"image_size": size} if size else {}, input_shape=shape
    )
    x = handle.example_input()
    try:
        norm.run(handle, PruneConfig("l1", ratio=0.5), PruneContext())
    except CompressorError as exc:
        return f"refused (exit {exc.exit_code})"
    save_artifact(handle, tmp / f"{name}.pt")
    reloaded = load_model(tmp / f"{name}.pt")
    y = reloaded.module(x)
    assert tuple(y.shape) == (1, 1000) and torch.allclose(y, handle.module(x), atol=1e-5), name
    torch.onnx.export(reloaded.module, (x,), str(tmp / f"{name}.onnx"), dynamo=False)
    return "pass"


@pytest.mark.slow
def test_torchvision_breadth_at_least_75_of_80(tmp_path):
    """The full sweep (hours on 2 cores): each model prunes, runs, saves, reloads and exports, or is
    refused up front with exit 3. ``python -m benchmarks run structured_breadth`` writes the table,
    each model in a forked process under a time limit."""
    from compressor.io.refs import torchvision_models

    statuses = {}
    for name in torchvision_models():
        try:
            statuses[name] = _prune_save_reload_export(name, tmp_path)
        except Exception as exc:  # noqa: BLE001 - a failure of any kind is counted, then reported
            statuses[name] = f"FAIL: {type(exc).__name__}: {str(exc)[:200]}"
    others = {n: s for n, s in statuses.items() if s != "pass"}
    assert len(statuses) - len(others) >= 75, others
    assert all(s == "refused (exit 3)" for s in others.values()), others


def test_pruned_mnasnet_reloads(tmp_path):
    """MNASNet refuses a state_dict without its version metadata; the artifact restores it."""
    spec = ModelSpec("torchvision:mnasnet0_5", arch_kwargs={"num_classes": 10}, input_shape=(1, 3, 32, 32))
    prune(spec, PruneConfig("l1", ratio=0.5), str(tmp_path / "m.pt"))
    handle = load_model(tmp_path / "m.pt")
    assert handle.module(handle.example_input()).shape == (1, 10)

"""Network Slimming: the L1 penalty and threshold math on hand-made tensors, sparsity training
shrinking gammas, the end-to-end command (channels removed, exact reload, gamma plot) and refusals."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from compressor.errors import UnsupportedError, UsageError
from compressor.io.artifact import load_model
from compressor.io.data import load_data
from compressor.pruning.structured import slimming
from compressor.train import TrainConfig, fit

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


def test_l1_subgradient_is_lambda_times_sign():
    g = torch.tensor([2.0, -0.5, 0.0, 1e-8])
    assert torch.equal(slimming.l1_subgradient(g, 0.1), torch.tensor([0.1, -0.1, 0.0, 0.1]))


def test_gamma_threshold_is_the_global_percentile():
    gammas = torch.tensor([0.9, -0.1, 0.5, 0.2, 0.05])  # |gamma| sorted: .05 .1 .2 .5 .9
    assert slimming.gamma_threshold(gammas, 0.5) == pytest.approx(0.2)
    assert slimming.gamma_threshold(gammas, 0.25) == pytest.approx(0.1)


def test_weight_masks_keep_large_weights():
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.01], [0.02, -2.0]]))
    masks = slimming.threshold_masks(nn.Sequential(layer), 0.1)
    assert torch.equal(masks["0.weight"], torch.tensor([[True, False], [False, True]]))


def test_add_l1_penalty_moves_every_gamma_grad():
    bn = nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -1.0, 0.5]))
    bn.weight.grad = torch.zeros(3)
    slimming.add_l1_penalty([bn], 0.01)
    assert torch.allclose(bn.weight.grad, torch.tensor([0.01, -0.01, 0.01]))


def test_sparsity_training_shrinks_gammas_more_than_plain_training():
    data = load_data("random:1,28,28:10", "train")
    means = []
    for lam in (0.0, 5e-2):
        torch.manual_seed(0)
        model = load_model("sample:vgg_bn").module
        bns = slimming.scaled_batchnorms(model)
        fit(
            model,
            data,
            TrainConfig(epochs=1, lr=1e-2, batch_size=32, max_batches=6, schedule="none"),
            after_backward=lambda _, bns=bns, lam=lam: slimming.add_l1_penalty(bns, lam),
        )
        means.append(torch.cat([b.weight.detach().abs() for b in bns]).mean().item())
    assert means[1] < means[0] - 0.02


def _slim_config(**options):
    from compressor.pruning.base import PruneConfig

    return PruneConfig("slim", ratio=0.3, data="random", options=options)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(UsageError, match="unknown option 'lamda'") as info:
        _slim_config(lamda=1e-4)
    assert "did you mean 'lam'?" in info.value.one_line()


def test_bad_sparsity_optimizer_or_lr_is_refused():
    with pytest.raises(UsageError, match="sparsity-optimizer 'rmsprop'") as info:
        _slim_config(sparsity_optimizer="rmsprop")
    assert "adam, adamw, sgd" in info.value.one_line()
    with pytest.raises(UsageError, match="sparsity-lr"):
        _slim_config(sparsity_lr=0.0)


def test_sparsity_training_uses_the_chosen_optimizer_and_rate():
    from compressor.pruning.base import PruneConfig, PruneContext

    handle = load_model("sample:vgg_bn")
    cfg = PruneConfig(
        "slim",
        ratio=0.3,
        data="random",
        options={"sparsity_optimizer": "sgd", "sparsity_lr": 0.05, "lam": 1e-2, "max_batches": 3},
    )
    report = slimming.run(handle, cfg, PruneContext(train=load_data("random:1,28,28:10", "train")))
    step = report.steps[0]
    assert (step["phase"], step["optimizer"], step["lr"]) == ("sparsity", "sgd", 0.05)
    widths = [m.out_channels for m in handle.module.modules() if isinstance(m, nn.Conv2d)]
    assert sum(widths) < 352  # channels really removed after the SGD phase


def test_model_without_batchnorm_is_refused():
    from compressor.pruning.base import PruneConfig, PruneContext

    handle = load_model("sample:mlp")
    cfg = PruneConfig("slim", ratio=0.4, data="digits")
    with pytest.raises(UnsupportedError, match="BatchNorm") as info:
        slimming.run(handle, cfg, PruneContext(train=load_data("random:1,28,28:10", "train")))
    assert info.value.exit_code == 3


def test_slim_command_end_to_end(tmp_path):
    out, png = tmp_path / "slim.pt", tmp_path / "gamma.png"
    proc = cli(
        "slim",
        "sample:vgg_bn",
        "--data",
        "digits",
        "--ratio",
        "0.4",
        "--lambda",
        "1e-3",
        "--sparsity-epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--max-batches",
        "4",
        "--weight-threshold",
        "1e-3",
        "--gamma-plot",
        str(png),
        "-o",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["bn_channels_removed"] == pytest.approx(0.4, abs=0.05)
    assert doc["macs_after"] < 0.8 * doc["macs_before"]
    assert "accuracy_after" in doc and doc["weight_sparsity"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    handle = load_model(out)
    x = handle.example_input(2)
    assert torch.equal(handle.module(x), load_model(out).module(x))
    widths = [m.out_channels for m in handle.module.modules() if isinstance(m, nn.Conv2d)]
    assert min(widths) >= 1 and widths != [32, 64, 128, 128]
    assert handle.history[-1]["method"] == "slim" and handle.masks  # thresholded weights stay masked


def test_slim_names_the_groups_it_cannot_map(tmp_path):
    """Channels concatenated into a grouped conv that cannot split them evenly: slim keeps those
    groups, as prune does, and says so in its report instead of keeping them silently."""
    from tests.conftest import invoke

    out = tmp_path / "slim.pt"
    result = invoke(
        "slim", "tests.preflight_models:cat_into_grouped_conv_bn", "--input-shape", "1,3,8,8",
        "--data", "random:3,8,8:5", "--ratio", "0.3", "--sparsity-epochs", "1", "--max-batches", "2",
        "-o", out, "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    notes = [n for n in result.json()["notes"] if "cannot map the channels" in n]
    assert len(notes) == 1 and notes[0].endswith(": a.0, b.0")
    model = load_model(str(out)).module
    assert (model.a[0].out_channels, model.b[0].out_channels) == (8, 4)


def test_slim_bad_input_exits_2_without_output(tmp_path):
    out = tmp_path / "x.pt"
    proc = cli("slim", "sample:vgg_bn", "--data", "digits", "--ratio", "1.2", "-o", str(out))
    assert proc.returncode == 2 and "between 0 and 1" in proc.stderr
    assert not out.exists()
    proc = cli("slim", "sample:vgg_bn", "--data", "digits", "--sparsity-optimizer", "lion", "-o", str(out))
    assert proc.returncode == 2 and "sparsity-optimizer" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    proc = cli("slim", "sample:vgg_bn", "--data", "digits", "--sparsity-lr", "0", "-o", str(out))
    assert proc.returncode == 2 and "--sparsity-lr must be > 0" in proc.stderr  # 0 is not "use --lr"
    assert not out.exists()


@pytest.mark.parametrize("cap", [0.9, 0.6])
def test_global_threshold_under_a_layer_cap_still_removes_the_ratio(cap):
    from compressor.pruning.structured import graph

    handle = load_model(str(ROOT / "sample_models" / "vgg_bn.pt"))  # trained: gammas differ
    model, example = handle.module.eval(), handle.example_input()
    convs = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    gammas = torch.cat([bn.weight.detach().abs() for bn in slimming.scaled_batchnorms(model)])
    rows = graph.prune_step(
        model,
        example,
        slimming._importance,
        ratio=0.5,
        global_pruning=True,
        round_to=None,
        max_layer_ratio=cap,
        ignored=["3"],
        original=graph.out_widths(model),
    )
    removed = {r["group"]: r["remove"] for r in rows}
    assert sum(removed.values()) == round(0.5 * sum(convs.values()))  # the ratio is reached
    for name, width in convs.items():
        left = dict(model.named_modules())[name].out_channels
        assert width - left == removed.get(name, 0)
        assert width - left <= cap * width  # no layer passes its cap
    if cap == 0.9:  # uncapped in practice: exactly the channels under the global |gamma| percentile
        assert sum(removed.values()) == int((gammas < slimming.gamma_threshold(gammas, 0.5)).sum())
    assert model(example).shape == (1, 10)


def test_finetune_schedule_reaches_the_fine_tune_but_not_the_sparsity_phase(monkeypatch, tmp_path):
    import compressor.train as train_pkg
    from compressor.api import SlimConfig, slim
    from compressor.api.common import ModelSpec

    real_fit, seen = train_pkg.fit, []

    def spy(model, data, cfg, **kw):
        seen.append((kw.get("description"), cfg.schedule))
        return real_fit(model, data, cfg, **kw)

    monkeypatch.setattr(train_pkg, "fit", spy)
    cfg = SlimConfig(data="random:1,28,28:10", ratio=0.3, finetune_schedule="cosine", max_batches=2)
    slim(ModelSpec("sample:vgg_bn"), cfg, str(tmp_path / "s.pt"))
    assert seen == [("sparsity", "none"), ("fine-tune", "cosine")]


def test_unknown_finetune_schedule_exits_2(tmp_path):
    out = tmp_path / "x.pt"
    proc = cli(
        "prune",
        "sample:simple_cnn",
        "--method",
        "l1",
        "--ratio",
        "0.3",
        "--data",
        "digits",
        "--finetune-epochs",
        "1",
        "--finetune-schedule",
        "linear",
        "-o",
        str(out),
    )
    assert proc.returncode == 2 and "--finetune-schedule" in proc.stderr and "cosine" in proc.stderr
    assert not out.exists()


def test_slim_at_a_ratio_leaving_widths_off_the_channel_block_suggests_round_to(tmp_path):
    """A global |gamma| threshold leaves layers at any width: slim notes the ones off multiples of
    8 and suggests --round-to 8, as prune does; with --round-to 8 there is nothing to note."""
    from compressor.api import SlimConfig, slim
    from compressor.api.common import ModelSpec

    cfg = SlimConfig(data="random:1,28,28:10", ratio=0.3, max_batches=2, seed=0)
    unaligned = slim(ModelSpec("sample:vgg_bn"), cfg, str(tmp_path / "a.pt"))
    hint = [n for n in unaligned.notes if "--round-to 8" in n]
    assert len(hint) == 1 and "off multiples of 8" in hint[0]
    aligned = slim(ModelSpec("sample:vgg_bn"), dataclasses.replace(cfg, round_to=8), str(tmp_path / "b.pt"))
    assert not any("--round-to" in n for n in aligned.notes)

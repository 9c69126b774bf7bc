"""Masked methods on trained sample models, two safeguards: BatchNorm recalibration after
masking (statistics really re-estimated, nothing else touched, a masked vgg_bn scores much higher)
and --keep-first-last (stem and classifier left dense; Wanda on tiny_vit scores higher)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compressor.errors import UsageError
from compressor.io.artifact import load_model
from compressor.io.data import load_data
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.batchnorm import batchnorms, recalibrate
from compressor.pruning.unstructured import magnitude, wanda
from compressor.train.loop import evaluate
from tests.conftest import SAMPLES, invoke, needs_fashion

VGG = str(SAMPLES / "vgg_bn.pt")  # trained on Fashion-MNIST, 4 BatchNorm layers
EVAL = 500  # test samples: enough to separate 0.2-0.5 from 0.85+, a few seconds


def _stats(model: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for bn in batchnorms(model) for t in (bn.running_mean, bn.running_var)]


def test_recalibrate_matches_the_batch_statistics_and_changes_nothing_else():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.ReLU()).eval()
    params = [p.clone() for p in model.parameters()]
    x = torch.randn(64, 1, 8, 8) * 3 + 1
    assert recalibrate(model, x, batch_size=64) == 1
    out = model[0](x)
    bn = model[1]
    assert torch.allclose(bn.running_mean, out.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, out.var((0, 2, 3), unbiased=True), rtol=1e-4)
    assert bn.momentum == 0.1 and not model.training and not bn.training  # restored
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))
    assert recalibrate(nn.Linear(3, 2), torch.zeros(2, 3)) == 0  # no BatchNorm: nothing to do


@needs_fashion
@pytest.mark.parametrize("method,module", [("wanda", wanda), ("magnitude", magnitude)])
def test_recalibration_restores_accuracy_of_masked_vgg_bn(method, module):
    train, test = load_data("fashion-mnist", "train"), load_data("fashion-mnist", "test")
    dense = load_model(VGG)
    acc, stats = {}, {}
    for recal in (False, True):
        handle = load_model(VGG)
        cfg = PruneConfig(method, sparsity=0.5, scope="row", data="fashion-mnist", recalibrate_bn=recal)
        report = module.run(handle, cfg, PruneContext(train=train))
        assert report.figures["bn_recalibrated_layers"] == (4 if recal else 0)
        assert report.figures["layer_sparsity"] == pytest.approx(0.5, abs=1e-3)
        acc[recal] = evaluate(handle.module, test, limit=EVAL)["accuracy"]
        stats[recal] = _stats(handle.module)
    assert all(torch.equal(a, b) for a, b in zip(stats[False], _stats(dense.module)))
    assert not any(torch.allclose(a, b) for a, b in zip(stats[True], stats[False]))
    # measured on 500 samples: wanda 0.22 -> 0.86, magnitude 0.52 -> 0.87 (dense 0.92)
    assert acc[True] > acc[False] + 0.2 and acc[True] > 0.8


@needs_fashion
def test_wanda_recalibrates_by_default_only_where_there_is_batchnorm():
    train = load_data("fashion-mnist", "train")
    cfg = PruneConfig("wanda", sparsity=0.5, data="fashion-mnist", calib_samples=32)
    on_bn = wanda.run(load_model(VGG), cfg, PruneContext(train=train))
    on_mlp = wanda.run(load_model(str(SAMPLES / "mlp.pt")), cfg, PruneContext(train=train))
    assert on_bn.figures["bn_recalibrated_layers"] == 4
    assert on_mlp.figures["bn_recalibrated_layers"] == 0
    default_magnitude = PruneConfig("magnitude", sparsity=0.5, data="fashion-mnist")
    report = magnitude.run(load_model(VGG), default_magnitude, PruneContext(train=train))
    assert report.figures["bn_recalibrated_layers"] == 0  # opt-in for magnitude
    assert any("--recalibrate-bn" in note for note in report.notes)


def test_recalibrate_bn_is_checked_on_construction():
    with pytest.raises(UsageError, match="needs calibration data"):
        PruneConfig("magnitude", sparsity=0.5, recalibrate_bn=True)
    with pytest.raises(UsageError, match="does not take --no-recalibrate-bn"):
        PruneConfig("sap", sparsity=0.5, data="digits", recalibrate_bn=False)
    assert PruneConfig("magnitude", sparsity=0.5, recalibrate_bn=False).recalibrate_bn is False


def test_cli_recalibrate_bn_flag(tmp_path):
    out = tmp_path / "m.pt"
    bad = invoke(
        "prune", VGG, "--method", "magnitude", "--sparsity", "0.5", "--recalibrate-bn", "-o", str(out)
    )
    assert bad.code == 2 and "--data" in bad.stderr and not out.exists()
    ok = invoke(
        "prune",
        VGG,
        "--method",
        "magnitude",
        "--sparsity",
        "0.5",
        "--recalibrate-bn",
        "--data",
        "digits",
        "--calib-samples",
        "64",
        "-o",
        str(out),
        "--json",
    )
    assert ok.code == 0, ok.stderr
    assert ok.json()["bn_recalibrated_layers"] == 4


def test_recipe_prune_step_takes_recalibrate_bn():
    from compressor.typed import build

    step = {"method": "wanda", "sparsity": 0.5, "data": "digits", "recalibrate_bn": False}
    assert build(PruneConfig, step, "recipe step 1").recalibrate_bn is False
    with pytest.raises(UsageError, match="true or false"):
        build(PruneConfig, {**step, "recalibrate_bn": "no"}, "recipe step 1")


@pytest.mark.parametrize(
    "model,ends",
    [("vgg_bn", {"0.0", "3"}), ("resnet_small", {"stem.0", "fc"}), ("tiny_vit", {"patch_embed", "head"})],
)
def test_keep_first_last_leaves_stem_and_classifier_dense(model, ends):
    from compressor.pruning.unstructured.layers import select_layers

    handle = load_model(str(SAMPLES / f"{model}.pt"))
    every = {name for name, _ in select_layers(handle, PruneConfig("magnitude", sparsity=0.5))}
    cfg = PruneConfig("magnitude", sparsity=0.5, scope="row", keep_first_last=True)
    kept = {name for name, _ in select_layers(handle, cfg)}
    assert every - kept == ends
    magnitude.run(handle, cfg, PruneContext())
    params = dict(handle.module.named_parameters())
    assert all(torch.count_nonzero(params[f"{n}.weight"]) == params[f"{n}.weight"].numel() for n in ends)
    assert set(handle.masks) == {f"{n}.weight" for n in kept}
    with pytest.raises(UsageError, match="masked methods"):
        PruneConfig("l1", ratio=0.5, keep_first_last=True)


@needs_fashion
def test_keep_first_last_helps_wanda_on_tiny_vit():
    train, test = load_data("fashion-mnist", "train"), load_data("fashion-mnist", "test")
    acc = {}
    for keep in (False, True):
        handle = load_model(str(SAMPLES / "tiny_vit.pt"))
        cfg = PruneConfig("wanda", sparsity=0.5, scope="row", data="fashion-mnist", keep_first_last=keep)
        wanda.run(handle, cfg, PruneContext(train=train))
        acc[keep] = evaluate(handle.module, test, limit=EVAL)["accuracy"]
    # measured on 2000 samples: 0.77 with the 7x7 patch embedding and the head pruned, 0.85 without
    assert acc[True] > acc[False] + 0.04


def test_cli_keep_first_last_dry_run_lists_only_inner_layers():
    result = invoke(
        "prune", VGG, "--method", "magnitude", "--sparsity", "0.5", "--keep-first-last", "--dry-run", "--json"
    )
    assert result.code == 0, result.stderr
    assert [row["layer"] for row in result.json()["plan"]] == ["0.4", "0.8", "0.11"]

"""Wanda with ``--scope global`` on trained sample models and Fashion-MNIST: one threshold over the
dense network's scores gives each layer its own sparsity, the overall target is met exactly, the
masks hold through a fine-tune, and the same seed gives the same masks."""

from __future__ import annotations

import pytest
import torch

from compressor.io.artifact import load_model
from compressor.io.data import load_data
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.unstructured import wanda
from compressor.train import TrainConfig, fit
from tests.conftest import SAMPLES, needs_fashion


def _prune(model: str, seed: int = 0, **kw):
    handle = load_model(str(SAMPLES / f"{model}.pt"))
    cfg = PruneConfig(
        "wanda", sparsity=0.6, scope="global", data="fashion-mnist", calib_samples=64, seed=seed, **kw
    )
    return handle, wanda.run(handle, cfg, PruneContext(train=load_data("fashion-mnist", "train")))


def _zeros(handle, name: str) -> float:
    w = dict(handle.module.named_parameters())[name]
    return 1 - torch.count_nonzero(w).item() / w.numel()


@needs_fashion
@pytest.mark.parametrize("model,spread", [("simple_cnn", 0.1), ("vgg_bn", 0.05)])
def test_global_scope_allocates_per_layer_and_meets_the_overall_target(model, spread):
    handle, report = _prune(model)
    allocation = report.figures["wanda_layer_allocation"]
    assert report.figures["layer_sparsity"] == pytest.approx(0.6, abs=1e-4)
    assert report.figures["wanda_scope"] == "global-layer"
    assert set(allocation) == {name.removesuffix(".weight") for name in handle.masks}
    assert max(allocation.values()) - min(allocation.values()) > spread  # not one share for all
    assert max(allocation.values()) <= 0.99
    for name, share in allocation.items():  # each layer pruned to its allocation (ranked per layer)
        assert _zeros(handle, f"{name}.weight") == pytest.approx(share, abs=1e-3), name
    assert any(note.startswith("scope global: one threshold") for note in report.notes)
    assert not any(note.startswith("not reached by the forward pass") for note in report.notes)


@needs_fashion
def test_global_scope_masks_hold_through_finetune_and_repeat_for_a_seed():
    a, _ = _prune("simple_cnn", keep_first_last=True)
    b, _ = _prune("simple_cnn", keep_first_last=True)
    other, _ = _prune("simple_cnn", seed=1, keep_first_last=True)
    assert set(a.masks) == {"3.weight", "7.weight"}  # stem and head stay dense
    assert all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)
    assert not all(torch.equal(a.masks[k], other.masks[k]) for k in a.masks)  # other samples
    before = {k: _zeros(a, k) for k in a.masks}
    fit(
        a.module,
        load_data("fashion-mnist", "train"),
        TrainConfig(epochs=1, lr=1e-3, max_batches=3),
        masks=a.masks,
    )
    params = dict(a.module.named_parameters())
    assert all(torch.all(params[k][~m] == 0) for k, m in a.masks.items())
    assert all(_zeros(a, k) >= before[k] - 1e-9 for k in a.masks)


def test_wanda_defaults_to_row_and_nm_ignores_global():
    assert PruneConfig("wanda", sparsity=0.5, data="digits").scope == "row"  # the paper's ranking
    assert PruneConfig("magnitude", sparsity=0.5).scope == "global"
    handle = load_model("sample:mlp")
    cfg = PruneConfig("wanda", nm="2:4", scope="global", data="digits", calib_samples=16)
    report = wanda.run(handle, cfg, PruneContext(train=load_data("digits", "train")))
    assert report.figures["wanda_scope"] == "nm" and "wanda_layer_allocation" not in report.figures
    assert any("--scope global does not apply with --nm 2:4" in n for n in report.notes)
    assert report.figures["layer_sparsity"] == pytest.approx(0.5)

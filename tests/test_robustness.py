"""Adversarial robustness: the budget holds in pixel space, attacks lower a trained model's accuracy."""

from __future__ import annotations

import pytest
import torch

from compressor.api.common import ModelSpec
from compressor.api.evaluate import EvalConfig, evaluate
from compressor.errors import UsageError
from compressor.io.data import load_data
from compressor.robustness import AttackConfig, fgsm, pgd, pixel_bounds, robust_accuracy
from tests.conftest import SAMPLES, invoke, needs_fashion

CNN = str(SAMPLES / "simple_cnn.pt")  # trained on Fashion-MNIST (0.907 test accuracy)


def _model_and_batch(n: int = 64):
    from compressor.io.artifact import load_model

    data = load_data("digits", "test")
    x, y = data.take(n)
    return load_model("sample:simple_cnn").module.eval(), data, x, y


def test_fgsm_and_pgd_stay_in_the_pixel_budget_and_valid_images():
    model, data, x, y = _model_and_batch()
    low, high, scale = pixel_bounds(data.mean, data.std, 1)
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    cfg = AttackConfig("pgd", eps=0.05, steps=3)
    for adv in (
        fgsm(model, x, y, 0.05, low, high, scale),
        pgd(model, x, y, cfg, low, high, scale, torch.Generator().manual_seed(0)),
    ):
        pixels, clean = adv * std + mean, x * std + mean
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
        assert (pixels - clean).abs().max() <= 0.05 + 1e-5
        assert (pixels - clean).abs().max() > 0.01  # it did move


def test_pixel_bounds_without_normalisation_do_not_clamp():
    low, high, scale = pixel_bounds(None, None, 3)
    assert torch.isinf(low).all() and torch.isinf(high).all() and (scale == 1).all()


@needs_fashion
def test_attacks_lower_accuracy_of_a_trained_model():
    data = load_data("fashion-mnist", "test")
    model = ModelSpec(CNN).load().module
    clean = robust_accuracy(model, data, AttackConfig("fgsm", eps=0.0), limit=300)
    assert clean["robust_accuracy"] == clean["clean_accuracy"] > 0.85
    fgsm_acc = robust_accuracy(model, data, AttackConfig("fgsm", eps=0.03), limit=300)["robust_accuracy"]
    pgd_acc = robust_accuracy(model, data, AttackConfig("pgd", eps=0.03, steps=5), limit=300)[
        "robust_accuracy"
    ]
    assert fgsm_acc < clean["clean_accuracy"] - 0.1
    assert pgd_acc <= fgsm_acc + 0.02  # iterating finds at least about as many adversarial inputs


@needs_fashion
def test_eval_api_reports_robust_accuracy():
    r = evaluate(EvalConfig(ModelSpec(CNN), "fashion-mnist", limit=200, attack="fgsm", eps=0.03))
    assert r.attack == "fgsm" and r.eps == 0.03 and r.robust_accuracy < r.accuracy
    assert set(r.to_json()) >= {"accuracy", "robust_accuracy", "attack", "eps"}


@pytest.mark.parametrize(
    "kw,text",
    [({"name": "fgms"}, "did you mean 'fgsm'"), ({"eps": 3.0}, "pixel units"), ({"steps": 0}, "--steps")],
)
def test_bad_attack_settings(kw, text):
    with pytest.raises(UsageError) as err:
        AttackConfig(**kw)
    assert text in err.value.one_line()


def test_cli_attack_errors_are_one_line(tiny_onnx):
    r = invoke("eval", str(tiny_onnx), "--data", "digits", "--attack", "fgsm")
    assert r.code == 2 and "gradients" in r.stderr and "Traceback" not in r.stderr and r.stdout == ""
    r = invoke("eval", "sample:mlp", "--data", "digits", "--attack", "fgs")
    assert r.code == 2 and "did you mean 'fgsm'" in r.stderr and r.stderr.count("\n") == 1

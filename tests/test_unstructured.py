"""Masked methods on real small models: sparsity reached, Wanda's sequential scores, SAP steps,
whole-row activation pruning, the lottery control, masks persisting, compact files, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from compressor.api.prune import make_context
from compressor.cli.app import app
from compressor.errors import UsageError
from compressor.io.artifact import load_model, save_artifact
from compressor.io.data import load_data
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.unstructured import activation, lottery, magnitude, sap, wanda
from compressor.pruning.unstructured import masks as M
from compressor.pruning.unstructured.layers import select_layers
from compressor.train import TrainConfig, fit

DATA = "digits"  # 28x28, 10 classes, small: fast calibration and fine-tuning


def _fresh(ref: str):
    """A freshly initialised reference model, the same for every call (seed 0)."""
    torch.manual_seed(0)
    return load_model(ref)


def _run(module, ref: str, **kw):
    cfg = PruneConfig(**kw)
    handle = _fresh(ref)
    logs: list[str] = []
    report = module.run(handle, cfg, make_context(cfg, logs.append))
    return handle, report, logs


def _weight_sparsity(handle, name: str) -> float:
    w = dict(handle.module.named_parameters())[name]
    return 1 - torch.count_nonzero(w).item() / w.numel()


@pytest.mark.parametrize("scope", ["global", "layer", "row"])
def test_magnitude_reaches_sparsity_at_every_scope(scope):
    handle, report, _ = _run(magnitude, "sample:simple_cnn", method="magnitude", sparsity=0.8, scope=scope)
    assert report.figures["layer_sparsity"] == pytest.approx(0.8, abs=2e-3)
    per_layer = [_weight_sparsity(handle, n) for n in handle.masks]
    if scope == "global":
        assert max(per_layer) - min(per_layer) > 0.2  # one threshold: layers differ
    else:
        assert all(abs(s - 0.8) < 0.03 for s in per_layer)  # row: 7 of 9 inputs = 0.778
    for name, mask in handle.masks.items():
        w = dict(handle.module.named_parameters())[name]
        assert torch.all(w[~mask] == 0)


def test_magnitude_nm_2_4_and_bad_width():
    handle, report, _ = _run(magnitude, "sample:mlp", method="magnitude", nm="2:4")
    for name in handle.masks:
        w = dict(handle.module.named_parameters())[name]
        assert ((w.reshape(w.shape[0], -1, 4) != 0).sum(-1) <= 2).all()
    assert report.figures["layer_sparsity"] == pytest.approx(0.5)
    with pytest.raises(UsageError, match="layer '0'"):  # first conv has 1*3*3 = 9 inputs per row
        _run(magnitude, "sample:simple_cnn", method="magnitude", nm="2:4")


def test_wanda_later_layers_see_pruned_activations():
    handle, report, _ = _run(wanda, "sample:mlp", method="wanda", sparsity=0.5, data=DATA, calib_samples=64)
    fresh = _fresh("sample:mlp").module
    x = load_data(DATA, "train").take(64, 0)[0]
    h = x.flatten(1)
    expected = {}
    for idx in (1, 3, 5):
        layer = fresh[idx]
        scores = M.wanda_scores(layer.weight.detach(), h.double().pow(2).sum(0).sqrt().float())
        expected[f"{idx}.weight"] = M.row_mask(scores, 0.5)
        with torch.no_grad():
            layer.weight.mul_(expected[f"{idx}.weight"])
            h = torch.relu(layer(h)) if idx < 5 else layer(h)
    for name, mask in expected.items():
        assert torch.equal(handle.masks[name], mask), name
    assert report.figures["layer_sparsity"] == pytest.approx(0.5, abs=1e-3)
    magnitude_masks = _run(magnitude, "sample:mlp", method="magnitude", sparsity=0.5, scope="row")[0].masks
    assert not torch.equal(magnitude_masks["1.weight"], handle.masks["1.weight"])


def test_wanda_is_deterministic_and_covers_conv():
    a, report, _ = _run(wanda, "sample:simple_cnn", method="wanda", sparsity=0.6, data=DATA, calib_samples=32)
    b, _, _ = _run(wanda, "sample:simple_cnn", method="wanda", sparsity=0.6, data=DATA, calib_samples=32)
    assert set(a.masks) == {"0.weight", "3.weight", "7.weight", "10.weight"}
    assert all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)
    assert _weight_sparsity(a, "3.weight") == pytest.approx(0.6, abs=0.01)
    assert report.figures["wanda_scope"] == "row"  # wanda's default scope: per output row


def test_sap_logs_index_and_amount_every_step():
    handle, report, logs = _run(
        sap, "sample:mlp", method="sap", sparsity=0.9, steps=3, data=DATA, scope="layer"
    )
    assert len(report.steps) == 3 and len(logs) == 3
    first = report.steps[0]
    fresh = _fresh("sample:mlp").module
    expected = sum(
        M.sap_amounts(layer.weight.numel(), M.pq_index(layer.weight.detach()))[1]
        for layer in (fresh[1], fresh[3], fresh[5])
    )
    assert first["pruned"] == expected and "PQ index" in logs[0]
    assert report.steps[-1]["sparsity"] > first["sparsity"] > 0
    assert report.figures["layer_sparsity"] < 0.9 and any("raise --steps" in n for n in report.notes)


def test_sap_stops_at_the_sparsity_ceiling():
    _, report, _ = _run(
        sap, "sample:mlp", method="sap", sparsity=0.5, steps=10, data=DATA, options={"gamma": 3.0}
    )
    assert report.figures["layer_sparsity"] == pytest.approx(0.5, abs=1e-4)
    assert len(report.steps) < 10


def test_activation_masks_whole_rows_and_keeps_the_output_layer():
    handle, report, _ = _run(
        activation,
        "sample:simple_cnn",
        method="activation",
        sparsity=0.5,
        steps=2,
        data=DATA,
        calib_samples=64,
    )
    assert "10.weight" not in handle.masks  # classifier skipped
    for name in ("0.weight", "3.weight", "7.weight"):
        rows = handle.masks[name].reshape(handle.masks[name].shape[0], -1)
        assert (rows.all(1) | ~rows.any(1)).all()  # whole rows only
        bias = handle.masks[name.replace("weight", "bias")]
        assert torch.equal(bias, rows.all(1))
    assert report.figures["layer_sparsity"] == pytest.approx(0.5, abs=0.02)
    assert [s["step"] for s in report.steps] == [1, 2]


def test_lottery_reports_ticket_and_control():
    handle, report, logs = _run(
        lottery, "sample:mlp", method="lottery", sparsity=0.36, data=DATA, finetune_epochs=1, batch_size=256
    )
    f = report.figures
    assert f["rounds"] == 2 and len(logs) == 2
    assert f["layer_sparsity"] == pytest.approx(0.36, abs=1e-3)
    assert 0 <= f["ticket_accuracy"] <= 1 and 0 <= f["random_reinit_accuracy"] <= 1
    assert isinstance(f["ticket_wins"], bool)
    assert any("theta_0" in n for n in report.notes)


def _state(handle) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in handle.module.named_parameters()}


def test_lottery_prunes_trained_weights_and_rewinds_the_survivors_to_theta_0():
    """Training is replaced by a step whose result is known: every unmasked weight becomes
    1 / (its value), so the largest initial weights end smallest. Round 1 must then remove the 20%
    of weights that were largest at theta_0 (a ranking of theta_0 itself would remove the smallest),
    every round and the ticket must start again from theta_0 under the masks so far, and the
    control must train the final masks from another initialisation."""
    from compressor.train.loop import evaluate

    cfg = PruneConfig("lottery", sparsity=0.36, data=DATA, finetune_epochs=1)
    handle = _fresh("sample:mlp")
    theta_0 = _state(handle)
    starts: list[tuple[object, dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []

    def train(model, epochs):  # records where each training started, then "trains"
        starts.append((model, _state(model), {k: m.clone() for k, m in model.masks.items()}))
        with torch.no_grad():
            for name, param in model.module.named_parameters():
                if name.endswith("weight"):
                    kept = model.masks.get(name, torch.ones_like(param, dtype=torch.bool))
                    param.copy_(torch.where(kept, 1 / param, torch.zeros_like(param)))

    test = load_data(DATA, "test")
    ctx = PruneContext(train=load_data(DATA, "train"), test=test, finetune=train)
    report = lottery.run(handle, cfg, ctx)
    names = sorted(handle.masks)
    assert names == ["1.weight", "3.weight", "5.weight"] and len(starts) == 4  # 2 rounds, ticket, control
    (_, round1, none), (_, round2, masks1), (ticket, ticket_start, masks2), (control, control_start, _) = (
        starts
    )
    assert none == {} and all(torch.equal(round1[k], theta_0[k]) for k in theta_0)
    pruned = torch.cat([theta_0[k][~masks1[k]].abs() for k in names])
    kept = torch.cat([theta_0[k][masks1[k]].abs() for k in names])
    assert len(pruned) == pytest.approx(0.2 * (len(pruned) + len(kept)), abs=1)
    assert pruned.min() >= kept.max()  # ranked on the trained weights
    for start, masks in ((round2, masks1), (ticket_start, masks2)):  # survivors rewound to theta_0
        assert all(torch.equal(start[k], theta_0[k] * masks.get(k, True)) for k in theta_0)
    assert ticket is handle and torch.equal(handle.masks["1.weight"], masks2["1.weight"])
    assert [step["sparsity"] for step in report.steps] == pytest.approx([0.2, 0.36], abs=1e-3)
    assert control is not handle and all(torch.equal(control.masks[k], masks2[k]) for k in names)
    for k in names:
        survivors = masks2[k]
        assert torch.all(control_start[k][~survivors] == 0)
        assert not torch.allclose(control_start[k][survivors], theta_0[k][survivors])  # a fresh init
    f = report.figures
    assert f["ticket_accuracy"] == evaluate(handle.module, test)["accuracy"]
    assert f["random_reinit_accuracy"] == evaluate(control.module, test)["accuracy"]


def test_masks_persist_through_save_load_and_finetune(tmp_path):
    handle, _, _ = _run(magnitude, "sample:simple_cnn", method="magnitude", sparsity=0.9)
    dense = tmp_path / "dense.pt"
    save_artifact(_fresh("sample:simple_cnn"), dense)
    out = tmp_path / "sparse.pt"
    save_artifact(handle, out)
    assert out.stat().st_size <= 0.2 * dense.stat().st_size
    back = load_model(str(out))
    x = handle.example_input(4)
    assert torch.equal(back.module(x), handle.module(x))
    before = {k: _weight_sparsity(back, k) for k in back.masks}
    train = load_data(DATA, "train")
    fit(back.module, train, TrainConfig(epochs=1, lr=1e-3, max_batches=5), masks=back.masks)
    after = {k: _weight_sparsity(back, k) for k in back.masks}
    assert all(after[k] >= before[k] - 1e-9 for k in before)
    assert select_layers(back, PruneConfig(method="magnitude", sparsity=0.5))


def _cli(*args):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--method", "magnitude", "--sparsity", "1.0"], "sparsity"),
        (["--method", "wanda", "--sparsity", "0.5"], "--data"),
        (["--method", "wanda", "--sparsity", "0.5", "--data", DATA, "--calib-samples", "100000"], "samples"),
        (["--method", "magnitude", "--nm", "2:4"], "'0'"),
        (["--method", "magnitude", "--nm", "4:4"], "N must be smaller"),
        (["--method", "sap", "--sparsity", "0.5", "--data", DATA, "--opt", "gama=2"], "gamma"),
    ],
)
def test_cli_bad_input_exits_2_without_output(tmp_path, args, needle):
    out = tmp_path / "out.pt"
    code, _, err = _cli("prune", "sample:simple_cnn", *args, "-o", str(out))
    assert code == 2 and not out.exists()
    assert needle in err and "Traceback" not in err


def test_cli_json_one_document(tmp_path):
    out = tmp_path / "out.pt"
    code, stdout, _ = _cli(
        "prune",
        "sample:mlp",
        "--method",
        "magnitude",
        "--sparsity",
        "0.9",
        "--scope",
        "layer",
        "-o",
        str(out),
        "--json",
    )
    assert code == 0 and out.exists()
    doc = json.loads(stdout)
    assert doc["layer_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert doc["size_bytes_after"] <= 0.2 * doc["size_bytes_before"]
    assert any("speed up" in note for note in doc["notes"])
    assert Path(out).exists()

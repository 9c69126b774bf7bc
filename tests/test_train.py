"""The shared training loop: config checks, determinism, masks, best epoch, interrupts, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from typer.testing import CliRunner

from compressor.cli.app import app
from compressor.errors import InputError, UsageError
from compressor.io.artifact import load_model
from compressor.io.data import Data
from compressor.io.refs import build
from compressor.train import TrainConfig, evaluate, fit, loop

runner = CliRunner()


def learnable(n: int = 256, seed: int = 0, classes: int = 10) -> Data:
    """28x28 inputs whose label is the brightest of the first ``classes`` pixels: learnable fast."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=gen)
    y = x.flatten(1)[:, :classes].argmax(1)
    return Data(TensorDataset(x, y), (1, 1, 28, 28), classes, None, None, f"learnable/{seed}")


def fresh(name: str = "mlp", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build(f"sample:{name}")


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"lr": 0}, "learning rate"),
        ({"lr": -1e-3}, "learning rate"),
        ({"epochs": -1}, "epochs"),
        ({"optimizer": "adagrad"}, "optimizer"),
        ({"schedule": "linear"}, "schedule"),
        ({"device": "tpu"}, "device"),
        ({"batch_size": 0}, "batch size"),
        ({"max_batches": 0}, "max batches"),
    ],
)
def test_config_rejects_bad_values(kwargs, text):
    with pytest.raises(UsageError, match=text) as info:
        TrainConfig(**kwargs)
    assert info.value.exit_code == 2


def test_same_seed_same_weights_and_other_seed_differs():
    data = learnable()
    cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=16, max_batches=3)
    runs = []
    for seed in (0, 0, 1):
        model = fresh("simple_cnn")  # has dropout: the seed must fix its masks too
        fit(model, data, TrainConfig(**{**cfg.__dict__, "seed": seed}))
        runs.append(model)
    assert same_weights(runs[0], runs[1])
    assert not same_weights(runs[0], runs[2])


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_each_optimizer_learns(optimizer):
    data = learnable()
    model = fresh()
    before = evaluate(model, data)["loss"]
    lr = 0.05 if optimizer == "sgd" else 1e-3
    result = fit(
        model, data, TrainConfig(epochs=3, lr=lr, optimizer=optimizer, schedule="none", batch_size=32)
    )
    assert evaluate(model, data)["loss"] < 0.7 * before
    assert len(result.epochs) == 3 and result.best_epoch == 2


def test_schedules_shape_the_learning_rate():
    model = nn.Linear(2, 2)
    for schedule, final in (("none", 1.0), ("cosine", 0.0), ("step", 0.001)):
        cfg = TrainConfig(epochs=3, lr=1.0, schedule=schedule, optimizer="sgd")
        opt = loop.make_optimizer(model, cfg)
        sched = loop.make_scheduler(opt, cfg, steps_per_epoch=10)
        for _ in range(30):
            opt.step()
            sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(final, abs=1e-6)


def test_onecycle_warms_up_over_the_first_30_percent_then_anneals():
    model = nn.Linear(2, 2)
    cfg = TrainConfig(epochs=2, lr=1.0, schedule="onecycle", optimizer="sgd")
    opt = loop.make_optimizer(model, cfg)
    sched = loop.make_scheduler(opt, cfg, steps_per_epoch=50)
    rates = []
    for _ in range(100):  # every step of the run, as fit() takes them
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(1 / 25)  # starts at lr / 25
    assert max(rates) == pytest.approx(1.0, abs=1e-3) and 28 <= rates.index(max(rates)) <= 31  # peak at 30%
    assert rates[-1] < 1e-3 and rates == sorted(rates[:30]) + rates[30:]  # rises, then falls to nearly 0


def test_masks_stay_enforced_and_the_rest_trains():
    model = fresh()
    weight = model[1].weight
    mask = torch.rand(weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    start = weight.detach().clone()
    fit(model, learnable(), TrainConfig(epochs=1, lr=1e-2, batch_size=32), masks={"1.weight": mask})
    assert torch.all(model[1].weight[~mask] == 0)
    assert not torch.equal(model[1].weight[mask], start[mask])


def test_best_epoch_is_kept():
    train, val = learnable(seed=0), learnable(n=64, seed=1)
    model = fresh()
    result = fit(model, train, TrainConfig(epochs=4, lr=0.5, optimizer="sgd", batch_size=32), val=val)
    accs = [e["val_accuracy"] for e in result.epochs]
    assert result.best_epoch == accs.index(max(accs))
    assert evaluate(model, val)["accuracy"] == pytest.approx(max(accs))


def _interrupt_after(steps: int):
    calls = {"n": 0}

    def loss_fn(logits, y, x):
        calls["n"] += 1
        if calls["n"] > steps:
            raise KeyboardInterrupt
        return nn.functional.cross_entropy(logits, y)

    return loss_fn


def test_interrupt_keeps_the_last_finished_epoch():
    # 4 steps per epoch; a constant rate, so that epoch 0 of a 3-epoch run is a 1-epoch run
    data, cfg = learnable(), TrainConfig(epochs=3, lr=1e-3, schedule="none", batch_size=64)
    model = fresh()
    result = fit(model, data, cfg, loss_fn=_interrupt_after(6), stop_on_interrupt=True)
    reference = fresh()
    fit(reference, data, TrainConfig(**{**cfg.__dict__, "epochs": 1}))
    assert result.interrupted and result.best_epoch == 0 and len(result.epochs) == 1
    assert same_weights(model, reference)
    with pytest.raises(KeyboardInterrupt):
        fit(fresh(), data, cfg, loss_fn=_interrupt_after(2))


def test_labels_outside_the_head_are_rejected():
    with pytest.raises(InputError, match="labels 0..11"):
        fit(fresh(), learnable(classes=12), TrainConfig())


def test_amp_on_cpu_trains_with_finite_loss():
    result = fit(fresh(), learnable(), TrainConfig(epochs=1, lr=1e-3, amp=True, device="cpu"))
    assert torch.isfinite(torch.tensor(result.epochs[0]["train_loss"]))


def test_zero_epochs_changes_nothing():
    model, reference = fresh(), fresh()
    assert fit(model, learnable(), TrainConfig(epochs=0)).best_epoch == -1
    assert same_weights(model, reference)


# --- CLI: compress finetune ---------------------------------------------------------------------


@pytest.fixture
def masked_artifact(tmp_path):
    """An mlp artifact with half of its first layer masked."""
    from compressor.io.artifact import save_artifact

    handle = load_model("sample:mlp")
    mask = torch.rand(handle.module[1].weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    with torch.no_grad():
        handle.module[1].weight.mul_(mask)
    handle.masks = {"1.weight": mask}
    path = tmp_path / "masked.pt"
    save_artifact(handle, path)
    return path


def test_finetune_cli_keeps_masks_and_prints_one_json(masked_artifact, tmp_path):
    out = tmp_path / "ft.pt"
    res = runner.invoke(
        app,
        [
            "finetune",
            str(masked_artifact),
            "--data",
            "random",
            "--epochs",
            "1",
            "--lr",
            "1e-3",
            "--device",
            "cpu",
            "-o",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["command"] == "finetune" and doc["output"] == str(out) and doc["world_size"] == 1
    handle = load_model(out)
    mask = handle.masks["1.weight"]
    assert torch.all(handle.module[1].weight[~mask] == 0)
    assert handle.history[-1]["command"] == "finetune"


@pytest.mark.parametrize(
    "flags, text",
    [
        (["--lr", "0"], "learning rate"),
        (["--epochs", "-2"], "epochs"),
    ],
)
def test_finetune_cli_bad_values_exit_2(flags, text, tmp_path):
    res = runner.invoke(
        app, ["finetune", "sample:mlp", "--data", "random", "-o", str(tmp_path / "x.pt"), *flags]
    )
    assert res.exit_code == 2
    assert text in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "x.pt").exists()


def test_finetune_cli_labels_outside_classes_exit_2(tmp_path):
    x = torch.randn(32, 1, 28, 28)
    torch.save({"x": x, "y": torch.arange(32) % 12}, tmp_path / "d.pt")
    res = runner.invoke(
        app,
        ["finetune", "sample:mlp", "--data", f"tensors:{tmp_path / 'd.pt'}", "-o", str(tmp_path / "x.pt")],
    )
    assert res.exit_code == 2 and "labels 0..11" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    "command",
    [
        ["finetune", "sample:mlp"],
        ["prune", "sample:mlp", "--method", "magnitude", "--sparsity", "0.5", "--finetune-epochs", "1"],
        ["slim", "sample:vgg_bn"],
    ],
)
def test_device_cuda_without_gpu_exit_2(command, tmp_path):
    res = runner.invoke(app, [*command, "--data", "random", "--device", "cuda", "-o", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "no CUDA GPU" in res.stderr, res.stderr
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize(
    "save, stop_at, written",
    [
        (False, 3, False),  # in epoch 1, not asked to save: nothing written
        (True, 3, True),  # in epoch 1, asked: the best finished epoch (0) is saved
        (True, 1, False),  # in epoch 0, asked: no epoch finished, so nothing to save
    ],
)
def test_ctrl_c_exit_130_and_no_partial_file(save, stop_at, written, tmp_path, monkeypatch):
    real_step = loop._Run.step
    calls = {"n": 0}

    def step(self, x, y):
        calls["n"] += 1
        if calls["n"] > stop_at:  # epoch 0 has 2 steps (batch 128 of 256)
            raise KeyboardInterrupt
        return real_step(self, x, y)

    monkeypatch.setattr(loop._Run, "step", step)
    out = tmp_path / "x.pt"
    flags = ["--save-on-interrupt"] if save else []
    res = runner.invoke(
        app, ["finetune", "sample:mlp", "--data", "random", "--epochs", "3", "-o", str(out), *flags]
    )
    assert res.exit_code == 130
    assert [p.name for p in tmp_path.iterdir()] == (["x.pt"] if written else [])
    if written:
        handle = load_model(out)
        assert handle.metrics["interrupted"] is True and handle.metrics["best_epoch"] == 0
    else:
        assert "no output was written" in res.stderr


def test_single_process_distributed_helpers_are_identities():
    from compressor.train import distributed

    model = nn.Linear(2, 2)
    assert distributed.is_main() and distributed.world_size() == 1 and distributed.rank() == 0
    assert distributed.wrap(model, torch.device("cpu")) is model
    assert distributed.sampler(learnable().dataset, 0) is None
    assert distributed.all_sum([1.0, 2.0]) == [1.0, 2.0]
    if not torch.cuda.is_available():
        assert loop.resolve_device("auto") == torch.device("cpu")

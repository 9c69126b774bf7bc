"""Hinton KD loss on hand-made tensors; compress distill end to end; DDP under torchrun."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from typer.testing import CliRunner

from compressor.api import DistillConfig, ModelSpec, distill
from compressor.cli.app import app
from compressor.errors import UsageError
from compressor.io.artifact import load_model, save_artifact
from compressor.train import TrainConfig
from compressor.train.distill import check_kd, kd_loss, soft_kl

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def softmax(values: list[float], t: float) -> list[float]:
    exps = [math.exp(v / t) for v in values]
    return [e / sum(exps) for e in exps]


def test_kd_loss_matches_hand_computation():
    zs, zt, t, alpha = [1.0, 2.0, 0.5], [3.0, -1.0, 0.0], 2.0, 0.7
    ps, pt = softmax(zs, t), softmax(zt, t)
    kl_teacher_target = sum(b * math.log(b / a) for a, b in zip(ps, pt))  # KL(p_t || p_s)
    ce = -math.log(softmax(zs, 1.0)[2])
    expected = alpha * t * t * kl_teacher_target + (1 - alpha) * ce
    got = kd_loss(torch.tensor([zs]), torch.tensor([zt]), torch.tensor([2]), t, alpha)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_kl_direction_is_teacher_as_target():
    zs, zt = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    ps, pt = F.softmax(zs, -1), F.softmax(zt, -1)
    forward = (pt * (pt.log() - ps.log())).sum().item()
    reverse = (ps * (ps.log() - pt.log())).sum().item()
    assert abs(forward - reverse) > 0.1  # the example tells the two directions apart
    assert soft_kl(zs, zt, 1.0).item() == pytest.approx(forward, rel=1e-6)


def test_kd_gradient_is_t_times_prob_difference():
    zs = torch.tensor([[0.3, -1.2, 2.0, 0.1]], requires_grad=True)
    zt = torch.tensor([[1.0, 0.5, -0.5, 0.0]])
    t = 4.0
    kd_loss(zs, zt, torch.tensor([0]), t, alpha=1.0).backward()
    expected = t * (F.softmax(zs.detach() / t, -1) - F.softmax(zt / t, -1))
    assert torch.allclose(zs.grad, expected, atol=1e-6)


def test_alpha_ends_and_batch_mean():
    zs, zt, y = torch.randn(5, 10), torch.randn(5, 10), torch.arange(5)
    assert kd_loss(zs, zt, y, 4.0, 0.0).item() == pytest.approx(F.cross_entropy(zs, y).item(), rel=1e-6)
    assert kd_loss(zs, zs.clone(), y, 4.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    per_row = [kd_loss(zs[i : i + 1], zt[i : i + 1], y[i : i + 1], 4.0, 1.0).item() for i in range(5)]
    assert kd_loss(zs, zt, y, 4.0, 1.0).item() == pytest.approx(sum(per_row) / 5, rel=1e-5)


@pytest.mark.parametrize("t, alpha", [(0, 0.5), (-1, 0.5), (4, -0.1), (4, 1.5)])
def test_bad_temperature_or_alpha(t, alpha):
    with pytest.raises(UsageError):
        check_kd(t, alpha)


# --- compress distill ---------------------------------------------------------------------------


def artifact(tmp_path: Path, name: str, seed: int, **kwargs) -> Path:
    torch.manual_seed(seed)
    handle = load_model("sample:mlp", arch_kwargs=kwargs or None)
    path = tmp_path / f"{name}.pt"
    save_artifact(handle, path)
    return path


def mean_kl(student: Path, teacher: Path) -> float:
    from compressor.io.data import load_data

    x = load_data("random", "val").take(128)[0]
    with torch.no_grad():
        return soft_kl(load_model(student).module(x), load_model(teacher).module(x), 4.0).item()


def test_distill_moves_the_student_to_the_frozen_teacher(tmp_path):
    teacher, student = artifact(tmp_path, "teacher", 1), artifact(tmp_path, "student", 2)
    out = tmp_path / "kd.pt"
    cfg = DistillConfig(
        ModelSpec(str(student)),
        "random",
        ModelSpec(str(teacher)),
        temperature=4.0,
        alpha=1.0,
        train=TrainConfig(epochs=2, lr=2e-3, batch_size=64),
        eval_limit=64,
    )
    teacher_bytes = teacher.read_bytes()
    result = distill(cfg, str(out))
    assert mean_kl(out, teacher) < 0.5 * mean_kl(student, teacher)
    assert teacher.read_bytes() == teacher_bytes
    assert result.teacher_accuracy is not None and result.best_epoch >= 0
    assert load_model(out).history[-1]["params"]["temperature"] == 4.0


def test_distill_cli_json_and_masks_kept(tmp_path):
    teacher = artifact(tmp_path, "teacher", 1)
    handle = load_model("sample:mlp")
    mask = torch.rand(handle.module[3].weight.shape, generator=torch.Generator().manual_seed(0)) > 0.7
    with torch.no_grad():
        handle.module[3].weight.mul_(mask)
    handle.masks = {"3.weight": mask}
    save_artifact(handle, tmp_path / "sparse.pt")
    out = tmp_path / "kd.pt"
    res = runner.invoke(
        app,
        [
            "distill",
            str(tmp_path / "sparse.pt"),
            "--teacher",
            str(teacher),
            "--data",
            "random",
            "--epochs",
            "1",
            "--lr",
            "1e-3",
            "-o",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["command"] == "distill" and doc["teacher"] == str(teacher)
    kept = load_model(out)
    assert torch.all(kept.module[3].weight[~kept.masks["3.weight"]] == 0)
    assert torch.equal(kept.masks["3.weight"], mask)


@pytest.mark.parametrize(
    "flags, text",
    [
        (["--temperature", "0"], "temperature"),
        (["--alpha", "2"], "alpha"),
        (["--lr", "-1"], "learning rate"),
        (["--epochs", "-1"], "epochs"),
    ],
)
def test_distill_cli_bad_values_exit_2(flags, text, tmp_path):
    res = runner.invoke(
        app,
        [
            "distill",
            "sample:mlp",
            "--teacher",
            "sample:mlp",
            "--data",
            "random",
            "-o",
            str(tmp_path / "x.pt"),
            *flags,
        ],
    )
    assert res.exit_code == 2 and text in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_distill_cli_output_shapes_differ_exit_2(tmp_path):
    teacher = artifact(tmp_path, "five", 1, num_classes=5)
    res = runner.invoke(
        app,
        [
            "distill",
            "sample:mlp",
            "--teacher",
            str(teacher),
            "--data",
            "random",
            "-o",
            str(tmp_path / "x.pt"),
        ],
    )
    assert res.exit_code == 2 and "teacher outputs shape (2, 5)" in res.stderr
    assert not (tmp_path / "x.pt").exists()


# --- torchrun: 2 CPU processes on gloo ----------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(
    args: list[str], tmp_path: Path, torchrun: bool, averaged: bool = True
) -> subprocess.CompletedProcess:
    """``compress ARGS`` in one process, or under torchrun in two (``averaged=False``: without DDP)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    entry = ["-m", "compressor"] if averaged else [str(ROOT / "tests" / "no_gradient_averaging.py")]
    launcher = (
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(_free_port()),
        ]
        if torchrun
        else [sys.executable]
    )
    return subprocess.run(
        [*launcher, *entry, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )


def mean_abs_gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Mean |a - b| over every element of two state dicts."""
    return sum((a[k] - b[k]).abs().sum().item() for k in a) / sum(t.numel() for t in a.values())


def max_abs_gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def assert_same_training(single: dict, ddp: dict, broken: dict, start: dict, lr: float) -> None:
    """``ddp`` took the steps ``single`` took, up to float32 summation order, and ``broken`` did not.

    Adam divides each gradient by its own running magnitude, so a weight whose gradient is near zero
    turns a rounding difference into a visible one (up to about 1e-5 here, depending on the CPU):
    the bounds are set against the training's own effect, not at the edge of float32 rounding.
    Measured on 2 CPU processes: a correct average lands about 2e-7 of the mean update away, a run
    without gradient averaging about half of it. The bounds (1e-5 and 1e-2 of the update) sit three
    orders of magnitude apart, each a factor of 50 from what was measured.
    """
    update = mean_abs_gap(single, start)
    assert update > 0.1 * lr  # training really moved the weights
    assert mean_abs_gap(ddp, single) < 1e-5 * update, mean_abs_gap(ddp, single) / update
    assert max_abs_gap(ddp, single) < 0.1 * lr  # no weight off by a tenth of one step
    assert mean_abs_gap(broken, single) > 1e-2 * update, mean_abs_gap(broken, single) / update


def test_torchrun_two_processes_match_one_full_batch_process(tmp_path):
    """2 ranks x batch 128 (DDP averages gradients) == 1 process x batch 256: the same steps."""
    common = [
        "finetune",
        "sample:mlp",
        "--data",
        "random",
        "--epochs",
        "2",
        "--lr",
        "1e-3",
        "--seed",
        "3",
        "--json",
    ]
    single = _cli([*common, "--batch-size", "256", "-o", "single.pt"], tmp_path, torchrun=False)
    double = _cli([*common, "--batch-size", "128", "-o", "ddp.pt"], tmp_path, torchrun=True)
    broken = _cli(
        [*common, "--batch-size", "128", "-o", "broken.pt"], tmp_path, torchrun=True, averaged=False
    )
    for run in (single, double, broken):
        assert run.returncode == 0, run.stderr
    docs = [json.loads(line) for line in double.stdout.splitlines() if line.startswith("{")]
    assert len(docs) == 1 and docs[0]["world_size"] == 2  # only rank 0 printed
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "broken.pt",
        "ddp.pt",
        "single.pt",
    ]  # no stray files
    torch.manual_seed(3)
    start = load_model("sample:mlp").module.state_dict()  # finetune's init for --seed 3
    assert_same_training(
        *(load_model(tmp_path / name).module.state_dict() for name in ("single.pt", "ddp.pt", "broken.pt")),
        start,
        lr=1e-3,
    )
    one = json.loads(single.stdout)
    for e1, e2 in zip(one["epochs"], docs[0]["epochs"]):  # train loss summed over both ranks
        assert e2["train_loss"] == pytest.approx(e1["train_loss"], rel=1e-4)
    assert one["epochs"][0]["train_loss"] != pytest.approx(one["epochs"][1]["train_loss"], rel=1e-4)


def test_torchrun_prune_finetune_joins_the_group(tmp_path):
    """prune --finetune-epochs under torchrun trains with DDP: 2 x 128 == 1 x 256, rank 0 writes."""
    common = [
        "prune",
        "sample:mlp",
        "--method",
        "magnitude",
        "--sparsity",
        "0.5",
        "--data",
        "random",
        "--finetune-epochs",
        "1",
        "--finetune-lr",
        "1e-3",
        "--seed",
        "3",
        "--json",
    ]
    single = _cli([*common, "--batch-size", "256", "-o", "single.pt"], tmp_path, torchrun=False)
    double = _cli([*common, "--batch-size", "128", "-o", "ddp.pt"], tmp_path, torchrun=True)
    broken = _cli(
        [*common, "--batch-size", "128", "-o", "broken.pt"], tmp_path, torchrun=True, averaged=False
    )
    for run in (single, double, broken):
        assert run.returncode == 0, run.stderr
    docs = [line for line in double.stdout.splitlines() if line.startswith("{")]
    assert len(docs) == 1 and "finetune_val_accuracy" in json.loads(docs[0])  # rank 0 printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pt", "ddp.pt", "single.pt"]
    a, b, c = (load_model(tmp_path / name) for name in ("single.pt", "ddp.pt", "broken.pt"))
    assert all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)
    torch.manual_seed(3)
    untuned = load_model("sample:mlp").module.state_dict()  # prune's init for --seed 3
    start = {k: v * a.masks[k] if k in a.masks else v for k, v in untuned.items()}  # pruned, not tuned
    assert_same_training(a.module.state_dict(), b.module.state_dict(), c.module.state_dict(), start, lr=1e-3)


def test_torchrun_error_printed_once_exit_2(tmp_path):
    res = _cli(
        ["distill", "sample:mlp", "--teacher", "sample:mlp", "--data", "random:1,28,28:20", "-o", "x.pt"],
        tmp_path,
        torchrun=True,
    )
    assert res.returncode != 0  # torchrun reports a failed worker with its own code
    assert res.stderr.count("error: random/train has labels 0..19") == 1, res.stderr
    assert not (tmp_path / "x.pt").exists()


# --- compress prune --distill-from: the recovery step -------------------------------------------


@pytest.mark.parametrize(
    "flags, text",
    [
        (["--distill-from", "sample:mlp"], "--distill-from needs fine-tuning epochs"),
        (["--finetune-epochs", "1", "--finetune-lr", "0"], "--finetune-lr must be > 0"),
        (["--finetune-epochs", "-1"], "--finetune-epochs must be >= 0"),
        (["--finetune-epochs", "1", "--distill-from", "sample:mlp", "--alpha", "2"], "--alpha"),
        (["--finetune-epochs", "1", "--data", "random:1,28,28:20"], "labels 0..19"),
    ],
)
def test_prune_bad_recovery_values_exit_2_with_one_line(flags, text, tmp_path):
    res = runner.invoke(
        app,
        [
            "prune",
            "sample:mlp",
            "--method",
            "magnitude",
            "--sparsity",
            "0.5",
            "--data",
            "random",
            *flags,
            "-o",
            str(tmp_path / "x.pt"),
        ],
    )
    assert res.exit_code == 2 and text in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.pt").exists()


def test_prune_finetune_distils_from_the_teacher(tmp_path):
    from compressor.api.prune import make_context
    from compressor.pruning.base import PruneConfig

    teacher = artifact(tmp_path, "teacher", 1)
    cfg = PruneConfig(
        method="magnitude",
        sparsity=0.5,
        data="random",
        finetune_epochs=1,
        finetune_lr=2e-3,
        batch_size=64,
        distill_from=str(teacher),
        alpha=1.0,
    )
    student = load_model(artifact(tmp_path, "student", 2))
    mask = student.module[1].weight.abs() > student.module[1].weight.abs().median()
    student.masks = {"1.weight": mask}
    before = load_model(artifact(tmp_path, "student", 2))
    make_context(cfg, log=print).finetune(student, 2)
    x = load_data_x()
    t = load_model(teacher).module(x)
    with torch.no_grad():
        assert soft_kl(student.module(x), t, 4.0) < 0.7 * soft_kl(before.module(x), t, 4.0)
    assert torch.all(student.module[1].weight[~mask] == 0)


def load_data_x() -> torch.Tensor:
    from compressor.io.data import load_data

    return load_data("random", "val").take(128)[0]


def test_prune_l1_with_distill_from_end_to_end(tmp_path):
    """Structured pruning then KD recovery in one command (where the l1 method is installed)."""
    pytest.importorskip("compressor.pruning.structured.norm")
    out = tmp_path / "small.pt"
    res = runner.invoke(
        app,
        [
            "prune",
            "sample:resnet_small",
            "--method",
            "l1",
            "--ratio",
            "0.5",
            "--data",
            "random",
            "--finetune-epochs",
            "1",
            "--batch-size",
            "128",
            "--distill-from",
            "sample:resnet_small",
            "--alpha",
            "0.5",
            "-o",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    handle = load_model(out)
    assert handle.module.fc.in_features < 64
    assert handle.history[-1]["params"]["distill_from"] == "sample:resnet_small"
    assert json.loads(res.stdout)["finetune_best_epoch"] == 0  # the KD fine-tune ran


def test_teacher_stays_frozen_in_eval_mode_during_fit():
    from compressor.io.data import load_data
    from compressor.train import distill_loss_fn, fit

    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.BatchNorm1d(10))
    teacher.train()  # a teacher handed over in train mode must still not update its BN statistics
    stats = teacher[2].running_mean.clone()
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    fit(
        student,
        load_data("random", "train"),
        TrainConfig(epochs=1, lr=1e-2, batch_size=64),
        loss_fn=distill_loss_fn(teacher, 4.0, 0.9),
    )
    assert not teacher.training and torch.equal(teacher[2].running_mean, stats)
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())

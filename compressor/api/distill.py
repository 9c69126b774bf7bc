"""``compress distill`` and ``compress finetune``: recover accuracy with the shared training loop.

Distillation trains the student on Hinton's loss against a frozen teacher
(:mod:`compressor.train.distill`); fine-tuning is the same run without a teacher (cross-entropy).
The student keeps its masks. Under ``torchrun`` every process trains its share of each epoch
and only rank 0 writes the artifact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from compressor.api.common import ModelSpec, Progress, with_model
from compressor.errors import UsageError, first_line
from compressor.train.config import DistillConfig, TrainConfig

__all__ = ["DistillConfig", "DistillResult", "TrainConfig", "distill", "finetune", "device_kind"]


@dataclass(frozen=True)
class DistillResult:
    """Accuracy before and after, the teacher's, and the per-epoch figures."""

    command: str
    output: str | None
    student: str
    teacher: str | None
    data: str
    accuracy_before: float
    accuracy_after: float
    teacher_accuracy: float | None
    best_epoch: int
    best_val_accuracy: float | None
    train_seconds: float
    device: str
    world_size: int
    interrupted: bool
    epochs: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Flat keys (``accuracy_after``, ``train_seconds``) plus the per-epoch list."""
        return asdict(self)


def distill(
    model: ModelSpec | str | DistillConfig | None,
    config: DistillConfig | str | None = None,
    output: str | None = None,
    *,
    progress: Progress | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> DistillResult:
    """Train ``model`` (against ``config.teacher`` when given); save to ``output`` (rank 0).

    ``progress`` gets one line per finished epoch, ``on_epoch`` its figures. ``distill(config,
    output)``, with the student in ``config.student``, is the older call and still works.

    Raises:
        UsageError / InputError: no output, bad values, teacher and student outputs differ,
            labels outside the student's classes (exit 2).
        KeyboardInterrupt: Ctrl-C without ``save_on_interrupt``, or before the first epoch
            finished (nothing written).
    """
    from compressor.io.atomic import check_writable
    from compressor.train import distributed

    cfg, output = _arguments(model, config, output)
    if not output:
        raise UsageError("no output file", "add -o OUT.pt")
    check_writable(output)
    with distributed.process_group(device_kind(cfg.train.device)):
        return _run(cfg, output, _epoch_callback(progress, on_epoch))


def _arguments(model, config, output) -> tuple[DistillConfig, str | None]:
    """(config with its student, output) from the new call shape or the older ``(config, output)``."""
    if isinstance(model, DistillConfig):  # distill(config, output)
        model, config, output = None, model, config if config is not None else output
    if not isinstance(config, DistillConfig):
        raise UsageError(
            f"the config is a DistillConfig, got {type(config).__name__}",
            "call distill(model, DistillConfig(data=...), output)",
        )
    return with_model(config, "student", model)[0], output  # the student is set (or it raised)


def _epoch_callback(progress: Progress | None, on_epoch):
    """One callback for every finished epoch: its line to ``progress``, its figures to ``on_epoch``."""
    if progress is None:
        return on_epoch

    def both(stats: dict[str, float]) -> None:
        progress(epoch_line(stats))
        if on_epoch is not None:
            on_epoch(stats)

    return both


def epoch_line(stats: dict[str, float]) -> str:
    """``epoch 2: loss 0.3121, train accuracy 0.8870, val accuracy 0.8790``."""
    val = f", val accuracy {stats['val_accuracy']:.4f}" if "val_accuracy" in stats else ""
    return (
        f"epoch {int(stats['epoch'])}: loss {stats['train_loss']:.4f}, "
        f"train accuracy {stats['train_accuracy']:.4f}{val}"
    )


def finetune(
    model: ModelSpec | str | DistillConfig | None,
    config: DistillConfig | str | None = None,
    output: str | None = None,
    *,
    progress: Progress | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> DistillResult:
    """Fine-tune ``model`` with cross-entropy (the config's teacher, if any, is ignored)."""
    from dataclasses import replace

    cfg, output = _arguments(model, config, output)
    return distill(None, replace(cfg, teacher=None), output, progress=progress, on_epoch=on_epoch)


def _run(cfg: DistillConfig, output: str, on_epoch) -> DistillResult:
    import torch

    from compressor.io.data import load_data
    from compressor.train import distributed
    from compressor.train.loop import check_classes, evaluate, fit

    train, val, test = (load_data(cfg.data, split) for split in ("train", "val", "test"))
    torch.manual_seed(cfg.train.seed)  # a reference student (sample:mlp) starts from a seeded init
    student = _student(cfg).load()
    check_classes(student.module, train)
    teacher = _load_teacher(cfg, student, train)
    before = evaluate(student.module, test, limit=cfg.eval_limit)["accuracy"]
    teacher_acc = evaluate(teacher.module, test, limit=cfg.eval_limit)["accuracy"] if teacher else None
    loss_fn = _loss_fn(cfg, teacher)
    result = fit(
        student.module,
        train,
        cfg.train,
        val=val,
        masks=student.masks,
        loss_fn=loss_fn,
        description=cfg.command,
        stop_on_interrupt=cfg.save_on_interrupt,
        on_epoch=on_epoch,
    )
    if result.interrupted and result.best_epoch < 0:
        raise KeyboardInterrupt  # no epoch finished: nothing better than the input to save
    after = evaluate(student.module, test, limit=cfg.eval_limit)["accuracy"]
    _record(cfg, student, train, result, after, teacher_acc)
    if distributed.is_main():
        from compressor.io.artifact import save_artifact

        save_artifact(student, output)
    distributed.barrier()
    return DistillResult(
        cfg.command,
        output,
        _student(cfg).path,
        cfg.teacher.path if cfg.teacher else None,
        test.name,
        before,
        after,
        teacher_acc,
        result.best_epoch,
        result.best_val_accuracy,
        round(result.seconds, 3),
        result.device,
        result.world_size,
        result.interrupted,
        result.epochs,
    )


def _student(cfg: DistillConfig) -> ModelSpec:
    if cfg.student is None:  # distill() binds it before training; a direct call may not
        raise UsageError("no student model", "pass it first: distill(model, config, output)")
    return cfg.student


def _load_teacher(cfg: DistillConfig, student, data):
    """The teacher handle (None for fine-tuning), checked against the student's outputs."""
    if cfg.teacher is None:
        return None
    import torch

    from compressor.errors import InputError
    from compressor.train.distill import check_same_outputs

    teacher = cfg.teacher.load()
    x = torch.stack([data.dataset[i][0] for i in range(min(2, len(data)))])
    with torch.no_grad():
        try:
            teacher_out = teacher.module.eval()(x)
        except RuntimeError as exc:
            raise InputError(
                f"the teacher cannot take {data.name} inputs of shape "
                f"{tuple(x.shape[1:])} ({first_line(exc, 120)})",
                "distil from a teacher trained on the same data",
            ) from None
        check_same_outputs(student.module.eval()(x), teacher_out)
    return teacher


def _loss_fn(cfg: DistillConfig, teacher):
    if teacher is None:
        return None
    from compressor.train.distill import distill_loss_fn

    return distill_loss_fn(teacher.module, cfg.temperature, cfg.alpha)


def _record(cfg: DistillConfig, student, train, result, accuracy: float, teacher_acc) -> None:
    if student.mean is None:
        student.mean, student.std = train.mean, train.std
    params = {**asdict(cfg.train), "data": cfg.data}
    if cfg.teacher is not None:
        params.update(teacher=cfg.teacher.path, temperature=cfg.temperature, alpha=cfg.alpha)
    metrics = {
        "accuracy": accuracy,
        "eval_data": f"{cfg.data}/test",
        "best_epoch": result.best_epoch,
        "train_seconds": round(result.seconds, 3),
        "world_size": result.world_size,
        "interrupted": result.interrupted,
    }
    if teacher_acc is not None:
        metrics["teacher_accuracy"] = teacher_acc
    student.record(cfg.command, "kd" if cfg.teacher is not None else "ce", params, metrics)


def device_kind(name: str) -> str:
    """``cpu`` or ``cuda``: the device type ``--device NAME`` resolves to (the DDP backend's)."""
    from compressor.train.loop import resolve_device

    return resolve_device(name).type

"""``compress distill`` and ``compress finetune``: recovery with the shared training loop."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from compressor.api.config import DistillConfig as D
from compressor.api.config import TrainConfig as T
from compressor.cli.common import (
    ArchKwargsOpt,
    ArchOpt,
    DebugOpt,
    DeviceOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    TrustPickleOpt,
    console,
    execute,
    model_spec,
)
from compressor.errors import EXIT_INTERRUPTED

DataReq = Annotated[
    str,
    typer.Option(
        "--data",
        help="Training data: fashion-mnist, digits, "
        "cifar10:ROOT, imagefolder:PATH, tensors:FILE, random[:C,H,W[:K]].",
    ),
]
OutputReq = Annotated[Optional[str], typer.Option("-o", "--output", help="Output artifact (.pt).")]
EpochsOpt = Annotated[int, typer.Option(help="Passes over the training split.")]
LrOpt = Annotated[
    float, typer.Option("--lr", help="Learning rate (> 0); with --schedule onecycle, its peak.")
]
WdOpt = Annotated[float, typer.Option(help="Weight decay.")]
OptimOpt = Annotated[str, typer.Option(help="adam, adamw or sgd.")]
SchedOpt = Annotated[
    str,
    typer.Option(
        help="Learning-rate schedule: none, cosine, step or onecycle "
        "(warm-up over the first 30% of the steps, then cosine)."
    ),
]
BatchOpt = Annotated[int, typer.Option(help="Samples per step (per process under torchrun).")]
SeedOpt = Annotated[int, typer.Option(help="Seed: same seed, same weights on CPU.")]
AmpOpt = Annotated[bool, typer.Option("--amp", help="Mixed precision (CUDA float16, CPU bfloat16).")]
MaxBatchesOpt = Annotated[Optional[int], typer.Option(help="At most N steps per epoch (smoke runs).")]
EvalLimitOpt = Annotated[Optional[int], typer.Option(help="Evaluate on at most N test samples.")]
SaveIntOpt = Annotated[
    bool, typer.Option("--save-on-interrupt", help="On Ctrl-C save the best finished epoch (exit 130).")
]


def distill(
    path: ModelArg,
    teacher: Annotated[
        str,
        typer.Option(
            "--teacher", help="Teacher model: artifact, state_dict (with --teacher-arch) or reference."
        ),
    ],
    data: DataReq,
    output: OutputReq = None,
    temperature: Annotated[float, typer.Option(help="Softening temperature T (> 0).")] = D.temperature,
    alpha: Annotated[
        float,
        typer.Option(
            help="Weight of the teacher term, in [0, 1]; the labels get 1 - alpha. Lower (e.g. 0.1) "
            "suits a student that can match its teacher (benchmarks/results/recovery.md)."
        ),
    ] = D.alpha,
    teacher_arch: Annotated[
        Optional[str], typer.Option(help="Architecture of a plain state_dict teacher.")
    ] = None,
    epochs: EpochsOpt = T.epochs,
    lr: LrOpt = T.lr,
    weight_decay: WdOpt = T.weight_decay,
    optimizer: OptimOpt = T.optimizer,
    schedule: SchedOpt = T.schedule,
    batch_size: BatchOpt = T.batch_size,
    seed: SeedOpt = T.seed,
    device: DeviceOpt = T.device,
    amp: AmpOpt = T.amp,
    max_batches: MaxBatchesOpt = T.max_batches,
    eval_limit: EvalLimitOpt = D.eval_limit,
    save_on_interrupt: SaveIntOpt = D.save_on_interrupt,
    arch: ArchOpt = None,
    arch_kwargs: ArchKwargsOpt = None,
    trust_pickle: TrustPickleOpt = False,
    input_shape: InputShapeOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Distil a frozen teacher into a student (Hinton loss); the student keeps its masks.

    Loss: alpha * T^2 * KL(teacher || student at temperature T) + (1 - alpha) * cross-entropy.
    Defaults: Adam, one-cycle schedule (warm-up over the first 30% of the steps, then cosine)
    peaking at --lr, chosen so that one epoch recovers a structurally pruned student
    (benchmarks/results/recovery_defaults.md); masked students keep their masks and get the same
    settings (--lr 1e-4 --schedule none: the former, gentler fine-tune).
    Under torchrun --nproc-per-node N it trains with DDP; only rank 0 writes and prints.

    Examples:

      compress distill small.pt --teacher resnet_small.pt --data fashion-mnist -o small_kd.pt

      torchrun --nproc-per-node 2 -m compressor distill small.pt --teacher resnet_small.pt
      --data fashion-mnist -o small_kd.pt
    """
    flags = dict(locals())

    def action():
        from compressor.api.distill import distill as api_distill

        cfg = _config(flags, teacher_spec=model_spec(teacher, teacher_arch))
        return api_distill(cfg.student, cfg, output, progress=_print)

    _execute(action, json_out, debug)


def finetune(
    path: ModelArg,
    data: DataReq,
    output: OutputReq = None,
    epochs: EpochsOpt = T.epochs,
    lr: LrOpt = T.lr,
    weight_decay: WdOpt = T.weight_decay,
    optimizer: OptimOpt = T.optimizer,
    schedule: SchedOpt = T.schedule,
    batch_size: BatchOpt = T.batch_size,
    seed: SeedOpt = T.seed,
    device: DeviceOpt = T.device,
    amp: AmpOpt = T.amp,
    max_batches: MaxBatchesOpt = T.max_batches,
    eval_limit: EvalLimitOpt = D.eval_limit,
    save_on_interrupt: SaveIntOpt = D.save_on_interrupt,
    arch: ArchOpt = None,
    arch_kwargs: ArchKwargsOpt = None,
    trust_pickle: TrustPickleOpt = False,
    input_shape: InputShapeOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Fine-tune a model with cross-entropy; masks kept.

    Defaults: Adam, one-cycle schedule (warm-up over the first 30% of the steps, then cosine) peaking
    at --lr, weight decay 1e-4: chosen by measurement (benchmarks/results/recovery_defaults.md).

    Example: compress finetune sparse.pt --data fashion-mnist --epochs 2 -o sparse_ft.pt
    """
    flags = dict(locals())

    def action():
        from compressor.api.distill import finetune as api_finetune

        cfg = _config(flags)
        return api_finetune(cfg.student, cfg, output, progress=_print)

    _execute(action, json_out, debug)


def _config(flags: dict, teacher_spec=None):
    """DistillConfig from the command's flags (its parameters by name)."""
    train = T(
        **{
            k: flags[k]
            for k in (
                "epochs",
                "lr",
                "weight_decay",
                "optimizer",
                "schedule",
                "batch_size",
                "seed",
                "device",
                "amp",
                "max_batches",
            )
        }
    )
    student = model_spec(
        flags["path"], flags["arch"], flags["arch_kwargs"], flags["trust_pickle"], flags["input_shape"]
    )
    return D(
        student,
        flags["data"],
        teacher_spec,
        flags.get("temperature", D.temperature),
        flags.get("alpha", D.alpha),
        train,
        flags["save_on_interrupt"],
        flags["eval_limit"],
    )


def _execute(action, json_out: bool, debug: bool) -> None:
    execute(action, render, json_out, debug, exit_code=lambda r: EXIT_INTERRUPTED if r.interrupted else 0)


def _print(line: str) -> None:
    console().print(line)


def render(r) -> None:
    """Accuracy before/after (and the teacher's), the epoch kept, where it ran."""
    out = console()
    teacher = f"; teacher {r.teacher_accuracy:.4f}" if r.teacher_accuracy is not None else ""
    out.print(
        f"{r.command} {r.student} on {r.data}: accuracy {r.accuracy_before:.4f} -> "
        f"[bold]{r.accuracy_after:.4f}[/]{teacher}"
    )
    out.print(
        f"kept epoch {r.best_epoch}, {r.train_seconds:.1f} s on {r.device} x{r.world_size} -> {r.output}"
    )
    if r.interrupted:
        out.print("interrupted: saved the best finished epoch")

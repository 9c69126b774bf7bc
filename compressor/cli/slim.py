"""``compress slim``: Network Slimming behind one command."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from compressor.api.config import SlimConfig as S
from compressor.cli import budget as budget_cli
from compressor.cli.budget import (
    CostCacheOpt,
    ProfileOpt,
    TargetLatencyOpt,
    TargetMacsOpt,
    TargetParamsOpt,
    TargetSizeOpt,
    TargetSpeedupOpt,
)
from compressor.cli.common import (
    ArchKwargsOpt,
    ArchOpt,
    DebugOpt,
    DeviceOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    TrustPickleOpt,
    execute,
    log_line,
    model_spec,
)
from compressor.cli.prune import OutputOpt, render
from compressor.defaults import SLIM_RATIO


def slim(
    path: ModelArg,
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="Training data: fashion-mnist, digits, cifar10:ROOT, imagefolder:PATH, tensors:FILE.",
        ),
    ],
    output: OutputOpt = None,
    ratio: Annotated[
        Optional[float],
        typer.Option(
            help="Fraction of BatchNorm channels to remove (global |gamma| percentile), in (0, 1). "
            f"Default: {SLIM_RATIO} unless a target is given.",
            show_default=False,
        ),
    ] = S.ratio,
    target_speedup: TargetSpeedupOpt = None,
    target_latency_ms: TargetLatencyOpt = None,
    target_macs: TargetMacsOpt = None,
    target_params: TargetParamsOpt = None,
    target_size: TargetSizeOpt = None,
    profile: ProfileOpt = None,
    cost_cache: CostCacheOpt = None,
    lam: Annotated[
        float,
        typer.Option("--lambda", help="L1 strength on BatchNorm scales (paper: 1e-4 VGG, 1e-5 ResNet)."),
    ] = S.lam,
    sparsity_epochs: Annotated[int, typer.Option(help="Epochs of sparsity training.")] = S.sparsity_epochs,
    finetune_epochs: Annotated[
        int, typer.Option(help="Epochs of fine-tuning after removal.")
    ] = S.finetune_epochs,
    lr: Annotated[
        float,
        typer.Option(
            help="Learning rate of fine-tuning (Adam), and of sparsity training unless --sparsity-lr."
        ),
    ] = S.lr,
    finetune_schedule: Annotated[
        str,
        typer.Option(
            help="Learning-rate schedule of fine-tuning: none (constant), cosine, step or onecycle."
        ),
    ] = S.finetune_schedule,
    sparsity_optimizer: Annotated[
        str,
        typer.Option(
            help="Optimizer of sparsity training: adam, adamw or sgd (the paper's; pair it with "
            "--sparsity-lr 0.01)."
        ),
    ] = S.sparsity_optimizer,
    sparsity_lr: Annotated[
        Optional[float], typer.Option(help="Learning rate of sparsity training (default: --lr).")
    ] = S.sparsity_lr,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = S.batch_size,
    round_to: Annotated[
        Optional[int], typer.Option(help="Keep channel counts multiples of N (8 or 16 run faster).")
    ] = S.round_to,
    max_layer_ratio: Annotated[
        float, typer.Option(help="Remove at most this fraction of any one layer (never all of it).")
    ] = S.max_layer_ratio,
    keep_residual: Annotated[
        bool, typer.Option(help="Keep channels joined by residual additions; prune only inside blocks.")
    ] = S.keep_residual,
    ignore: Annotated[
        Optional[list[str]],
        typer.Option(help="Never prune modules whose name matches this pattern (repeatable)."),
    ] = None,
    allow_output_change: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Let this output's shape change (repeatable; compress info lists the names). Every other "
            "output keeps its shape: the layers that make it are not pruned."
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            help="Refuse when cutting a group breaks the model (exit 3), instead of keeping that group "
            "unpruned and naming it in the report."
        ),
    ] = S.strict,
    weight_threshold: Annotated[
        float, typer.Option(help="After fine-tuning, zero weights with |w| below this (0: off).")
    ] = S.weight_threshold,
    gamma_plot: Annotated[
        Optional[str], typer.Option(help="Write a histogram of |gamma| with the threshold to this PNG.")
    ] = S.gamma_plot,
    max_batches: Annotated[
        Optional[int], typer.Option(help="Cap batches per sparsity-training epoch (smoke runs).")
    ] = S.max_batches,
    seed: Annotated[int, typer.Option(help="Seed for shuffling and training.")] = S.seed,
    dry_run: Annotated[
        bool, typer.Option(help="List the groups the current gammas would prune; train and write nothing.")
    ] = False,
    device: DeviceOpt = S.device,
    arch: ArchOpt = None,
    arch_kwargs: ArchKwargsOpt = None,
    trust_pickle: TrustPickleOpt = False,
    input_shape: InputShapeOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Network Slimming: L1 on BatchNorm scales, global threshold, channel removal, fine-tune.

    Example:

      compress slim sample_models/vgg_bn.pt --data fashion-mnist --ratio 0.4 --lambda 1e-4 --sparsity-epochs 2 --finetune-epochs 2 -o slim.pt
    """

    def action():
        from compressor.api import SlimConfig
        from compressor.api import slim as api_slim

        budget = budget_cli.budget(
            target_speedup, target_latency_ms, target_macs, target_params, target_size, profile, cost_cache
        )
        cfg = SlimConfig(
            data=data,
            ratio=ratio,
            budget=budget,
            lam=lam,
            sparsity_epochs=sparsity_epochs,
            finetune_epochs=finetune_epochs,
            lr=lr,
            finetune_schedule=finetune_schedule,
            sparsity_lr=sparsity_lr,
            sparsity_optimizer=sparsity_optimizer,
            batch_size=batch_size,
            round_to=round_to,
            max_layer_ratio=max_layer_ratio,
            keep_residual=keep_residual,
            ignore=tuple(ignore or ()),
            allow_output_change=tuple(allow_output_change or ()),
            strict=strict,
            weight_threshold=weight_threshold,
            gamma_plot=gamma_plot,
            max_batches=max_batches,
            seed=seed,
            device=device,
        )
        spec = model_spec(path, arch, arch_kwargs, trust_pickle, input_shape)
        return api_slim(spec, cfg, output, progress=log_line, dry_run=dry_run)

    execute(action, render, json_out, debug, exit_code=budget_cli.exit_code)

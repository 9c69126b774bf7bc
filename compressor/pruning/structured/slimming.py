"""Network Slimming: L1 sparsity on BatchNorm scales, a global threshold, physical channel removal.

Liu et al., "Learning Efficient Convolutional Networks through Network Slimming", ICCV 2017
(arXiv:1708.06519). Sparsity training adds lambda * sum |gamma| over every BatchNorm scale to the
loss (its subgradient lambda * sign(gamma) is added to the gradients between backward and step);
then one global threshold, the ``ratio`` percentile of |gamma| over all prunable BatchNorm
channels, selects the channels to remove (coupled BatchNorms are scored by their mean |gamma|;
a layer gives at most ``max_layer_ratio`` of its channels, never all, and the next lowest
channels elsewhere are taken instead, so ``ratio`` of all channels still goes); the channels are
removed physically through the dependency graph, BatchNorm statistics are recalibrated and the
network is fine-tuned. With a target instead of a ratio, the budget engine plans the widths per
group against the target's cost, trading the same gammas. Optionally, weights with |w| below ``weight_threshold`` are then zeroed
under masks kept by later fine-tuning.
"""

from __future__ import annotations

from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from compressor.errors import UnsupportedError, UsageError
from compressor.model import ModelHandle
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext
from compressor.pruning.structured import coupling, graph, preflight
from compressor.pruning.structured.settings import SlimmingConfig
from compressor.train import distributed

BN_BATCHES = 20


def l1_subgradient(gamma: torch.Tensor, lam: float) -> torch.Tensor:
    """Subgradient of lam * sum |gamma|: lam * sign(gamma) (0 at 0)."""
    return lam * torch.sign(gamma)


def gamma_threshold(gammas: torch.Tensor, ratio: float) -> float:
    """The global threshold: the ``ratio`` quantile of |gamma| over all channels."""
    return float(torch.quantile(gammas.abs().float(), ratio))


def scaled_batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """BatchNorm layers with a learnable scale."""
    return [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None
    ]


def add_l1_penalty(bns: list[nn.Module], lam: float) -> None:
    """Add the L1 subgradient to every BatchNorm scale's gradient (call between backward and step)."""
    for bn in bns:
        if bn.weight.grad is not None:
            bn.weight.grad.add_(l1_subgradient(bn.weight.detach(), lam))


def threshold_masks(model: nn.Module, threshold: float) -> dict[str, torch.Tensor]:
    """Masks keeping conv/linear weights with |w| >= threshold."""
    return {
        f"{name}.weight": m.weight.detach().abs() >= threshold
        for name, m in model.named_modules()
        if isinstance(m, graph.PRUNABLE)
    }


def plan(handle: ModelHandle, cfg: PruneConfig) -> list[dict[str, Any]]:
    """Dry run on the current gammas (before sparsity training): groups that would be pruned."""
    model, example = handle.module, handle.example_input()
    graph.check_supported(model)
    _need_batchnorm(model)
    if cfg.budget is not None:
        return preview(handle, cfg, PruneContext())[0]
    reasons = preflight.kept_layers(handle, cfg)
    taken = graph.capped_global_plan(
        model,
        example,
        _importance,
        ratio=cfg.ratio,
        max_layer_ratio=cfg.max_layer_ratio,
        ignored=list(reasons),
        original=graph.out_widths(model),
    )
    return graph.plan_rows(model, taken) + [
        {"group": name, "status": f"kept: {why}"} for name, why in reasons.items()
    ]


def preview(
    handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Dry run with a target, on the current gammas (before sparsity training, which changes them):
    the budget engine's first plan, predicted by its cost model; nothing trained or written."""
    from compressor.pruning.structured.budget import land
    from compressor.pruning.structured.norm import with_kept

    model = handle.module
    graph.check_supported(model)
    _need_batchnorm(model)
    reasons = preflight.kept_layers(handle, cfg)
    rows, figures = land.preview(
        handle,
        cfg.budget,
        _importance,
        list(reasons),
        max_layer_ratio=cfg.max_layer_ratio,
        round_to=cfg.round_to,
        latency_model=ctx.latency_model,
        meter=ctx.budget_meter,
        log=ctx.log,
    )
    return with_kept(rows, reasons), figures


@coupling.remembering_unmapped()  # the preflight's copy, the plan and the cut: one structure
def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport:
    """Sparsity-train, threshold, remove channels, recalibrate, fine-tune, optionally threshold weights."""
    opts = cfg.settings_as(SlimmingConfig)
    model, example = handle.module, handle.example_input()
    graph.check_supported(model)
    _need_batchnorm(model)
    if ctx.train is None:
        raise UsageError("slim needs training data", "add --data fashion-mnist")
    reasons = preflight.kept_layers(handle, cfg)
    report = MethodReport()
    report.steps.append(_sparsity_training(handle, cfg, opts, ctx))
    gammas = torch.cat([bn.weight.detach().abs().flatten() for bn in scaled_batchnorms(model)])
    report.figures["gamma_mean"] = float(gammas.mean())
    channels_before = _bn_channels(model)
    with coupling.recording_kept() as unmapped:
        if cfg.budget is not None:
            from compressor.pruning.structured.budget import land

            land.run(handle, cfg, ctx, _importance, list(reasons), report)
            model = handle.module
        else:
            report.figures["gamma_threshold"] = gamma_threshold(gammas, cfg.ratio)
            dense_widths = graph.out_widths(model)
            graph.prune_step(
                model,
                example,
                _importance,
                ratio=cfg.ratio,
                global_pruning=True,
                round_to=cfg.round_to,
                max_layer_ratio=cfg.max_layer_ratio,
                ignored=list(reasons),
                original=dense_widths,
            )
            if cfg.round_to is None:
                from compressor.pruning.structured.budget.config import CHANNEL_BLOCK

                report.notes += graph.misaligned_note(dense_widths, graph.out_widths(model), CHANNEL_BLOCK)
    report.notes[:0] = graph.describe_kept({**reasons, **coupling.kept_names(model, unmapped)})
    if opts.gamma_plot and distributed.is_main():  # one file, written by rank 0
        write_gamma_plot(gammas, report.figures.get("gamma_threshold"), opts.gamma_plot)
    graph.run_forward(model, example)
    report.figures["bn_channels_removed"] = 1 - _bn_channels(model) / max(channels_before, 1)
    graph.recalibrate_bn(model, ctx.train.loader(batch_size=64, shuffle=True, seed=cfg.seed), BN_BATCHES)
    if cfg.finetune_epochs and ctx.finetune is not None:
        report.figures.update(
            {f"finetune_{k}": v for k, v in ctx.finetune(handle, cfg.finetune_epochs).items()}
        )
    if opts.weight_threshold > 0:
        _threshold_weights(handle, opts.weight_threshold, report)
    return report


def _need_batchnorm(model: nn.Module) -> None:
    if not scaled_batchnorms(model):
        raise UnsupportedError(
            "slim scores channels by BatchNorm scales, and this model has no BatchNorm",
            "use compress prune --method l1 instead",
        )


def _importance() -> Any:
    """Mean |gamma| over the coupled BatchNorms, not normalised: one global threshold."""
    return tp.importance.BNScaleImportance(normalizer=None)


def _sparsity_training(
    handle: ModelHandle, cfg: PruneConfig, opts: SlimmingConfig, ctx: PruneContext
) -> dict[str, Any]:
    from compressor.train import fit

    bns = scaled_batchnorms(handle.module)
    tc = cfg.train_config(
        opts.sparsity_epochs,
        lr=cfg.finetune_lr if opts.sparsity_lr is None else opts.sparsity_lr,
        optimizer=opts.sparsity_optimizer,
        schedule="none",
        max_batches=opts.max_batches,
    )
    result = fit(
        handle.module,
        ctx.train,
        tc,
        val=ctx.val,
        after_backward=lambda _: add_l1_penalty(bns, opts.lam),
        description="sparsity",
    )
    ctx.log(
        f"sparsity training: {opts.sparsity_epochs} epoch(s), lambda {opts.lam}, {tc.optimizer} lr {tc.lr}"
    )
    return {
        "phase": "sparsity",
        "epochs": opts.sparsity_epochs,
        "lambda": opts.lam,
        "optimizer": tc.optimizer,
        "lr": tc.lr,
        "val_accuracy": result.best_val_accuracy,
    }


def _bn_channels(model: nn.Module) -> int:
    return sum(bn.num_features for bn in scaled_batchnorms(model))


@torch.no_grad()
def _threshold_weights(handle: ModelHandle, threshold: float, report: MethodReport) -> None:
    masks = threshold_masks(handle.module, threshold)
    params = dict(handle.module.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask)
    handle.masks.update(masks)
    kept = sum(int(m.sum()) for m in masks.values())
    report.figures["weight_sparsity"] = 1 - kept / max(sum(m.numel() for m in masks.values()), 1)


def write_gamma_plot(gammas: torch.Tensor, threshold: float | None, path: str) -> None:
    """Histogram of |gamma| with the global threshold (None: a budget's per-group widths, no single
    threshold), written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from compressor.io.atomic import atomic_write

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(gammas.numpy(), bins=60, color="#4477aa")
    if threshold is not None:
        ax.axvline(threshold, color="#cc3311", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel("|gamma| (BatchNorm scale)")
    ax.set_ylabel("channels")
    if threshold is not None:
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)

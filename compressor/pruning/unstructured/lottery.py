"""Lottery ticket (Frankle & Carbin, ICLR 2019; OpenLTH): iterative magnitude pruning with rewinding.

Each round trains the masked network, removes ``rate`` of the remaining weights by one global
|W| ranking, and rewinds the surviving weights to the rewind point: the initial weights theta_0,
or (``--opt rewind_steps=K``) the weights after K training batches from theta_0 (both settings:
:class:`~compressor.pruning.unstructured.settings.LotteryConfig`). The rounds needed for
``--sparsity`` are run (remaining = (1 - rate)^n, the last round trimmed to the target),
else ``--steps`` rounds. The ticket is trained once more; the control trains the same masks from a
fresh random initialisation (seed + 1), and both accuracies are reported so the user sees whether
the ticket wins. An artifact does not carry its initial weights, so theta_0 is a re-initialisation
of the loaded architecture (``reset_parameters`` of every layer, seeded by ``--seed``); a model
given as a reference (``sample:NAME``) is already freshly initialised and is used as theta_0 as is.
Every round trains ``--finetune-epochs`` epochs (at least 1) with ``--finetune-lr``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from compressor.errors import UsageError
from compressor.model import ModelHandle
from compressor.pruning.base import MethodReport, PruneConfig, PruneContext
from compressor.pruning.unstructured import layers as L
from compressor.pruning.unstructured.magnitude import magnitude_masks
from compressor.pruning.unstructured.settings import LotteryConfig


def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport:
    """Train, prune 20% of the rest, rewind; repeat; then ticket vs random re-init control."""
    opts = cfg.settings_as(LotteryConfig)
    if ctx.finetune is None:
        raise UsageError("method 'lottery' trains the network and needs --data", "add --data fashion-mnist")
    layers = L.select_layers(handle, cfg)
    epochs = max(cfg.finetune_epochs, 1)
    report = MethodReport(notes=[_init_note(handle), L.SPEED_NOTE])
    if handle.source_kind != "reference":
        reinitialise(handle.module, cfg.seed)
    _apply_masks(handle)
    rewind = _rewind_point(handle, cfg, ctx, opts.rewind_steps)
    for rnd, target in enumerate(round_targets(cfg.sparsity, cfg.steps, opts.rate), 1):
        ctx.finetune(handle, epochs)
        L.install_masks(handle, magnitude_masks(layers, target, "global"))
        _load(handle, rewind)
        report.steps.append({"round": rnd, "sparsity": L.base_figures(handle, layers)["layer_sparsity"]})
        ctx.log(f"lottery round {rnd}: sparsity {report.steps[-1]['sparsity']:.4f}, rewound")
    report.figures = {**L.base_figures(handle, layers), **_ticket_vs_control(handle, cfg, ctx, epochs)}
    report.figures.update(rounds=len(report.steps), rewind_steps=opts.rewind_steps)
    return report


def round_targets(sparsity: float | None, steps: int, rate: float) -> list[float]:
    """Cumulative sparsity after each round: 1 - (1-rate)^n, the last one trimmed to ``sparsity``."""
    if sparsity is None:
        return [1 - (1 - rate) ** n for n in range(1, steps + 1)]
    if sparsity <= 0:
        return []
    rounds = max(1, math.ceil(math.log(1 - sparsity) / math.log(1 - rate) - 1e-9))
    return [min(1 - (1 - rate) ** n, sparsity) for n in range(1, rounds + 1)]


@torch.no_grad()
def reinitialise(module: nn.Module, seed: int) -> None:
    """Fresh random weights for every layer with ``reset_parameters`` (seeded)."""
    torch.manual_seed(seed)
    for sub in module.modules():
        if hasattr(sub, "reset_parameters") and sub is not module:
            sub.reset_parameters()


def _init_note(handle: ModelHandle) -> str:
    if handle.source_kind == "reference":
        return "theta_0 = the freshly initialised reference model"
    return (
        "the input file carries no initial weights: theta_0 is a seeded re-initialisation of "
        "its architecture, and the input's trained weights are not used"
    )


def _rewind_point(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext, steps: int) -> dict:
    if steps:
        from compressor.train import fit

        # the rewind point is k ordinary steps: no fine-tune schedule annealing them
        fit(
            handle.module,
            ctx.train,
            cfg.train_config(1, max_batches=steps, schedule="none"),
            masks=handle.masks,
            description="rewind point",
        )
    return copy.deepcopy(handle.module.state_dict())


def _load(handle: ModelHandle, state: dict) -> None:
    handle.module.load_state_dict(state)
    _apply_masks(handle)


def _apply_masks(handle: ModelHandle) -> None:
    params = dict(handle.module.named_parameters())
    with torch.no_grad():
        for name, mask in handle.masks.items():
            params[name].mul_(mask.to(params[name].dtype))


def _ticket_vs_control(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext, epochs: int) -> dict:
    from compressor.train.loop import evaluate

    data = ctx.test if ctx.test is not None else ctx.val
    control = ModelHandle(module=copy.deepcopy(handle.module), ref=handle.ref, masks=dict(handle.masks))
    reinitialise(control.module, cfg.seed + 1)
    _apply_masks(control)
    ctx.finetune(handle, epochs)
    ctx.finetune(control, epochs)
    ticket, rand = evaluate(handle.module, data)["accuracy"], evaluate(control.module, data)["accuracy"]
    return {"ticket_accuracy": ticket, "random_reinit_accuracy": rand, "ticket_wins": ticket > rand}

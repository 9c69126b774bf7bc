"""What every masked method shares: layer selection, installing masks, notes.

Masks live in ``handle.masks`` (parameter name -> bool tensor of KEPT weights); the training loop
keeps masked weights and their gradients at zero, and the artifact stores them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compressor import registry
from compressor.errors import UsageError
from compressor.model import ModelHandle
from compressor.pruning.base import PruneConfig, parse_nm
from compressor.pruning.batchnorm import batchnorms
from compressor.pruning.unstructured.masks import sparsity_of

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
SPEED_NOTE = (
    "masked zeros do not speed up dense runtimes (PyTorch or ONNX Runtime on CPU); the "
    "gain is the compact file. 2:4 (--nm 2:4) is the pattern a GPU can accelerate "
    "(semi-structured sparsity on linear layers); compressor's benchmarks do not measure it"
)


def layer_kind(module: nn.Module) -> str | None:
    """``conv`` / ``linear`` for prunable layers, else None."""
    if isinstance(module, CONV):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    return None


def select_layers(handle: ModelHandle, cfg: PruneConfig) -> list[tuple[str, nn.Module]]:
    """The conv/linear layers ``cfg`` selects (``--layers``, ``--ignore``, ``--keep-first-last``),
    in definition order."""
    model = handle.module
    ends = end_layers(handle) if cfg.keep_first_last else set()
    chosen = [
        (name, mod)
        for name, mod in model.named_modules()
        if layer_kind(mod) and cfg.selects(name, layer_kind(mod)) and name not in ends
    ]
    if not chosen:
        extra = " --keep-first-last" if ends else ""
        raise UsageError(
            f"no layer matches --layers {','.join(cfg.layers)}{extra}",
            "use conv, linear or a name pattern such as 'features.*'",
        )
    return chosen


def end_layers(handle: ModelHandle) -> set[str]:
    """Names of the first and last conv/linear layers to run on the example input."""
    order: list[str] = []
    hooks = [
        mod.register_forward_pre_hook(lambda _m, _a, name=name: order.append(name))
        for name, mod in handle.module.named_modules()
        if layer_kind(mod)
    ]
    was_training = handle.module.training
    try:
        with torch.no_grad():
            handle.module.eval()(handle.example_input())
    except (RuntimeError, ValueError, TypeError) as err:
        raise UsageError(
            f"--keep-first-last runs the model once on a {tuple(handle.input_shape)} input "
            f"to find its first and last layers, and that failed: {err}",
            "give the model's input shape with --input-shape, or name the layers with --ignore instead",
        ) from None
    finally:
        for h in hooks:
            h.remove()
        handle.module.train(was_training)
    return {order[0], order[-1]} if order else set()


def check_nm(layers: list[tuple[str, nn.Module]], cfg: PruneConfig) -> tuple[int, int] | None:
    """Parsed ``--nm`` after checking every selected layer's row length is divisible by M."""
    if not cfg.nm:
        return None
    n, m = parse_nm(cfg.nm)
    for name, mod in layers:
        width = mod.weight[0].numel()
        if width % m:
            raise UsageError(
                f"--nm {cfg.nm}: layer '{name}' has {width} inputs per row, not divisible by {m}",
                f"skip it with --ignore '{name}' or use --layers linear",
            )
    return n, m


@torch.no_grad()
def install_masks(handle: ModelHandle, masks: dict[str, torch.Tensor]) -> None:
    """AND ``masks`` into ``handle.masks`` and zero the removed weights now."""
    params = dict(handle.module.named_parameters())
    for name, mask in masks.items():
        mask = mask.to(torch.bool)
        if name in handle.masks:
            mask = mask & handle.masks[name].to(torch.bool)
        handle.masks[name] = mask
        params[name].mul_(mask.to(params[name].dtype))


def weight_masks(handle: ModelHandle, layers: list[tuple[str, nn.Module]]) -> dict[str, torch.Tensor]:
    """Current kept-weight masks of the selected layers' weights (all True when unmasked)."""
    return {
        f"{name}.weight": handle.masks.get(f"{name}.weight", torch.ones_like(mod.weight, dtype=torch.bool))
        for name, mod in layers
    }


def base_figures(handle: ModelHandle, layers: list[tuple[str, nn.Module]]) -> dict[str, Any]:
    """Achieved sparsity over the selected layers' weights and how many layers were masked."""
    masks = weight_masks(handle, layers)
    return {"masked_layers": len(layers), "layer_sparsity": round(sparsity_of(masks), 6)}


def recalibrates_bn(handle: ModelHandle, cfg: PruneConfig) -> bool:
    """Whether to re-estimate BatchNorm statistics: ``cfg.recalibrate_bn``, else (None) on for
    data-driven methods; never on a model without BatchNorm."""
    if not batchnorms(handle.module):
        return False
    if cfg.recalibrate_bn is None:
        return registry.method(cfg.method).needs_data
    return cfg.recalibrate_bn


def bn_note(handle: ModelHandle, cfg: PruneConfig, layers: int, samples: int) -> str | None:
    """What happened to the BatchNorm statistics, for the report (None: nothing worth saying)."""
    if layers:
        return (
            f"BatchNorm running statistics of {layers} layers re-estimated on {samples} "
            "calibration samples after masking (--no-recalibrate-bn keeps the trained ones)"
        )
    if batchnorms(handle.module) and cfg.recalibrate_bn is None and not cfg.finetune_epochs:
        return (
            "BatchNorm statistics kept from the dense model; --recalibrate-bn --data ... "
            "re-estimates them for the masked weights (usually much higher accuracy without fine-tuning)"
        )
    return None


def finetune(handle: ModelHandle, ctx: Any, epochs: int) -> dict[str, Any] | None:
    """``ctx.finetune`` when asked for and available (masks kept), else None."""
    if epochs <= 0 or ctx.finetune is None:
        return None
    return ctx.finetune(handle, epochs)

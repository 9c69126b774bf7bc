"""What every structured method shares: support checks, ignored layers, heads, the pruner, BN recalibration.

torch-pruning's ``DependencyGraph`` groups every tensor slice coupled to one output channel (the
BatchNorm behind a conv, the next layer's inputs, residual partners, concatenations). This module
builds that pruner for our configs, finds every layer whose output channels reach a tensor the model
returns (the classifier head; both heads of a segmentation model; an encoder whose pooled
features are returned) so that every output keeps its shape, declares attention heads (torchvision
``nn.MultiheadAttention``; fused-qkv layers such as timm's ``Attention``, see :mod:`.attention`)
and updates the attributes a forward pass reads (``head_dim``, ViT ``hidden_dim``) after pruning.
Models whose parts cannot be pruned correctly are refused up front with the part named.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from compressor.errors import UnsupportedError, UsageError, few, first_line
from compressor.io import zoo
from compressor.outputs import SINGLE, named_tensors
from compressor.outputs import run_forward as outputs_run_forward
from compressor.pruning.structured import coupling, grouping
from compressor.pruning.structured.attention import (
    ROTARY_REASON,
    attention_heads,
    is_qkv_attention,
    sync_heads,
    takes_rotary_embedding,
)

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

# Layer types torch-pruning cannot resize: refused up front (exit 3) with the part named.
UNSUPPORTED_PARTS: dict[str, str] = {
    "RNN": "plain RNN layers (only LSTM is supported)",
    "GRU": "GRU layers (only LSTM is supported)",
}


@dataclass(frozen=True)
class Restriction:
    """Architectures pruned only inside self-contained sub-blocks.

    Attributes:
        blocks: fnmatch patterns of sub-blocks pruned one by one (their own input and output widths
            are kept, so nothing outside them changes).
        reason: why, for the report.
    """

    blocks: tuple[str, ...]
    reason: str


RESTRICTED: dict[str, Restriction] = {
    "ShuffleNetV2": Restriction(
        ("*.branch2",),
        "ShuffleNetV2: the channel shuffle couples block "
        "outputs, so only channels inside each branch are pruned",
    ),
    "SwinTransformer": Restriction(
        ("*.mlp",),
        "Swin: window attention keeps per-head position tables, so only the MLP hidden channels are pruned",
    ),
    "MaxVit": Restriction(
        ("*.mlp_layer",),
        "MaxViT: grid/block attention keeps per-head position "
        "tables, so only the MLP hidden channels are pruned",
    ),
    **{
        name: Restriction(
            ("*.mlp",),
            "LeViT: attention keeps per-head position tables and fixed "
            "key/value reshapes, so only the MLP hidden channels are pruned",
        )
        for name in ("Levit", "LevitDistilled")
    },
    "EdgeNeXt": Restriction(
        ("*.mlp",),
        "EdgeNeXt: split depthwise convolutions and cross-covariance "
        "attention couple channel chunks, so only the MLP hidden channels are pruned",
    ),
    "CoaT": Restriction(
        ("*.mlp", "*.mlp2"),
        "CoaT: factorized attention reshapes q, k and v to the input width and its position "
        "encoding splits fixed channel chunks, so only the MLP hidden channels are pruned",
    ),
    "Xcit": Restriction(
        ("*.mlp",),
        "XCiT: class attention reshapes by the input width and XCA keeps a "
        "per-head temperature, so only the MLP hidden channels are pruned",
    ),
    **{
        name: Restriction(
            ("*.mlp",),
            f"{label}: attention reshapes its output to the input width, "
            "so only the MLP hidden channels are pruned",
        )
        for name, label in (
            ("VisionTransformerRelPos", "ViT-RelPos"),
            ("PyramidVisionTransformerV2", "PVTv2"),
        )
    },
    "GlobalContextVit": Restriction(
        ("*.mlp",),
        "GCViT: global-query attention expands one query over every window and reshapes by the "
        "input width, so only the MLP hidden channels are pruned",
    ),
    "Twins": Restriction(
        ("*.mlp",),
        "Twins: sub-sampled attention reshapes keys and values to the input width, so only the "
        "MLP hidden channels are pruned",
    ),
    "TNT": Restriction(
        ("*.mlp", "*.mlp_in"),
        "TNT: inner and outer attention reshape values to the input width, so only the MLP "
        "hidden channels are pruned",
    ),
    "CrossVit": Restriction(
        ("*.mlp",),
        "CrossViT: cross-attention reshapes the class token's query by the input width, so only "
        "the MLP hidden channels are pruned",
    ),
    "VOLO": Restriction(
        ("*.mlp",),
        "VOLO: outlook and class attention reshape by the input width, so only the MLP hidden "
        "channels are pruned",
    ),
    "DaVit": Restriction(
        ("*.mlp",),
        "DaViT: channel and window attention reshape by the input width, so only the MLP hidden "
        "channels are pruned",
    ),
}


@dataclass
class Unit:
    """What one torch-pruning graph covers: the whole model, or one sub-block of a restricted one.

    Attributes:
        module: the model or the sub-block.
        example: its example input (a tuple of positional arguments for a sub-block).
        prefix: the sub-block's qualified name ("" for the whole model).
    """

    module: nn.Module
    example: Any
    prefix: str = ""


def restriction(model: nn.Module) -> Restriction | None:
    """The restriction that applies to ``model`` (by class name), if any."""
    return RESTRICTED.get(type(model).__name__)


def units(model: nn.Module, example: torch.Tensor) -> list[Unit]:
    """The whole model, or for a restricted architecture each matching sub-block with its input."""
    rule = restriction(model)
    if rule is None:
        return [Unit(model, example)]
    blocks = [
        (n, m) for n, m in model.named_modules() if n and any(fnmatch.fnmatch(n, p) for p in rule.blocks)
    ]
    captured: dict[str, tuple] = {}

    def capture(name: str) -> Callable[[nn.Module, tuple], None]:
        def hook(module: nn.Module, args: tuple) -> None:  # None: a block called again keeps its input
            captured.setdefault(name, args)

        return hook

    hooks = [m.register_forward_pre_hook(capture(n)) for n, m in blocks]
    try:
        run_forward(model, example)
    finally:
        for h in hooks:
            h.remove()
    return [Unit(m, captured[n], n) for n, m in blocks if n in captured]


def check_supported(model: nn.Module) -> None:
    """Refuse models with parts we cannot prune correctly, naming the part (exit 3)."""
    for name, sub in model.named_modules():
        reason = UNSUPPORTED_PARTS.get(type(sub).__name__)
        if reason:
            raise UnsupportedError(
                f"structured pruning cannot handle {type(sub).__name__} at '{name}': {reason}",
                "use an unstructured method (e.g. --method magnitude --sparsity 0.5), "
                "or --ignore the blocks that hold it",
            )


def check_scope(scope: str) -> bool:
    """``global`` -> True, ``layer`` -> False; ``row`` is a masked-method scope."""
    if scope not in ("global", "layer"):
        raise UsageError(
            f"scope '{scope}' is not available for structured pruning", "use --scope global or --scope layer"
        )
    return scope == "global"


def output_layers(model: nn.Module, example: Any) -> list[nn.Module]:
    """The classifier head: the last conv/linear executed in a forward pass (it makes the outputs)."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o: order.append(mod))
        for m in model.modules()
        if isinstance(m, PRUNABLE)
    ]
    try:
        run_forward(model, example)
    finally:
        for h in hooks:
            h.remove()
    return order[-1:]


def run_forward(model: nn.Module, example: Any) -> Any:
    """One eval-mode forward pass; a failure on this input shape is exit 3 with the fix
    (:func:`compressor.outputs.run_forward`)."""
    return outputs_run_forward(model, example)


def matched_layers(model: nn.Module, patterns: Iterable[str]) -> list[nn.Module]:
    """Modules whose qualified name matches one of the fnmatch ``patterns`` (and their children)."""
    patterns = list(patterns)
    hits = [
        sub for name, sub in model.named_modules() if name and any(fnmatch.fnmatch(name, p) for p in patterns)
    ]
    return [m for hit in hits for m in hit.modules()]


def sync_attributes(model: nn.Module) -> None:
    """Update the attributes a forward pass reads after channels were removed."""
    for sub in model.modules():
        if is_qkv_attention(sub):
            sync_heads(sub)
        if hasattr(sub, "hidden_dim") and isinstance(getattr(sub, "conv_proj", None), nn.Conv2d):
            sub.hidden_dim = sub.conv_proj.out_channels  # torchvision VisionTransformer


def channel_groups(model: nn.Module) -> dict[nn.Module, int]:
    """Layers whose channels must shrink in whole groups (multi-head attention, torchvision style)."""
    return {m: m.num_heads for m in model.modules() if isinstance(m, nn.MultiheadAttention)}


def make_pruners(
    model: nn.Module,
    example: torch.Tensor,
    importance: Callable,
    *,
    ratio: float,
    round_to: int | None = None,
    ignored: Iterable[str] = (),
    ratios: dict[nn.Module, float] | None = None,
) -> list[tp.pruner.BasePruner]:
    """One torch-pruning pruner per unit (the whole model, or each sub-block of a restricted one).

    Every pruner ranks within each layer; a global ranking is ours (:func:`capped_global_plan`).

    Args:
        ignored: qualified names of layers whose output channels are never pruned.
        ratios: layer -> fraction of its current channels to remove (overrides ``ratio``).
    """
    table = dict(model.named_modules())
    ignored_modules = [table[n] for n in ignored]
    pruners = []
    for u in units(model, example):
        inside = {id(m) for m in u.module.modules()}
        pruners.append(
            make_pruner(
                u.module,
                u.example,
                importance,
                ratio=ratio,
                round_to=round_to,
                ignored=[m for m in ignored_modules if id(m) in inside],
                ratios={m: r for m, r in (ratios or {}).items() if id(m) in inside} or None,
            )
        )
    return pruners


def make_pruner(
    model: nn.Module,
    example: Any,
    importance: Callable,
    *,
    ratio: float,
    round_to: int | None = None,
    ignored: list[nn.Module] | None = None,
    ratios: dict[nn.Module, float] | None = None,
) -> tp.pruner.BasePruner:
    """torch-pruning's pruner over ``model`` with our ignored layers, heads and rounding."""
    heads = {k: v for k, v in attention_heads(model).items() if not isinstance(k, nn.MultiheadAttention)}
    with adapter_tracing(model), tracer_errors(), grouping.pruners_use_graph():
        pruner = tp.pruner.BasePruner(
            model,
            example,
            importance=importance,
            global_pruning=False,
            pruning_ratio=ratio,
            pruning_ratio_dict=ratios,
            ignored_layers=ignored or [],
            round_to=round_to,
            num_heads=heads,
            out_channel_groups=channel_groups(model),
            in_channel_groups=channel_groups(model),
        )
        coupling.keep_unmapped(pruner)
        grouped = {*pruner.out_channel_groups, *pruner.num_heads, *pruner.ignored_layers}
        candidates = [m for m in model.modules() if isinstance(m, PRUNABLE) and m not in grouped]
        pruner.out_channel_groups.update(grouping.chunked_layers(pruner.DG, candidates))
        return pruner


def capped_ratio(width: int, original: int, remove: int, max_layer_ratio: float) -> float:
    """Fraction of ``width`` channels to remove so at least (1 - max_layer_ratio) of ``original``
    (and never fewer than one channel) is left."""
    floor = max(math.ceil((1 - max_layer_ratio) * original - 1e-9), 1)
    return max(0, min(remove, width - floor)) / width if width else 0.0


def prune_step(
    model: nn.Module,
    example: torch.Tensor,
    importance: Callable[[], Any],
    *,
    ratio: float,
    global_pruning: bool,
    round_to: int | None,
    max_layer_ratio: float,
    ignored: Iterable[str],
    original: dict[str, int],
) -> list[dict[str, Any]]:
    """One pruning step: rank (globally or per layer), cap every layer, remove the channels.

    Global ranking is :func:`capped_global_plan` (torch-pruning's own global step skips a group
    that would lose every channel, so at high ratios it removed less than at lower ones). Per-layer
    ranking: each planned group is checked against its layer's ``original`` width; groups within
    the cap are pruned as planned, capped groups afterwards to their capped ratio.

    Returns:
        the planned rows (group, channels, remove) before capping.
    """
    ignored = list(ignored)
    names = {m: n for n, m in model.named_modules()}
    if global_pruning:
        with tracer_errors():
            pruners = make_pruners(model, example, importance(), ratio=ratio, ignored=ignored)
        taken = capped_global_plan(
            model,
            example,
            importance,
            ratio=ratio,
            max_layer_ratio=max_layer_ratio,
            ignored=ignored,
            original=original,
            pruners=pruners,
        )
        rows = plan_rows(model, taken)  # before pruning: "channels" is the width the plan saw
        ratios = {m: n / out_channels(m) for m, n in taken.items() if n}
        with tracer_errors():
            for pruner in pruners:  # the plan's graph: the model has not changed since it was traced
                cut_at_ratios(pruner, ratios, round_to, importance())
        sync_attributes(model)
        coupling.check_pruned(model, example)
        return rows
    rows, capped = [], {}
    with tracer_errors():
        for pruner in make_pruners(
            model, example, importance(), ratio=ratio, round_to=round_to, ignored=ignored
        ):
            for group in pruner.step(interactive=True):
                root, idxs = _out_root(pruner, group)
                if root is None:
                    continue
                width = out_channels(root)
                rows.append({"group": names[root], "channels": width, "remove": len(idxs)})
                allowed = capped_ratio(width, original.get(names[root], width), len(idxs), max_layer_ratio)
                if round(allowed * width) >= len(idxs):
                    group.prune()
                elif allowed > 0:
                    capped[root] = allowed
    _prune_ratios(model, example, importance, capped, round_to, ignored)
    sync_attributes(model)
    coupling.check_pruned(model, example)
    return rows


def capped_global_plan(
    model: nn.Module,
    example: torch.Tensor,
    importance: Callable[[], Any],
    *,
    ratio: float,
    max_layer_ratio: float,
    ignored: Iterable[str],
    original: dict[str, int],
    pruners: list[tp.pruner.BasePruner] | None = None,
) -> dict[nn.Module, int]:
    """One global ranking in which no layer passes its cap: which layers give how many channels.

    Channels are taken from the lowest score up until ``ratio`` of all channels are taken; a layer
    that reaches its cap (at most ``max_layer_ratio`` of its ``original`` width, never all of it)
    takes no more, and the next lowest channels elsewhere are taken instead, so the total still
    reaches ``ratio``.

    Args:
        pruners: :func:`make_pruners` of ``model`` as it is (default: built here).

    Returns:
        layer (the root of its coupled group) -> channels to remove.
    """
    names = {m: n for n, m in model.named_modules()}
    entries: list[tuple[float, nn.Module]] = []
    room: dict[nn.Module, int] = {}
    with tracer_errors():
        if pruners is None:
            pruners = make_pruners(model, example, importance(), ratio=ratio, ignored=ignored)
        for pruner in pruners:
            for group in pruner.DG.get_all_groups(
                ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types
            ):
                root = group[0].dep.target.module
                scores = pruner.importance(group)
                if scores is None or root in room:
                    continue
                width = out_channels(root)
                floor = max(math.ceil((1 - max_layer_ratio) * original.get(names[root], width) - 1e-9), 1)
                room[root] = max(0, width - floor)
                entries += [(float(v), root) for v in scores.flatten()[:width]]
    goal, total = round(ratio * len(entries)), 0
    taken: dict[nn.Module, int] = {}
    for _, root in sorted(entries, key=lambda e: e[0]):
        if total >= goal:
            break
        if taken.get(root, 0) < room[root]:
            taken[root] = taken.get(root, 0) + 1
            total += 1
    return taken


def plan_rows(model: nn.Module, taken: dict[nn.Module, int]) -> list[dict[str, Any]]:
    """Dry-run rows (group, channels, remove) of a :func:`capped_global_plan`."""
    names = {m: n for n, m in model.named_modules()}
    return [
        {"group": names[m], "channels": out_channels(m), "remove": n, "status": "prune"}
        for m, n in taken.items()
    ]


def _prune_ratios(
    model: nn.Module,
    example: torch.Tensor,
    importance: Callable[[], Any],
    ratios: dict[nn.Module, float],
    round_to: int | None,
    ignored: list[str],
) -> None:
    """Remove ``ratios[layer]`` of each layer's current channels (its lowest-scored ones)."""
    if ratios:
        with tracer_errors():
            for pruner in make_pruners(
                model, example, importance(), ratio=0.0, round_to=round_to, ignored=ignored, ratios=ratios
            ):
                pruner.step()


def cut_at_ratios(
    pruner: tp.pruner.BasePruner, ratios: dict[nn.Module, float], round_to: int | None, importance: Any
) -> None:
    """Remove ``ratios[layer]`` of each layer's channels (its lowest-scored ones by ``importance``)
    with ``pruner``, built and not yet stepped on the model as it is: the cut a pruner built with
    these ratios makes (:func:`_prune_ratios`), without tracing the graph again. Layers outside
    ``pruner``'s model are left to the pruners of their own units; every other layer keeps its
    channels."""
    inside = {id(m) for m in pruner.model.modules()}
    mine = {m: r for m, r in ratios.items() if id(m) in inside}
    if not mine:
        return
    schedule = pruner.iterative_pruning_ratio_scheduler
    pruner.importance = importance
    pruner.round_to = round_to
    pruner.per_step_pruning_ratio = schedule(0.0, pruner.iterative_steps)
    for i, (layer, r) in enumerate(mine.items()):  # as torch-pruning's init reads pruning_ratio_dict
        pruner._layer_to_scope[layer] = (f"_User_Defined_Scope_{i}_0", [layer])
        pruner.pruning_ratio_dict[layer] = schedule(r, pruner.iterative_steps)
    pruner.step()


def out_channels(m: nn.Module) -> int:
    """Output channels of a conv or linear layer."""
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def out_widths(model: nn.Module) -> dict[str, int]:
    """Output channels of every conv/linear layer, by name."""
    return {n: out_channels(m) for n, m in model.named_modules() if isinstance(m, PRUNABLE)}


class TorchPruningFailed(UnsupportedError):
    """torch-pruning raised while tracing, ranking or cutting the model (exit 3)."""


@contextmanager
def tracer_errors() -> Iterator[None]:
    """Turn a torch-pruning failure into exit 3 with the operation it stumbled on."""
    try:
        yield
    except UnsupportedError:
        raise
    except Exception as exc:  # noqa: BLE001 - the tracer raises anything on unknown graphs
        first = first_line(exc, 160, empty="")
        raise TorchPruningFailed(
            f"torch-pruning cannot prune this model ({type(exc).__name__}: {first})",
            "--ignore the blocks that hold the failing part, or use an "
            "unstructured method such as --method magnitude",
        ) from exc


def describe_kept(reasons: dict[str, str]) -> list[str]:
    """One note per reason: how many layers are kept unpruned and which (first few)."""
    by_reason: dict[str, list[str]] = {}
    for name, why in reasons.items():
        by_reason.setdefault(why, []).append(name)
    notes = []
    for why, names in by_reason.items():
        notes.append(f"kept {len(names)} layer(s) unpruned, {why}: {few(names)}")
    return notes


def misaligned_note(before: dict[str, int], after: dict[str, int], block: int) -> list[str]:
    """A note when a cut left layers, whose dense widths were multiples of ``block``, at widths that
    are not: CPU kernels work in blocks of channels, and a mobilenet_small cut to widths 25, 51,
    153, 230 (uniform l1 at 0.6) measured 2.7-3x slower than one cut to 24, 48, 144, 216 (0.625)."""
    off = [
        f"{name} {after[name]}"
        for name, width in before.items()
        if name in after and after[name] != width and width % block == 0 and after[name] % block
    ]
    if not off:
        return []
    return [
        f"{len(off)} layer(s) left at widths off multiples of {block} ({few(off)}): "
        f"CPU kernels work in blocks of {block} channels, so such widths can run slower than "
        f"wider ones; add --round-to {block}"
    ]


HEAD_REASON = "classifier head (makes the outputs)"


@contextmanager
def adapter_tracing(model: nn.Module) -> Iterator[None]:
    """While torch-pruning traces the graph, run a model adapter's lighter forward (see
    :mod:`compressor.io.detection`: optical flow traces one refinement, not twelve)."""
    tracing = getattr(model, "tracing", None)
    with tracing() if callable(tracing) else contextlib.nullcontext():
        yield


def ignored_layers(
    model: nn.Module,
    example: torch.Tensor,
    patterns: Iterable[str],
    keep_residual: bool = False,
    allow: Iterable[str] = (),
    ref: str | None = None,
) -> dict[str, str]:
    """Module name -> why it is never pruned (it makes an output, ``--ignore`` pattern, the qkv of
    an attention with rotary embeddings, the model table's layers for the reference ``ref``,
    residual stream).

    Every layer whose output channels reach the channel dimension of a tensor the model returns is
    kept (:func:`output_makers`), unless that output is in ``allow`` (``--allow-output-change``).
    """
    names = {m: n for n, m in model.named_modules()}
    reasons = adapter_kept(model)
    for name, why in _output_reasons(model, example, set(allow)).items():
        reasons.setdefault(name, why)
    for unit in units(model, example) if restriction(model) else []:
        for m in output_layers(unit.module, unit.example):
            reasons.setdefault(names[m], "sub-block output (its width is kept)")
    for m in matched_layers(model, patterns):
        if isinstance(m, PRUNABLE):
            reasons.setdefault(names[m], "--ignore pattern")
    for sub in model.modules():
        if takes_rotary_embedding(sub) and sub.qkv in names:
            reasons.setdefault(names[sub.qkv], ROTARY_REASON)
    for m in matched_layers(model, zoo.kept_layers(ref)):
        if isinstance(m, PRUNABLE):
            reasons.setdefault(names[m], "kept for its task (the torchvision model table)")
    if keep_residual:
        for name in residual_layers(model, example):
            reasons.setdefault(name, "residual stream (--keep-residual)")
    return reasons


def _output_reasons(model: nn.Module, example: Any, allow: set[str]) -> dict[str, str]:
    """Layers kept because they make an output not in ``allow``; when the graph ties no layer to
    any output, or for a restricted architecture (pruned block by block, never traced whole), the
    last conv/linear executed (the classifier head)."""
    makers = output_makers(model, example) if restriction(model) is None else {}
    if not makers:
        names = {m: n for n, m in model.named_modules()}
        return {names[m]: HEAD_REASON for m in output_layers(model, example)}
    reasons = {}
    for layer, outputs in makers.items():
        kept = [o for o in outputs if o not in allow]
        if kept == [SINGLE]:
            reasons[layer] = HEAD_REASON
        elif kept:
            reasons[layer] = f"makes output{'s' * (len(kept) > 1)} {', '.join(repr(o) for o in kept)}"
    return reasons


def output_makers(model: nn.Module, example: Any) -> dict[str, list[str]]:
    """Layer name -> the outputs (:mod:`compressor.outputs` names) its output channels reach.

    Traced through torch-pruning's dependency graph: a conv/linear makes an output when the group
    of slices coupled to its output channels changes the returned tensor's channels (the tensor
    is the layer's own output, or a BatchNorm, activation, pooling, concatenation or reshape of
    it). A layer that only feeds the input channels of the layer making an output is not tied to it.
    """
    names = {m: n for n, m in model.named_modules()}
    returned: list[Any] = []
    with adapter_tracing(model), tracer_errors():
        dg = grouping.build(
            model,
            example,
            forward_fn=lambda m, x: m(*x) if isinstance(x, tuple) else m(x),
            output_transform=lambda out: returned.append(out) or out,
        )
    by_grad_fn = {node.grad_fn: node for node in dg.module2node.values() if node.grad_fn is not None}
    at_node: dict[Any, list[str]] = {}
    for name, tensor in named_tensors(returned[0]) if returned else []:
        node = by_grad_fn.get(tensor.grad_fn)
        if node is not None:
            at_node.setdefault(node, []).append(name)
    found: dict[str, list[str]] = {}
    for group in dg.get_all_groups(root_module_types=PRUNABLE):
        outs = [dep.target for dep, _ in group if dg.is_out_channel_pruning_fn(dep.handler)]
        reached = [o for node in outs for o in at_node.get(node, [])]
        for node in outs if reached else []:
            if isinstance(node.module, PRUNABLE) and node.module in names:
                known = found.setdefault(names[node.module], [])
                known += [o for o in dict.fromkeys(reached) if o not in known]
    return found


def adapter_kept(model: nn.Module) -> dict[str, str]:
    """Layers a model adapter names as kept (the heads of a detection adapter, see
    :mod:`compressor.io.detection`): name -> why."""
    kept = getattr(model, "kept_layers", None)
    return dict(kept()) if callable(kept) else {}


def residual_layers(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Conv/linear layers whose output channels are summed with another tensor (a residual stream).

    Pruning such a group removes the channels from every block on the stream at once; on narrow
    streams (MobileNetV2's 16-320 channels) that leaves 1x1 convolutions too thin to run at full
    speed, so ``--keep-residual`` prunes only the channels inside the blocks.
    """
    if restriction(model) is not None:
        return []  # restricted architectures already keep their sub-block outputs
    names = {m: n for n, m in model.named_modules()}
    with adapter_tracing(model), tracer_errors():
        dg = grouping.build(model, example)
    found: list[str] = []
    for group in dg.get_all_groups(root_module_types=PRUNABLE):
        deps = [dep for dep, _ in group]
        if not any(_is_add(dep.source.module) or _is_add(dep.target.module) for dep in deps):
            continue
        for dep in deps:
            layer = dep.target.module
            if (
                isinstance(layer, PRUNABLE)
                and dg.is_out_channel_pruning_fn(dep.handler)
                and names.get(layer) not in (None, *found)
            ):
                found.append(names[layer])
    return found


def _is_add(module: nn.Module) -> bool:
    """An element-wise addition of two tensors (a residual join); not Addmm, the bias of a matmul."""
    return isinstance(module, tp.ops._ElementWiseOp) and str(module._grad_fn).startswith("AddBackward")


def group_rows(pruners: list[tp.pruner.BasePruner], model: nn.Module) -> list[dict[str, Any]]:
    """What one step would remove, one row per coupled group, without changing the model."""
    names = {m: n for n, m in model.named_modules()}
    rows = []
    groups = ((p, g) for p in pruners for g in p.step(interactive=True))
    for pruner, group in groups:
        root, idxs = _out_root(pruner, group)
        width = out_channels(root) if root is not None else None
        layers = sorted(
            {names.get(d.target.module, "?") for d, _ in group if isinstance(d.target.module, PRUNABLE)}
        )
        rows.append(
            {
                "group": names.get(root, str(root)),
                "channels": width,
                "remove": len(idxs),
                "coupled_layers": len(layers),
                "status": "prune",
            }
        )
    return rows


def _out_root(pruner: tp.pruner.BasePruner, group) -> tuple[nn.Module | None, list]:
    """The first conv/linear of ``group`` that loses output channels, and those channels."""
    for dep, idxs in group:
        if isinstance(dep.target.module, PRUNABLE) and pruner.DG.is_out_channel_pruning_fn(dep.handler):
            return dep.target.module, idxs
    return None, group[0][1]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader: Iterable, batches: int = 20) -> int:
    """Re-estimate BatchNorm running statistics on a few batches; returns the batches used.

    The shared :func:`compressor.pruning.batchnorm.statistics_pass`: only the BatchNorm layers run
    in train mode (dropout and stochastic depth stay off), with a cumulative average.
    """
    from compressor.pruning.batchnorm import statistics_pass

    used = 0
    with statistics_pass(model) as count:
        if not count:
            return 0
        for x, _ in loader:
            if used >= batches:
                break
            model(x)
            used += 1
    return used

"""Guards around torch-pruning's dependency graph for architectures it traces only in part.

Some blocks reach the tracer through operations whose channel mapping it gets wrong: a fixed
``reshape`` that folds channels with another axis, a layer-scale parameter broadcast over a
folded shape (timm FastViT, EdgeNeXt), a split and concatenation on the last dim of a
channels-last tensor (timm MambaOut). The graph then maps a group's channel indices past the end
of one of its layers (its walk stops there and marks the group) or past its root's channels
(scoring that group fails). Such a group cannot be pruned correctly, so its root layer is kept at
full width (like an ``--ignore``d layer; the report names it) and every other group is pruned
as usual. After pruning, the model must still run and give outputs of the
dense model's shapes; otherwise the operation is refused (exit 3) before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from compressor.errors import UnsupportedError, first_line

UNMAPPED = "torch-pruning cannot map the channels of its group through the block"


def unmapped_roots(pruner: Any) -> list[nn.Module]:
    """Root layers of the groups whose channel indices the graph maps out of range (the walk
    stopped past a width or at a mapping that cannot carry it, or scoring fails), or whose
    channels a grouped layer in the group cannot split evenly (timm NextViT: a group of 1024
    channels coupled to a conv of 24 groups, which torch-pruning's ranking cannot reshape).

    Args:
        pruner: a torch-pruning ``BasePruner``; its ``ignored_layers`` are honoured.
    """
    import torch_pruning as tp

    probe = tp.importance.MagnitudeImportance(p=1)  # deterministic: a random score would draw numbers
    bad: list[nn.Module] = []
    for group in pruner.DG.get_all_groups(
        ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types
    ):
        if getattr(group, "unmapped", False) or not _scores(probe, group, pruner):
            bad.append(group[0].dep.target.module)
    return bad


def _scores(probe: Any, group: Any, pruner: Any) -> bool:
    """Whether ``probe`` scores ``group`` (not: a channel or root channel index past a width) in
    as many channels as every grouped layer of the group splits evenly."""
    if pruner._is_atten_group(group)[0]:  # torch-pruning ranks an attention group from downstream
        group = pruner._downstream_node_as_root_if_attention(group) or group
    try:
        scores = probe(group)
    except (IndexError, RuntimeError):  # RuntimeError: scatter_add_ of a root channel past the end
        return False
    groups = pruner._get_channel_groups(group)  # a grouped conv's groups, heads: the channels split
    return scores is None or groups <= 1 or len(scores) % groups == 0


def keep_unmapped(pruner: Any) -> list[nn.Module]:
    """Add the roots of unmappable groups to ``pruner``'s ignored layers; returns them.

    Ignoring a root frees the other layers of its group to root groups of their own, which may be
    unmappable too (timm iFormer: a value gate reached from a query projection), so the search
    repeats until every group left scores. Inside :func:`remembering_unmapped`, a model of the same
    class, layer names and shapes, with the same layers ignored, gets the roots found before.
    """
    memo = _MEMOS[-1] if _MEMOS else None
    key = _structure(pruner) if memo is not None else None
    if memo is not None and key in memo:
        modules = dict(pruner.model.named_modules())
        kept = [modules[name] for name in memo[key]]
        pruner.ignored_layers.extend(kept)
    else:
        kept = []
        while bad := unmapped_roots(pruner):
            pruner.ignored_layers.extend(bad)
            kept += bad
        if memo is not None:
            names = {m: n for n, m in pruner.model.named_modules()}
            memo[key] = [names[m] for m in kept]
    for record in _RECORDS:
        record.extend(kept)
    return kept


_RECORDS: list[list[nn.Module]] = []  # open :func:`recording_kept` lists
_MEMOS: list[dict[Any, list[str]]] = []  # open :func:`remembering_unmapped` scopes


def _structure(pruner: Any) -> tuple:
    """What decides which groups of ``pruner``'s model are unmappable: its class, every module's
    name, class and parameter shapes, and the layers ignored so far."""
    model = pruner.model
    names = {m: n for n, m in model.named_modules()}
    layers = tuple(
        (name, type(m), tuple(tuple(p.shape) for p in m.parameters(recurse=False)))
        for name, m in model.named_modules()
    )
    return type(model), layers, frozenset(names[m] for m in pruner.ignored_layers if m in names)


@contextmanager
def remembering_unmapped() -> Iterator[None]:
    """While inside, :func:`keep_unmapped` finds the unmappable roots of each model structure once
    (one prune builds pruners for the preflight's copy, the plan and the cut of the same model)."""
    _MEMOS.append({})
    try:
        yield
    finally:
        _MEMOS.pop()


@contextmanager
def recording_kept() -> Iterator[list[nn.Module]]:
    """The roots :func:`keep_unmapped` keeps while inside (repeats included), for the report."""
    record: list[nn.Module] = []
    _RECORDS.append(record)
    try:
        yield record
    finally:
        _RECORDS.remove(record)


def kept_names(model: nn.Module, kept: list[nn.Module]) -> dict[str, str]:
    """Qualified name -> :data:`UNMAPPED` of each layer of ``model`` in ``kept``."""
    ids = {id(m) for m in kept}
    return {name: UNMAPPED for name, m in model.named_modules() if id(m) in ids}


class CutBreaksModel(UnsupportedError):
    """The pruned model no longer runs (exit 3): a group was cut that the graph coupled wrongly."""


def _pop(stack: list[str]) -> None:
    """Leave a module (a forward hook that returns nothing keeps the module's output)."""
    stack.pop()


def check_pruned(model: nn.Module, example: Any) -> None:
    """Refuse (exit 3) a pruned model that no longer runs, naming the innermost block that failed.

    Output shapes are compared afterwards, against the input model's, by
    :func:`compressor.outputs.check_kept` (which knows ``--allow-output-change``).
    """
    stack: list[str] = []
    hooks = [
        h
        for name, m in model.named_modules()
        if name
        for h in (
            m.register_forward_pre_hook(lambda mod, args, n=name: stack.append(n)),
            m.register_forward_hook(lambda mod, args, out: _pop(stack)),
        )
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*example) if isinstance(example, tuple) else model(example)
    except Exception as exc:  # noqa: BLE001 - any failure means the pruning broke the model
        why = f"({type(exc).__name__}: {first_line(exc, 120)})"
        if not stack:  # between the layers, in the model's own forward
            raise CutBreaksModel(
                f"the pruned model no longer runs: torch-pruning coupled channels wrongly in the "
                f"model's own forward {why}",
                "--ignore the layer whose output that step reshapes, or use an unstructured method "
                "such as --method magnitude",
            ) from None
        raise CutBreaksModel(
            f"the pruned model no longer runs: torch-pruning coupled the channels of '{stack[-1]}' wrongly {why}",
            f"--ignore '{stack[-1]}*', or use an unstructured method such as --method magnitude",
        ) from None
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()

"""A model's outputs by name: every tensor a forward pass returns, named by where it sits.

Models return one tensor, a tuple or list, a dict (torchvision segmentation: ``{"out", "aux"}``),
a named tuple or any nesting of these. Each tensor is named by its path through that structure,
the parts joined by dots: dict keys and named-tuple fields by name, sequence items by index. One
tensor is ``output``; the items of a returned tuple or list are ``output_0``, ``output_1`` (and
``output_0.boxes`` inside them); a dict's are its keys (``out``, ``aux``, ``out.0``). Characters
other than letters, digits, ``_`` and ``.`` become ``_``. The same names label the ONNX graph's
outputs, the parity rows and the output-shape check after pruning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from compressor.errors import UnsupportedError, forward_failure, unknown_name

SINGLE = "output"


def named_tensors(out: Any) -> list[tuple[str, Any]]:
    """(name, tensor) for every tensor of a model output, in forward order (dict insertion order)."""
    pairs = list(_walk(out, ()))
    names = unique([_name(path) for path, _ in pairs])
    return [(name, tensor) for name, (_, tensor) in zip(names, pairs)]


def _walk(out: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    import torch

    if isinstance(out, torch.Tensor):
        yield path, out
    elif isinstance(out, dict):
        for key, value in out.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(out, tuple) and hasattr(out, "_fields"):  # a named tuple
        for key, value in zip(out._fields, out):
            yield from _walk(value, (*path, key))
    elif isinstance(out, (list, tuple)):
        for i, value in enumerate(out):
            yield from _walk(value, (*path, i))
    else:
        raise UnsupportedError(
            f"the model returns {type(out).__name__}, not tensors",
            "wrap it so forward returns tensors (a tensor, a tuple, a list or a dict of them)",
        )


def _name(path: tuple[str | int, ...]) -> str:
    if not path:
        return SINGLE
    head = f"{SINGLE}_{path[0]}" if isinstance(path[0], int) else path[0]
    return sanitize(".".join([head, *(str(p) for p in path[1:])]))


def sanitize(name: str) -> str:
    """Letters, digits, ``_`` and ``.`` kept; anything else becomes ``_`` (never empty)."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", name) or "_"


def unique(names: list[str]) -> list[str]:
    """``names`` with repeats (after sanitizing) suffixed ``_2``, ``_3``."""
    taken: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        out.append(candidate)
    return out


def shapes(out: Any) -> dict[str, list[int]]:
    """Output name -> shape, for a model output."""
    return {name: list(t.shape) for name, t in named_tensors(out)}


def run_forward(model: Any, example: Any) -> Any:
    """One eval-mode forward pass without gradients (the model's mode is restored); a failure on
    this input shape is exit 3 with the fix."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(*example) if isinstance(example, tuple) else model(example)
    except Exception as exc:  # noqa: BLE001 - any failure means the shape does not fit
        raise forward_failure(exc, tuple(getattr(example, "shape", ()))) from None
    finally:
        model.train(was_training)


def model_shapes(model: Any, example: Any) -> dict[str, list[int]]:
    """Output name -> shape of one eval-mode forward pass of ``model`` on ``example``."""
    return shapes(run_forward(model, example))


def scored(names: list[str], wanted: str | None) -> tuple[int, list[str]]:
    """Which output an accuracy scores (``compress eval`` and ``compress bench``'s accuracy gates):
    the index in ``names`` (the model's outputs in order) and the notes to report.

    ``wanted`` (``--output``) when given, else the only output, else the first of several, which a
    note names. A name that is not an output is exit 2 listing the outputs.
    """
    if wanted is not None:
        if wanted not in names:
            raise unknown_name("output (for --output)", wanted, names)
        return names.index(wanted), []
    if len(names) > 1:
        return 0, [
            f"scored output '{names[0]}', the first of {len(names)} ({', '.join(names)}); "
            "choose another with --output NAME"
        ]
    return 0, []


def pick(out: Any, index: int) -> Any:
    """The ``index``-th tensor of a model output, in :func:`named_tensors` order."""
    return named_tensors(out)[index][1]


def changes(before: dict[str, list[int]], after: dict[str, list[int]]) -> dict[str, str]:
    """Output name -> ``"[1, 64] -> [1, 30]"`` for every output whose shape changed (``gone`` /
    ``new`` when the structure changed)."""
    found = {}
    for name in [*before, *(n for n in after if n not in before)]:
        old, new = before.get(name), after.get(name)
        if old != new:
            found[name] = f"{old if old is not None else 'new'} -> {new if new is not None else 'gone'}"
    return found


def check_allowed(allowed: tuple[str, ...], names: list[str]) -> None:
    """Every name in ``allowed`` (``--allow-output-change``) must name an output of the model."""
    for name in allowed:
        if name not in names:
            raise unknown_name("output (for --allow-output-change)", name, names)


def check_kept(
    before: dict[str, list[int]], after: dict[str, list[int]], allowed: tuple[str, ...]
) -> list[str]:
    """Refuse (exit 3) a change of any output's shape not in ``allowed``; notes for allowed ones."""
    changed = changes(before, after)
    refused = {n: c for n, c in changed.items() if n not in allowed}
    if refused:
        name, change = next(iter(refused.items()))
        more = f" (and {len(refused) - 1} more: {', '.join(list(refused)[1:])})" if len(refused) > 1 else ""
        hint = (
            f"--ignore the layers that make it, or let it change with --allow-output-change {name}"
            if name in before and name in after
            else "the model must return the same structure"
        )
        raise UnsupportedError(f"pruning changed output '{name}': {change}{more}; nothing written", hint)
    return [f"output '{n}' changed {c} (--allow-output-change)" for n, c in changed.items()]

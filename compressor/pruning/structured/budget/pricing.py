"""A sensitivity file read back: checked against the model, and its measured accuracy drops turned
into per-channel prices for the allocation (``prune --sensitivity FILE``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from compressor.errors import InputError
from compressor.pruning.structured.budget.allocate import Group

FORMAT = 1
TIE_BREAK = 1e-6  # scores break ties between channels whose measured drops are equal


def load(path: str, structure_key: str) -> dict[str, Any]:
    """A sensitivity document for a model whose layer shapes hash to ``structure_key`` (exit 2 when
    unreadable, or made from another model)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read sensitivity file {path} ({type(exc).__name__})",
            "pass the sensitivity.json written by compress sensitivity",
        ) from None
    if document.get("format") != FORMAT or "groups" not in document:
        raise InputError(
            f"{path} is not a sensitivity file", "pass the sensitivity.json written by compress sensitivity"
        )
    if document.get("structure") != structure_key:
        raise InputError(
            f"{path} was measured on another model (its layer shapes differ)",
            "run compress sensitivity on this model first",
        )
    return document


def priced(groups: list[Group], document: dict[str, Any]) -> list[Group]:
    """Groups whose channel scores are the measured accuracy drop of each further channel removed:
    the drop curve through (0, 0) and the measured ratios, made non-decreasing, differenced per
    channel; the method's scores break ties. Groups the file does not cover keep their scores."""
    import dataclasses

    curves = {g["group"]: g for g in document["groups"]}
    out = []
    for g in groups:
        entry = curves.get(g.name)
        if entry is None or entry["width"] != g.width:
            out.append(g)
            continue
        drops = [0.0] + [p["accuracy_drop"] for p in entry["points"]]
        removed = [0.0] + [g.width - p["width"] for p in entry["points"]]
        curve = [_drop_after(k, removed, drops) for k in range(g.width + 1)]
        steps = [max(curve[k + 1] - curve[k], 0.0) + TIE_BREAK * s for k, s in enumerate(g.scores)]
        out.append(dataclasses.replace(g, scores=tuple(steps), relative=False))
    return out


def _drop_after(k: int, removed: list[float], drops: list[float]) -> float:
    """The accuracy drop after removing ``k`` channels: piecewise linear, non-decreasing, extended
    past the last measured point with the steeper of the last segment's slope and the mean slope
    from no cut. A curve that flattens at its last points (accuracy already near chance, or noise)
    would otherwise price every channel past the scan at nothing, and the allocation would take
    them first: the cuts the scan did not measure are priced at least at the rate of those it did."""
    pairs = sorted(zip(removed, drops))
    best, xs, ys = 0.0, [], []
    for r, d in pairs:
        best = max(best, d)
        xs.append(r)
        ys.append(best)
    if k <= xs[-1]:
        for i in range(1, len(xs)):
            if k <= xs[i]:
                span = xs[i] - xs[i - 1]
                return ys[i - 1] + (ys[i] - ys[i - 1]) * ((k - xs[i - 1]) / span if span else 1.0)
        return ys[-1]
    last = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) if len(xs) > 1 and xs[-1] > xs[-2] else 0.0
    slope = max(last, ys[-1] / xs[-1] if xs[-1] > 0 else 0.0)
    return ys[-1] + slope * (k - xs[-1]) if math.isfinite(slope) else ys[-1]

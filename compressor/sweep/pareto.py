"""Pareto frontiers of sweep points: no other point is at least as good on both axes and better on one."""

from __future__ import annotations

from typing import Any


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when ``a`` is >= ``b`` on both (maximised) axes and > on at least one."""
    return a[0] >= b[0] and a[1] >= b[1] and (a[0] > b[0] or a[1] > b[1])


def frontier(
    points: list[dict[str, Any]], x: str, y: str = "accuracy", x_higher_is_better: bool = True
) -> list[dict[str, Any]]:
    """The non-dominated points on (``x``, ``y``), ``y`` maximised, sorted by ``x``.

    Points missing either value are left out; equal duplicates all stay on the frontier.
    """
    sign = 1.0 if x_higher_is_better else -1.0
    usable = [p for p in points if p.get(x) is not None and p.get(y) is not None]
    keys = [(sign * float(p[x]), float(p[y])) for p in usable]
    kept = [p for p, k in zip(usable, keys) if not any(dominates(o, k) for o in keys)]
    return sorted(kept, key=lambda p: float(p[x]))

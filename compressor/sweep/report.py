"""What a sweep writes: the points as CSV and JSON, and PNG plots with the Pareto frontiers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from compressor.io.atomic import atomic_write, atomic_write_text
from compressor.sweep.pareto import frontier

BASE_COLUMNS = (
    "id",
    "method",
    "level",
    "target",
    "status",
    "sparsity",
    "zero_fraction",
    "params",
    "nonzero_params",
    "macs",
    "size_bytes",
    "compressed_bytes",
    "onnx_size_bytes",
    "accuracy",
    "accuracy_drop",
    "robust_accuracy",
    "landed",
    "target_factor",
    "target_measured_factor",
)
TAIL_COLUMNS = ("seconds", "recipe", "error")


def columns(profiles: list[str]) -> list[str]:
    """CSV columns: the base figures, latency and speed-up columns per profile, then bookkeeping."""
    per_profile = [c for p in profiles for c in (f"latency_ms_p50_{p}", f"speedup_{p}")]
    return [*BASE_COLUMNS, *per_profile, *TAIL_COLUMNS]


def write_csv(rows: list[dict[str, Any]], path: Path, profiles: list[str]) -> None:
    """One row per point, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(profiles), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def frontiers(rows: list[dict[str, Any]], profiles: list[str]) -> dict[str, list[str]]:
    """Point ids on each frontier: accuracy vs sparsity, and accuracy vs latency per profile."""
    ok = [r for r in rows if r.get("status") == "ok"]
    out = {"accuracy_vs_sparsity": [r["id"] for r in frontier(ok, "sparsity")]}
    for p in profiles:
        key = f"latency_ms_p50_{p}"
        out[f"accuracy_vs_latency_{p}"] = [r["id"] for r in frontier(ok, key, x_higher_is_better=False)]
    return out


def write_json(doc: dict[str, Any], path: Path) -> None:
    """The whole sweep document, atomically."""
    atomic_write_text(path, json.dumps(doc, indent=1, default=str) + "\n")


def plot_sparsity(rows: list[dict[str, Any]], front: list[str], path: Path) -> None:
    """Accuracy against sparsity, one line per method, the frontier dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = [r for r in rows if r.get("status") == "ok"]
    for method in sorted({r["method"] for r in ok if r["method"] != "baseline"}):
        pts = sorted(
            (r for r in ok if r["method"] == method and not r.get("target")), key=lambda r: r["sparsity"]
        )
        line = ax.plot(
            [r["sparsity"] for r in pts], [r["accuracy"] for r in pts], "o-", label=method, alpha=0.8
        )
        _targets(ax, ok, method, "sparsity", line[0].get_color() if line else None)
    _baseline_and_frontier(ax, ok, front, "sparsity")
    ax.set_xlabel("sparsity (share of the baseline's weights removed or zero)")
    ax.set_ylabel("test accuracy")
    _save(plt, fig, ax, path)


def plot_latency(
    rows: list[dict[str, Any]], fronts: dict[str, list[str]], profiles: list[str], path: Path
) -> None:
    """Accuracy against measured median latency, one panel per profile, frontier dashed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(profiles), figsize=(6 * len(profiles), 4.5), squeeze=False)
    ok = [r for r in rows if r.get("status") == "ok"]
    for ax, prof in zip(axes[0], profiles):
        key = f"latency_ms_p50_{prof}"
        for method in sorted({r["method"] for r in ok if r["method"] != "baseline"}):
            pts = [r for r in ok if r["method"] == method and r.get(key) is not None and not r.get("target")]
            dots = ax.scatter([r[key] for r in pts], [r["accuracy"] for r in pts], label=method, alpha=0.8)
            _targets(ax, ok, method, key, dots.get_facecolor()[0] if pts else None)
        _baseline_and_frontier(ax, ok, fronts[f"accuracy_vs_latency_{prof}"], key)
        ax.set_xlabel(f"median latency, profile {prof} (ms, measured)")
        ax.set_ylabel("test accuracy")
    _save(plt, fig, axes[0][-1], path)


def _targets(ax, ok: list[dict[str, Any]], method: str, x: str, color) -> None:
    """A method's budgeted points: triangles in its colour, each labelled by its target."""
    pts = [r for r in ok if r["method"] == method and r.get("target") and r.get(x) is not None]
    if not pts:
        return
    ax.scatter(
        [r[x] for r in pts],
        [r["accuracy"] for r in pts],
        marker="^",
        s=60,
        color=color,
        label=f"{method} @ target",
        alpha=0.9,
    )
    for r in pts:
        ax.annotate(r["target"], (r[x], r["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")


def _baseline_and_frontier(ax, ok: list[dict[str, Any]], front: list[str], x: str) -> None:
    by_id = {r["id"]: r for r in ok}
    pts = [by_id[i] for i in front if i in by_id]
    ax.plot([r[x] for r in pts], [r["accuracy"] for r in pts], "k--", lw=1, label="Pareto frontier")
    base = by_id.get("baseline")
    if base and base.get(x) is not None:
        ax.scatter([base[x]], [base["accuracy"]], marker="*", s=160, c="k", label="baseline", zorder=5)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, ax, path: Path) -> None:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)

"""Options and the report of a budget (``--target-*``), shared by ``compress prune`` and ``compress slim``."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from compressor.api.config import BudgetConfig as B

_T = "Target instead of --ratio (exactly one target): "
TargetSpeedupOpt = Annotated[
    Optional[float],
    typer.Option(help=_T + "measured speed-up over the dense model on --profile (ONNX Runtime), e.g. 2."),
]
TargetLatencyOpt = Annotated[
    Optional[float],
    typer.Option("--target-latency-ms", help=_T + "measured median latency on --profile, in ms."),
]
TargetMacsOpt = Annotated[
    Optional[float], typer.Option(help=_T + "keep at most this fraction of the dense MACs, in (0, 1).")
]
TargetParamsOpt = Annotated[
    Optional[float], typer.Option(help=_T + "keep at most this fraction of the dense parameters, in (0, 1).")
]
TargetSizeOpt = Annotated[
    Optional[str],
    typer.Option(help=_T + "at most these bytes of the exported ONNX file: 2MB, 500KiB or a byte count."),
]
ProfileOpt = Annotated[
    Optional[str],
    typer.Option(
        help=f"Profile a latency target is measured on: mobile, edge or server (default: {B.profile}).",
        show_default=False,
    ),
]
SensitivityOpt = Annotated[
    Optional[str],
    typer.Option(
        help="With a target: price each group's cut by the accuracy drops measured by compress "
        "sensitivity (its sensitivity.json, made from this model)."
    ),
]
CostCacheOpt = Annotated[
    Optional[str],
    typer.Option(
        help="Folder of the measured per-layer latency cache (default: $COMPRESSOR_COSTMODEL_DIR, "
        "else ~/.cache/compressor/costmodel).",
        show_default=False,
    ),
]


def budget(
    target_speedup,
    target_latency_ms,
    target_macs,
    target_params,
    target_size,
    profile,
    cost_cache,
    sensitivity=None,
):
    """The BudgetConfig of the flags, or None without a target."""
    from compressor.api.config import budget_from_options

    return budget_from_options(
        {
            "target_speedup": target_speedup,
            "target_latency_ms": target_latency_ms,
            "target_macs": target_macs,
            "target_params": target_params,
            "target_size": target_size,
            "profile": profile,
            "cost_cache": cost_cache,
            "sensitivity": sensitivity,
        }
    )


def exit_code(result: Any) -> int:
    """1 when a target was given and not met (the closest plan was written), else 0."""
    return 0 if result.landed else 1


def render(r: Any) -> None:
    """The budget's table (target, measured dense and pruned, landed) and the per-layer widths."""
    from rich.table import Table

    from compressor.cli.common import console, human_bytes, human_count

    if "target" not in r.figures:
        return
    f, out = r.figures, console()
    table = Table(
        title=f"budget: {f['target']}: {'landed' if f['landed'] else 'NOT landed'} "
        f"({f['attempts']} attempt(s))"
    )
    for col in ("", "dense", "pruned", "factor"):
        table.add_column(col, justify="right")
    if "latency_ms_p50" in f:
        table.add_row(
            "latency ms p50 (interleaved)",
            f"{f['dense_latency_ms_p50']:.3f}",
            f"{f['latency_ms_p50']:.3f}",
            f"{f['speedup']:.3f}x measured",
        )
    for label, key, fmt in (("MACs (theoretical)", "macs", human_count), ("params", "params", human_count)):
        table.add_row(
            label, fmt(r.before[key]), fmt(r.after[key]), f"{r.before[key] / max(r.after[key], 1):.3f}x"
        )
    if "onnx_bytes" in f:
        table.add_row(
            "ONNX file bytes",
            human_bytes(f["dense_onnx_bytes"]),
            human_bytes(f["onnx_bytes"]),
            f"{f['dense_onnx_bytes'] / max(f['onnx_bytes'], 1):.3f}x",
        )
    table.add_row(
        "target factor (band)",
        "",
        "",
        f"{f['target_factor']:.3f}x "
        f"[{f['band_low'] * f['target_factor']:.3f}, {f['band_high'] * f['target_factor']:.3f}]",
    )
    out.print(table)
    _layers(r, out)


def _layers(r: Any, out) -> None:
    from rich.table import Table

    unit = next(
        (
            k[: -len("_before")]
            for k in (r.layers[0] if r.layers else {})
            if k.endswith("_before")
            and k not in ("channels_before", "cin_before", "cout_before", "share_before")
        ),
        None,
    )
    changed = [
        row
        for row in r.layers
        if "cin_after" in row
        and (row["cin_after"], row["cout_after"]) != (row["cin_before"], row["cout_before"])
    ]
    if not changed or unit is None:
        return
    how = "measured on one-layer graphs" if unit == "latency_ms" else "counted"
    table = Table(title=f"layers narrowed: {unit} per layer ({how}) and its share of the whole model's")
    for col in ("layer", "in", "out", unit, "share"):
        table.add_column(col, justify="right")
    for row in sorted(changed, key=lambda x: -x["share_before"]):
        table.add_row(
            row["name"],
            f"{row['cin_before']}->{row['cin_after']}",
            f"{row['cout_before']}->{row['cout_after']}",
            f"{row[unit + '_before']:.4g}->{row[unit + '_after']:.4g}",
            f"{row['share_before']:.1%}->{row['share_after']:.1%}",
        )
    out.print(table)

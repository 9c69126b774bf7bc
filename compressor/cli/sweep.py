"""``compress sweep`` and ``compress recommend``."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from compressor.api.config import RecommendConfig as R
from compressor.api.config import SweepConfig as W
from compressor.cli.common import (
    ArchKwargsOpt,
    ArchOpt,
    DebugOpt,
    JsonOpt,
    ModelArg,
    console,
    execute,
    human_bytes,
)
from compressor.errors import EXIT_UNSUPPORTED


def sweep(
    path: ModelArg,
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="Data for calibration, fine-tuning and accuracy (fashion-mnist, digits, ...).",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Option("-o", "--output", help="Output folder (created; reused to resume).", show_default=False),
    ],
    methods: Annotated[str, typer.Option(help="Comma-separated methods (compress list).")] = ",".join(
        W.methods
    ),
    levels: Annotated[
        str,
        typer.Option(help="Comma-separated levels in (0, 1): channel ratio (l1, slim) or sparsity (masked)."),
    ] = ",".join(f"{v:g}" for v in W.levels),
    finetune_epochs: Annotated[
        int,
        typer.Option(
            help="Fine-tune budget per point in epochs (iterative methods spread it over their steps)."
        ),
    ] = W.finetune_epochs,
    profiles: Annotated[
        str,
        typer.Option(
            help="Bench profiles to time every point under: mobile, edge, server (comma-separated)."
        ),
    ] = ",".join(W.profiles),
    bench: Annotated[
        bool, typer.Option("--bench/--no-bench", help="Export to ONNX and time each point.")
    ] = W.bench,
    attack: Annotated[Optional[str], typer.Option(help="Robustness column: fgsm or pgd.")] = W.attack,
    eps: Annotated[float, typer.Option(help="Attack budget in [0, 1] pixel units.")] = W.eps,
    attack_limit: Annotated[int, typer.Option(help="Test samples attacked per point.")] = W.attack_limit,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Points run in N processes (1 torch thread each).")
    ] = W.jobs,
    seed: Annotated[int, typer.Option(help="Seed of every point.")] = W.seed,
    targets: Annotated[
        Optional[str],
        typer.Option(
            help="Budgets every structured method (l1, l2, random, slim) also prunes to, as compress prune "
            "--target-KIND does: KIND=V1,V2 with KIND speedup, latency_ms, macs, params or size; several "
            "kinds separated by ';', e.g. 'speedup=1.5,2,3;macs=0.5'. Speed-up and latency are measured "
            "on the first of --profiles. Points are named METHOD@KIND=V (l1@speedup=2)."
        ),
    ] = ";".join(W.targets) or None,
    cost_cache: Annotated[
        Optional[str],
        typer.Option(
            help="With latency targets: folder of the measured per-layer latency cache (default: "
            "$COMPRESSOR_COSTMODEL_DIR, else ~/.cache/compressor/costmodel).",
            show_default=False,
        ),
    ] = W.cost_cache,
    plan_only: Annotated[
        bool,
        typer.Option(
            "--plan-only",
            help="Write every point's recipe (and the tables of finished points); run "
            "nothing. For Slurm/Ray: compress run POINT.yaml --record per point.",
        ),
    ] = False,
    arch: ArchOpt = None,
    arch_kwargs: ArchKwargsOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Prune with every method at every level; resumable; CSV, JSON, Pareto frontier and plots.

    Each point is a recipe in OUT/points/ID.yaml (`compress run` on it reproduces the point) and its
    result OUT/points/ID.json; rerunning the same command skips finished points. Writes
    OUT/points.csv, OUT/sweep.json (points, frontiers, machine load), accuracy_vs_sparsity.png and
    accuracy_vs_latency.png. Sparsity counts removed channels and masked zeros against the baseline.

    Exit 3 when a point failed (the table says which and why; rerun to retry it); a point a method
    cannot do (e.g. slim without BatchNorm) is recorded as unsupported and is not a failure.

    Examples:

    \b
      compress sweep sample_models/simple_cnn.pt --data fashion-mnist -o sweeps/cnn
      compress sweep sample_models/mlp.pt --data fashion-mnist -o sweeps/mlp \\
          --methods magnitude,wanda --levels 0.5,0.9 --attack fgsm \\
          --profiles mobile,server --jobs 2
      compress recommend sweeps/cnn --max-drop 0.01
      compress run sweeps/cnn/points/wanda_0.5.yaml -o again   # one point, exactly
    """

    def action():
        from compressor.api.common import parse_kwargs
        from compressor.api.sweep import SweepConfig
        from compressor.api.sweep import sweep as api_sweep

        cfg = SweepConfig(
            path,
            data,
            output,
            _names(methods),
            _levels(levels),
            finetune_epochs,
            _names(profiles),
            bench,
            attack,
            eps,
            attack_limit,
            jobs,
            seed,
            arch,
            parse_kwargs(arch_kwargs),
            _targets(targets),
            cost_cache,
        )
        return api_sweep(cfg, on_point=None if sys.stderr.isatty() else _point_line, plan_only=plan_only)

    execute(action, _render_sweep, json_out, debug, exit_code=lambda r: EXIT_UNSUPPORTED if r.failed else 0)


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _targets(text: str | None) -> tuple[str, ...]:
    """``speedup=1.5,2;macs=0.5`` -> ``("speedup=1.5", "speedup=2", "macs=0.5")``."""
    from compressor.errors import UsageError

    out: list[str] = []
    for part in (p.strip() for p in (text or "").split(";")):
        if not part:
            continue
        kind, sep, values = part.partition("=")
        if not sep or not _names(values):
            raise UsageError(
                f"cannot read --targets '{part}'", "write KIND=V1,V2;KIND=V, e.g. 'speedup=1.5,2;macs=0.5'"
            )
        out += [f"{kind.strip()}={v}" for v in _names(values)]
    return tuple(out)


def _levels(text: str) -> tuple[float, ...]:
    from compressor.errors import UsageError

    try:
        return tuple(float(v) for v in _names(text))
    except ValueError:
        raise UsageError(f"cannot read --levels '{text}'", "write e.g. 0.2,0.5,0.8") from None


def _point_line(record: dict) -> None:
    acc = record.get("metrics", {}).get("accuracy")
    tail = f"accuracy {acc:.4f}" if acc is not None else record.get("error", "")
    console().print(f"point {record['id']}: {record['status']} in {record['seconds']:.0f} s, {tail}")


_COLUMNS = (
    ("sparsity", "sparsity", "{:.1%}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("drop", "accuracy_drop", "{:+.4f}"),
    ("robust", "robust_accuracy", "{:.4f}"),
)


def _render_sweep(r) -> None:
    from rich.table import Table

    keys = {k for p in r.points for k, v in p.items() if v is not None}
    cols = [c for c in _COLUMNS if c[1] in keys]
    lat = sorted(k for k in keys if k.startswith("latency_ms_p50_"))
    front = set(r.frontiers.get("accuracy_vs_sparsity", []))
    table = Table(
        title=f"compress sweep -> {r.output_dir} ({r.computed} run, {r.skipped} resumed, {r.wall_s:.0f} s)"
    )
    targeted = any(p.get("target") for p in r.points)
    for col in [
        "point",
        "status",
        *(c[0] for c in cols),
        "compressed",
        *(k[15:] + " ms" for k in lat),
        *(["target"] if targeted else []),
    ]:
        table.add_column(col, justify="left" if col == "point" else "right", no_wrap=col == "point")
    for p in r.points:
        table.add_row(
            p["id"] + (" *" if p["id"] in front else ""),
            p["status"],
            *(_f(p.get(key), fmt) for _, key, fmt in cols),
            human_bytes(p["compressed_bytes"]) if p.get("compressed_bytes") else "",
            *(_f(p.get(k), "{:.3f}") for k in lat),
            *([_landing(p)] if targeted else []),
        )
    out = console()
    out.print(table)
    out.print("* on the accuracy-vs-sparsity Pareto frontier; files: " + ", ".join(r.files.values()))
    for p in r.points:
        if p["status"] not in ("ok", "pending"):
            out.print(f"note: {p['id']} {p['status']}: {p.get('error')}")
    pending = [p["id"] for p in r.points if p["status"] == "pending"]
    if pending:
        out.print(f"{len(pending)} points not run yet (--plan-only): compress run POINT.yaml --record each")


def _landing(p: dict) -> str:
    """``landed 2.04x (2x)`` or ``missed 3.34x (2x)``: the measured factor against the asked one."""
    if p.get("landed") is None:
        return ""
    return (
        f"{'landed' if p['landed'] else 'missed'} {p['target_measured_factor']:.2f}x "
        f"({p['target_factor']:.3g}x)"
    )


def _f(value, fmt: str = "{:.4f}") -> str:
    return "" if value is None else fmt.format(value)


def recommend(
    sweep_dir: Annotated[
        str, typer.Argument(help="Output folder of compress sweep.", show_default=False, metavar="SWEEP_DIR")
    ],
    max_drop: Annotated[
        float, typer.Option(help="Largest accuracy drop from the baseline (0.01 = 1 point).")
    ] = R.max_drop,
    profiles: Annotated[
        Optional[str], typer.Option(help="Profiles to answer for (default: all the sweep measured).")
    ] = R.profiles,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Per bench profile, the smallest and the fastest sweep point within an accuracy drop.

    Smallest = fewest compressed artifact bytes; fastest = lowest measured median latency under that
    profile (the sweep must have timed it: compress sweep --profiles mobile,edge,server). Each answer
    names its recipe, so `compress run` rebuilds the model.

    Examples:

    \b
      compress recommend sweeps/cnn --max-drop 0.01
      compress recommend sweeps/cnn --max-drop 0.02 --profiles mobile --json
    """

    def action():
        from compressor.api.recommend import RecommendConfig
        from compressor.api.recommend import recommend as api_recommend

        return api_recommend(RecommendConfig(sweep_dir, max_drop, _names(profiles) if profiles else None))

    execute(action, _render_recommend, json_out, debug)


def _render_recommend(r) -> None:
    from rich.table import Table

    table = Table(
        title=f"within {r.max_drop:.4g} of baseline accuracy {r.baseline_accuracy:.4f} "
        f"({r.candidates} pruned candidates)"
    )
    for col in ("profile", "pick", "point", "accuracy", "sparsity", "compressed", "p50 ms"):
        table.add_column(col)
    for ans in r.profiles:
        for pick in ("smallest", "fastest"):
            p = ans.get(pick)
            if p:
                table.add_row(
                    str(ans["profile"] or "-"),
                    pick,
                    p["id"],
                    _f(p["accuracy"]),
                    _f(p.get("sparsity"), "{:.1%}"),
                    human_bytes(p["compressed_bytes"]) if p.get("compressed_bytes") else "",
                    _f(p.get("latency_ms_p50"), "{:.3f}"),
                )
    out = console()
    out.print(table)
    for recipe in dict.fromkeys(
        p["recipe"] for a in r.profiles for p in (a["smallest"], a.get("fastest")) if p
    ):
        out.print(f"rebuild: compress run {recipe}")
    for note in r.notes:
        out.print(f"note: {note}")

"""``compress prune``: every method of the registry behind one command."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from compressor.api.config import PruneConfig as P
from compressor.api.config import options_help
from compressor.cli import budget as budget_cli
from compressor.cli.budget import (
    CostCacheOpt,
    ProfileOpt,
    SensitivityOpt,
    TargetLatencyOpt,
    TargetMacsOpt,
    TargetParamsOpt,
    TargetSizeOpt,
    TargetSpeedupOpt,
)
from compressor.cli.common import (
    ArchKwargsOpt,
    ArchOpt,
    DataOpt,
    DebugOpt,
    DeviceOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    TrustPickleOpt,
    console,
    execute,
    human_bytes,
    human_count,
    log_line,
    model_spec,
)
from compressor.registry import methods_for

_METHOD_HELP = "Method: " + ", ".join(methods_for("prune")) + " (compress list shows what each does)."
OutputOpt = Annotated[Optional[str], typer.Option("-o", "--output", help="Output artifact (.pt).")]


def prune(
    path: ModelArg,
    method: Annotated[str, typer.Option("--method", "-m", help=_METHOD_HELP)] = P.method,
    output: OutputOpt = None,
    ratio: Annotated[
        Optional[float], typer.Option(help="Structured: fraction of channels to remove, in (0, 1).")
    ] = P.ratio,
    target_speedup: TargetSpeedupOpt = None,
    target_latency_ms: TargetLatencyOpt = None,
    target_macs: TargetMacsOpt = None,
    target_params: TargetParamsOpt = None,
    target_size: TargetSizeOpt = None,
    profile: ProfileOpt = None,
    cost_cache: CostCacheOpt = None,
    sensitivity: SensitivityOpt = None,
    sparsity: Annotated[
        Optional[float], typer.Option(help="Masked methods: fraction of weights to zero, in [0, 1).")
    ] = P.sparsity,
    scope: Annotated[
        Optional[str],
        typer.Option(
            help="Ranking scope: global, layer (each layer to the target) or row (per output row). "
            "Default: row for wanda, global otherwise."
        ),
    ] = P.scope,
    nm: Annotated[
        Optional[str],
        typer.Option("--nm", help="N:M pattern, e.g. 2:4 keeps 2 of every 4 inputs (magnitude, wanda)."),
    ] = P.nm,
    steps: Annotated[
        int, typer.Option(help="Iterative pruning steps with re-scoring (and fine-tuning) between them.")
    ] = P.steps,
    round_to: Annotated[
        Optional[int],
        typer.Option(help="Structured: keep channel counts multiples of N (8 or 16 run faster)."),
    ] = P.round_to,
    max_layer_ratio: Annotated[
        float, typer.Option(help="Structured: remove at most this fraction of any one layer.")
    ] = P.max_layer_ratio,
    keep_residual: Annotated[
        bool,
        typer.Option(
            help="Structured: keep channels joined by residual additions; prune only inside blocks "
            "(faster on narrow streams, e.g. MobileNetV2)."
        ),
    ] = P.keep_residual,
    ignore: Annotated[
        Optional[list[str]],
        typer.Option(help="Never prune modules whose name matches this pattern (repeatable)."),
    ] = None,
    allow_output_change: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Let this output's shape change (repeatable; compress info lists the names). Every other "
            "output keeps its shape: the layers that make it are not pruned."
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            help="Structured: refuse when cutting a group breaks the model (exit 3), instead of keeping "
            "that group unpruned and naming it in the report."
        ),
    ] = P.strict,
    layers: Annotated[
        str, typer.Option(help="Masked methods: layer types (conv,linear) or name patterns to prune.")
    ] = ",".join(P.layers),
    keep_first_last: Annotated[
        bool,
        typer.Option(
            help="Masked methods: leave the first and last conv/linear layers (stem, classifier) dense, "
            "as the Wanda paper does for image classifiers."
        ),
    ] = P.keep_first_last,
    data: DataOpt = P.data,
    calib_samples: Annotated[
        int, typer.Option(help="Calibration samples for data-driven scores.")
    ] = P.calib_samples,
    recalibrate_bn: Annotated[
        Optional[bool],
        typer.Option(
            "--recalibrate-bn/--no-recalibrate-bn",
            help="magnitude, wanda: re-estimate BatchNorm statistics on the calibration samples after "
            "masking (needs --data). Default: on for wanda when the model has BatchNorm, off for "
            "magnitude.",
            show_default=False,
        ),
    ] = P.recalibrate_bn,
    finetune_epochs: Annotated[
        int, typer.Option(help="Fine-tune epochs between steps and at the end (needs --data).")
    ] = P.finetune_epochs,
    finetune_lr: Annotated[float, typer.Option(help="Fine-tuning learning rate (Adam).")] = P.finetune_lr,
    finetune_schedule: Annotated[
        str,
        typer.Option(
            help="Learning-rate schedule of fine-tuning: none (constant), cosine (to zero), step or onecycle."
        ),
    ] = P.finetune_schedule,
    finetune_batches: Annotated[
        Optional[int], typer.Option(help="At most N batches per fine-tune (spreads a budget over --steps).")
    ] = P.finetune_batches,
    batch_size: Annotated[
        int, typer.Option(help="Batch size for calibration and fine-tuning.")
    ] = P.batch_size,
    seed: Annotated[int, typer.Option(help="Seed for sampling, random pruning and training.")] = P.seed,
    distill_from: Annotated[
        Optional[str],
        typer.Option(
            help="Recover by distillation from this teacher (e.g. the unpruned model) during fine-tuning."
        ),
    ] = P.distill_from,
    temperature: Annotated[float, typer.Option(help="KD temperature T for --distill-from.")] = P.temperature,
    alpha: Annotated[
        float, typer.Option(help="KD weight of the teacher term for --distill-from (labels: 1 - alpha).")
    ] = P.alpha,
    opt: Annotated[
        Optional[list[str]],
        typer.Option(
            "--opt",
            help="A method's own setting KEY=VALUE (repeatable); each method's, with its "
            f"default: {options_help('prune')}.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="List what would be pruned and what cannot be; write nothing. With a target: the planned "
            "per-layer widths and the predicted latency (cost model), MACs and parameters."
        ),
    ] = False,
    device: DeviceOpt = P.device,
    arch: ArchOpt = None,
    arch_kwargs: ArchKwargsOpt = None,
    trust_pickle: TrustPickleOpt = False,
    input_shape: InputShapeOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Prune a model and save a pickle-free artifact with the before/after report.

    Structured methods (l1, l2, random) physically remove channels; masked methods (magnitude,
    wanda, sap, activation, lottery) zero weights under masks kept in every later fine-tune.
    Instead of --ratio, a structured method takes one target: a measured speed-up or latency on
    --profile, or a fraction of the MACs or parameters, or ONNX file bytes; exit 1 when it is not
    met (the closest plan is still written).

    Examples:

      compress prune sample_models/resnet_small.pt --method l1 --ratio 0.5 -o small.pt

      compress prune model.pt --method l1 --target-speedup 2 --profile mobile --round-to 8 -o fast.pt

      compress prune sample_models/mlp.pt --method wanda --sparsity 0.5 --data fashion-mnist -o sparse.pt
    """

    def action():
        from compressor.api.common import parse_kwargs
        from compressor.api.prune import PruneConfig
        from compressor.api.prune import prune as api_prune

        cfg = PruneConfig(
            method=method,
            ratio=ratio,
            sparsity=sparsity,
            scope=scope,
            nm=nm,
            budget=budget_cli.budget(
                target_speedup,
                target_latency_ms,
                target_macs,
                target_params,
                target_size,
                profile,
                cost_cache,
                sensitivity,
            ),
            steps=steps,
            round_to=round_to,
            max_layer_ratio=max_layer_ratio,
            keep_residual=keep_residual,
            ignore=tuple(ignore or ()),
            allow_output_change=tuple(allow_output_change or ()),
            strict=strict,
            layers=tuple(v.strip() for v in layers.split(",") if v.strip()),
            keep_first_last=keep_first_last,
            data=data,
            calib_samples=calib_samples,
            recalibrate_bn=recalibrate_bn,
            finetune_epochs=finetune_epochs,
            finetune_lr=finetune_lr,
            finetune_schedule=finetune_schedule,
            finetune_batches=finetune_batches,
            batch_size=batch_size,
            seed=seed,
            options=parse_kwargs(",".join(opt or [])),
            distill_from=distill_from,
            temperature=temperature,
            alpha=alpha,
            device=device,
        )
        spec = model_spec(path, arch, arch_kwargs, trust_pickle, input_shape)
        return api_prune(spec, cfg, output, progress=log_line, dry_run=dry_run)

    execute(action, render, json_out, debug, exit_code=budget_cli.exit_code)


def render(r) -> None:
    """Before/after table, per-layer widths, notes."""
    from rich.table import Table

    out = console()
    if r.dry_run:
        _render_plan(r)
        return
    table = Table(title=f"{r.method} ({r.kind}) -> {r.output}")
    for col in ("", "before", "after", "ratio"):
        table.add_column(col, justify="right")
    rows = [
        ("params", "params", human_count),
        ("non-zero params", "nonzero_params", human_count),
        ("MACs (theoretical)", "macs", human_count),
        ("file bytes", "size_bytes", human_bytes),
        ("compressed bytes", "compressed_bytes", human_bytes),
    ]
    for label, key, fmt in rows:
        if key not in r.before or key not in r.after:
            continue  # compressed bytes are measured for masked methods only
        b, a = r.before[key], r.after[key]
        table.add_row(label, fmt(b), fmt(a), f"{a / b:.3f}" if b else "")
    table.add_row("sparsity", f"{r.before['sparsity']:.1%}", f"{r.after['sparsity']:.1%}", "")
    if "accuracy" in r.after:
        table.add_row(
            "accuracy",
            f"{r.before['accuracy']:.4f}",
            f"{r.after['accuracy']:.4f}",
            f"{r.after['accuracy'] - r.before['accuracy']:+.4f}",
        )
    out.print(table)
    changed = [row for row in r.layers if row["channels_after"] != row["channels_before"]]
    if changed and "target" not in r.figures:  # a budget's table below shows the widths
        widths = Table(title="channels per layer")
        for col in ("layer", "before", "after"):
            widths.add_column(col)
        for row in changed:
            widths.add_row(row["name"], str(row["channels_before"]), str(row["channels_after"]))
        out.print(widths)
    budget_cli.render(r)
    for note in r.notes:
        out.print(f"note: {note}")


def _render_plan(r) -> None:
    from rich.table import Table

    table = Table(title=f"dry run: {r.method} (nothing written)")
    keys = list(dict.fromkeys(k for row in r.plan for k in row))
    if "target" not in r.figures:
        keys.sort()
    for key in keys:
        table.add_column(key)
    for row in r.plan:
        table.add_row(*(str(row.get(k, "")) for k in keys))
    console().print(table)
    if "target" in r.figures:
        _render_prediction(r)


def _render_prediction(r) -> None:
    """Dense against the plan as the cost model predicts it (not measured), and the counted MACs
    and parameters of the planned model."""
    from rich.table import Table

    f = r.figures
    unit = f["unit"]
    table = Table(
        title=f"budget: {f['target']}: planned, not measured "
        f"({'reaches it' if f['predicted_reaches_target'] else 'the plan stops short of it'})"
    )
    for col in ("", "dense", "planned", "factor"):
        table.add_column(col, justify="right")
    if unit not in ("macs", "params"):
        label = "latency ms (cost model)" if unit == "latency_ms" else "ONNX bytes (float32 weights)"
        table.add_row(
            label,
            f"{f[f'dense_{unit}']:.4g}",
            f"{f[f'predicted_{unit}']:.4g}",
            f"{f['predicted_factor']:.3f}x",
        )
    for key in ("macs", "params"):
        table.add_row(
            f"{key} (counted)",
            human_count(f[f"dense_{key}"]),
            human_count(f[f"predicted_{key}"]),
            f"{f[f'dense_{key}'] / max(f[f'predicted_{key}'], 1):.3f}x",
        )
    table.add_row("target factor", "", "", f"{f['target_factor']:.3f}x")
    console().print(table)

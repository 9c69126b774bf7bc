"""``compress sensitivity``: each prunable group pruned alone: accuracy and measured saved latency."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from compressor.api.config import SensitivityConfig as C
from compressor.cli.budget import CostCacheOpt
from compressor.cli.common import (
    ArchKwargsOpt,
    ArchOpt,
    DebugOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    TrustPickleOpt,
    console,
    execute,
    log_line,
    model_spec,
)

_RATIOS = ",".join(f"{r:g}" for r in C.ratios)


def sensitivity(
    path: ModelArg,
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="Data whose val split measures the accuracy "
            "(fashion-mnist, digits, cifar10:ROOT, imagefolder:PATH, tensors:FILE).",
        ),
    ],
    output: Annotated[
        Optional[str],
        typer.Option(
            "-o", "--output", help="Output folder for sensitivity.json, sensitivity.csv and sensitivity.png."
        ),
    ] = None,
    ratios: Annotated[
        str, typer.Option(help="Fractions of each group's channels removed, comma-separated.")
    ] = _RATIOS,
    method: Annotated[
        str,
        typer.Option("--method", "-m", help="Scores that order channels within a group: l1, l2 or random."),
    ] = C.method,
    profile: Annotated[
        str, typer.Option(help="Profile the saved latency is measured on: mobile, edge or server.")
    ] = C.profile,
    round_to: Annotated[
        Optional[int], typer.Option(help="Round kept widths to multiples of N.")
    ] = C.round_to,
    eval_limit: Annotated[
        Optional[int], typer.Option(help="At most N validation samples per accuracy.")
    ] = C.eval_limit,
    cost_cache: CostCacheOpt = C.cost_cache,
    arch: ArchOpt = None,
    arch_kwargs: ArchKwargsOpt = None,
    trust_pickle: TrustPickleOpt = False,
    input_shape: InputShapeOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """For every prunable group: the validation accuracy after pruning that group alone at each
    ratio, and the latency it saves (each narrowed layer measured on ONNX Runtime under --profile).
    Reuse it with compress prune --target-... --sensitivity DIR/sensitivity.json.

    Example:

      compress sensitivity sample_models/resnet_small.pt --data fashion-mnist -o sens/
    """

    def action():
        from compressor.api import SensitivityConfig
        from compressor.api import sensitivity as api_sensitivity
        from compressor.errors import UsageError

        settings = {
            "method": method,
            "profile": profile,
            "round_to": round_to,
            "eval_limit": eval_limit,
            "cost_cache": cost_cache,
        }
        if ratios:
            try:
                settings["ratios"] = tuple(float(v) for v in ratios.split(",") if v.strip())
            except ValueError:
                raise UsageError(f"cannot read --ratios '{ratios}'", "write e.g. 0.2,0.4,0.6") from None
        cfg = SensitivityConfig(data=data, **{k: v for k, v in settings.items() if v is not None})
        return api_sensitivity(
            model_spec(path, arch, arch_kwargs, trust_pickle, input_shape), cfg, output, log=log_line
        )

    execute(action, render, json_out, debug)


def render(r) -> None:
    """Per group: accuracy and saved latency at each ratio."""
    from rich.table import Table

    doc = r.document
    table = Table(
        title=f"sensitivity ({doc['method']}, baseline accuracy {doc['baseline_accuracy']:.4f} on "
        f"{doc['eval_samples']} val samples, latency on {doc['profile']}) -> {r.output}"
    )
    table.add_column("group")
    table.add_column("width", justify="right")
    for ratio in doc["ratios"]:
        table.add_column(f"-{ratio:.0%}: acc / ms saved", justify="right")
    for g in doc["groups"]:
        table.add_row(
            g["group"],
            str(g["width"]),
            *(f"{p['accuracy']:.3f} / {p['latency_saved_ms']:.3f}" for p in g["points"]),
        )
    console().print(table)

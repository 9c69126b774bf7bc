"""``compress eval``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from compressor.api.config import EvalConfig as E
from compressor.cli.common import (
    ArchKwargsOpt,
    ArchOpt,
    DebugOpt,
    JsonOpt,
    ModelArg,
    TrustPickleOpt,
    console,
    execute,
    model_spec,
)


def evaluate(
    path: ModelArg,
    data: Annotated[str, typer.Option("--data", help="Data to evaluate on (see compress list).")] = E.data,
    split: Annotated[str, typer.Option(help="train, val or test.")] = E.split,
    batch_size: Annotated[int, typer.Option(help="Samples per batch.")] = E.batch_size,
    limit: Annotated[Optional[int], typer.Option(help="Evaluate at most N samples.")] = E.limit,
    attack: Annotated[
        Optional[str],
        typer.Option(help="Also measure accuracy under an adversarial attack: fgsm or pgd (.pt only)."),
    ] = E.attack,
    eps: Annotated[
        float, typer.Option(help="Attack budget (L-inf) in [0, 1] pixel units; 0.03 is about 8/255.")
    ] = E.eps,
    steps: Annotated[int, typer.Option(help="PGD iterations.")] = E.steps,
    alpha: Annotated[
        Optional[float], typer.Option(help="PGD step in pixel units (default 2.5 * eps / steps).")
    ] = E.alpha,
    output: Annotated[
        Optional[str],
        typer.Option(
            "--output",
            help="The output to score, by name (compress info lists them); default: the first.",
        ),
    ] = E.output,
    arch: ArchOpt = None,
    arch_kwargs: ArchKwargsOpt = None,
    trust_pickle: TrustPickleOpt = False,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Top-1 accuracy and loss of a .pt or .onnx model on a data split, optionally under attack.

    --attack fgsm|pgd perturbs each (normalised) input within --eps in pixel space, clamped to
    valid [0, 1] images, and reports robust accuracy beside the clean one.

    A model with several outputs is scored on the one --output names (default: the first; the
    report says which).

    Examples:

      compress eval sample_models/simple_cnn.pt --data fashion-mnist

      compress eval sample_models/simple_cnn.pt --data fashion-mnist --attack fgsm --eps 0.03

      compress eval small.pt --data fashion-mnist --attack pgd --eps 0.03 --steps 10 --limit 1000

      compress eval seg_and_logits.onnx --data fashion-mnist --output logits
    """

    def action():
        from compressor.api import EvalConfig
        from compressor.api import evaluate as api_eval

        spec = model_spec(path, arch, arch_kwargs, trust_pickle)
        return api_eval(
            spec, EvalConfig(None, data, split, batch_size, limit, attack, eps, steps, alpha, output)
        )

    execute(action, _render, json_out, debug)


def _render(r) -> None:
    console().print(
        f"{r.path} on {r.data} ({r.samples} samples, {r.backend}): "
        f"accuracy [bold]{r.accuracy:.4f}[/], loss {r.loss:.4f}"
    )
    for note in r.notes:
        console().print(f"note: {note}", markup=False)
    if r.attack:
        console().print(f"under {r.attack} eps={r.eps}: robust accuracy [bold]{r.robust_accuracy:.4f}[/]")

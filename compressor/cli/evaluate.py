"""``compress eval``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from compressor.cli.common import (ArchKwargsOpt, ArchOpt, DebugOpt, JsonOpt, ModelArg, TrustPickleOpt,
                                   console, execute, model_spec)


def evaluate(path: ModelArg,
             data: Annotated[str, typer.Option("--data", help="Data to evaluate on (see compress list).")]
             = "fashion-mnist",
             split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
             batch_size: Annotated[int, typer.Option(help="Samples per batch.")] = 256,
             limit: Annotated[Optional[int], typer.Option(help="Evaluate at most N samples.")] = None,
             arch: ArchOpt = None, arch_kwargs: ArchKwargsOpt = None,
             trust_pickle: TrustPickleOpt = False, json_out: JsonOpt = False,
             debug: DebugOpt = False) -> None:
    """Top-1 accuracy and loss of a .pt or .onnx model on a data split.

    Example: compress eval sample_models/simple_cnn.pt --data fashion-mnist
    """

    def action():
        from compressor.api import EvalConfig
        from compressor.api import evaluate as api_eval

        spec = model_spec(path, arch, arch_kwargs, trust_pickle)
        return api_eval(EvalConfig(spec, data, split, batch_size, limit))

    execute(action, _render, json_out, debug)


def _render(r) -> None:
    console().print(f"{r.path} on {r.data} ({r.samples} samples, {r.backend}): "
                    f"accuracy [bold]{r.accuracy:.4f}[/], loss {r.loss:.4f}")

"""The ``compress`` command. Imports typer and the command modules only: no torch at start-up."""

from __future__ import annotations

import typer

from compressor import __version__
from compressor.cli import (
    bench,
    distill,
    evaluate,
    export,
    info,
    listing,
    prune,
    run,
    sensitivity,
    slim,
    sweep,
)

HELP = """Make PyTorch models smaller and faster, and prove it.

A pipeline on a bundled sample model:

  compress prune sample_models/resnet_small.pt --method l1 --ratio 0.5 -o small.pt

  compress export small.pt -o small.onnx

  compress bench small.onnx --profile mobile --max-latency-ms 5

Every command reads a file, writes a file atomically, prints a table on stderr or one JSON
document on stdout (--json), and exits 0 ok, 1 a gate or check failed, 2 bad usage or
unreadable input, 3 operation not possible, 130 interrupted.
"""

app = typer.Typer(
    name="compress",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"compressor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Root options."""


app.command("prune")(prune.prune)
app.command("slim")(slim.slim)
app.command("sensitivity")(sensitivity.sensitivity)
app.command("distill")(distill.distill)
app.command("finetune")(distill.finetune)
app.command("export")(export.export)
app.command("bench")(bench.bench)
app.command("info")(info.info)
app.command("eval")(evaluate.evaluate)
app.command("list")(listing.list_cmd)
app.command("run")(run.run)
app.command("sweep")(sweep.sweep)
app.command("recommend")(sweep.recommend)


def main() -> None:
    """Console-script entry point."""
    app()

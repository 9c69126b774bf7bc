"""Options every command shares, and the one place errors become exit codes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from compressor.errors import EXIT_INTERRUPTED, EXIT_UNSUPPORTED, CompressorError, first_line

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (tables and logs go to stderr).")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
ArchOpt = Annotated[
    Optional[str],
    typer.Option(
        "--arch",
        help="Architecture of a plain state_dict: torchvision:NAME, sample:NAME, timm:NAME "
        "or package.module:factory.",
    ),
]
ArchKwargsOpt = Annotated[
    Optional[str],
    typer.Option("--arch-kwargs", help="Keyword arguments for --arch, e.g. num_classes=10,width_mult=0.5."),
]
TrustPickleOpt = Annotated[
    bool,
    typer.Option(
        "--trust-pickle",
        help="Allow a full pickled nn.Module. Unpickling runs code from the file: only for files you trust.",
    ),
]
InputShapeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--input-shape", help="Example input shape with batch, e.g. 1,3,224,224 (default: the model's)."
    ),
]
DataOpt = Annotated[
    Optional[str],
    typer.Option(
        "--data",
        help="Data: fashion-mnist, digits, cifar10:ROOT, imagefolder:PATH, tensors:FILE, "
        "random[:C,H,W[:CLASSES]].",
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="Where training runs: auto (CUDA when present), cpu or cuda.")]
ModelArg = Annotated[
    str,
    typer.Argument(
        help="Model: a .pt artifact or state_dict, .safetensors, .onnx, or a reference such as "
        "sample:simple_cnn.",
        show_default=False,
        metavar="MODEL",
    ),
]


def model_spec(
    path: str,
    arch: str | None = None,
    arch_kwargs: str | None = None,
    trust_pickle: bool = False,
    input_shape: str | None = None,
):
    """Build the API's ModelSpec from the shared flags."""
    from compressor.api.common import ModelSpec, parse_kwargs, parse_shape

    return ModelSpec(path, arch, parse_kwargs(arch_kwargs), trust_pickle, parse_shape(input_shape))


def execute(
    action: Callable[[], Any],
    render: Callable[[Any], None],
    as_json: bool,
    debug: bool,
    exit_code: Callable[[Any], int] | None = None,
) -> None:
    """Run ``action``; print its result as JSON (stdout) or via ``render`` (stderr); exit.

    CompressorError -> its exit code with one line on stderr; Ctrl-C -> 130; any other
    exception is a bug: one line and exit 3, or the traceback with --debug. Under torchrun
    every process exits with the code but only rank 0 prints (the result or the error).
    """
    main = is_main_process()
    try:
        result = action()
    except CompressorError as exc:
        if debug and main:
            raise
        _fail(f"error: {exc.one_line()}", exc.exit_code, main)
    except KeyboardInterrupt:
        _fail("interrupted: no output was written", EXIT_INTERRUPTED, main)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if debug and main:
            raise
        first = first_line(exc, empty="")
        _fail(
            f"error: unexpected {type(exc).__name__}: {first} (rerun with --debug and report it)",
            EXIT_UNSUPPORTED,
            main,
        )
    if main and as_json:
        sys.stdout.write(json.dumps(result.to_json(), default=str) + "\n")
        sys.stdout.flush()
    elif main:
        render(result)
    code = exit_code(result) if exit_code else 0
    if code:
        raise typer.Exit(code)


def is_main_process() -> bool:
    """Whether this process prints: rank 0 under torchrun (``RANK``), always outside it.

    Read from the environment torchrun sets, so it holds before and after the process group
    exists and needs no torch import (``compress --help`` stays light).
    """
    return os.environ.get("RANK", "0") == "0"


def log_line(line: str) -> None:
    """One human progress line on stderr (rank 0 only under torchrun)."""
    if is_main_process():
        console().print(line)


def _fail(line: str, code: int, show: bool = True) -> None:
    if show:
        sys.stderr.write(line + "\n")
    raise typer.Exit(code)


def human_bytes(n: float) -> str:
    """1234567 -> '1.18 MiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def human_count(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def console():
    """The rich console on stderr."""
    from compressor.progress import stderr_console

    return stderr_console()

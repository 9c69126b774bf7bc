"""Progress bars on stderr (rich), shown only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

_ACTIVE = False  # a bar is on screen (or bars are suppressed in this process)


def stderr_console():
    """The shared rich console for human output (always stderr)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


@contextlib.contextmanager
def progress(total: int, description: str, enabled: bool | None = None) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, **fields)``; renders a bar with ETA on a terminal, nothing otherwise.

    Fields given to ``advance`` (e.g. ``loss=0.31``) are shown after the bar. While a bar is
    shown (e.g. ``compress sweep``'s bar over all points), inner bars stay hidden: a terminal
    shows one live display at a time.
    """
    global _ACTIVE
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or _ACTIVE:
        yield lambda n=1, **fields: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    _ACTIVE = True
    try:
        with Progress(*columns, console=stderr_console(), transient=True) as bar:
            task = bar.add_task(description, total=total, info="")

            def advance(n: int = 1, **fields: float) -> None:
                info = " ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
                )
                bar.update(task, advance=n, info=info)

            yield advance
    finally:
        _ACTIVE = False


def suppress() -> None:
    """Hide every bar in this process (worker processes of a parallel sweep)."""
    global _ACTIVE
    _ACTIVE = True

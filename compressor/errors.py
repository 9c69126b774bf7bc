"""Errors that carry what went wrong, what to do about it, and the exit code.

Exit codes are a contract (README, "Exit codes"):

* 0 ok
* 1 a requested gate or check failed
* 2 bad usage or unreadable input
* 3 the operation could not be done (unsupported model, export failure)
* 130 interrupted
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_UNSUPPORTED = 3
EXIT_INTERRUPTED = 130


class CompressorError(Exception):
    """Base error: a one-line message, an optional hint, and an exit code."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def one_line(self) -> str:
        """The message and the hint on one line, as the CLI prints it."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(CompressorError):
    """Bad flags or values: exit 2."""

    exit_code = EXIT_USAGE


class InputError(CompressorError):
    """A file or data source that cannot be read or does not fit: exit 2."""

    exit_code = EXIT_USAGE


class UnsupportedError(CompressorError):
    """The operation cannot be done on this model or platform: exit 3."""

    exit_code = EXIT_UNSUPPORTED


class CheckFailed(CompressorError):
    """A gate or verification the user asked for did not pass: exit 1."""

    exit_code = EXIT_CHECK_FAILED


def few(items: list[str], n: int = 3) -> str:
    """The first ``n`` items, comma-separated, and how many more there are."""
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def first_line(exc: BaseException, limit: int | None = 200, empty: str | None = None) -> str:
    """The first line of ``exc``'s message, cut to ``limit`` characters (None: whole), for a report.

    An empty message gives ``empty``, or the exception's type name when ``empty`` is None.
    """
    text = str(exc).strip()
    if not text:
        return type(exc).__name__ if empty is None else empty
    return text.splitlines()[0][:limit]


def forward_failure(
    exc: BaseException, shape: tuple[int, ...], error: type[CompressorError] | None = None
) -> CompressorError:
    """The error for a forward pass that failed on the example input of ``shape`` (exit 3 unless
    ``error`` says otherwise): a forward that wants more than one tensor is named as such."""
    first = first_line(exc, 160)
    kind = error or UnsupportedError
    if isinstance(exc, TypeError) and "positional argument" in first:
        return kind(
            f"the model's forward needs other inputs than one tensor ({first})",
            "wrap it in a module whose forward takes one tensor and name that module's "
            "factory as package.module:factory",
        )
    return kind(
        f"the model's forward pass fails on input shape {shape}: {first}",
        "pass the right --input-shape, e.g. 1,3,224,224",
    )


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The closest valid name to ``value``, or None when nothing is close."""
    match = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.5)
    return match[0] if match else None


def unknown_name(kind: str, value: str, choices: Iterable[str]) -> UsageError:
    """A UsageError for an unknown name that lists valid ones and suggests the closest."""
    choices = sorted(choices)
    near = closest(value, choices)
    hint = f"did you mean '{near}'? " if near else ""
    return UsageError(f"unknown {kind} '{value}'", f"{hint}valid: {', '.join(choices)}")

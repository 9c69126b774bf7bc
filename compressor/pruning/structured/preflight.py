"""Preflight: a bounded check, before any channel is removed, that names what blocks pruning.

Structured pruning goes through torch-pruning's dependency graph. When the graph cannot follow a
model (an operation it does not know, a reshape to a fixed width, a parameter used outside a
layer), the failure used to surface deep inside pruning or, worse, as a model that no longer runs.
The preflight runs first, on a copy, within :data:`PREFLIGHT_SECONDS`:

1. ``--ignore`` patterns must each match a layer (else exit 2 with the closest layer names);
2. the forward pass must run on the example input (a forward that needs more than one tensor is
   named as such, by :func:`graph.run_forward`);
3. at least one conv/linear layer must be left to prune;
4. a trial cut: every coupled group loses a few channels at once and the copy must still run and
   return outputs of the same shapes. When it does not, the groups are cut one by one on a fresh
   copy to name the first group that breaks, with the ``--ignore`` pattern that skips it.

Every refusal is exit 3 (:class:`UnsupportedError`) with the reason and the fix; nothing is written.
"""

from __future__ import annotations

import copy
import fnmatch
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compressor import outputs
from compressor.errors import UnsupportedError, UsageError, closest, first_line
from compressor.pruning.structured import graph

PREFLIGHT_SECONDS = 15.0  # a refusal arrives within this; a model that passes may take longer to prune
TRIAL_RATIO = 0.25  # channels cut per group in the trial: enough to cut every group by >= 1 channel


class PreflightTimeout(BaseException):
    """The preflight's deadline passed (raised by the alarm inside a long step).

    A BaseException, like KeyboardInterrupt, so that handlers of ordinary failures (the tracer's
    ``except Exception``, a model's own code) let it through to :func:`run`, which then gives no
    verdict instead of reporting the interruption as the model's failure.
    """


@dataclass
class Deadline:
    """Seconds left of the preflight's budget."""

    seconds: float = PREFLIGHT_SECONDS
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def check(self) -> None:
        if self.left() <= 0:
            raise PreflightTimeout


@contextmanager
def alarm(deadline: Deadline) -> Iterator[None]:
    """Interrupt a step that runs past ``deadline`` (main thread only; elsewhere steps run unbounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(signum: int, frame: Any) -> None:
        raise PreflightTimeout

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(deadline.left(), 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_ignore_patterns(model: nn.Module, patterns: Iterable[str]) -> None:
    """Each ``--ignore`` pattern must match at least one module (exit 2 naming the closest ones)."""
    names = [n for n, _ in model.named_modules() if n]
    for pattern in patterns:
        if not any(fnmatch.fnmatch(n, pattern) for n in names):
            near = closest(pattern, names)
            hint = f"did you mean '{near}'? " if near else ""
            raise UsageError(
                f"--ignore '{pattern}' matches no layer of the model",
                f"{hint}compress info MODEL lists the layer names",
            )


def run(
    model: nn.Module,
    example: Any,
    ignored: Iterable[str],
    patterns: Iterable[str] = (),
    *,
    round_to: int | None = None,
    allowed: Iterable[str] = (),
    seconds: float = PREFLIGHT_SECONDS,
) -> None:
    """Refuse (exit 3, or 2 for bad ``--ignore`` patterns) when the model cannot be pruned as asked.

    Args:
        model: the model to prune (not changed: the trial runs on a copy).
        example: its example input.
        ignored: qualified names of layers kept unpruned (heads, ``--ignore``, residual stream).
        patterns: the user's ``--ignore`` patterns (checked against the layer names).
        round_to: the channel multiple pruning will use.
        allowed: outputs the user lets change shape (``--allow-output-change``).
        seconds: the time budget; past it the trial stops and pruning goes ahead.
    """
    check_ignore_patterns(model, patterns)
    ignored = list(ignored)
    allowed = set(allowed)
    reference = {
        n: shape for n, shape in outputs.shapes(graph.run_forward(model, example)).items() if n not in allowed
    }
    kept = set(ignored)
    if not any(isinstance(m, graph.PRUNABLE) and n not in kept for n, m in model.named_modules()):
        raise UnsupportedError(
            "the model has no layer structured pruning can cut (no conv or linear "
            "layer outside the kept ones)",
            "check --ignore, or use an unstructured method for other layer types",
        )
    deadline = Deadline(seconds)
    try:
        with alarm(deadline):
            failure = _trial(model, example, ignored, round_to, reference, deadline, None)
            if failure is None:
                return
            culprit = _locate(model, example, ignored, round_to, reference, deadline)
    except PreflightTimeout:
        return  # no verdict in time: pruning goes ahead and reports its own failure, if any
    _refuse(failure, culprit)


def _refuse(failure: str, culprit: str | None) -> None:
    if culprit is None:
        raise UnsupportedError(
            f"structured pruning would break this model: {failure}",
            "--ignore the blocks that hold the failing part, or use an unstructured "
            "method such as --method magnitude",
        )
    raise UnsupportedError(
        f"cutting channels of '{culprit}' breaks the model: {failure}",
        f"add --ignore '{culprit}' (its group is then kept), or use an unstructured "
        "method such as --method magnitude",
    )


def _trial(
    model: nn.Module,
    example: Any,
    ignored: list[str],
    round_to: int | None,
    reference: dict[str, list[int]],
    deadline: Deadline,
    stop_after: Callable[[str], bool] | None,
) -> str | None:
    """Cut every group (or, with ``stop_after``, one group at a time) on a copy; the failure, if any.

    ``stop_after(group_name)`` is called after each single cut; it returns True to stop there.
    """
    trial = copy.deepcopy(model)
    importance = _first_channels
    with graph.tracer_errors():
        pruners = graph.make_pruners(
            trial, example, importance, ratio=TRIAL_RATIO, round_to=round_to, ignored=ignored
        )
    names = {m: n for n, m in trial.named_modules()}
    for pruner in pruners:
        for group in pruner.step(interactive=True):
            deadline.check()
            group.prune()
            if stop_after is None:
                continue
            root, _ = graph._out_root(pruner, group)
            failure = _runs(trial, example, reference)
            if failure is not None and stop_after(names.get(root, "?")):
                return failure
    return _runs(trial, example, reference)


def _locate(
    model: nn.Module,
    example: Any,
    ignored: list[str],
    round_to: int | None,
    reference: dict[str, list[int]],
    deadline: Deadline,
) -> str | None:
    """The first group whose cut alone breaks the model (cuts applied one by one on a fresh copy)."""
    found: list[str] = []

    def stop(name: str) -> bool:
        found.append(name)
        return True

    _trial(model, example, ignored, round_to, reference, deadline, stop)
    return found[0] if found else None


def _runs(model: nn.Module, example: Any, reference: dict[str, list[int]]) -> str | None:
    """None when ``model`` runs and returns outputs shaped like ``reference``; else what went wrong."""
    graph.sync_attributes(model)
    try:
        with torch.no_grad():
            model.eval()
            out = model(*example) if isinstance(example, tuple) else model(example)
    except PreflightTimeout:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the cut model is the finding
        return f"the forward pass fails after the cut ({type(exc).__name__}: {first_line(exc, 140)})"
    changed = outputs.changes(reference, {n: v for n, v in outputs.shapes(out).items() if n in reference})
    if changed:
        name, change = next(iter(changed.items()))
        return f"output '{name}' changes shape: {change}"
    return None


def _first_channels(group: Any, **_: Any) -> torch.Tensor:
    """A trial importance: channel index order (the cut takes the last channels; any choice would do)."""
    width = len(group[0][1])
    return torch.arange(width, 0, -1, dtype=torch.float32)

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
   copy to name the first group that breaks it. That group is kept (as ``--ignore`` would keep it),
   with the same layer of each other block of its block's class whose cut breaks the model
   too (:meth:`_Cuts.breaking_twins`), and the search repeats, up to :data:`KEEP_AT_MOST`
   searches; the kept groups are returned with the reason, for the report. With ``strict`` (``--strict``) it refuses instead, naming the group
   and the ``--ignore`` pattern that keeps it; past that many groups it refuses naming them all.

Every refusal is exit 3 (:class:`UnsupportedError`) with the reason and the fix; nothing is written.
All searches share the one deadline: the preflight takes :data:`PREFLIGHT_SECONDS` at most.

A cut that can be undone (one step, no budget, not strict) runs before the trial: the caller asks
for the checks 1-3 alone (``search=False``), cuts, checks the cut with :func:`cut_failure`, and runs
the search only when the cut breaks the model (``norm._prune_keeping``).
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
from typing import TYPE_CHECKING, Any, NoReturn

import torch
from torch import nn

from compressor import outputs
from compressor.errors import UnsupportedError, UsageError, closest, first_line
from compressor.pruning.structured import graph

if TYPE_CHECKING:
    from compressor.pruning.base import PruneConfig

PREFLIGHT_SECONDS = 15.0  # a refusal arrives within this; a model that passes may take longer to prune
TRIAL_RATIO = 0.25  # channels cut per group in the trial: enough to cut every group by >= 1 channel
# Searches for a group whose cut breaks the model before the preflight refuses: a model needing
# more is not one structured pruning follows (timm's convit_tiny needs 3 at 96x96). Each search
# keeps one group, with the same layer of the other blocks of its class where each breaks it too.
KEEP_AT_MOST = 8
KEPT_REASON = "cutting it breaks the model"
# The search once more, when a cut broke a model whose preflight ran out of time before it had
# tried every group (a large model on a loaded machine: timm's cait_xxs24 needs about 70 s).
LATE_SECONDS = 240.0


CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)  # no forward of their own to repeat
TWINS_AT_MOST = 16  # twins of a breaking layer tried one by one (NesT has 11)


class Kept(dict[str, str]):
    """Layers to keep unpruned (name -> why); ``complete`` is False when the deadline stopped the
    search before it had a verdict, or no search ran (more groups may break the model when cut).
    ``searched`` is False when no search ran; ``reference``: the output shapes a cut must keep."""

    complete: bool = True
    searched: bool = True  # False: only the checks before the trial cut ran
    reference: dict[str, list[int]] | None = None


class PreflightTimeout(BaseException):
    """The preflight's deadline passed (raised by the alarm inside a long step).

    An interrupt, like ``KeyboardInterrupt``: the alarm can ring inside torch-pruning's trace, whose
    ``except Exception`` handlers (ours in :func:`graph.tracer_errors` among them) would otherwise
    turn a slow trace into a refusal of a model that prunes."""


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


def kept_layers(handle: Any, cfg: PruneConfig, seconds: float | None = None, search: bool = True) -> Kept:
    """Every layer structured pruning of ``handle`` as ``cfg`` asks must keep (name -> why): the
    user's ``--ignore``, the layers that make the outputs and the residual streams
    (:func:`graph.ignored_layers`), then the groups whose cut breaks the model (:func:`run`,
    which refuses first when the model cannot be pruned at all, within ``seconds``: by default
    :data:`PREFLIGHT_SECONDS`; without ``search``, only the checks before the trial cut)."""
    model, example = handle.module, handle.example_input()
    reasons = graph.ignored_layers(
        model, example, cfg.ignore, cfg.keep_residual, cfg.allow_output_change, handle.ref
    )
    found = run(
        model,
        example,
        reasons,
        cfg.ignore,
        round_to=cfg.round_to,
        allowed=cfg.allow_output_change,
        seconds=PREFLIGHT_SECONDS if seconds is None else seconds,
        strict=cfg.strict,
        search=search,
    )
    kept = Kept({**reasons, **found})
    kept.complete, kept.searched, kept.reference = found.complete, found.searched, found.reference
    return kept


def run(
    model: nn.Module,
    example: Any,
    ignored: Iterable[str],
    patterns: Iterable[str] = (),
    *,
    round_to: int | None = None,
    allowed: Iterable[str] = (),
    seconds: float = PREFLIGHT_SECONDS,
    strict: bool = False,
    search: bool = True,
) -> Kept:
    """Refuse (exit 3, or 2 for bad ``--ignore`` patterns) when the model cannot be pruned as asked.

    Args:
        model: the model to prune (not changed: the trial runs on a copy).
        example: its example input.
        ignored: qualified names of layers kept unpruned (heads, ``--ignore``, residual stream).
        patterns: the user's ``--ignore`` patterns (checked against the layer names).
        round_to: the channel multiple pruning will use.
        allowed: outputs the user lets change shape (``--allow-output-change``).
        seconds: the time budget of every search together; past it the preflight stops and
            pruning goes ahead (with the groups found so far kept).
        strict: refuse at the first group whose cut breaks the model instead of keeping it.
        search: run the trial cut and the searches (False: the checks before them only; the
            caller cuts first and checks the cut with :func:`cut_failure`).

    Returns:
        Layers to keep unpruned besides ``ignored`` (name -> why): the groups whose cut breaks the
        model, found in at most :data:`KEEP_AT_MOST` searches. Pruning must keep them too. Not ``complete`` when
        the deadline stopped the search or none ran; ``reference``: the output shapes to keep.
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
    found = Kept()
    found.reference = reference
    if not search:
        found.complete = found.searched = False
        return found
    cuts = _Cuts(model, example, round_to, reference, Deadline(seconds))
    try:
        with alarm(cuts.deadline):
            cuts.keep_breaking(ignored, strict, found)
    except PreflightTimeout:  # no (further) verdict in time: pruning goes ahead (see Kept)
        found.complete = False
    return found


@dataclass
class _Cuts:
    """Trial cuts of one model on copies: what every search shares (the example input, the
    channel multiple, the output shapes to keep and the one deadline)."""

    model: nn.Module
    example: Any
    round_to: int | None
    reference: dict[str, list[int]]
    deadline: Deadline

    def keep_breaking(self, ignored: list[str], strict: bool, found: dict[str, str]) -> None:
        """Add to ``found``, one search at a time, each group whose cut breaks the model; refuse
        when one cannot be kept (strict, no name, already kept, or past :data:`KEEP_AT_MOST` searches).
        ``found`` is the caller's, so the groups found before the deadline rings are kept.

        The first trial cuts every group at once (one forward: the usual, passing case); each
        search after it cuts the groups one by one and ends on the whole cut, so it also says when
        all pass.
        """
        if self.trial(ignored) is None:
            return
        searches = 0
        while True:
            culprit, failure = self.locate(ignored + list(found))
            if failure is None:
                return
            if strict or culprit is None or culprit in found or searches >= KEEP_AT_MOST:
                _refuse(failure, culprit, found)
            searches += 1
            found[culprit] = f"{KEPT_REASON}: {failure}"
            for twin in self.breaking_twins(culprit, ignored + list(found)):
                found[twin] = (
                    f"{KEPT_REASON} (as '{culprit}', the same layer of the same block type): {failure}"
                )

    def breaking_twins(self, culprit: str, kept: list[str]) -> list[str]:
        """The same layer as ``culprit`` in the other blocks of its block's class (not yet
        ``kept``) whose cut alone breaks the model too (one trial each, at most :data:`TWINS_AT_MOST`
        twins: past that, none).

        A block's forward breaks alike wherever the block repeats (timm NesT's attention reshapes
        ``qkv`` to the width of its input, in each of its 12 blocks): one trial per twin costs less
        than a search each. A twin whose cut runs (only the last block's output is read at a fixed
        width) is not kept. A block is a module with a forward of its own and at least two
        layers to cut, not a container nor a layer wrapper (TResNet's ``ConvNormAct``: what breaks
        is outside it)."""
        parent, _, attr = culprit.rpartition(".")
        modules = dict(self.model.named_modules())
        block = modules.get(parent)
        if not parent or isinstance(block, CONTAINERS) or type(block).forward is nn.Module.forward:
            return []
        if sum(isinstance(m, graph.PRUNABLE) for m in block.modules()) < 2:
            return []  # a layer wrapper: the cut breaks what reads it, outside the block
        twins = [f"{name}.{attr}" for name, m in modules.items() if type(m) is type(block) and name != parent]
        twins = [t for t in twins if isinstance(modules.get(t), graph.PRUNABLE) and t not in kept]
        if len(twins) > TWINS_AT_MOST:
            return []
        prunable = [name for name, m in modules.items() if isinstance(m, graph.PRUNABLE)]
        breaking = []
        for twin in twins:
            try:
                if self.trial([name for name in prunable if name != twin]) is not None:
                    breaking.append(twin)
            except UnsupportedError:  # the graph cannot cut it on its own: no verdict, not kept
                continue
        return breaking

    def trial(self, ignored: list[str], stop_after: Callable[[str | None], bool] | None = None) -> str | None:
        """Cut every group (or, with ``stop_after``, one group at a time) on a copy; the failure,
        if any. ``stop_after(group_name)`` is called after each single cut; True stops there."""
        trial = copy.deepcopy(self.model)
        with graph.tracer_errors():
            pruners = graph.make_pruners(
                trial,
                self.example,
                _first_channels,
                ratio=TRIAL_RATIO,
                round_to=self.round_to,
                ignored=ignored,
            )
        names = {m: n for n, m in trial.named_modules()}
        with graph.tracer_errors():  # torch-pruning's ranking and cutting can fail as its trace can
            for pruner in pruners:
                for group in pruner.step(interactive=True):
                    self.deadline.check()
                    group.prune()
                    if stop_after is None:
                        continue
                    root, _ = graph._out_root(pruner, group)
                    failure = _runs(trial, self.example, self.reference)
                    if failure is not None and stop_after(names.get(root) if root is not None else None):
                        return failure
        return _runs(trial, self.example, self.reference)

    def locate(self, ignored: list[str]) -> tuple[str | None, str | None]:
        """The first group whose cut breaks the model (cuts applied one by one on a fresh copy) and
        how it breaks; ``(None, failure)`` when only the whole cut breaks it; ``(None, None)`` when
        it runs."""
        found: list[str | None] = []

        def stop(name: str | None) -> bool:
            found.append(name)
            return True

        failure = self.trial(ignored, stop)
        return (found[0] if found else None), failure


def _refuse(failure: str, culprit: str | None, found: dict[str, str]) -> NoReturn:
    """Exit 3: the group that breaks the model (and those kept before it), or the failure alone
    when no one group is to blame (or keeping it did not help)."""
    if culprit is None or culprit in found:
        raise UnsupportedError(
            f"structured pruning would break this model: {failure}",
            "--ignore the blocks that hold the failing part, or use an unstructured "
            "method such as --method magnitude",
        )
    message = f"cutting channels of '{culprit}' breaks the model: {failure}"
    if not found:
        raise UnsupportedError(
            message,
            f"add --ignore '{culprit}' (its group is then kept), or use an unstructured "
            "method such as --method magnitude",
        )
    names = [*found, culprit]
    raise UnsupportedError(
        message,
        f"{len(names)} groups break it when cut ({', '.join(names)}), found in more than the "
        f"{KEEP_AT_MOST} searches the preflight makes: use an unstructured method such as --method magnitude, or --ignore "
        "each of them (more may follow)",
    )


def cut_failure(model: nn.Module, example: Any, kept: Kept) -> str | None:
    """How the cut ``model`` breaks (it fails to run, or an output of ``kept.reference`` changed
    shape); None when it runs as the preflight requires."""
    was_training = model.training
    try:
        return _runs(model, example, kept.reference or {})
    finally:
        model.train(was_training)


def _runs(model: nn.Module, example: Any, reference: dict[str, list[int]]) -> str | None:
    """None when ``model`` runs and returns outputs shaped like ``reference``; else what went wrong."""
    graph.sync_attributes(model)
    try:
        with torch.no_grad():
            model.eval()
            out = model(*example) if isinstance(example, tuple) else model(example)
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

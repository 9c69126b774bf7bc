"""Running a parsed recipe: each step in order, its output the next step's input.

The engine knows the order, the output folder and the bookkeeping; what a step does is given by
the caller as one runner per step kind (:mod:`compressor.api.recipe` passes the API functions),
so this package sits below the API and never imports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.errors import CompressorError
from compressor.recipe.parse import MODEL_STEPS, Recipe, Step

StepRunner = Callable[[Step, Callable[[str], None]], tuple[dict[str, Any], list[dict[str, Any]]]]
"""``runner(step, log) -> (figures, gates)``: run one step, return its flat figures and gate rows."""


@dataclass(frozen=True)
class RecipeResult:
    """Per-step figures, the merged flat metrics, and the gates of every bench step."""

    output_dir: str
    model: str
    steps: list[dict[str, Any]]
    metrics: dict[str, Any]
    gates: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every gate of every bench step passed."""
        return all(g["passed"] for g in self.gates)

    def to_json(self) -> dict[str, Any]:
        """Flat metrics first, then the steps and gates."""
        return {
            "output_dir": self.output_dir,
            "model": self.model,
            **self.metrics,
            "meta": self.meta,
            "steps": self.steps,
            "gates": self.gates,
            "gates_passed": self.passed,
        }


def run_steps(
    recipe: Recipe, runners: Mapping[str, StepRunner], log: Callable[[str], None] = lambda line: None
) -> RecipeResult:
    """Run every step in order with ``runners[step.kind]``; a failing step's error names the step.

    The exit code of a step's error is kept. A run that fails before writing anything leaves no
    output folder behind.
    """
    import torch

    from compressor.io.atomic import check_writable

    folder = Path(recipe.output_dir)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    check_writable(folder / "probe")
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    try:
        return _run_steps(recipe, runners, log)
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()  # a recipe that failed before writing anything leaves nothing behind
        raise


def _run_steps(recipe: Recipe, runners: Mapping[str, StepRunner], log: Callable[[str], None]) -> RecipeResult:
    metrics: dict[str, Any] = {}
    rows, gates, model = [], [], recipe.model.path
    for index, step in enumerate(recipe.steps, 1):
        log(f"step {index}/{len(recipe.steps)}: {step.kind}")
        start = time.perf_counter()
        try:
            figures, step_gates = runners[step.kind](step, log)
        except CompressorError as exc:
            raise type(exc)(f"step {index} ({step.kind}): {exc.message}", exc.hint, exc.exit_code) from exc
        metrics.update(figures)
        gates += step_gates
        rows.append(
            {
                "step": index,
                "kind": step.kind,
                "output": step.output,
                **figures,
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
        if step.kind in MODEL_STEPS:
            model = step.output
    return RecipeResult(recipe.output_dir, model, rows, metrics, gates, recipe.meta)

"""``compress run RECIPE.yaml``: a recipe's steps run through the API functions.

Parsing and the step engine live in :mod:`compressor.recipe`; here each step kind is mapped to
the API call that runs it (the same functions as the commands).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from compressor.api.bench import bench
from compressor.api.distill import distill
from compressor.api.evaluate import evaluate
from compressor.api.export import export
from compressor.api.info import info
from compressor.api.prune import prune
from compressor.api.slim import slim
from compressor.recipe.parse import Recipe, Step, load_recipe, parse_recipe
from compressor.recipe.run import RecipeResult, StepRunner, run_steps

__all__ = ["Recipe", "RecipeResult", "load_recipe", "parse_recipe", "run_recipe", "STEP_RUNNERS"]


def run_recipe(recipe: Recipe, log: Callable[[str], None] = lambda line: None) -> RecipeResult:
    """Run every step of ``recipe`` in order; a failing step's error names the step (exit code kept)."""
    return run_steps(recipe, STEP_RUNNERS, log)


def _run_prune(step: Step, log) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = prune if step.kind == "prune" else slim
    r = run(step.model, step.config, step.output, progress=log, measure_input=False)
    figures = {**r.after, "method": r.method, "method_kind": r.kind, "baseline_params": r.before["params"]}
    if "target_kind" in r.figures:  # a budget: what it asked for, what was measured, landed or not
        figures.update(
            {
                "target": r.figures["target"],
                "target_kind": r.figures["target_kind"],
                "landed": r.figures["landed"],
                "target_factor": r.figures["target_factor"],
                "target_measured_factor": r.figures["measured_factor"],
                "target_attempts": r.figures["attempts"],
            }
        )
    return figures, []


def _run_train(step: Step, log) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    r = distill(step.config.student, step.config, step.output)
    return {"accuracy": r.accuracy_after, "train_seconds": r.train_seconds}, []


def _run_eval(step: Step, log) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    r = evaluate(step.model, step.config)
    if r.attack is None:
        return {"accuracy": r.accuracy, "loss": r.loss}, []
    return {
        "robust_accuracy": r.robust_accuracy,
        "robust_clean_accuracy": r.accuracy,
        "robust_samples": r.samples,
        "attack": r.attack,
        "eps": r.eps,
    }, []


def _run_info(step: Step, log) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    r = info(step.model)
    return {
        k: getattr(r, k)
        for k in ("params", "nonzero_params", "sparsity", "macs", "size_bytes", "compressed_bytes")
    }, []


def _run_export(step: Step, log) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    f = export(step.model, step.config, progress=log).figures
    return {
        "onnx": step.output,
        "onnx_size_bytes": f["size_bytes"],
        "onnx_compressed_bytes": f["compressed_bytes"],
        "parity_passed": f.get("parity_passed"),
    }, []


def _run_bench(step: Step, log) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    r = bench(step.model, step.config)
    doc, name = r.to_json(), r.profile.name
    figures = {
        f"{k}_{name}": doc[k]
        for k in ("latency_ms_p50", "latency_ms_p90", "latency_ms_iqr", "throughput_samples_per_s", "runs")
        if k in doc
    }
    figures[f"backend_{name}"] = doc["backend"]
    if r.speedup is not None:
        figures[f"speedup_{name}"] = r.speedup
    return figures, [{"profile": name, **asdict(g)} for g in r.gates]


STEP_RUNNERS: dict[str, StepRunner] = {
    "prune": _run_prune,
    "slim": _run_prune,
    "finetune": _run_train,
    "distill": _run_train,
    "eval": _run_eval,
    "info": _run_info,
    "export": _run_export,
    "bench": _run_bench,
}

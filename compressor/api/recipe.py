"""``compress run RECIPE.yaml``: chain steps with the same typed configs the CLI and the API use.

A recipe names a model, default data, an output folder and a list of steps; each step is one
mapping ``{KIND: {settings}}`` whose settings are exactly the fields of that command's config:

* ``prune``: :class:`compressor.pruning.base.PruneConfig`; ``slim``: :class:`SlimConfig`;
* ``finetune``: :class:`compressor.train.TrainConfig` fields plus ``data``, ``eval_limit``;
  ``distill``: the same plus ``teacher`` (``input`` = the recipe's model), ``temperature``, ``alpha``;
* ``eval``: :class:`EvalConfig` (``attack``/``eps``: robustness); ``info``: no settings;
* ``export``: :class:`compressor.export.config.ExportConfig` (``output`` relative to the folder);
* ``bench``: ``profile`` plus any :class:`Profile` field, ``gates`` (a mapping of gate names),
  ``data``, ``eval_limit``, ``baseline`` (a path or ``input``), ``plot``.

Every model step writes ``NN_KIND.pt`` into the output folder and the next step reads it (prune and
slim report the accuracy after, not before: put an ``eval`` step first for the input's); ``bench``
measures the latest export (else the latest .pt). Unknown keys are errors naming the closest valid
key; the whole recipe is validated before the first step runs. Paths are read as on the command
line (relative to the current folder), except step outputs (relative to the output folder).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from compressor.api.common import ModelSpec
from compressor.errors import CompressorError, InputError, UsageError, unknown_name
from compressor.typed import build, check_keys, field_names

TOP_KEYS = ("model", "arch", "arch_kwargs", "data", "output_dir", "threads", "meta", "steps")
MODEL_STEPS = ("prune", "slim", "finetune", "distill")
STEP_KINDS = MODEL_STEPS + ("eval", "info", "export", "bench")
BENCH_KEYS = ("profile", "gates", "data", "eval_limit", "baseline", "plot")


@dataclass(frozen=True)
class Step:
    """One parsed step: its kind, its typed config, the model it reads and the file it writes."""

    kind: str
    config: Any
    model: ModelSpec | None = None
    output: str | None = None


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: the input model, the output folder and the typed steps.

    Attributes:
        model: the input model (as on the command line).
        output_dir: folder for every step's output.
        steps: the parsed steps, in order.
        threads: torch intra-op threads for the whole run (None: torch's default); pin it to
            reproduce figures exactly, since float sums depend on the thread count.
        meta: free-form labels (a sweep stores method and level here); not interpreted.
        source: the mapping the recipe was parsed from (what ``compress sweep`` writes out).
    """

    model: ModelSpec
    output_dir: str
    steps: tuple[Step, ...]
    threads: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)


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
        return {"output_dir": self.output_dir, "model": self.model, **self.metrics, "meta": self.meta,
                "steps": self.steps, "gates": self.gates, "gates_passed": self.passed}


def load_recipe(path: str | Path, output_dir: str | None = None) -> Recipe:
    """Read and validate a YAML recipe; ``output_dir`` overrides the recipe's own."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise InputError(f"recipe {file} does not exist", "pass a .yaml file, see compress run --help")
    try:
        mapping = yaml.safe_load(file.read_text(errors="replace"))
    except yaml.YAMLError as exc:
        raise InputError(f"{file}: not valid YAML ({str(exc).splitlines()[0]})") from None
    default_dir = str(file.with_suffix("")) + "_out"
    return parse_recipe(mapping, output_dir or (mapping or {}).get("output_dir") or default_dir, str(file))


def parse_recipe(mapping: Any, output_dir: str | None = None, where: str = "recipe") -> Recipe:
    """Validate a recipe mapping into typed steps (nothing runs, nothing is written)."""
    if not isinstance(mapping, dict):
        raise InputError(f"{where}: a recipe is a mapping with 'model' and 'steps'",
                         "see compress run --help for an example")
    check_keys(mapping, list(TOP_KEYS), where)
    for key in ("model", "steps"):
        if key not in mapping:
            raise UsageError(f"{where}: missing '{key}'", "see compress run --help for an example")
    out = output_dir or mapping.get("output_dir")
    if not out:
        raise UsageError(f"{where}: no output folder", "add output_dir: PATH (or --output-dir)")
    model = ModelSpec(str(mapping["model"]), mapping.get("arch"), dict(mapping.get("arch_kwargs") or {}))
    steps_raw = mapping["steps"]
    if not isinstance(steps_raw, list) or not steps_raw:
        raise UsageError(f"{where}: 'steps' must be a non-empty list", "e.g. steps: [{prune: {...}}]")
    threads = mapping.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UsageError(f"{where}: 'threads' must be a positive integer, got {threads!r}")
    parser = _Parser(model, str(out), mapping.get("data"), where)
    steps = tuple(parser.step(i, raw) for i, raw in enumerate(steps_raw, 1))
    return Recipe(model, str(out), steps, threads, dict(mapping.get("meta") or {}), dict(mapping))


class _Parser:
    """Turns step mappings into typed configs, chaining each model step's output to the next."""

    def __init__(self, model: ModelSpec, output_dir: str, data: str | None, where: str) -> None:
        self.input, self.current, self.out, self.data, self.where = model, model, output_dir, data, where
        self.onnx: str | None = None

    def step(self, index: int, raw: Any) -> Step:
        if not isinstance(raw, dict) or len(raw) != 1:
            raise UsageError(f"{self.where}: step {index} must be one mapping {{KIND: {{settings}}}}",
                             f"KIND is one of {', '.join(STEP_KINDS)}")
        kind, settings = next(iter(raw.items()))
        if kind not in STEP_KINDS:
            raise unknown_name(f"step kind in {self.where} step {index}", str(kind), STEP_KINDS)
        if not isinstance(settings or {}, dict):
            raise UsageError(f"{self.where} step {index} ({kind}): settings must be a mapping",
                             f"e.g. - {kind}: {{...}}")
        settings = dict(settings or {})
        where = f"{self.where} step {index} ({kind})"
        step = getattr(self, f"_{kind}")(settings, where, self._path(f"{index:02d}_{kind}"))
        if kind in MODEL_STEPS:
            self.current = ModelSpec(step.output)
        return step

    def _path(self, stem: str, suffix: str = ".pt") -> str:
        return str(Path(self.out) / f"{stem}{suffix}")

    def _with_data(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {"data": self.data, **settings} if self.data else settings

    def _prune(self, settings, where, out) -> Step:
        from compressor.pruning.base import PruneConfig

        return Step("prune", build(PruneConfig, self._with_data(settings), where), self.current, out)

    def _slim(self, settings, where, out) -> Step:
        from compressor.api.slim import SlimConfig

        return Step("slim", build(SlimConfig, self._with_data(settings), where), self.current, out)

    def _finetune(self, settings, where, out, extra: tuple[str, ...] = ()) -> Step:
        from compressor.api.distill import DistillConfig
        from compressor.train.loop import TrainConfig

        settings = self._with_data(settings)
        own = ("data", "eval_limit") + extra
        check_keys(settings, field_names(TrainConfig) + list(own), where)
        train = build(TrainConfig, {k: v for k, v in settings.items() if k not in own}, where)
        rest = {k: v for k, v in settings.items() if k in own}
        if rest.get("teacher") is not None:
            rest["teacher"] = self.input if rest["teacher"] == "input" else ModelSpec(str(rest["teacher"]))
        if "data" not in rest:
            raise UsageError(f"{where}: no data", "add data: fashion-mnist (here or at the top)")
        cfg = build(DistillConfig, rest, where, student=self.current, train=train)
        return Step("distill" if extra else "finetune", cfg, self.current, out)

    def _distill(self, settings, where, out) -> Step:
        if "teacher" not in settings:
            raise UsageError(f"{where}: no teacher", "add teacher: input (the recipe's model) or a path")
        return self._finetune(settings, where, out, ("teacher", "temperature", "alpha"))

    def _eval(self, settings, where, out) -> Step:
        from compressor.api.evaluate import EvalConfig

        return Step("eval", build(EvalConfig, self._with_data(settings), where, model=self.current),
                    self.current)

    def _info(self, settings, where, out) -> Step:
        check_keys(settings, [], where)
        return Step("info", None, self.current)

    def _export(self, settings, where, out) -> Step:
        from compressor.export.config import ExportConfig

        target = settings.get("output") or Path(out).with_suffix(".onnx").name
        settings = {**self._with_data(settings), "output": str(Path(self.out) / str(target))}
        cfg = build(ExportConfig, settings, where)
        self.onnx = cfg.output
        return Step("export", cfg, self.current, cfg.output)

    def _bench(self, settings, where, out) -> Step:
        from compressor.api.bench import BenchConfig
        from compressor.bench.gates import spec_from_mapping
        from compressor.bench.profiles import Profile, get_profile

        overrides = field_names(Profile, ("name", "summary"))
        check_keys(settings, list(BENCH_KEYS) + overrides, where)
        profile = get_profile(str(settings.get("profile", "mobile")))
        build(Profile, {k: v for k, v in settings.items() if k in overrides}, where,
              name=profile.name, summary=profile.summary)  # type-checks the overrides
        profile = replace(profile, **{k: settings[k] for k in overrides if k in settings})
        gates = spec_from_mapping(settings.get("gates") or {}, where)
        data = settings.get("data") or (self.data if (gates.min_accuracy is not None or
                                                      gates.max_accuracy_drop is not None) else None)
        base = settings.get("baseline")
        baseline = None if base is None else (self.input if base == "input" else ModelSpec(str(base)))
        model = ModelSpec(self.onnx) if self.onnx else self.current
        cfg = BenchConfig(model, profile, baseline, gates, data, settings.get("eval_limit"),
                          str(Path(self.out) / settings["plot"]) if settings.get("plot") else None)
        return Step("bench", cfg, model)


def run_recipe(recipe: Recipe, log: Callable[[str], None] = lambda line: None) -> RecipeResult:
    """Run every step in order; a failing step's error names the step (exit code kept)."""
    import torch

    from compressor.io.atomic import check_writable

    folder = Path(recipe.output_dir)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    check_writable(folder / "probe")
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    try:
        return _run_steps(recipe, log)
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()  # a recipe that failed before writing anything leaves nothing behind
        raise


def _run_steps(recipe: Recipe, log: Callable[[str], None]) -> RecipeResult:
    metrics: dict[str, Any] = {}
    rows, gates, model = [], [], recipe.model.path
    for index, step in enumerate(recipe.steps, 1):
        log(f"step {index}/{len(recipe.steps)}: {step.kind}")
        start = time.perf_counter()
        try:
            figures, step_gates = _RUNNERS[step.kind](step, log)
        except CompressorError as exc:
            raise type(exc)(f"step {index} ({step.kind}): {exc.message}", exc.hint, exc.exit_code) from exc
        metrics.update(figures)
        gates += step_gates
        rows.append({"step": index, "kind": step.kind, "output": step.output, **figures,
                     "seconds": round(time.perf_counter() - start, 2)})
        if step.kind in MODEL_STEPS:
            model = step.output
    return RecipeResult(recipe.output_dir, model, rows, metrics, gates, recipe.meta)


def _run_prune(step: Step, log) -> tuple[dict[str, Any], list]:
    from compressor.api.prune import prune
    from compressor.api.slim import slim

    run = prune if step.kind == "prune" else slim
    r = run(step.model, step.config, step.output, log=log, measure_input=False)
    figures = {**r.after, "method": r.method, "method_kind": r.kind, "baseline_params": r.before["params"]}
    return figures, []


def _run_train(step: Step, log) -> tuple[dict[str, Any], list]:
    from compressor.api.distill import distill

    r = distill(step.config, step.output)
    return {"accuracy": r.accuracy_after, "train_seconds": r.train_seconds}, []


def _run_eval(step: Step, log) -> tuple[dict[str, Any], list]:
    from compressor.api.evaluate import evaluate

    r = evaluate(step.config)
    if r.attack is None:
        return {"accuracy": r.accuracy, "loss": r.loss}, []
    return {"robust_accuracy": r.robust_accuracy, "robust_clean_accuracy": r.accuracy,
            "robust_samples": r.samples, "attack": r.attack, "eps": r.eps}, []


def _run_info(step: Step, log) -> tuple[dict[str, Any], list]:
    from compressor.api.info import info

    r = info(step.model)
    return {k: getattr(r, k) for k in ("params", "nonzero_params", "sparsity", "macs", "size_bytes",
                                       "compressed_bytes")}, []


def _run_export(step: Step, log) -> tuple[dict[str, Any], list]:
    from compressor.api.export import export

    f = export(step.model, step.config, log).figures
    return {"onnx": step.output, "onnx_size_bytes": f["size_bytes"],
            "onnx_compressed_bytes": f["compressed_bytes"], "parity_passed": f.get("parity_passed")}, []


def _run_bench(step: Step, log) -> tuple[dict[str, Any], list]:
    from dataclasses import asdict

    from compressor.api.bench import bench

    r = bench(step.config)
    doc, name = r.to_json(), r.profile.name
    figures = {f"{k}_{name}": doc[k] for k in ("latency_ms_p50", "latency_ms_p90", "latency_ms_iqr",
                                                "throughput_samples_per_s", "runs") if k in doc}
    figures[f"backend_{name}"] = doc["backend"]
    if r.speedup is not None:
        figures[f"speedup_{name}"] = r.speedup
    return figures, [{"profile": name, **asdict(g)} for g in r.gates]


_RUNNERS = {"prune": _run_prune, "slim": _run_prune, "finetune": _run_train, "distill": _run_train,
            "eval": _run_eval, "info": _run_info, "export": _run_export, "bench": _run_bench}

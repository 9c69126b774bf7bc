"""``compress run RECIPE.yaml``: chain steps with the same typed configs the CLI and the API use.

A recipe names a model, default data, an output folder and a list of steps; each step is one
mapping ``{KIND: {settings}}`` whose settings are exactly the fields of that command's config:

* ``prune``: :class:`compressor.pruning.base.PruneConfig`, the method's own settings under
  ``options`` (the fields of its settings class, e.g. ``options: {gamma: 4.0}`` for sap);
  ``slim``: :class:`SlimConfig`;
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

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from compressor import registry
from compressor.errors import InputError, UsageError, first_line, unknown_name
from compressor.io.spec import ModelSpec
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
    model: ModelSpec
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


def load_recipe(path: str | Path, output_dir: str | None = None) -> Recipe:
    """Read and validate a YAML recipe; ``output_dir`` overrides the recipe's own."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise InputError(f"recipe {file} does not exist", "pass a .yaml file, see compress run --help")
    try:
        mapping = yaml.safe_load(file.read_text(errors="replace"))
    except yaml.YAMLError as exc:
        raise InputError(f"{file}: not valid YAML ({first_line(exc, None)})") from None
    default_dir = str(file.with_suffix("")) + "_out"
    return parse_recipe(mapping, output_dir or (mapping or {}).get("output_dir") or default_dir, str(file))


def parse_recipe(mapping: Any, output_dir: str | None = None, where: str = "recipe") -> Recipe:
    """Validate a recipe mapping into typed steps (nothing runs, nothing is written)."""
    if not isinstance(mapping, dict):
        raise InputError(
            f"{where}: a recipe is a mapping with 'model' and 'steps'",
            "see compress run --help for an example",
        )
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
            raise UsageError(
                f"{self.where}: step {index} must be one mapping {{KIND: {{settings}}}}",
                f"KIND is one of {', '.join(STEP_KINDS)}",
            )
        kind, settings = next(iter(raw.items()))
        if kind not in STEP_KINDS:
            raise unknown_name(f"step kind in {self.where} step {index}", str(kind), STEP_KINDS)
        if not isinstance(settings or {}, dict):
            raise UsageError(
                f"{self.where} step {index} ({kind}): settings must be a mapping", f"e.g. - {kind}: {{...}}"
            )
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

        if "settings" in settings:  # the typed object of the Python API; a recipe names the fields
            raise UsageError(
                f"{where}: a method's own settings go under 'options'",
                "e.g. options: {gamma: 4.0} (compress list shows each method's)",
            )
        return Step("prune", build(PruneConfig, self._with_data(settings), where), self.current, out)

    def _slim(self, settings, where, out) -> Step:
        from compressor.pruning.base import SlimConfig

        return Step("slim", build(SlimConfig, self._with_data(settings), where), self.current, out)

    def _finetune(self, settings, where, out, extra: tuple[str, ...] = ()) -> Step:
        from compressor.train.config import DistillConfig, TrainConfig

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
        from compressor.train.config import EvalConfig

        return Step(
            "eval", build(EvalConfig, self._with_data(settings), where, model=self.current), self.current
        )

    def _info(self, settings, where, out) -> Step:
        check_keys(settings, [], where)
        return Step("info", None, self.current)

    def _export(self, settings, where, out) -> Step:
        from compressor.export.config import ExportConfig

        # the format's own suffix (an unknown format is refused by ExportConfig below)
        fmt = registry.FORMATS.get(str(settings.get("format")), registry.FORMATS[ExportConfig.format])
        target = settings.get("output") or Path(out).with_suffix(fmt.suffixes[0]).name
        settings = {**self._with_data(settings), "output": str(Path(self.out) / str(target))}
        cfg = build(ExportConfig, settings, where)
        self.onnx = cfg.output
        return Step("export", cfg, self.current, cfg.output)

    def _bench(self, settings, where, out) -> Step:
        from compressor.bench.config import BenchConfig
        from compressor.bench.gates import spec_from_mapping
        from compressor.bench.profiles import Profile, get_profile

        overrides = field_names(Profile, ("name", "summary"))
        check_keys(settings, list(BENCH_KEYS) + overrides, where)
        profile = get_profile(str(settings.get("profile", "mobile")))
        build(
            Profile,
            {k: v for k, v in settings.items() if k in overrides},
            where,
            name=profile.name,
            summary=profile.summary,
        )  # type-checks the overrides
        profile = replace(profile, **{k: settings[k] for k in overrides if k in settings})
        gates = spec_from_mapping(settings.get("gates") or {}, where)
        data = settings.get("data") or (
            self.data if (gates.min_accuracy is not None or gates.max_accuracy_drop is not None) else None
        )
        base = settings.get("baseline")
        baseline = None if base is None else (self.input if base == "input" else ModelSpec(str(base)))
        model = ModelSpec(self.onnx) if self.onnx else self.current
        cfg = BenchConfig(
            model,
            profile,
            baseline,
            gates,
            data,
            settings.get("eval_limit"),
            str(Path(self.out) / settings["plot"]) if settings.get("plot") else None,
        )
        return Step("bench", cfg, model)

"""What a sweep runs: every method x level as one recipe each (the point plan and its budget).

Each point is a recipe (:mod:`compressor.recipe`) written to ``OUT/points/ID.yaml`` and run by
the same step runner as ``compress run``, so ``compress run OUT/points/ID.yaml`` reproduces it
(the recipe pins the torch thread count). A finished point is stored as ``OUT/points/ID.json``
together with the recipe it ran; a rerun skips every point whose stored recipe is unchanged.
Points are independent: ``--jobs N`` runs them in N processes, and a cluster scheduler can run one
``compress run`` per point file (docs/sweep.md).

Budget of one point: the method, the fine-tune budget (``finetune_epochs``; iterative methods
spread it over their steps with a per-step batch cap, slim splits it between sparsity training
and fine-tuning), accuracy on the whole test split once, an optional attack on ``attack_limit``
test samples, ONNX export and a short latency run per profile (:data:`SWEEP_BENCH`).

Budgeted points (``targets``): each structured method also prunes to every target (``speedup=2``,
``macs=0.5``, ... the ``compress prune --target-*`` budgets) through the same budget engine, with
the same fine-tune budget and measurements as its ratio points; such a point is named by its target
(``l1@speedup=2``) and lands on the same tables and frontiers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor import registry
from compressor.errors import UsageError
from compressor.io.spec import ModelSpec

# the registry's swept methods; each entry's ``sweep`` holds its settings at a point: ranking scope,
# options and, for iterative methods, steps (SAP's adaptive amount needs several to reach high levels)
DEFAULT_METHODS = tuple(m.name for m in registry.METHODS.values() if m.swept)
STRUCTURED = tuple(m.name for m in registry.METHODS.values() if m.kind == "structured")
DEFAULT_LEVELS = (0.2, 0.5, 0.8, 0.9, 0.95)
# a short latency run per point: enough for a stable median of a small model, ~1-3 s
SWEEP_BENCH = {"warmup": 5, "min_runs": 30, "min_time_s": 0.3, "max_time_s": 3.0}
BATCH_SIZE = 128
TARGET_KINDS = ("speedup", "latency_ms", "macs", "params", "size")  # as --target-KIND of compress prune
MEASURED_KINDS = ("speedup", "latency_ms")  # timed on a profile (the first of ``profiles``)
DONE = ("ok", "unsupported")  # unsupported (exit 3) is a finished answer; errors are retried


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep and how to measure each point.

    Attributes:
        model: the trained model: a :class:`ModelSpec` like every other config takes, or a path
            or reference string (read with ``arch`` / ``arch_kwargs``). Points are recipes, which
            name a model by path, arch and arch_kwargs only.
        data: data spec for calibration, fine-tuning and accuracy.
        output_dir: where points, tables and plots go.
        methods / levels: every method at every level (structured: channel ratio; masked: sparsity).
        targets: budgets every structured method in ``methods`` also prunes to, each ``KIND=VALUE``
            with KIND one of speedup, latency_ms, macs, params, size (the meaning of
            ``compress prune --target-KIND``); speed-up and latency targets are measured on the
            first of ``profiles``.
        cost_cache: folder of the budget engine's per-layer latency cache (None: its default).
        finetune_epochs: fine-tune budget per point, in epochs of the training split.
        profiles: bench profiles to measure each point under (latency per profile).
        bench: export and bench each point (False: accuracy and sizes only).
        attack / eps / attack_limit: robustness column (fgsm or pgd on that many test samples).
        jobs: points run in this many processes (each with one torch thread).
    """

    model: ModelSpec | str
    data: str
    output_dir: str
    methods: tuple[str, ...] = DEFAULT_METHODS
    levels: tuple[float, ...] = DEFAULT_LEVELS
    finetune_epochs: int = 1
    profiles: tuple[str, ...] = ("mobile",)
    bench: bool = True
    attack: str | None = None
    eps: float = 0.03
    attack_limit: int | None = 1000
    jobs: int = 1
    seed: int = 0
    arch: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    cost_cache: str | None = None

    def __post_init__(self) -> None:
        from compressor.bench.profiles import get_profile
        from compressor.robustness import AttackConfig

        self._bind_model()
        for m in self.methods:
            registry.method(m)
        if not self.methods or not (self.levels or self.targets):
            raise UsageError(
                "a sweep needs at least one method and one level or target", "e.g. --levels 0.5,0.9"
            )
        if len(set(self.methods)) != len(self.methods) or len(set(self.levels)) != len(self.levels):
            raise UsageError("methods and levels must not repeat")
        for level in self.levels:
            if not 0 < level < 1:
                raise UsageError(
                    f"level {level} must be between 0 and 1 (exclusive)", "e.g. --levels 0.5,0.9"
                )
        for p in self.profiles:
            get_profile(p)
        if self.attack is not None:
            AttackConfig(self.attack, self.eps)
        if self.jobs < 1 or self.finetune_epochs < 0:
            raise UsageError(
                f"--jobs must be >= 1 and --finetune-epochs >= 0, got {self.jobs}, {self.finetune_epochs}"
            )
        if self.attack_limit is not None and self.attack_limit < 1:
            raise UsageError(f"--attack-limit must be >= 1, got {self.attack_limit}")
        object.__setattr__(self, "targets", tuple(normal_target(t) for t in self.targets))
        if self.targets:
            self._check_targets()

    def _check_targets(self) -> None:
        """Targets need a structured method, a profile for timed ones, and no repeats (exit 2)."""
        if len(set(self.targets)) != len(self.targets):
            raise UsageError("targets must not repeat", f"got {', '.join(self.targets)}")
        if not self.target_methods:
            raise UsageError(
                f"--targets need a structured method; {', '.join(self.methods)} mask weights, "
                "and masks do not speed up ONNX Runtime or shrink the exported file",
                f"add one of {', '.join(STRUCTURED)} to --methods",
            )
        timed = [t for t in self.targets if target_kind(t) in MEASURED_KINDS]
        if timed and not self.profiles:
            raise UsageError(
                f"{timed[0]} is measured on a bench profile, and --profiles is empty",
                "add --profiles mobile (or edge, server)",
            )
        for target in self.targets:
            budget_mapping(target, self)  # the budget engine's own checks of the value

    @property
    def target_methods(self) -> tuple[str, ...]:
        """The methods that also prune to the targets: the structured ones."""
        return tuple(m for m in self.methods if m in STRUCTURED)

    @property
    def spec(self) -> ModelSpec:
        """The model as a :class:`ModelSpec` (``model`` after construction)."""
        assert isinstance(self.model, ModelSpec)  # set by __post_init__
        return self.model

    def _bind_model(self) -> None:
        """``model`` as a ModelSpec; ``arch`` / ``arch_kwargs`` kept equal to its own."""
        if not isinstance(self.model, ModelSpec):
            spec = ModelSpec(str(self.model), self.arch, dict(self.arch_kwargs))
        else:
            spec = self.model
            if spec.trust_pickle or spec.input_shape is not None:
                raise UsageError(
                    "a sweep's points are recipes, which take a model's path, arch and arch_kwargs only",
                    "drop trust_pickle and input_shape from the ModelSpec",
                )
            if (self.arch or self.arch_kwargs) and (self.arch, dict(self.arch_kwargs)) != (
                spec.arch,
                dict(spec.arch_kwargs),
            ):
                raise UsageError(
                    "the sweep's arch differs from its model's", "give arch in the ModelSpec only"
                )
        object.__setattr__(self, "model", spec)
        object.__setattr__(self, "arch", spec.arch)
        object.__setattr__(self, "arch_kwargs", dict(spec.arch_kwargs))


def point_id(method: str, level: float) -> str:
    """``wanda_0.8``."""
    return f"{method}_{level:g}"


def target_id(method: str, target: str) -> str:
    """``l1@speedup=2``."""
    return f"{method}@{target}"


def target_kind(target: str) -> str:
    """``speedup=2`` -> ``speedup``."""
    return target.split("=", 1)[0]


def normal_target(text: str) -> str:
    """One target as ``KIND=VALUE`` with the value spelt once (``speedup=2.0`` -> ``speedup=2``)."""
    from compressor.errors import unknown_name

    kind, sep, value = (part.strip() for part in str(text).partition("="))
    if not sep or not value:
        raise UsageError(f"cannot read target '{text}'", "write KIND=VALUE, e.g. speedup=2 or macs=0.5")
    if kind not in TARGET_KINDS:
        raise unknown_name("target kind", kind, TARGET_KINDS)
    if kind == "size":
        return f"size={value}"
    try:
        return f"{kind}={float(value):g}"
    except ValueError:
        raise UsageError(
            f"cannot read target '{text}': '{value}' is not a number", f"e.g. {kind}=0.5"
        ) from None


def budget_mapping(target: str, cfg: SweepConfig) -> dict[str, Any]:
    """The prune step's ``budget`` (a :class:`BudgetConfig` as a mapping), checked by it."""
    from compressor.pruning.structured.budget.config import BudgetConfig

    kind, value = target.split("=", 1)
    mapping: dict[str, Any] = {f"target_{kind}": value if kind == "size" else float(value)}
    if kind in MEASURED_KINDS:
        mapping["profile"] = cfg.profiles[0]
    if cfg.cost_cache:
        mapping["cost_cache"] = cfg.cost_cache
    BudgetConfig(**mapping)
    return mapping


def model_step(
    method: str,
    level: float | None,
    cfg: SweepConfig,
    epoch_batches: int,
    budget: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The prune (or slim) step of one point, with the fine-tune budget spread over its steps;
    with ``budget``, pruned to it instead of to ``level``."""
    epochs = cfg.finetune_epochs
    how = {"budget": budget} if budget is not None else None
    if registry.method(method).command == "slim":  # half an epoch of sparsity training, half of fine-tuning
        return {
            "slim": {
                **(how or {"ratio": level}),
                "sparsity_epochs": epochs,
                "finetune_epochs": epochs,
                "max_batches": math.ceil(epoch_batches / 2) if epochs else None,
                "seed": cfg.seed,
            }
        }
    entry = registry.method(method)
    key = "ratio" if entry.kind == "structured" else "sparsity"
    settings: dict[str, Any] = {
        "method": method,
        **(how or {key: level}),
        "seed": cfg.seed,
        **{k: v for k, v in entry.sweep.items() if k != "steps"},
    }
    steps = entry.sweep.get("steps", 1)
    if steps > 1:
        settings["steps"] = steps
    if epochs and steps > 1:
        settings.update(finetune_epochs=1, finetune_batches=math.ceil(epochs * epoch_batches / steps))
    elif epochs:
        settings["finetune_epochs"] = epochs
    return {"prune": settings}


def measure_steps(cfg: SweepConfig) -> list[dict[str, Any]]:
    """The steps after the model step: attack, sizes, export and one bench per profile."""
    steps: list[dict[str, Any]] = []
    if cfg.attack:
        steps.append({"eval": {"attack": cfg.attack, "eps": cfg.eps, "limit": cfg.attack_limit}})
    steps.append({"info": {}})
    if cfg.bench:
        steps.append({"export": {}})
        steps += [{"bench": {"profile": p, **SWEEP_BENCH}} for p in cfg.profiles]
    return steps


def point_recipe(
    cfg: SweepConfig, pid: str, first: dict[str, Any], threads: int, meta: dict[str, Any]
) -> dict[str, Any]:
    """The recipe mapping of one point (what OUT/points/ID.yaml holds)."""
    path = cfg.spec.path
    model = str(Path(path).resolve()) if Path(path).is_file() else path
    points = Path(cfg.output_dir).resolve() / "points"
    recipe: dict[str, Any] = {
        "model": model,
        "data": cfg.data,
        "threads": threads,
        "output_dir": str(points / pid),
        "meta": {"sweep_point": pid, **meta},
        "steps": [first, *measure_steps(cfg)],
    }
    if cfg.arch:
        recipe.update(arch=cfg.arch, arch_kwargs=dict(cfg.arch_kwargs))
    return recipe


def plan(cfg: SweepConfig, threads: int, epoch_batches: int) -> list[tuple[str, dict[str, Any]]]:
    """(id, recipe mapping) of the baseline, of every method x level and of every structured
    method x target."""
    points = [
        (
            "baseline",
            point_recipe(cfg, "baseline", {"eval": {}}, threads, {"method": "baseline", "level": 0.0}),
        )
    ]
    for method in cfg.methods:
        for level in sorted(cfg.levels):
            pid = point_id(method, level)
            points.append(
                (
                    pid,
                    point_recipe(
                        cfg,
                        pid,
                        model_step(method, level, cfg, epoch_batches),
                        threads,
                        {"method": method, "level": level},
                    ),
                )
            )
        for target in cfg.targets if method in cfg.target_methods else ():
            pid = target_id(method, target)
            step = model_step(method, None, cfg, epoch_batches, budget_mapping(target, cfg))
            points.append(
                (
                    pid,
                    point_recipe(
                        cfg, pid, step, threads, {"method": method, "level": None, "target": target}
                    ),
                )
            )
    return points

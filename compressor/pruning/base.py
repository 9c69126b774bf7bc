"""The contract between ``compress prune`` and a method module.

A method module (named in :mod:`compressor.registry`) exposes::

    def run(handle: ModelHandle, cfg: PruneConfig, ctx: PruneContext) -> MethodReport

It changes ``handle`` in place (module, masks) and returns what it did. Structured modules may
also expose ``plan(handle, cfg) -> list[dict]`` for ``--dry-run``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from compressor import registry
from compressor.defaults import KD_ALPHA, KD_TEMPERATURE, SLIM_RATIO
from compressor.errors import UsageError
from compressor.pruning.settings import MethodSettings, from_options
from compressor.pruning.structured.budget.config import BudgetConfig
from compressor.pruning.structured.settings import SlimmingConfig

S = TypeVar("S", bound=MethodSettings)

SCOPES = ("global", "layer", "row")


@dataclass(frozen=True)
class PruneConfig:
    """Every prune option. Validated on construction; shared by CLI, recipes and the API.

    Attributes:
        method: registry name (``compress list``); l1 when not given.
        ratio: structured: fraction of channels removed (0, 1).
        budget: structured: prune to a budget instead of a ratio (a measured speed-up or latency,
            a fraction of the MACs or parameters, or ONNX file bytes; see
            :class:`~compressor.pruning.structured.budget.config.BudgetConfig`).
        sparsity: unstructured: fraction of weights zeroed [0, 1).
        scope: ranking scope: global, layer (per layer) or row (per output row); None: the
            method's default (``row`` for wanda, as in the paper; ``global`` for the others).
        nm: N:M pattern such as "2:4" (unstructured methods that support it).
        steps: iterative pruning steps (re-scoring between steps); SAP / activation iterations.
        round_to: keep channel counts multiples of this (structured).
        max_layer_ratio: at most this fraction of one layer's channels removed (structured).
        keep_residual: structured: never prune channels summed through residual additions, only
            the channels inside blocks (faster on narrow residual streams such as MobileNetV2's).
        ignore: fnmatch patterns of module names never pruned.
        allow_output_change: structured: names of outputs (``compress info`` lists them: ``output``
            for one tensor, dict keys such as ``aux``) whose shape pruning may change; every other
            output keeps its shape (the layers that make it are not pruned, and a change is refused).
        strict: structured: refuse (exit 3) when the preflight's trial cut of a group breaks the
            model, instead of keeping that group unpruned and naming it in the report.
        layers: which layers a masked method touches: types ("conv", "linear") or name patterns.
        keep_first_last: masked methods: leave the model's first and last conv/linear layers in
            forward order (the stem or patch embedding and the classifier) dense, as the Wanda
            paper's image-classifier runs do (they prune only the layers inside the blocks).
        data: data spec for calibration, BN recalibration, fine-tuning and accuracy.
        calib_samples: calibration samples for data-driven scoring (and BatchNorm recalibration).
        recalibrate_bn: masked methods that support it (magnitude, wanda): re-estimate BatchNorm
            running statistics on the calibration samples after masking (Wanda: while pruning,
            so each layer is scored on a network whose earlier BatchNorms match their pruned
            inputs). None: on for data-driven methods when the model has BatchNorm, else off.
        finetune_epochs: epochs of fine-tuning between steps and at the end (0: none).
        finetune_schedule: learning-rate schedule of every fine-tune: none (constant), cosine
            (annealed to zero over the fine-tune), step (x0.1 every third of it) or onecycle
            (warm-up over the first 30%, then cosine; :class:`~compressor.train.TrainConfig`).
        finetune_batches: at most this many batches per fine-tune (None: whole epochs); iterative
            methods use it to spread one epoch budget over their steps (``compress sweep``); such
            a capped one-epoch fine-tune skips the held-out pass (it keeps its only epoch).
        seed: for calibration sampling, random pruning and fine-tuning.
        device: where fine-tuning runs: auto (CUDA when present), cpu or cuda.
        distill_from: teacher model; fine-tuning then uses Hinton's KD loss (recovery step).
        temperature / alpha: the KD temperature and the weight of the teacher term.
        settings: the method's own settings, an instance of its settings class (``compress list``
            names each method's: ``SapConfig(gamma=4.0)`` for sap); None: its defaults. After
            construction always that typed object.
        options: the method's settings by name, as ``--opt KEY=VALUE`` and a recipe's
            ``options:`` write them: each value converted by its field's type, an unknown name
            refused naming the closest. Applied over ``settings`` on construction and then
            emptied, so a config built either way compares equal.
    """

    method: str = "l1"
    ratio: float | None = None
    budget: BudgetConfig | None = None
    sparsity: float | None = None
    scope: str | None = None
    nm: str | None = None
    steps: int = 1
    round_to: int | None = None
    max_layer_ratio: float = 0.9
    keep_residual: bool = False
    ignore: tuple[str, ...] = ()
    allow_output_change: tuple[str, ...] = ()
    strict: bool = False
    layers: tuple[str, ...] = ("conv", "linear")
    keep_first_last: bool = False
    data: str | None = None
    calib_samples: int = 128
    recalibrate_bn: bool | None = None
    finetune_epochs: int = 0
    finetune_lr: float = 1e-4
    finetune_schedule: str = "none"
    finetune_batches: int | None = None
    batch_size: int = 128
    seed: int = 0
    device: str = "auto"
    settings: MethodSettings | None = None
    options: dict[str, Any] = field(default_factory=dict)
    distill_from: str | None = None
    temperature: float = KD_TEMPERATURE
    alpha: float = KD_ALPHA

    def __post_init__(self) -> None:
        info = registry.method(self.method)
        self._resolve_settings(info)
        if info.kind == "structured":
            self._check_structured()
        else:
            self._check_unstructured(info)
        if self.scope is None:
            object.__setattr__(self, "scope", info.default_scope)
        if self.scope not in SCOPES:
            raise UsageError(f"unknown scope '{self.scope}'", f"valid: {', '.join(SCOPES)}")
        if self.steps < 1:
            raise UsageError(f"--steps must be >= 1, got {self.steps}")
        if self.finetune_epochs < 0:
            raise UsageError(f"--finetune-epochs must be >= 0, got {self.finetune_epochs}")
        if self.finetune_batches is not None and self.finetune_batches < 1:
            raise UsageError(f"--finetune-batches must be >= 1, got {self.finetune_batches}")
        if not self.finetune_lr > 0:  # checked before loading and pruning, not after
            raise UsageError(f"--finetune-lr must be > 0, got {self.finetune_lr}", "try 1e-4 (the default)")
        if self.batch_size <= 0:
            raise UsageError(f"--batch-size must be > 0, got {self.batch_size}")
        from compressor.train.config import SCHEDULES

        if self.finetune_schedule not in SCHEDULES:
            raise UsageError(
                f"unknown --finetune-schedule '{self.finetune_schedule}'", f"valid: {', '.join(SCHEDULES)}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"unknown device '{self.device}'", "valid: auto, cpu, cuda")
        if self.calib_samples < 1:
            raise UsageError(f"--calib-samples must be >= 1, got {self.calib_samples}")
        if info.needs_data and not self.data:
            raise UsageError(
                f"method '{self.method}' needs calibration data",
                "add --data fashion-mnist (or digits, cifar10:ROOT, imagefolder:PATH, tensors:FILE)",
            )
        if self.recalibrate_bn is not None:
            self._check_recalibrate_bn(info)
        if self.finetune_epochs and not self.data:
            raise UsageError("--finetune-epochs needs --data", "add --data fashion-mnist")
        if self.distill_from:
            self._check_distill()

    def settings_as(self, cls: type[S]) -> S:
        """The method's settings, as the class its module reads."""
        if not isinstance(self.settings, cls):
            raise UsageError(
                f"method '{self.method}' carries {type(self.settings).__name__} settings, "
                f"its module reads {cls.__name__}",
                f"register the method with settings='{cls.__module__}:{cls.__name__}'",
            )
        return self.settings

    def _resolve_settings(self, info: registry.MethodInfo) -> None:
        """``settings`` as the method's typed settings, ``options`` applied over them."""
        cls = info.settings_class()
        if self.settings is not None and not isinstance(self.settings, cls):
            raise UsageError(
                f"method '{self.method}' takes {cls.__name__} settings, got {type(self.settings).__name__}",
                f"pass settings={cls.__name__}(...), or options={{NAME: VALUE}}",
            )
        if not isinstance(self.options, Mapping):
            raise UsageError(
                f"options of method '{self.method}' must be a mapping of NAME: VALUE, got {self.options!r}",
                "e.g. options={'gamma': 4.0}",
            )
        base = self.settings if self.settings is not None else cls()
        object.__setattr__(self, "settings", from_options(cls, self.options, self.method, base))
        object.__setattr__(self, "options", {})

    def train_config(self, epochs: int, **overrides: Any):
        """The shared loop's :class:`~compressor.train.TrainConfig` for a training phase."""
        from compressor.train import TrainConfig

        settings = {
            "lr": self.finetune_lr,
            "schedule": self.finetune_schedule,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "device": self.device,
            **overrides,
        }
        return TrainConfig(epochs=epochs, **settings)

    def _check_distill(self) -> None:
        if not self.finetune_epochs:
            raise UsageError("--distill-from needs fine-tuning epochs", "add --finetune-epochs 2")
        from compressor.train.distill import check_kd

        check_kd(self.temperature, self.alpha)

    def _check_recalibrate_bn(self, info: registry.MethodInfo) -> None:
        flag = "--recalibrate-bn" if self.recalibrate_bn else "--no-recalibrate-bn"
        if not info.recalibrates_bn:
            valid = [m.name for m in registry.METHODS.values() if m.recalibrates_bn]
            raise UsageError(
                f"method '{self.method}' does not take {flag}",
                f"it applies to {', '.join(valid)}; structured methods always "
                "recalibrate BatchNorm when --data is given",
            )
        if self.recalibrate_bn and not self.data:
            raise UsageError("--recalibrate-bn needs calibration data", "add --data fashion-mnist")

    def _check_structured(self) -> None:
        if self.keep_first_last:
            raise UsageError(
                f"--keep-first-last applies to masked methods, not '{self.method}'",
                "keep layers of a structured method with --ignore NAME",
            )
        if self.ratio is None and self.budget is None:
            raise UsageError(
                f"method '{self.method}' needs --ratio or a target",
                "e.g. --ratio 0.5 removes half of the channels, --target-speedup 2 "
                "prunes to a measured speed-up",
            )
        if self.ratio is not None and self.budget is not None:
            raise UsageError(
                f"--ratio and {self.budget.option()} both set how much to prune",
                "give --ratio or a target, not both",
            )
        if self.budget is not None and self.steps > 1:
            raise UsageError(
                "--steps applies to --ratio; a target is planned and measured as a whole", "drop --steps"
            )
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise UsageError(f"--ratio must be between 0 and 1 (exclusive), got {self.ratio}")
        if not 0 < self.max_layer_ratio <= 1:
            raise UsageError(f"--max-layer-ratio must be in (0, 1], got {self.max_layer_ratio}")
        if self.round_to is not None and self.round_to < 1:
            raise UsageError(f"--round-to must be >= 1, got {self.round_to}")

    def _check_unstructured(self, info: registry.MethodInfo) -> None:
        if self.budget is not None:
            raise UsageError(
                f"{self.budget.option()}: targets need a structured method; '{self.method}' "
                "masks weights, and masks do not speed up ONNX Runtime or shrink the "
                "exported file",
                "use --method l1, l2 or random (or compress slim) with a target, "
                "or --sparsity with a masked method",
            )
        if self.sparsity is None and not self.nm:
            raise UsageError(
                f"method '{self.method}' needs --sparsity (or --nm)",
                "e.g. --sparsity 0.8 zeroes 80% of the weights",
            )
        if self.sparsity is not None and not 0 <= self.sparsity < 1:
            raise UsageError(f"--sparsity must be in [0, 1), got {self.sparsity}")
        if self.nm:
            if not info.supports_nm:
                valid = [m.name for m in registry.METHODS.values() if m.supports_nm]
                raise UsageError(
                    f"method '{self.method}' does not support --nm", f"use one of: {', '.join(valid)}"
                )
            n, m = parse_nm(self.nm)
            if n >= m:
                raise UsageError(f"--nm {self.nm}: N must be smaller than M", "e.g. --nm 2:4")

    def selects(self, name: str, module_type: str) -> bool:
        """Whether layer ``name`` of type ``module_type`` (conv/linear) is selected and not ignored."""
        if any(fnmatch.fnmatch(name, pat) for pat in self.ignore):
            return False
        return any(sel == module_type or fnmatch.fnmatch(name, sel) for sel in self.layers)


@dataclass(frozen=True)
class SlimConfig:
    """Every ``compress slim`` option; validated when turned into a :class:`PruneConfig`.

    The settings of the sparsity phase (``lam`` ... ``max_batches``) are the fields of
    :class:`~compressor.pruning.structured.settings.SlimmingConfig`, defaults read from there.

    Attributes:
        data: data spec for sparsity training, BN recalibration, fine-tuning and accuracy.
        ratio: fraction of BatchNorm channels removed (the global |gamma| percentile), in (0, 1);
            None: ``SLIM_RATIO`` (0.4) unless a budget is given.
        budget: prune to a target (measured speed-up or latency, MACs, parameters, file bytes)
            instead of a ratio; the widths are planned per group, trading the same gammas.
        lam: L1 strength on BatchNorm scales.
        sparsity_epochs: epochs of sparsity training before the threshold.
        finetune_epochs: epochs of fine-tuning after the removal.
        lr: learning rate of fine-tuning (Adam), and of sparsity training unless ``sparsity_lr``.
        finetune_schedule: learning-rate schedule of the fine-tune: none, cosine, step or onecycle.
        sparsity_lr: learning rate of sparsity training (None: ``lr``).
        sparsity_optimizer: adam, adamw or sgd for sparsity training (sgd: the paper's setting).
        weight_threshold: after fine-tuning, zero weights with |w| below this (0: off).
        gamma_plot: PNG path for the |gamma| histogram (None: no plot).
        max_batches: cap batches per epoch of both phases (smoke runs; sweeps split one epoch).
        keep_residual: keep channels joined by residual additions (prune inside blocks only).
        allow_output_change: names of outputs whose shape slimming may change (see
            :class:`PruneConfig`).
        strict: refuse when cutting a group breaks the model instead of keeping it (see
            :class:`PruneConfig`).
        device: where both phases train: auto (CUDA when present), cpu or cuda.
    """

    data: str
    ratio: float | None = None
    budget: BudgetConfig | None = None
    lam: float = SlimmingConfig.lam
    sparsity_epochs: int = SlimmingConfig.sparsity_epochs
    finetune_epochs: int = 1
    lr: float = 1e-3
    finetune_schedule: str = "none"
    sparsity_lr: float | None = SlimmingConfig.sparsity_lr
    sparsity_optimizer: str = SlimmingConfig.sparsity_optimizer
    batch_size: int = 128
    round_to: int | None = None
    max_layer_ratio: float = 0.9
    keep_residual: bool = False
    ignore: tuple[str, ...] = ()
    allow_output_change: tuple[str, ...] = ()
    strict: bool = False
    weight_threshold: float = SlimmingConfig.weight_threshold
    gamma_plot: str | None = SlimmingConfig.gamma_plot
    max_batches: int | None = SlimmingConfig.max_batches
    seed: int = 0
    device: str = "auto"

    def to_prune_config(self) -> PruneConfig:
        """The shared :class:`PruneConfig` with the slimming settings."""
        settings = SlimmingConfig(
            lam=self.lam,
            sparsity_epochs=self.sparsity_epochs,
            sparsity_lr=self.lr if self.sparsity_lr is None else self.sparsity_lr,
            sparsity_optimizer=self.sparsity_optimizer,
            weight_threshold=self.weight_threshold,
            gamma_plot=self.gamma_plot,
            max_batches=self.max_batches,
        )
        ratio = SLIM_RATIO if self.ratio is None and self.budget is None else self.ratio
        return PruneConfig(
            method="slim",
            ratio=ratio,
            budget=self.budget,
            data=self.data,
            round_to=self.round_to,
            max_layer_ratio=self.max_layer_ratio,
            keep_residual=self.keep_residual,
            ignore=self.ignore,
            allow_output_change=self.allow_output_change,
            strict=self.strict,
            finetune_epochs=self.finetune_epochs,
            finetune_lr=self.lr,
            finetune_schedule=self.finetune_schedule,
            finetune_batches=self.max_batches,
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device,
            settings=settings,
        )


def parse_nm(text: str) -> tuple[int, int]:
    """``"2:4"`` -> (2, 4)."""
    try:
        n, m = (int(v) for v in text.split(":"))
    except ValueError:
        raise UsageError(f"cannot read --nm '{text}'", "write N:M, e.g. 2:4") from None
    if n < 1 or m < 1:
        raise UsageError(f"--nm {text}: N and M must be positive")
    return n, m


@dataclass
class PruneContext:
    """What a method may use besides the model: data splits, fine-tuning, logging.

    Attributes:
        train / val / test: data splits when ``--data`` was given, else None.
        log: one human line for stderr (progress of iterative methods).
        finetune: ``finetune(handle, epochs)`` runs the shared training loop with masks kept.
        latency_model: builds the per-layer latency cost model of a budget (None: measured on ONNX
            Runtime and cached; see :func:`compressor.pruning.structured.budget.land.land`).
        budget_meter: makes the meter that measures a budget's figure (None: ONNX Runtime timing,
            exported bytes or counts).
    """

    train: Any = None
    val: Any = None
    test: Any = None
    log: Callable[[str], None] = lambda line: None
    finetune: Callable[[Any, int], dict[str, Any]] | None = None
    latency_model: Callable[..., Any] | None = None
    budget_meter: Callable[..., Any] | None = None


@dataclass
class MethodReport:
    """What a method did, for the report and the artifact history.

    Attributes:
        figures: method-specific figures (e.g. achieved sparsity, per-step PQ index).
        steps: one dict per iteration (iterative methods).
        notes: human notes (e.g. layers skipped and why).
        layers: layer name -> extra per-layer figures (a budget's widths and cost shares).
    """

    figures: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)

"""The library API: one function per subcommand; typed config in, result out.

API functions never print and never exit; they raise :class:`compressor.errors.CompressorError`.
Results have ``to_json()`` giving a flat dict with unit-carrying keys.

Every name resolves on first use, so that ``import compressor.api`` (and ``compress --help``,
``compress list``) loads neither torch nor onnxruntime.
"""

from compressor.lazy import make_lazy

_SOURCES = {
    "compressor.api.config": (
        "ModelSpec",
        "PruneConfig",
        "SlimConfig",
        "TrainConfig",
        "DistillConfig",
        "EvalConfig",
        "ExportConfig",
        "BenchConfig",
        "Profile",
        "PROFILES",
        "GateSpec",
        "SweepConfig",
        "RecommendConfig",
        "MethodSettings",
        "NoSettings",
        "SapConfig",
        "WandaConfig",
        "ActivationConfig",
        "LotteryConfig",
        "SlimmingConfig",
    ),
    "compressor.api.common": ("parse_shape", "parse_kwargs"),
    "compressor.api.info": ("InfoResult", "info"),
    "compressor.api.evaluate": ("EvalResult", "evaluate"),
    "compressor.api.listing": ("list_all",),
    "compressor.api.prune": ("PruneResult", "prune"),
    "compressor.api.slim": ("slim",),
    "compressor.api.bench": ("BenchResult", "bench", "get_profile", "load_gate_file", "parse_size"),
    "compressor.api.distill": ("DistillResult", "distill", "finetune"),
    "compressor.api.export": ("ExportResult", "export"),
    "compressor.api.recipe": ("Recipe", "RecipeResult", "load_recipe", "parse_recipe", "run_recipe"),
    "compressor.api.sweep": ("SweepResult", "sweep"),
    "compressor.api.recommend": ("RecommendResult", "recommend"),
    "compressor.api.sensitivity": ("SensitivityConfig", "SensitivityResult", "sensitivity"),
}

__all__ = [name for names in _SOURCES.values() for name in names]

make_lazy(__name__, {name: module for module, names in _SOURCES.items() for name in names})

"""compressor: prune, slim, distill, export and bench PyTorch models.

The public Python API::

    from compressor import ModelSpec, PruneConfig, SapConfig, ExportConfig, prune, export

    model = ModelSpec("sample_models/resnet_small.pt")
    pruned = prune(model, PruneConfig(method="l1", ratio=0.5), "small.pt")
    sparse = prune(model, PruneConfig(method="sap", sparsity=0.8, data="fashion-mnist",
                                      settings=SapConfig(gamma=4.0)), "sparse.pt")
    onnx = export(ModelSpec("small.pt"), ExportConfig(output="small.onnx"))

Names resolve on first use (from :mod:`compressor.api`), so ``import compressor`` stays light:
no torch until a function runs or a config that needs it is built.
"""

from compressor.lazy import make_lazy

__version__ = "0.1.0"

_API = (
    "ModelSpec",
    "info",
    "InfoResult",
    "prune",
    "PruneConfig",
    "PruneResult",
    "slim",
    "SlimConfig",
    "distill",
    "finetune",
    "DistillConfig",
    "DistillResult",
    "TrainConfig",
    "export",
    "ExportConfig",
    "ExportResult",
    "bench",
    "BenchConfig",
    "BenchResult",
    "Profile",
    "GateSpec",
    "evaluate",
    "EvalConfig",
    "EvalResult",
    "run_recipe",
    "load_recipe",
    "Recipe",
    "RecipeResult",
    "sweep",
    "SweepConfig",
    "SweepResult",
    "recommend",
    "RecommendConfig",
    "RecommendResult",
    "list_all",
    "MethodSettings",
    "NoSettings",
    "SapConfig",
    "WandaConfig",
    "ActivationConfig",
    "LotteryConfig",
    "SlimmingConfig",
)
_ERRORS = ("CompressorError", "UsageError", "InputError", "UnsupportedError", "CheckFailed")

__all__ = ["__version__", *_API, *_ERRORS]

make_lazy(
    __name__, {**{name: "compressor.api" for name in _API}, **{name: "compressor.errors" for name in _ERRORS}}
)

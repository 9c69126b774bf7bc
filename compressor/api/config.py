"""Every command's typed config, in one torch-free module.

Each default is written once, in its config field; the CLI reads its option defaults from here
(``compress --help`` shows them), recipes take the same fields as keys, and sweeps build the same
configs. A pruning method's own settings are one class per method (``SapConfig``, ...), carried
by ``PruneConfig.settings``. Importing this module loads neither torch nor numpy.
"""

from compressor.bench.config import BenchConfig
from compressor.bench.gates import GateSpec
from compressor.bench.profiles import PROFILES, Profile
from compressor.export.config import ExportConfig
from compressor.io.spec import ModelSpec
from compressor.pruning.base import PruneConfig, SlimConfig
from compressor.pruning.settings import MethodSettings, NoSettings, describe, options_help
from compressor.pruning.structured.budget.config import BudgetConfig
from compressor.pruning.structured.budget.config import from_options as budget_from_options
from compressor.pruning.structured.budget.sensitivity import SensitivityConfig
from compressor.pruning.structured.settings import SlimmingConfig
from compressor.pruning.unstructured.settings import ActivationConfig, LotteryConfig, SapConfig, WandaConfig
from compressor.sweep.plan import SweepConfig
from compressor.sweep.recommend import RecommendConfig
from compressor.train.config import DistillConfig, EvalConfig, TrainConfig

__all__ = [
    "BenchConfig",
    "GateSpec",
    "PROFILES",
    "Profile",
    "ExportConfig",
    "ModelSpec",
    "PruneConfig",
    "SlimConfig",
    "SweepConfig",
    "RecommendConfig",
    "DistillConfig",
    "EvalConfig",
    "TrainConfig",
    "BudgetConfig",
    "budget_from_options",
    "SensitivityConfig",
    "MethodSettings",
    "NoSettings",
    "SapConfig",
    "WandaConfig",
    "ActivationConfig",
    "LotteryConfig",
    "SlimmingConfig",
    "describe",
    "options_help",
]

"""The library API: one function per subcommand; typed config in, result out.

API functions never print and never exit; they raise :class:`compressor.errors.CompressorError`.
Results have ``to_json()`` giving a flat dict with unit-carrying keys.
"""

from compressor.api.common import ModelSpec
from compressor.api.info import InfoResult, info
from compressor.api.evaluate import EvalConfig, EvalResult, evaluate
from compressor.api.listing import list_all
from compressor.api.prune import PruneResult, prune
from compressor.api.bench import BenchConfig, BenchResult, bench
from compressor.api.distill import DistillConfig, DistillResult, distill, finetune
from compressor.api.export import ExportResult, export
from compressor.api.slim import SlimConfig, slim
from compressor.api.recipe import Recipe, RecipeResult, load_recipe, parse_recipe, run_recipe
from compressor.api.sweep import SweepConfig, SweepResult, sweep
from compressor.api.recommend import RecommendConfig, RecommendResult, recommend
from compressor.api.sensitivity import SensitivityConfig, SensitivityResult, sensitivity

__all__ = ["ModelSpec", "InfoResult", "info", "EvalConfig", "EvalResult", "evaluate", "list_all",
           "PruneResult", "prune", "SlimConfig", "slim", "BenchConfig", "BenchResult", "bench",
           "DistillConfig", "DistillResult", "distill", "finetune", "ExportResult", "export",
           "Recipe", "RecipeResult", "load_recipe", "parse_recipe", "run_recipe",
           "SweepConfig", "SweepResult", "sweep", "RecommendConfig", "RecommendResult", "recommend",
           "SensitivityConfig", "SensitivityResult", "sensitivity"]

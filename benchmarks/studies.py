"""The registry of studies: each one a script module and its named configurations.

A configuration is the script's arguments and the result file they write. In the arguments,
``{results}`` stands for the results folder: ``benchmarks/results`` for a full run, a temporary
folder for a ``--quick`` smoke run (so a smoke run never replaces a recorded result). Adding a study
is one ``Study(...)`` entry below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "benchmarks/results"


@dataclass(frozen=True)
class Config:
    """One named way to run a study.

    Attributes:
        result: the current result file, relative to the repository root.
        args: the script's arguments; ``{results}`` is replaced by the results folder.
        quick: arguments added for a ``--quick`` smoke run (None: the study has no quick form).
    """

    result: str
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Study:
    """A script and its configurations; the first configuration is the default."""

    name: str
    module: str
    description: str
    configs: dict[str, Config] = field(default_factory=dict)

    @property
    def default(self) -> str:
        return next(iter(self.configs))


def _r(name: str) -> str:
    return f"{RESULTS}/{name}"


_SPEED_MOBILENET = ("--models", "mobilenet_v2", "--scope", "layer")
_SPEED_RESNET = ("--models", "resnet18", "resnet50", "--scope", "layer")
_SPEED_QUICK = ("--models", "resnet18", "--ratios", "0.5", "--rounds", "2")
_BREADTH_QUICK = ("--models", "simple_cnn", "resnet18")
_BIG = (
    "regnet_x_32gf efficientnet_v2_l wide_resnet101_2 vgg11 vgg11_bn vgg13 vgg13_bn vgg16 vgg16_bn vgg19 "
    "vgg19_bn regnet_y_32gf convnext_large vit_l_16 vit_l_32 vit_h_14 regnet_y_128gf"
).split()
_DIAG = "resnet50 resnet101 resnet152 wide_resnet50_2 wide_resnet101_2 regnet_x_32gf regnet_y_32gf".split()


def _aal_quick(model: str) -> tuple[str, ...]:
    """A smoke run of the accuracy-at-latency study on a sample model: one target, one seed."""
    return ("--model", f"sample_models/{model}.pt", "--targets", "2", "--seeds", "0", "--methods", "ours") + (
        "uniform",
        "--max-batches",
        "5",
        "--min-time",
        "0.3",
        "--no-sensitivity",
    )


_RECOVERY = ("--method", "l1", "--ratio", "0.5", "--epochs", "3", "--max-batches", "0")
_RECOVERY_QUICK = (
    "--epochs",
    "1",
    "--max-batches",
    "2",
    "--temperature",
    "4",
    "--alpha",
    "0.9",
    "--workdir",
    "{results}/recovery_cache",
)
_NOFT_METHODS = [
    f"{m}{end}"
    for end in ("", "-ends")
    for m in (
        "magnitude-global",
        "magnitude-layer",
        "magnitude-row",
        "magnitude-global-bn",
        "magnitude-layer-bn",
        "magnitude-row-bn",
        "wanda-nobn",
        "wanda-layer-nobn",
        "wanda",
        "wanda-layer",
    )
]
_NOFT_QUICK = ("--models", "mlp", "--sparsities", "0.5", "--eval-samples", "200")
_SLIM_VGG = ("--models", "sample_models/vgg_bn.pt", "--methods", "slim", "--epochs", "3")
_ACCURACY_QUICK = (
    "--models",
    "sample_models/simple_cnn.pt",
    "--methods",
    "l1",
    "--epochs",
    "1",
    "--max-batches",
    "2",
)


def _export_breadth(out: str, *args: str) -> Config:
    return Config(_r(f"{out}.md"), (*args, "--out", f"{{results}}/{out}.md"), _BREADTH_QUICK)


def _speed(out: str, *args: str) -> Config:
    return Config(_r(f"{out}.md"), (*args, "--out", f"{{results}}/{out}"), _SPEED_QUICK)


def _recovery(out: str, *args: str) -> Config:
    return Config(_r(f"{out}.md"), (*args, "--out", f"{{results}}/{out}.md"), _RECOVERY_QUICK)


def _accuracy(out: str, *args: str) -> Config:
    return Config(_r(f"{out}.md"), (*args, "--out", f"{{results}}/{out}"), _ACCURACY_QUICK)


STUDIES: tuple[Study, ...] = (
    Study(
        "bench_quality",
        "bench_quality",
        "is `compress bench`'s median repeatable and equal to a hand-written ORT loop's",
        {
            "simple_cnn": Config(
                _r("bench_quality.md"),
                ("--out", "{results}/bench_quality"),
                ("--rounds", "1", "--runs", "5", "--warmup", "1", "--min-time", "0.1"),
            ),
            "resnet_small": Config(
                _r("bench_quality_resnet_small.md"),
                ("--model", "sample_models/resnet_small.pt", "--out", "{results}/bench_quality_resnet_small"),
                ("--rounds", "1", "--runs", "5", "--warmup", "1", "--min-time", "0.1"),
            ),
            "resnet_small_mintime8": Config(
                _r("bench_quality_resnet_small_mintime8.md"),
                (
                    "--model",
                    "sample_models/resnet_small.pt",
                    "--min-time",
                    "8",
                    "--out",
                    "{results}/bench_quality_resnet_small_mintime8",
                ),
            ),
        },
    ),
    Study(
        "sparse_latency",
        "bench_sparse_latency",
        "do masked zeros speed up a dense runtime (0/50/90% magnitude, bench --baseline)",
        {
            "simple_cnn": Config(
                _r("sparse_latency.md"), ("--out", "{results}/sparse_latency"), ("--min-time", "0.2")
            ),
        },
    ),
    Study(
        "budget_landing",
        "budget_landing",
        "how often a latency budget lands within [0.95 T, 1.15 T] of the target speed-up",
        {
            "torchvision": Config(
                _r("budget_landing.md"),
                ("--fresh-cache", "--out", "{results}/budget_landing"),
                (
                    "--models",
                    "resnet18",
                    "--targets",
                    "1.5",
                    "--profiles",
                    "mobile",
                    "--runs",
                    "20",
                    "--min-time",
                    "0.3",
                ),
            ),
        },
    ),
    Study(
        "accuracy_at_latency",
        "accuracy_at_latency",
        "accuracy at equal measured latency: budgeted l1 against uniform l1 (bare torch-pruning) and FastNAS",
        {
            "resnet_wide": Config(
                _r("accuracy_at_latency.md"),
                (
                    "--model",
                    "sample_models/resnet_wide.pt",
                    "--max-batches",
                    "211",
                    "--out",
                    "{results}/accuracy_at_latency",
                ),
                _aal_quick("resnet_wide"),
            ),
            "resnet_wide_lr": Config(
                _r("accuracy_at_latency_lr.md"),
                (
                    "--model",
                    "sample_models/resnet_wide.pt",
                    "--targets",
                    "2",
                    "3",
                    "--max-batches",
                    "211",
                    "--lrs",
                    "3e-3",
                    "1e-3",
                    "3e-4",
                    "--out",
                    "{results}/accuracy_at_latency_lr",
                ),
            ),
            "resnet_wide_epoch": Config(
                _r("accuracy_at_latency_epoch.md"),
                (
                    "--model",
                    "sample_models/resnet_wide.pt",
                    "--targets",
                    "2",
                    "3",
                    "--methods",  # the +1 point target is against uniform at 2x and 3x
                    "ours",
                    "uniform",
                    "--lrs",
                    "3e-3",
                    "1e-3",
                    "3e-4",
                    "--out",
                    "{results}/accuracy_at_latency_epoch",
                ),
            ),
            "mobilenet_small": Config(
                _r("accuracy_at_latency_mobilenet_small.md"),
                (
                    "--model",
                    "sample_models/mobilenet_small.pt",
                    "--methods",  # FastNAS is compared on resnet_wide (add fastnas for it here)
                    "ours",
                    "uniform",
                    "uniform8",
                    "--max-batches",
                    "211",
                    "--out",
                    "{results}/accuracy_at_latency_mobilenet_small",
                ),
                _aal_quick("mobilenet_small"),
            ),
            "resnet_small": Config(
                _r("accuracy_at_latency_resnet_small.md"),
                (
                    "--model",
                    "sample_models/resnet_small.pt",
                    "--max-batches",
                    "211",
                    "--out",
                    "{results}/accuracy_at_latency_resnet_small",
                ),
                _aal_quick("resnet_small"),
            ),
        },
    ),
    Study(
        "costmodel_build",
        "costmodel_build",
        "seconds to build the per-layer latency cost model, fresh and from the cache",
        {
            "resnet50_mobile": Config(
                _r("costmodel_build.md"), ("--out", "{results}/costmodel_build"), ("--models", "resnet18")
            ),
        },
    ),
    Study(
        "export_breadth",
        "export_breadth",
        "every sample and torchvision classifier through `compress export` with parity",
        {
            "dense": _export_breadth("export_breadth"),
            "pruned": _export_breadth("export_breadth_pruned", "--pruned"),
            "big": _export_breadth(
                "export_breadth_big", "--max-params", "0", "--calibrate-bn", "--models", *_BIG
            ),
            "pruned_big": _export_breadth(
                "export_breadth_pruned_big", "--pruned", "--max-params", "0", "--models", *_BIG
            ),
            "diag": _export_breadth("export_breadth_diag", "--max-params", "0", "--models", *_DIAG),
            "large": _export_breadth(
                "export_breadth_large", "--max-params", "0", "--models", "vit_h_14", "regnet_y_128gf"
            ),
            "bncal": _export_breadth(
                "export_breadth_bncal",
                "--calibrate-bn",
                "--models",
                "resnet50",
                "resnet101",
                "wide_resnet50_2",
                "resnet152",
            ),
            "native": _export_breadth(
                "export_breadth_native",
                "--native-shape",
                "--max-params",
                "0",
                "--models",
                "resnet101",
                "resnet152",
                "wide_resnet101_2",
            ),
        },
    ),
    Study(
        "export_breadth_merge",
        "export_breadth_merge",
        "one export-breadth table from the default run and the re-runs that replace its rows",
        {
            "dense": Config(
                _r("export_breadth_all.md"),
                (
                    *(_r(f"export_breadth{s}.jsonl") for s in ("", "_big", "_diag", "_large")),
                    "--out",
                    "{results}/export_breadth_all.md",
                    "--preface",
                    _r("export_breadth_all_notes.md"),
                ),
            ),
            "pruned": Config(
                _r("export_breadth_pruned_all.md"),
                (
                    _r("export_breadth_pruned.jsonl"),
                    _r("export_breadth_pruned_big.jsonl"),
                    "--out",
                    "{results}/export_breadth_pruned_all.md",
                    "--title",
                    "pruned with l1 at 0.5 (compress prune), then compress export with default settings",
                ),
            ),
        },
    ),
    Study(
        "export_quantize",
        "export_quantize",
        "int8 and fp16 ONNX exports of the trained sample models: size and accuracy",
        {
            "samples": Config(
                _r("export_quantize.md"),
                ("--models-dir", "sample_models", "--out", "{results}/export_quantize.md"),
                ("--models", "simple_cnn", "--eval-samples", "200"),
            ),
        },
    ),
    Study(
        "integrity_cost",
        "integrity_cost",
        "what the SHA-256 integrity check adds to loading a ~100 MB artifact and ONNX file",
        {
            "resnet50": Config(
                _r("integrity_cost.md"),
                ("--pairs", "15", "--out", "{results}/integrity_cost.md"),
                ("--pairs", "1"),
            ),
        },
    ),
    Study(
        "lone_sessions",
        "lone_sessions",
        "latency of ONNX models each timed alone, to check block-interleaved timing (pass two .onnx files)",
        {
            "onnx_pair": Config(_r("structured_speed_layer.md")),
        },
    ),
    Study(
        "switch_profile",
        "switch_profile",
        "latency after a switch between two spinning 2-thread ORT sessions (pass two .onnx files)",
        {
            "onnx_pair": Config(_r("switch_profile.md")),
        },
    ),
    Study(
        "loop_overhead",
        "loop_overhead",
        "overhead of `compressor.train.fit` against a plain hand-written PyTorch loop",
        {
            "resnet_small": Config(
                _r("loop_overhead.md"),
                (
                    "--model",
                    "resnet_small",
                    "--steps",
                    "10",
                    "--pairs",
                    "10",
                    "--out",
                    "{results}/loop_overhead.json",
                ),
                ("--steps", "2", "--pairs", "1"),
            ),
            "mlp": Config(
                _r("loop_overhead_mlp.json"),
                (
                    "--model",
                    "mlp",
                    "--steps",
                    "100",
                    "--pairs",
                    "16",
                    "--out",
                    "{results}/loop_overhead_mlp.json",
                ),
                ("--steps", "2", "--pairs", "1"),
            ),
        },
    ),
    Study(
        "recovery",
        "recovery",
        "recovery after pruning: fine-tuning alone against distillation from the unpruned model",
        {
            "resnet_small_l1": _recovery(
                "recovery_resnet_small_l1", *_RECOVERY, "--temperature", "4", "2", "--alpha", "0.9", "0.5"
            ),
            "resnet_small_l1_seed1": _recovery(
                "recovery_resnet_small_l1_seed1",
                *_RECOVERY,
                "--seed",
                "1",
                "--temperature",
                "4",
                "2",
                "--alpha",
                "0.9",
                "0.5",
            ),
            "resnet_small_l1_seed2": _recovery(
                "recovery_resnet_small_l1_seed2",
                *_RECOVERY,
                "--seed",
                "2",
                "--temperature",
                "4",
                "2",
                "--alpha",
                "0.9",
                "0.5",
            ),
            **{
                f"resnet_small_l1_alpha0.1_0.25_seed{s}": _recovery(
                    f"recovery_resnet_small_l1_alpha0.1_0.25_seed{s}",
                    *_RECOVERY,
                    "--seed",
                    str(s),
                    "--temperature",
                    "4",
                    "--alpha",
                    "0.25",
                    "0.1",
                )
                for s in (0, 1, 2)
            },
            "simple_cnn_l1": _recovery(
                "recovery_simple_cnn_l1",
                "--baseline",
                "sample_models/simple_cnn.pt",
                "--method",
                "l1",
                "--ratio",
                "0.5",
                "--epochs",
                "3",
                "--max-batches",
                "200",
                "--temperature",
                "4",
                "--alpha",
                "0.9",
            ),
            "simple_cnn_l1_alpha0.5": _recovery(
                "recovery_simple_cnn_l1_alpha0.5",
                "--baseline",
                "sample_models/simple_cnn.pt",
                "--method",
                "l1",
                "--ratio",
                "0.5",
                "--epochs",
                "3",
                "--max-batches",
                "200",
                "--temperature",
                "4",
                "--alpha",
                "0.5",
            ),
        },
    ),
    Study(
        "recovery_defaults",
        "recovery_defaults",
        "one epoch of `compress distill` after l1 at 0.5 on resnet_small, per candidate training setting",
        {
            "resnet_small_l1": Config(
                _r("recovery_defaults.md"),
                ("--workdir", "{results}/recovery_defaults", "--out", "{results}/recovery_defaults.md"),
            ),
        },
    ),
    Study(
        "slim_variants",
        "slim_variants",
        "Network Slimming variants on vgg_bn at ratio 0.5: optimizer, lr, lambda, cap, epochs, KD",
        {
            "vgg_bn": Config(_r("slim_variants.jsonl"), ("--out", "{results}/slim_variants.jsonl")),
        },
    ),
    Study(
        "sparse_storage",
        "sparse_storage",
        "artifact size of masked models: dense file against compact sparse storage",
        {
            "samples": Config(
                _r("sparse_storage.md"),
                ("--out", "{results}/sparse_storage"),
                ("--models", "mlp", "--sparsities", "0", "0.9"),
            ),
        },
    ),
    Study(
        "structured_accuracy",
        "structured_accuracy",
        "accuracy of trained sample models pruned at ratio 0.5 (l1, slim) with <= 3 epochs after the cut",
        {
            "resnet_small_vgg_bn": _accuracy("structured_accuracy_full", "--epochs", "3"),
            "simple_cnn_tiny_vit": _accuracy(
                "structured_accuracy_simple_cnn_tiny_vit",
                "--models",
                "sample_models/simple_cnn.pt",
                "sample_models/tiny_vit.pt",
                "--methods",
                "l1",
                "--epochs",
                "1",
                "--max-batches",
                "100",
            ),
            "vgg_slim_cap05": _accuracy(
                "structured_accuracy_vgg_slim_cap05", *_SLIM_VGG, "--slim-max-layer-ratio", "0.5"
            ),
            "vgg_slim_cap075": _accuracy(
                "structured_accuracy_vgg_slim_cap075", *_SLIM_VGG, "--slim-max-layer-ratio", "0.75"
            ),
            "vgg_slim_sgd_cap05": _accuracy(
                "structured_accuracy_vgg_slim_sgd_cap05",
                *_SLIM_VGG,
                "--slim-max-layer-ratio",
                "0.5",
                "--slim-sparsity-optimizer",
                "sgd",
                "--slim-sparsity-lr",
                "0.01",
            ),
            "vgg_slim_sgd_cap05_ft3": _accuracy(
                "structured_accuracy_vgg_slim_sgd_cap05_ft3",
                *_SLIM_VGG,
                "--slim-sparsity-separate",
                "--slim-max-layer-ratio",
                "0.5",
                "--slim-sparsity-optimizer",
                "sgd",
                "--slim-sparsity-lr",
                "0.01",
            ),
        },
    ),
    Study(
        "structured_breadth",
        "structured_breadth",
        "every torchvision classifier pruned by l1 at 0.5: runs, saves, reloads and exports",
        {
            "torchvision": Config(
                _r("structured_breadth.md"), ("--out", "{results}/structured_breadth"), ("resnet18",)
            ),
        },
    ),
    Study(
        "structured_overhead",
        "structured_overhead",
        "a whole `compress prune` process against a bare torch-pruning script (resnet50, l1 0.5)",
        {
            "resnet50": Config(
                _r("structured_overhead.md"),
                ("--runs", "5", "--out", "{results}/structured_overhead.md"),
                ("--runs", "1"),
            ),
        },
    ),
    Study(
        "structured_speed",
        "structured_speed",
        "theoretical MAC reduction against measured ONNX Runtime CPU speed-up of l1 pruning",
        {
            "global": _speed("structured_speed", "--rounds", "30"),
            "resnet": _speed(
                "structured_speed_resnet",
                *_SPEED_RESNET,
                "--ratios",
                "0.3",
                "0.5",
                "0.7",
                "--round-to",
                "16",
                "--rounds",
                "80",
            ),
            "resnet_nospin": _speed(
                "structured_speed_resnet_nospin",
                *_SPEED_RESNET,
                "--ratios",
                "0.3",
                "0.5",
                "0.7",
                "--round-to",
                "16",
                "64",
                "--rounds",
                "80",
            ),
            "resnet_roundto": _speed(
                "structured_speed_resnet_roundto",
                *_SPEED_RESNET,
                "--ratios",
                "0.5",
                "--round-to",
                "32",
                "64",
                "--rounds",
                "80",
            ),
            "resnet_spin": _speed(
                "structured_speed_resnet_spin",
                *_SPEED_RESNET,
                "--ratios",
                "0.3",
                "0.5",
                "0.7",
                "--round-to",
                "64",
                "16",
                "--rounds",
                "6",
                "--spin",
                "--block",
                "50",
            ),
            "mobilenet": _speed(
                "structured_speed_mobilenet",
                *_SPEED_MOBILENET,
                "--ratios",
                "0.3",
                "0.5",
                "0.7",
                "--round-to",
                "16",
                "32",
                "--keep-residual",
                "off",
                "on",
                "--rounds",
                "300",
            ),
            "mobilenet_nospin": _speed(
                "structured_speed_mobilenet_nospin",
                *_SPEED_MOBILENET,
                "--ratios",
                "0.3",
                "0.5",
                "0.7",
                "--round-to",
                "16",
                "--keep-residual",
                "off",
                "on",
                "--rounds",
                "150",
            ),
            "mobilenet_nospin_keep_residual": _speed(
                "structured_speed_mobilenet_nospin_keep_residual",
                *_SPEED_MOBILENET,
                "--ratios",
                "0.5",
                "--round-to",
                "16",
                "32",
                "--keep-residual",
                "on",
                "--rounds",
                "300",
            ),
            "mobilenet_nospin_roundto": _speed(
                "structured_speed_mobilenet_nospin_roundto",
                *_SPEED_MOBILENET,
                "--ratios",
                "0.5",
                "--round-to",
                "32",
                "64",
                "--keep-residual",
                "on",
                "--rounds",
                "300",
            ),
            "mobilenet_spin": _speed(
                "structured_speed_mobilenet_spin",
                *_SPEED_MOBILENET,
                "--ratios",
                "0.3",
                "0.5",
                "0.7",
                "--round-to",
                "32",
                "16",
                "--keep-residual",
                "on",
                "--rounds",
                "12",
                "--spin",
                "--block",
                "50",
            ),
            "mobilenet_spin_ratio05_07": _speed(
                "structured_speed_mobilenet_spin_ratio05_07",
                *_SPEED_MOBILENET,
                "--ratios",
                "0.5",
                "0.7",
                "--round-to",
                "32",
                "16",
                "--keep-residual",
                "on",
                "--rounds",
                "12",
                "--spin",
                "--block",
                "50",
            ),
        },
    ),
    Study(
        "sweep_report",
        "sweep_report",
        "Markdown tables from a `compress sweep` folder (the sweeps results/pruning_studies_sweep.md quotes)",
        {
            "simple_cnn": Config(_r("sweep_simple_cnn/points.csv"), (_r("sweep_simple_cnn"),)),
            "simple_cnn_level0965": Config(
                _r("sweep_simple_cnn_965/points.csv"), (_r("sweep_simple_cnn_965"),)
            ),
            "vgg_bn_slim": Config(_r("sweep_vgg_bn_slim/points.csv"), (_r("sweep_vgg_bn_slim"),)),
        },
    ),
    Study(
        "timm_breadth",
        "timm_breadth",
        "the smallest model of every timm family through prune (l1 0.5) -> export -> parity",
        {
            "families": Config(_r("timm_breadth.md"), ("--out", "{results}/timm_breadth"), ("resnet",)),
        },
    ),
    Study(
        "torchvision_breadth",
        "torchvision_breadth",
        "every torchvision model of every task through prune (l1 0.5) -> export -> parity",
        {
            "all": Config(
                _r("torchvision_breadth.md"),
                ("--out", "{results}/torchvision_breadth"),
                ("quantized_resnet18", "mobilenet_v3_small", "lraspp_mobilenet_v3_large"),
            ),
        },
    ),
    Study(
        "torchvision_detection",
        "torchvision_detection",
        "torchvision detection and optical-flow models through prune (l1 0.5) -> export -> parity -> bench",
        {
            "all": Config(
                _r("torchvision_detection.md"),
                ("--out", "{results}/torchvision_detection"),
                ("ssdlite320_mobilenet_v3_large",),
            ),
        },
    ),
    Study(
        "unstructured_accuracy",
        "unstructured_accuracy",
        "sparsity against accuracy of the masked methods on the trained sample models",
        {
            "simple_cnn_mlp": Config(
                _r("unstructured_accuracy.md"),
                ("--out", "{results}/unstructured_accuracy.jsonl"),
                (
                    "--models",
                    "mlp",
                    "--methods",
                    "magnitude-global",
                    "--sparsities",
                    "0.5",
                    "--ft-sparsities",
                    "0.5",
                    "--ft-batches",
                    "2",
                    "--eval-samples",
                    "200",
                ),
            ),
            "wanda_vs_magnitude_noft": Config(
                _r("wanda_vs_magnitude_noft.md"),
                (
                    "--models",
                    "resnet_small,vgg_bn,tiny_vit",
                    "--methods",
                    ",".join(_NOFT_METHODS),
                    "--sparsities",
                    "0.5,0.6,0.7",
                    "--ft-sparsities",
                    "",
                    "--eval-samples",
                    "10000",
                    "--out",
                    "{results}/wanda_vs_magnitude_noft.jsonl",
                    "--table",
                    "{results}/wanda_vs_magnitude_noft_table.md",
                    "--pivot",
                ),
                _NOFT_QUICK,
            ),
            "wanda_global_noft": Config(
                _r("wanda_global_noft_table.md"),
                (
                    "--models",
                    "resnet_small,vgg_bn,tiny_vit,mlp,simple_cnn",
                    "--methods",
                    "wanda-global,wanda-global-ends",
                    "--sparsities",
                    "0.5,0.6,0.7",
                    "--ft-sparsities",
                    "",
                    "--eval-samples",
                    "10000",
                    "--out",
                    "{results}/wanda_global_noft.jsonl",
                    "--table",
                    "{results}/wanda_global_noft_table.md",
                    "--pivot",
                ),
                _NOFT_QUICK,
            ),
        },
    ),
    Study(
        "task_breadth",
        "task_breadth",
        "torchvision segmentation and video models through prune (l1 0.3) -> export -> parity per output",
        {
            "segmentation_video": Config(
                _r("task_breadth.md"), ("--out", "{results}/task_breadth"), ("lraspp_mobilenet_v3_large",)
            ),
        },
    ),
    Study(
        "wanda_global_variants",
        "wanda_global_variants",
        "how Wanda's --scope global compares layers: validation accuracy of four variants",
        {
            "samples": Config(
                _r("wanda_global_variants_val.jsonl"),
                ("resnet_small,vgg_bn,tiny_vit,mlp,simple_cnn", "{results}/wanda_global_variants_val.jsonl"),
            ),
        },
    ),
    Study(
        "wanda_speed",
        "wanda_speed",
        "wall time of Wanda calibration + pruning on torchvision ResNet-18 (224x224, 128 samples)",
        {
            "resnet18": Config(
                _r("wanda_speed.json"),
                ("--out", "{results}/wanda_speed.json"),
                ("--repeats", "1", "--samples", "8"),
            ),
        },
    ),
)


def study(name: str) -> Study:
    """The study called ``name``; a ``KeyError`` naming the valid studies otherwise."""
    for s in STUDIES:
        if s.name == name:
            return s
    raise KeyError(f"no study {name!r}; studies: {', '.join(s.name for s in STUDIES)}")

"""Registries, the only extension points: methods, sample models, export formats, bench backends,
data sources and model sources.

Pure data, no torch import: the CLI builds its choices, ``compress list`` and its help from here,
every command dispatches through these tables, and the tests parametrize over them. Each entry
names the module (or ``module:attribute``) that implements it; that module is imported only when
the entry is used, so adding an entry is adding one line here and one module.

* a method module exposes ``run(handle, config, context) -> MethodReport``
  (see :mod:`compressor.pruning.base`); its own settings are a dataclass (``module:Class``, torch-free,
  see :mod:`compressor.pruning.settings`) that ``--opt``, recipes and ``compress list`` are derived from;
* an export format module exposes ``write(inputs, config) -> Outcome`` (export, verify, write
  atomically; see :mod:`compressor.export.pipeline`), ``describe(path) -> dict`` (the figures
  ``compress info`` shows of a file in that format) and ``predictor(path) -> Predictor``
  (``compress eval`` runs the file on batches; see :mod:`compressor.export.parity`);
* a bench backend class has ``open(spec, profile, device)`` and the interface of
  :class:`compressor.bench.runner.Backend`;
* a data source is a function ``load(arg, split) -> Data`` (see :mod:`compressor.io.data`);
* a model source is a function ``build(name, kwargs) -> nn.Module`` (see :mod:`compressor.io.refs`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from compressor.errors import UsageError, unknown_name


def _attribute(target: str) -> Any:
    """The object ``module:attribute`` names (its module imported now)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class MethodInfo:
    """What a pruning method is and what it needs."""

    name: str
    kind: str  # "structured" (removes channels) or "unstructured" (masks)
    module: str
    summary: str
    paper: str
    needs_data: bool = False
    supports_nm: bool = False
    recalibrates_bn: bool = False  # takes --recalibrate-bn / --no-recalibrate-bn
    default_scope: str = "global"  # --scope when none is given
    command: str = "prune"
    samples: tuple[str, ...] | None = None  # sample models it can prune (None: every one)
    smoke: Mapping[str, Any] = field(
        default_factory=dict
    )  # PruneConfig fields of a quick run (options: its own settings)
    swept: bool = False  # one of compress sweep's default methods
    sweep: Mapping[str, Any] = field(default_factory=dict)  # PruneConfig fields of a sweep point
    settings: str = "compressor.pruning.settings:NoSettings"  # "module:Class" of its own settings

    def load(self) -> ModuleType:
        """Import the implementing module (heavy imports happen here, not at CLI start)."""
        return importlib.import_module(self.module)

    def settings_class(self) -> Any:
        """The class of the method's own settings (a torch-free module, imported now)."""
        return _attribute(self.settings)


_S = "compressor.pruning.structured"
_U = "compressor.pruning.unstructured"
_SU = f"{_U}.settings"

METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in [
        MethodInfo(
            "l1",
            "structured",
            f"{_S}.norm",
            "remove filters with the smallest L1 norm",
            "Li et al., ICLR 2017, arXiv:1608.08710",
            swept=True,
        ),
        MethodInfo(
            "l2",
            "structured",
            f"{_S}.norm",
            "remove filters with the smallest L2 norm",
            "Li et al., ICLR 2017 (L2 variant)",
        ),
        MethodInfo(
            "random", "structured", f"{_S}.norm", "remove random filters (the control)", "control baseline"
        ),
        MethodInfo(
            "slim",
            "structured",
            f"{_S}.slimming",
            "Network Slimming: L1 on BatchNorm gammas, global threshold",
            "Liu et al., ICCV 2017, arXiv:1708.06519",
            needs_data=True,
            command="slim",
            samples=("resnet_small", "resnet_wide", "mobilenet_small", "vgg_bn"),  # the ones with BatchNorm
            smoke={"options": {"sparsity_epochs": 1, "max_batches": 2}},
            swept=True,
            settings=f"{_S}.settings:SlimmingConfig",
        ),
        MethodInfo(
            "magnitude",
            "unstructured",
            f"{_U}.magnitude",
            "mask the smallest |W| (global or per layer)",
            "Han et al., NeurIPS 2015",
            supports_nm=True,
            recalibrates_bn=True,
            swept=True,
            sweep={"scope": "global"},
        ),  # global magnitude spares small layers
        MethodInfo(
            "wanda",
            "unstructured",
            f"{_U}.wanda",
            "mask by |W| * ||X||_2 per output row",
            "Sun et al., 2023, arXiv:2306.11695",
            needs_data=True,
            supports_nm=True,
            recalibrates_bn=True,
            default_scope="row",
            swept=True,
            sweep={"scope": "row"},  # within rows, as in the paper
            settings=f"{_SU}:WandaConfig",
        ),
        MethodInfo(
            "sap",
            "unstructured",
            f"{_U}.sap",
            "adaptive amount from the PQ index",
            "Diao et al., ICLR 2023",
            needs_data=True,
            smoke={"steps": 3, "options": {"gamma": 4.0}},  # gamma 1 removes ~12% a step
            swept=True,
            sweep={"scope": "layer", "options": {"gamma": 4.0}, "steps": 10},
            settings=f"{_SU}:SapConfig",
        ),
        MethodInfo(
            "activation",
            "unstructured",
            f"{_U}.activation",
            "remove neurons/channels with low mean activation",
            "Hu et al., 2016 (APoZ family)",
            needs_data=True,
            swept=True,
            sweep={"steps": 4},
            settings=f"{_SU}:ActivationConfig",
        ),
        MethodInfo(
            "lottery",
            "unstructured",
            f"{_U}.lottery",
            "iterative magnitude pruning with rewinding",
            "Frankle & Carbin, ICLR 2019",
            needs_data=True,
            settings=f"{_SU}:LotteryConfig",
        ),
    ]
}


@dataclass(frozen=True)
class SampleInfo:
    """A bundled sample model: its factory and what it is for."""

    name: str
    factory: str  # "module:function"
    summary: str
    input_shape: tuple[int, ...] = (1, 1, 28, 28)


SAMPLES: dict[str, SampleInfo] = {
    s.name: s
    for s in [
        SampleInfo("simple_cnn", "sample_models.models:simple_cnn", "2 conv + 2 linear"),
        SampleInfo(
            "resnet_small", "sample_models.models:resnet_small", "3-stage residual net, 2 basic blocks each"
        ),
        SampleInfo(
            "resnet_wide",
            "sample_models.models:resnet_wide",
            "resnet_small at 24/48/96 channels (~1 ms: latency-budget studies)",
        ),
        SampleInfo(
            "mobilenet_small",
            "sample_models.models:mobilenet_small",
            "MobileNetV2-style, depthwise convs (~1 ms: latency-budget studies)",
        ),
        SampleInfo("vgg_bn", "sample_models.models:vgg_bn", "VGG-style conv+BatchNorm (slimming target)"),
        SampleInfo("mlp", "sample_models.models:mlp", "3 linear layers (Wanda target)"),
        SampleInfo("tiny_vit", "sample_models.models:tiny_vit", "patch-embed ViT with attention heads"),
    ]
}


@dataclass(frozen=True)
class FormatInfo:
    """An export format: what ``compress export --format NAME`` writes and how it is read back."""

    name: str
    module: str  # write(inputs, cfg) -> Outcome; describe(path) -> dict; predictor(path) -> Predictor
    summary: str
    suffixes: tuple[str, ...]  # how a file in this format is recognised; the first is the one to write
    runtime: str  # what runs the file (``compress eval`` reports it as its backend)
    title: str  # the format's own spelling, for messages
    onnx_flags: bool = False  # --quantize, --fp16 and --sparse-storage apply
    runs_code: bool = False  # reading the file runs a program from it: only with --trust-pickle

    def load(self) -> ModuleType:
        """Import the implementing module."""
        return importlib.import_module(self.module)


FORMATS: dict[str, FormatInfo] = {
    f.name: f
    for f in [
        FormatInfo(
            "onnx",
            "compressor.export.pipeline",
            "ONNX graph checked against ONNX Runtime; onnxslim, int8, fp16, sparse storage",
            (".onnx",),
            "onnxruntime",
            "ONNX",
            onnx_flags=True,
        ),
        FormatInfo(
            "torchscript",
            "compressor.export.torchscript",
            "torch.jit.trace, loaded back by torch.jit.load",
            (".ts",),
            "torch.jit",
            "TorchScript",
            runs_code=True,
        ),
        FormatInfo(
            "exported-program",
            "compressor.export.exported_program",
            "torch.export program, loaded back by torch.export.load",
            (".pt2",),
            "torch.export",
            "ExportedProgram",
        ),
    ]
}


@dataclass(frozen=True)
class BackendInfo:
    """A timing backend of ``compress bench`` and what it times."""

    name: str  # the report's ``backend``
    impl: str  # "module:Class"; Class.open(spec, profile, device) -> a loaded model ready to time
    summary: str
    formats: tuple[str, ...] = ()  # export formats whose files it times
    models: bool = False  # times PyTorch models (artifacts, state_dicts, references)
    onnxruntime: bool = False  # runs on ONNX Runtime (--device cuda then needs onnxruntime-gpu)

    def load(self) -> Any:
        """The implementing class."""
        return _attribute(self.impl)


BACKENDS: dict[str, BackendInfo] = {
    b.name: b
    for b in [
        BackendInfo(
            "onnxruntime",
            "compressor.bench.runner:OrtBackend",
            "ONNX Runtime session on random inputs (CPU; CUDA with onnxruntime-gpu)",
            formats=("onnx",),
            onnxruntime=True,
        ),
        BackendInfo(
            "pytorch",
            "compressor.bench.runner:TorchBackend",
            "PyTorch module in eval mode under inference_mode (CPU; CUDA timed with events)",
            models=True,
        ),
    ]
}


@dataclass(frozen=True)
class DataSourceInfo:
    """A data source of ``--data NAME[:ARG]``."""

    name: str
    loader: str  # "module:function"; function(arg, split) -> Data
    summary: str
    needs_arg: bool = False  # written NAME:ARG (a path)

    def load(self) -> Any:
        """The loader function."""
        return _attribute(self.loader)


DATA_SOURCES: dict[str, DataSourceInfo] = {
    d.name: d
    for d in [
        DataSourceInfo(
            "fashion-mnist",
            "compressor.io.data:fashion_mnist",
            "Fashion-MNIST 28x28 (Debian dataset-fashion-mnist, or a torchvision root)",
        ),
        DataSourceInfo("digits", "compressor.io.data:digits", "scikit-learn 8x8 digits, upscaled to 28x28"),
        DataSourceInfo(
            "cifar10",
            "compressor.io.data:cifar10",
            "cifar10:ROOT, torchvision CIFAR-10 (3x32x32)",
            needs_arg=True,
        ),
        DataSourceInfo(
            "imagefolder",
            "compressor.io.data:imagefolder",
            "imagefolder:PATH, a torchvision ImageFolder tree",
            needs_arg=True,
        ),
        DataSourceInfo(
            "tensors",
            "compressor.io.data:tensors",
            "tensors:FILE, a .pt or .npz holding x and y",
            needs_arg=True,
        ),
        DataSourceInfo(
            "random",
            "compressor.io.data:random_data",
            "random[:C,H,W[:CLASSES]], random inputs for latency work",
        ),
    ]
}


@dataclass(frozen=True)
class ModelSourceInfo:
    """Where a model reference ``SCHEME:NAME`` builds its model from."""

    scheme: str  # the prefix; "python" is user code, written package.module:factory without it
    builder: str  # "module:function"; function(name, kwargs) -> nn.Module
    summary: str
    example: str
    # "module:function"; function(name, module) -> input shape (None: 1x3x224x224); module is the
    # built model (its configured size), or None when only the name is known
    shape: str | None = None

    def load(self) -> Any:
        """The builder function."""
        return _attribute(self.builder)

    def input_shape(self, name: str, module: Any = None) -> tuple[int, ...] | None:
        """The example input shape the source gives ``name`` built as ``module`` (None: the
        default image shape)."""
        return _attribute(self.shape)(name, module) if self.shape else None


USER_CODE = "python"  # the scheme of package.module:factory references

MODEL_SOURCES: dict[str, ModelSourceInfo] = {
    s.scheme: s
    for s in [
        ModelSourceInfo(
            "torchvision",
            "compressor.io.refs:build_torchvision",
            "any torchvision model: classification, segmentation, video, detection, optical flow (random init)",
            "torchvision:resnet18",
            shape="compressor.io.refs:torchvision_shape",
        ),
        ModelSourceInfo(
            "sample",
            "compressor.io.refs:build_sample",
            "a bundled sample model (the sample models above)",
            "sample:simple_cnn",
            shape="compressor.io.refs:sample_shape",
        ),
        ModelSourceInfo(
            "timm",
            "compressor.io.refs:build_timm",
            "a timm model (pip install 'compressor[timm]')",
            "timm:resnet18",
            shape="compressor.io.refs:timm_shape",
        ),
        ModelSourceInfo(
            USER_CODE,
            "compressor.io.refs:build_python",
            "your code: a callable returning an nn.Module",
            "package.module:factory",
        ),
    ]
}


def method(name: str) -> MethodInfo:
    """Look up a method by name; unknown names list the valid ones and the closest."""
    try:
        return METHODS[name]
    except KeyError:
        raise unknown_name("method", name, METHODS) from None


def methods_for(command: str) -> list[str]:
    """Method names accepted by one command (``prune`` or ``slim``)."""
    return [m.name for m in METHODS.values() if m.command == command]


def sample(name: str) -> SampleInfo:
    """Look up a sample model by name."""
    try:
        return SAMPLES[name]
    except KeyError:
        raise unknown_name("sample model", name, SAMPLES) from None


def export_format(name: str) -> FormatInfo:
    """Look up an export format by name."""
    try:
        return FORMATS[name]
    except KeyError:
        raise unknown_name("format", name, FORMATS) from None


def format_of(path: str) -> FormatInfo | None:
    """The export format of a file, by its suffix; None for a PyTorch model (or a reference)."""
    lowered = str(path).lower()
    return next((f for f in FORMATS.values() if lowered.endswith(f.suffixes)), None)


def backend_for(path: str) -> BackendInfo:
    """The bench backend that times the model at ``path`` (a file or a reference)."""
    fmt = format_of(path)
    for backend in BACKENDS.values():
        if (backend.formats and fmt is not None and fmt.name in backend.formats) or (
            fmt is None and backend.models
        ):
            return backend
    what = "PyTorch models" if fmt is None else f"{fmt.name} files"
    served = "; ".join(
        f"{b.name} times "
        + ", ".join([*(f"{f} files" for f in b.formats), *(["PyTorch models"] if b.models else [])])
        for b in BACKENDS.values()
    )
    raise UsageError(
        f"no bench backend times {what} ({path})",
        f"{served}: bench the model it was exported from, or export it with --format onnx",
    )


def data_source(name: str) -> DataSourceInfo:
    """Look up a data source by name."""
    try:
        return DATA_SOURCES[name]
    except KeyError:
        raise unknown_name("data source", name, DATA_SOURCES) from None


def model_source(ref: str) -> tuple[ModelSourceInfo, str]:
    """The source of a model reference and the name it is given: ``sample:mlp`` -> (sample, mlp);
    any other ``module:function`` is user code, given whole."""
    scheme, sep, name = ref.partition(":")
    if not sep or not name:
        examples = ", ".join(s.example for s in MODEL_SOURCES.values())
        raise UsageError(f"cannot read model reference '{ref}'", f"use {examples}")
    if scheme in MODEL_SOURCES and scheme != USER_CODE:
        return MODEL_SOURCES[scheme], name
    return MODEL_SOURCES[USER_CODE], ref


def samples_for(name: str) -> list[str]:
    """The sample models a method can prune."""
    info = method(name)
    return [s for s in SAMPLES if info.samples is None or s in info.samples]

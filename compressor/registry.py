"""Registries, the only extension points: methods, sample models, export formats, bench backends
and data sources.

Pure data, no torch import: the CLI builds its choices, ``compress list`` and its help from here,
every command dispatches through these tables, and the tests parametrize over them. Each entry
names the module (or ``module:attribute``) that implements it; that module is imported only when
the entry is used, so adding an entry is adding one line here and one module.

* a method module exposes ``run(handle, config, context) -> MethodReport``
  (see :mod:`compressor.pruning.base`);
* an export format module exposes ``write(inputs, config) -> Outcome`` (export, verify, write
  atomically; see :mod:`compressor.export.pipeline`), ``describe(path) -> dict`` (the figures
  ``compress info`` shows of a file in that format) and ``predictor(path) -> Predictor``
  (``compress eval`` runs the file on batches; see :mod:`compressor.export.parity`);
* a bench backend class has ``open(spec, profile, device)`` and the interface of
  :class:`compressor.bench.runner.Backend`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
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

    def load(self) -> ModuleType:
        """Import the implementing module (heavy imports happen here, not at CLI start)."""
        return importlib.import_module(self.module)


_S = "compressor.pruning.structured"
_U = "compressor.pruning.unstructured"

METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in [
        MethodInfo("l1", "structured", f"{_S}.norm", "remove filters with the smallest L1 norm",
                   "Li et al., ICLR 2017, arXiv:1608.08710"),
        MethodInfo("l2", "structured", f"{_S}.norm", "remove filters with the smallest L2 norm",
                   "Li et al., ICLR 2017 (L2 variant)"),
        MethodInfo("random", "structured", f"{_S}.norm", "remove random filters (the control)",
                   "control baseline"),
        MethodInfo("slim", "structured", f"{_S}.slimming",
                   "Network Slimming: L1 on BatchNorm gammas, global threshold",
                   "Liu et al., ICCV 2017, arXiv:1708.06519", needs_data=True, command="slim"),
        MethodInfo("magnitude", "unstructured", f"{_U}.magnitude",
                   "mask the smallest |W| (global or per layer)", "Han et al., NeurIPS 2015",
                   supports_nm=True, recalibrates_bn=True),
        MethodInfo("wanda", "unstructured", f"{_U}.wanda", "mask by |W| * ||X||_2 per output row",
                   "Sun et al., 2023, arXiv:2306.11695", needs_data=True, supports_nm=True,
                   recalibrates_bn=True, default_scope="row"),
        MethodInfo("sap", "unstructured", f"{_U}.sap", "adaptive amount from the PQ index",
                   "Diao et al., ICLR 2023", needs_data=True),
        MethodInfo("activation", "unstructured", f"{_U}.activation",
                   "remove neurons/channels with low mean activation", "Hu et al., 2016 (APoZ family)",
                   needs_data=True),
        MethodInfo("lottery", "unstructured", f"{_U}.lottery",
                   "iterative magnitude pruning with rewinding", "Frankle & Carbin, ICLR 2019",
                   needs_data=True),
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
        SampleInfo("resnet_small", "sample_models.models:resnet_small",
                   "3-stage residual net, 2 basic blocks each"),
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

    def load(self) -> ModuleType:
        """Import the implementing module."""
        return importlib.import_module(self.module)


FORMATS: dict[str, FormatInfo] = {
    f.name: f
    for f in [
        FormatInfo("onnx", "compressor.export.pipeline",
                   "ONNX graph checked against ONNX Runtime; onnxslim, int8, fp16, sparse storage",
                   (".onnx",), "onnxruntime", "ONNX", onnx_flags=True),
        FormatInfo("torchscript", "compressor.export.torchscript", "torch.jit.trace, loaded back by torch.jit.load",
                   (".ts",), "torch.jit", "TorchScript"),
        FormatInfo("exported-program", "compressor.export.exported_program",
                   "torch.export program, loaded back by torch.export.load", (".pt2",), "torch.export",
                   "ExportedProgram"),
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
        BackendInfo("onnxruntime", "compressor.bench.runner:OrtBackend",
                    "ONNX Runtime session on random inputs (CPU; CUDA with onnxruntime-gpu)",
                    formats=("onnx",), onnxruntime=True),
        BackendInfo("pytorch", "compressor.bench.runner:TorchBackend",
                    "PyTorch module in eval mode under inference_mode (CPU; CUDA timed with events)",
                    models=True),
    ]
}


DATA_SOURCES: dict[str, str] = {
    "fashion-mnist": "Fashion-MNIST 28x28 (Debian dataset-fashion-mnist, or a torchvision root)",
    "digits": "scikit-learn 8x8 digits, upscaled to 28x28",
    "cifar10": "cifar10:ROOT, torchvision CIFAR-10 (3x32x32)",
    "imagefolder": "imagefolder:PATH, a torchvision ImageFolder tree",
    "tensors": "tensors:FILE, a .pt or .npz holding x and y",
    "random": "random[:C,H,W[:CLASSES]], random inputs for latency work",
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
        if (backend.formats and fmt is not None and fmt.name in backend.formats) or (fmt is None and backend.models):
            return backend
    what = "PyTorch models" if fmt is None else f"{fmt.name} files"
    served = "; ".join(f"{b.name} times " + ", ".join([*(f"{f} files" for f in b.formats),
                                                        *(["PyTorch models"] if b.models else [])])
                       for b in BACKENDS.values())
    raise UsageError(f"no bench backend times {what} ({path})",
                     f"{served}: bench the model it was exported from, or export it with --format onnx")


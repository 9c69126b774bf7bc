"""torchvision's models by task: one table row per task says how ``torchvision:NAME`` is built.

Each :class:`Task` row names the ``torchvision.models`` sub-package that lists its models, the
builder keyword arguments (random init: no weights, no backbone weights, the heads the published
weights have), the example input a model of the task takes, and the layers kept unpruned beyond
those found automatically (every layer that makes a returned tensor keeps its width; see
:func:`compressor.pruning.structured.graph.output_makers`). Keys of ``kwargs``, ``shapes`` and
``keep`` are fnmatch patterns of model names; the most specific (longest) matching pattern wins,
and kwargs of all matching patterns are merged. Adding a task is adding a row.

Shapes come from the transforms and evaluation clips of torchvision's published weights:
segmentation is evaluated at 520x520 (any size of at least 1x1 runs); the ResNet-3D family
(r3d_18, mc3_18, r2plus1d_18) on 16-frame 112x112 clips (any size runs); s3d, MViT and Swin3D
on 224x224 crops, 16 frames here (torchvision states minimums of 14 frames at 224x224 for s3d and
16 frames at 224x224 for MViT; Swin3D is evaluated on 32-frame clips and runs on any).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compressor.errors import UnsupportedError, UsageError


@dataclass(frozen=True)
class Task:
    """One torchvision task.

    Attributes:
        name: the task, for messages and docs.
        package: the ``torchvision.models`` sub-package whose ``list_models`` gives its models
            ("" for classification, the top level).
        input_shape: the example input (batch 1) of the task's models.
        shapes: model pattern -> input shape, where a model differs from ``input_shape``.
        kwargs: model pattern -> builder keyword arguments (the user's ``--arch-kwargs`` win).
        keep: model pattern -> fnmatch patterns of layers never pruned.
        refused_kwargs: builder argument -> (why a model built with it set is refused, what to do).
    """

    name: str
    package: str
    input_shape: tuple[int, ...]
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    kwargs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    keep: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    refused_kwargs: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def shape(self, model: str) -> tuple[int, ...]:
        """The example input of ``model``."""
        return _most_specific(self.shapes, model, self.input_shape)

    def builder_kwargs(self, model: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Keyword arguments of every pattern ``model`` matches, the more specific winning, then
        ``given`` (the user's); an argument of ``refused_kwargs`` set truthy is exit 3."""
        merged: dict[str, Any] = {}
        for pattern in sorted(self.kwargs, key=len):
            if fnmatch.fnmatch(model, pattern):
                merged.update(self.kwargs[pattern])
        merged.update(given or {})
        for key, (why, hint) in self.refused_kwargs.items():
            if merged.get(key):
                raise UnsupportedError(f"torchvision:{model} with {key}={merged[key]!r}: {why}", hint)
        return merged

    def kept_layers(self, model: str) -> tuple[str, ...]:
        """Layer patterns of ``model`` never pruned."""
        return _most_specific(self.keep, model, ())


def _most_specific(table: Mapping[str, Any], model: str, default: Any) -> Any:
    hits = [p for p in table if fnmatch.fnmatch(model, p)]
    return table[max(hits, key=len)] if hits else default


TASKS: tuple[Task, ...] = (
    Task(
        "classification",
        "",
        (1, 3, 224, 224),
        shapes={"inception_v3": (1, 3, 299, 299)},
        kwargs={
            "inception_v3": {"init_weights": False, "aux_logits": False},
            "googlenet": {"init_weights": False, "aux_logits": False},
        },
    ),
    Task(
        "semantic segmentation",
        "segmentation",
        (1, 3, 520, 520),
        # the published weights have the auxiliary head: outputs {"out", "aux"} (lraspp: {"out"})
        kwargs={
            "*": {"weights_backbone": None},
            "fcn_*": {"aux_loss": True},
            "deeplabv3_*": {"aux_loss": True},
        },
    ),
    Task(
        "video classification",
        "video",
        (1, 3, 16, 112, 112),
        shapes={
            "s3d": (1, 3, 16, 224, 224),
            "mvit_*": (1, 3, 16, 224, 224),
            "swin3d_*": (1, 3, 16, 224, 224),
        },
    ),
    Task(
        "quantized classification",
        "quantization",
        (1, 3, 224, 224),
        shapes={"quantized_inception_v3": (1, 3, 299, 299)},
        # torchvision's own default, quantize=False: the float quantizable architecture (quant and
        # dequant stubs, float functional adds), which prunes like its float twin; int8 comes at
        # export (``compress export --quantize int8``)
        kwargs={
            "*": {"quantize": False},
            "quantized_inception_v3": {"init_weights": False, "aux_logits": False},
            "quantized_googlenet": {"init_weights": False, "aux_logits": False},
        },
        refused_kwargs={
            "quantize": (
                "packs the weights into int8 tensors for inference kernels, whose channels cannot be removed",
                "leave quantize unset to prune the float quantizable model, then compress export "
                "--quantize int8 for an int8 file",
            ),
        },
    ),
)


def models(task: Task) -> list[str]:
    """The model names torchvision lists for ``task``."""
    import importlib

    import torchvision

    package = (
        importlib.import_module(f"torchvision.models.{task.package}") if task.package else torchvision.models
    )
    return sorted(torchvision.models.list_models(module=package))


def find(name: str) -> tuple[Task, str] | None:
    """(task, model) for a torchvision model name, None when no task lists it."""
    for task in TASKS:
        if name in models(task):
            return task, name
    return None


def task_of(name: str) -> Task:
    """The task of a model; an unknown name lists the closest across every task (exit 2)."""
    found = find(name)
    if found is None:
        raise unknown_model("torchvision model", name)
    return found[0]


def input_shape(name: str) -> tuple[int, ...] | None:
    """The example input of a torchvision model (None for a name no task lists)."""
    found = find(name)
    return found[0].shape(name) if found else None


def kept_layers(ref: str | None) -> tuple[str, ...]:
    """Layer patterns the model table keeps unpruned for a ``torchvision:NAME`` reference."""
    if not ref or not ref.startswith("torchvision:"):
        return ()
    found = find(ref.partition(":")[2])
    return found[0].kept_layers(found[1]) if found else ()


def zoo_names() -> list[str]:
    """Every model reference of the two zoos: ``torchvision:NAME`` (all tasks) and, when timm is
    installed, ``timm:NAME``."""
    import torchvision

    names = [f"torchvision:{n}" for n in torchvision.models.list_models()]
    try:
        import timm
    except ImportError:
        return names
    return names + [f"timm:{n}" for n in timm.list_models()]


def closest_models(name: str, count: int = 3) -> list[str]:
    """The zoo references whose names are closest to ``name`` (with or without a scheme)."""
    plain = name.partition(":")[2] or name
    refs = zoo_names()
    by_name: dict[str, list[str]] = {}
    for ref in refs:
        by_name.setdefault(ref.partition(":")[2], []).append(ref)
    near = difflib.get_close_matches(plain, list(by_name), n=count, cutoff=0.6)
    return [ref for n in near for ref in by_name[n]][:count]


def unknown_model(kind: str, name: str) -> UsageError:
    """Exit 2 for a name the zoo does not have, naming the closest references in either zoo."""
    near = closest_models(name)
    hint = f"did you mean {' or '.join(near)}?" if near else "compress list shows the model sources"
    return UsageError(f"unknown {kind} '{name}'", hint)

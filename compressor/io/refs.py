"""Model references: one string names an architecture wherever a model is named.

* ``torchvision:resnet18`` a torchvision classification, semantic segmentation or video
  classification model (random init; :mod:`compressor.io.zoo` has the table per task), or a
  detection or optical-flow model behind a one-tensor adapter (:mod:`compressor.io.detection`);
* ``sample:simple_cnn`` one of our sample models (``compress list``);
* ``timm:NAME`` a timm model when timm is installed;
* ``package.module:factory`` user code: a callable returning an ``nn.Module``.

The schemes are the model sources of :data:`compressor.registry.MODEL_SOURCES`, each a builder
``(name, kwargs) -> nn.Module`` in this module. Keyword arguments come from
``--arch-kwargs num_classes=10,width=2``.
"""

from __future__ import annotations

import ast
import importlib
from typing import Any

from compressor import registry
from compressor.errors import InputError, UnsupportedError, UsageError

DEFAULT_IMAGE_SHAPE = (1, 3, 224, 224)


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """Parse ``a=1,b=x,c=true`` into a dict with Python-literal values."""
    if not text:
        return {}
    out: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"cannot parse --arch-kwargs item '{item}'", "write key=value,key=value")
        out[key.strip()] = _literal(raw.strip())
    return out


def _literal(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def build(ref: str, kwargs: dict[str, Any] | None = None):
    """Build a freshly initialised ``nn.Module`` from a reference."""
    kwargs = dict(kwargs or {})
    source, name = registry.model_source(ref)
    try:
        return source.load()(name, kwargs)
    except TypeError as exc:
        raise UsageError(f"cannot build '{ref}' with {kwargs}: {exc}", "check --arch-kwargs") from None


def default_input_shape(ref: str | None, module: Any = None) -> tuple[int, ...]:
    """The example input shape a reference implies (batch 1); ``module``, the model built from it,
    tells the size it was configured for where the source reads one (timm's ``img_size``)."""
    if not ref:
        return DEFAULT_IMAGE_SHAPE
    source, name = registry.model_source(ref)
    return source.input_shape(name, module) or DEFAULT_IMAGE_SHAPE


def torchvision_shape(name: str, module: Any = None) -> tuple[int, ...] | None:
    """The input a torchvision model is made for (its task's row in :mod:`compressor.io.zoo`;
    detection and optical-flow models: their adapter's, see :mod:`compressor.io.detection`)."""
    from compressor.io import detection, zoo

    if detection.is_adapted(name):
        return detection.input_shape(name)
    return zoo.input_shape(name)


def sample_shape(name: str, module: Any = None) -> tuple[int, ...]:
    """A sample model's input shape, from its registry entry."""
    return registry.sample(name).input_shape


def torchvision_models() -> list[str]:
    """Names of every torchvision classification model."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_torchvision(name: str, kwargs: dict[str, Any]):
    """A torchvision model of any task in :data:`compressor.io.zoo.TASKS`, with random weights;
    the task's builder arguments apply unless ``kwargs`` sets them. A detection or optical-flow
    model comes behind its one-tensor adapter (:mod:`compressor.io.detection`)."""
    import torchvision

    from compressor.io import detection, zoo

    if detection.is_adapted(name):
        return detection.build(name, kwargs)
    task = zoo.task_of(name)
    return torchvision.models.get_model(name, weights=None, **task.builder_kwargs(name, kwargs))


def build_sample(name: str, kwargs: dict[str, Any]):
    """A bundled sample model (its factory in the registry's SAMPLES)."""
    info = registry.sample(name)
    return _call_factory(info.factory, kwargs)


def build_timm(name: str, kwargs: dict[str, Any]):
    """A timm model with random weights (timm is an optional dependency)."""
    try:
        import timm
    except ImportError:
        raise UsageError("timm is not installed", "pip install 'compressor[timm]'") from None
    if not timm.is_model(name):
        from compressor.io.zoo import unknown_model

        raise unknown_model("timm model", name)
    return timm.create_model(name, pretrained=False, **kwargs)


def timm_shape(name: str, module: Any = None) -> tuple[int, ...] | None:
    """The input a timm model is configured for: a vision transformer's ``patch_embed.img_size``
    (it follows ``--arch-kwargs img_size=N``), else the model's ``pretrained_cfg['input_size']``;
    channels from its ``in_chans`` (None: timm is not installed or has no such model).

    A model's ``pretrained_cfg`` keeps the size of its published weights even when built with
    another ``img_size``, which its patch embedding does follow.
    """
    try:
        import timm
    except ImportError:
        return None
    cfg = getattr(module, "pretrained_cfg", None)
    if cfg is None and timm.is_model(name):
        found = timm.get_pretrained_cfg(name)
        cfg = found.to_dict() if found is not None else None
    size = (cfg or {}).get("input_size")
    if not size or len(size) != 3:
        return None
    channels, height, width = size
    img = getattr(getattr(module, "patch_embed", None), "img_size", None)
    if isinstance(img, (tuple, list)) and len(img) == 2 and all(isinstance(v, int) for v in img):
        height, width = img
    return (1, _in_channels(module) or channels, height, width)


def _in_channels(module: Any) -> int | None:
    """The channels a model's first convolution reads (timm's ``in_chans``), None without one."""
    import torch.nn as nn

    first = (
        next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None) if module is not None else None
    )
    return first.in_channels if first is not None else None


def build_python(ref: str, kwargs: dict[str, Any]):
    """User code: ``package.module:factory`` called with ``kwargs``."""
    return _call_factory(ref, kwargs)


def _call_factory(ref: str, kwargs: dict[str, Any]):
    import torch.nn as nn

    module_name, _, attr = ref.rpartition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(
            f"cannot import '{module_name}' for model '{ref}': {exc}", "check the module path and PYTHONPATH"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InputError(f"'{module_name}' has no callable '{attr}'", "name a function or class")
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise UnsupportedError(f"'{ref}' returned {type(model).__name__}, not a torch nn.Module")
    return model

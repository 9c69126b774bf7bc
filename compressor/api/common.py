"""Shared pieces of the API: how a command names its input model, and how its flags are read.

Every API function has one shape, ``f(model, config, output=None, *, progress=None) -> Result``:
``model`` a :class:`ModelSpec` or a path/reference string, ``config`` the command's typed config,
``output`` the file written (if any), ``progress`` a callable given one human line at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from compressor.errors import UsageError
from compressor.io.refs import parse_kwargs
from compressor.io.spec import ModelSpec, parse_shape

__all__ = ["ModelSpec", "parse_shape", "parse_kwargs", "as_spec", "with_model", "Progress", "quiet"]

Progress = Callable[[str], None]
"""Receives one human progress line (the CLI prints it on stderr)."""

C = TypeVar("C")


def quiet(line: str) -> None:
    """A progress callback that drops every line."""


def as_spec(model: ModelSpec | str | Path) -> ModelSpec:
    """A :class:`ModelSpec` for ``model`` (a path or reference string is read as ``ModelSpec(path)``)."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, (str, Path)):
        return ModelSpec(str(model))
    raise UsageError(
        f"a model is a ModelSpec, a path or a reference, got {type(model).__name__}",
        "e.g. ModelSpec('model.pt', arch='torchvision:resnet18') or 'sample:mlp'",
    )


def with_model(config: C, field: str, model: ModelSpec | str | None) -> tuple[C, ModelSpec]:
    """(``config`` with its model ``field`` set to ``model``, that model); None: the config's own."""
    if model is None:
        spec = getattr(config, field)
        if spec is None:
            raise UsageError("no model given", "pass it first: f(model, config)")
        return config, spec
    spec = as_spec(model)
    return dataclasses.replace(config, **{field: spec}), spec  # type: ignore[type-var]

"""Packages whose public names are imported on first use, so that importing them stays light.

``compressor`` and ``compressor.api`` name functions after their own submodules (``prune`` the
function beside ``compressor.api.prune`` the module; ``bench`` the function beside the
``compressor.bench`` package). Python binds a submodule onto its package when it is first
imported, which would replace the function; a lazy package keeps the public name instead.
Submodules stay importable with ``from``: ``from compressor.bench import runner`` and
``from compressor.api.prune import make_context`` work; ``import compressor.bench.runner as runner``
and dotted attribute paths through a shadowed name (``compressor.bench.runner``) do not.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class LazyPackage(types.ModuleType):
    """A package module whose public names (name -> defining module) resolve on first use."""

    _lazy: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        source = self.__dict__.get("_lazy", {}).get(name)
        if source is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        super().__setattr__(name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("_lazy", {}):
            return  # the import system binding a same-named submodule: the public name wins
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._lazy))


def make_lazy(module_name: str, names: dict[str, str]) -> None:
    """Turn the (initialising) package ``module_name`` into a :class:`LazyPackage` over ``names``."""
    module = sys.modules[module_name]
    module.__dict__["_lazy"] = dict(names)
    module.__class__ = LazyPackage

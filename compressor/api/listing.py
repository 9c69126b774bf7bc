"""``compress list``: every registry (methods, export formats, bench backends and profiles, sample
models, data sources, model sources) as plain data."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from compressor import registry
from compressor.pruning.settings import describe


def _method(info: registry.MethodInfo) -> dict[str, Any]:
    """A method's entry, its own settings (``--opt`` names, types, defaults) read from its class."""
    cls = info.settings_class()
    return {**asdict(info), "settings": describe(cls), "settings_class": cls.__name__}


def list_all() -> dict[str, Any]:
    """Every registry, as plain data."""
    from compressor.bench.profiles import PROFILES

    return {
        "methods": [_method(m) for m in registry.METHODS.values()],
        "profiles": [{"name": p.name, "summary": p.summary} for p in PROFILES.values()],
        "samples": [asdict(s) for s in registry.SAMPLES.values()],
        "data_sources": [asdict(d) for d in registry.DATA_SOURCES.values()],
        "formats": [asdict(f) for f in registry.FORMATS.values()],
        "backends": [asdict(b) for b in registry.BACKENDS.values()],
        "model_sources": [asdict(s) for s in registry.MODEL_SOURCES.values()],
    }

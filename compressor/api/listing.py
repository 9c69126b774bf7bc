"""``compress list``: methods, profiles, sample models and data sources from the registries."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from compressor import registry


def list_all() -> dict[str, Any]:
    """Every registry, as plain data."""
    from compressor.bench.profiles import PROFILES

    return {
        "methods": [asdict(m) for m in registry.METHODS.values()],
        "profiles": [{"name": p.name, "summary": p.summary} for p in PROFILES.values()],
        "samples": [asdict(s) for s in registry.SAMPLES.values()],
        "data_sources": [asdict(d) for d in registry.DATA_SOURCES.values()],
    }

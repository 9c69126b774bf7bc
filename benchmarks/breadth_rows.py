"""What the studies share: the conditions written with every row (versions, threads, load average),
and the latest row of every model from a resumable study's JSON-lines file; torch-pruning's
installed version, which every study's conditions quote."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import platform
from pathlib import Path


def conditions(*packages: str) -> dict:
    """Versions of torch, torch-pruning, onnxruntime and ``packages``; threads, CPUs, load, machine."""
    import torch

    versions = {
        name.replace("-", "_"): importlib.import_module(name).__version__
        for name in ("torch", *packages, "onnxruntime")
    }
    versions["torch_pruning"] = torch_pruning_version()
    return {
        **versions,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 1),
        "machine": platform.machine(),
    }


def load() -> str:
    """The 1/5/15-minute load average as text."""
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def torch_pruning_version() -> str:
    """The installed torch-pruning distribution's version: its module string lags its releases
    (1.6.1 says 1.6.0)."""
    return importlib.metadata.version("torch-pruning")


def latest_rows(jsonl: Path, key: str) -> dict[str, dict]:
    """The last row written for every ``row[key]`` (a rerun replaces the earlier row)."""
    rows: dict[str, dict] = {}
    if jsonl.exists():
        for line in jsonl.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row[key]] = row
    return rows

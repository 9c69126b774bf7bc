"""Lean start-up and the public API: help and ``compress list`` load neither torch nor onnxruntime.

Each check runs in a fresh interpreter (this test process has long since imported torch).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "onnxruntime")


def _commands() -> list[str]:
    import typer

    from compressor.cli.app import app

    return sorted(typer.main.get_command(app).commands)


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _heavy(names: list[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["list"], ["list", "--json"], *([cmd, "--help"] for cmd in _commands())],
    ids=" ".join,
)
def test_help_and_list_import_no_torch(argv):
    """``python -X importtime`` names every module imported; none may be torch or onnxruntime."""
    proc = _python("-X", "importtime", "-m", "compressor", *argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2 and not line.endswith("imported package")
    ]
    assert "compressor.cli.app" in imported  # the trace is read correctly
    assert not _heavy(imported), f"compress {' '.join(argv)} imported {_heavy(imported)[:5]}"


SCRIPT = """
import json, sys
from typer.testing import CliRunner
from compressor.cli.app import app
runs = {}
for argv in ([], ["--help"], ["list"], ["prune", "--help"], ["finetune", "--help"], ["run", "--help"]):
    result = CliRunner().invoke(app, argv)
    runs[" ".join(argv)] = [result.exit_code, sorted(m for m in sys.modules if m.split(".")[0] in
                                                     ("torch", "onnxruntime"))]
print(json.dumps(runs))
"""


def test_sys_modules_stays_light_across_commands():
    """In one process, help and list of several commands leave torch out of ``sys.modules``."""
    proc = _python("-c", SCRIPT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = json.loads(proc.stdout)
    assert runs.pop("")[0] in (0, 2)  # no arguments: the help, with a usage exit code
    for argv, (code, heavy) in runs.items():
        assert code == 0, argv
        assert heavy == [], f"{argv}: {heavy[:5]}"


PUBLIC = """
import json, sys
import compressor
from compressor import (prune, slim, distill, finetune, export, bench, evaluate, info, sweep,
                        ModelSpec, PruneConfig, SlimConfig, ExportConfig, TrainConfig, DistillConfig,
                        EvalConfig, BenchConfig, SweepConfig, CompressorError, SapConfig, SlimmingConfig)
light = not any(m.split(".")[0] in ("torch", "onnxruntime") for m in sys.modules)
cfg = PruneConfig(method="l1", ratio=0.5)
sap = PruneConfig(method="sap", sparsity=0.5, data="digits", settings=SapConfig(gamma=4.0), options={"p": "0.25"})
assert sap.settings == SapConfig(p=0.25, gamma=4.0)
SlimConfig(data="digits").to_prune_config()
light_config = not any(m.split(".")[0] in ("torch", "onnxruntime") for m in sys.modules)
import compressor.bench.profiles, compressor.export.config, compressor.sweep.plan, compressor.api.prune
from compressor import bench as b2, export as e2, sweep as s2, prune as p2
from compressor.api import prune as p3
print(json.dumps({"light": light, "light_config": light_config,
                  "functions": [callable(f) and type(f).__name__ == "function"
                                for f in (prune, slim, distill, finetune, export, bench, evaluate, info,
                                          sweep, b2, e2, s2, p2, p3)],
                  "same": [b2 is bench, e2 is export, s2 is sweep, p2 is prune, p3 is prune],
                  "all": sorted(compressor.__all__)}))
"""


def test_public_api_imports_lazily_and_names_functions():
    """``from compressor import prune, PruneConfig, export, ...`` works without loading torch, and a
    function keeps its name after the same-named subpackage (``compressor.bench``) is imported."""
    proc = _python("-c", PUBLIC)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["light"] and doc["light_config"]
    assert all(doc["functions"]) and all(doc["same"])
    assert {
        "prune",
        "export",
        "PruneConfig",
        "ExportConfig",
        "TrainConfig",
        "SapConfig",
        "WandaConfig",
        "ActivationConfig",
        "LotteryConfig",
        "SlimmingConfig",
    } <= set(doc["all"])

"""Shared fixtures: a fixed random state for every test, tiny real models saved as artifacts, a CLI
runner that captures exit codes. The rules these follow are in docs/testing.md."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"
HAS_FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists() or bool(
    os.environ.get("COMPRESSOR_FASHION_MNIST")
)
needs_fashion = pytest.mark.skipif(not HAS_FASHION, reason="apt-get install -y dataset-fashion-mnist")
SEED = 0


def seed_all(seed: int = SEED) -> None:
    """Seed torch, numpy's global generator and ``random``: what a test draws is the same on every run,
    in any order. Fixtures wider than one test call it themselves before they build a model."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pytest_configure(config) -> None:
    """pytest-randomly shuffles the test order; the values a test draws come from :func:`seed_all`
    alone, so a run's seed only picks the order (it would otherwise reseed ``random`` and numpy with
    a different value on every run, right before each test)."""
    if hasattr(config.option, "randomly_reset_seed"):
        config.option.randomly_reset_seed = False


def _order_line(config) -> str | None:
    seed = getattr(config.option, "randomly_seed", None)
    if not isinstance(seed, int):
        return None
    return f"test order: --randomly-seed={seed} (the same order again: -p randomly --randomly-seed={seed})"


def pytest_collection_finish(session) -> None:
    """Say which order the tests run in, before they run (shown with -q too)."""
    line = _order_line(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line and reporter is not None:
        reporter.write_line(line)


def pytest_terminal_summary(terminalreporter, config) -> None:
    """And again under the results, next to any failure."""
    line = _order_line(config)
    if line:
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Every test starts from the same random state, whichever tests ran before it."""
    seed_all()


@dataclass
class CliResult:
    """Exit code and the two output streams of one CLI call."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        """The single JSON document on stdout."""
        return json.loads(self.stdout)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> CliResult:
    """Run ``python -m compressor ARGS`` as a user would; capture code, stdout, stderr."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "compressor", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=full_env,
        timeout=600,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    """The CLI runner."""
    return run_cli


def invoke(*args: str) -> CliResult:
    """Run the CLI in this process (no interpreter start-up): for exit-code and message tests."""
    from typer.testing import CliRunner

    from compressor.cli.app import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory) -> Path:
    """Untrained sample models saved as artifacts (fast, deterministic)."""

    from compressor.io.artifact import save_artifact
    from compressor.io.refs import build
    from compressor.model import ModelHandle

    folder = tmp_path_factory.mktemp("artifacts")
    for name in ("simple_cnn", "resnet_small", "vgg_bn", "mlp", "tiny_vit"):
        seed_all()  # each model's weights are those of a fresh build after seed_all()
        handle = ModelHandle(
            build(f"sample:{name}").eval(),
            f"sample:{name}",
            input_shape=(1, 1, 28, 28),
            mean=[0.286],
            std=[0.353],
        )
        handle.record("test-fixture", "init", {"seed": 0}, {"accuracy": 0.1})
        save_artifact(handle, folder / f"{name}.pt")
    return folder


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """A small MLP (weights of a fresh build after :func:`seed_all`) exported to ONNX with a dynamic
    batch axis."""
    import torch

    from compressor.io.refs import build

    seed_all()
    path = tmp_path_factory.mktemp("onnx") / "mlp.onnx"
    model = build("sample:mlp").eval()
    torch.onnx.export(
        model,
        (torch.randn(1, 1, 28, 28),),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


def prune_l1_half(model, input_shape: tuple[int, ...]):
    """``model`` pruned in place by l1 at ratio 0.5 through the library (no data): (handle, report)."""
    from compressor.model import ModelHandle
    from compressor.pruning.base import PruneConfig, PruneContext
    from compressor.pruning.structured import norm

    handle = ModelHandle(module=model, ref=None, input_shape=input_shape)
    return handle, norm.run(handle, PruneConfig("l1", ratio=0.5), PruneContext())

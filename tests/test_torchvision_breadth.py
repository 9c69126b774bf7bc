"""Breadth over torchvision (slow): a few models of ``list_models()``, a different few each day of
the year, through ``compress prune --method l1 --ratio 0.5`` -> ``compress export`` -> parity on
every output, at each task's example input: every model of every task prunes.

Set ``COMPRESSOR_BREADTH_MODELS=name,name`` to run given models (a failure seen on another day).
The whole list runs as a benchmark: ``python -m benchmarks run torchvision_breadth``.
"""

from __future__ import annotations

import datetime
import json
import os

import pytest

from tests.conftest import run_cli, seed_all

COUNT = 3


def rotating_models(day: int, count: int = COUNT) -> list[str]:
    """``count`` models spread evenly over the sorted list, shifted by one each day."""
    import torchvision

    names = sorted(torchvision.models.list_models())
    step = len(names) // count
    return [names[(day + i * step) % len(names)] for i in range(count)]


def _picked() -> list[str]:
    given = os.environ.get("COMPRESSOR_BREADTH_MODELS")
    if given:
        return [n.strip() for n in given.split(",") if n.strip()]
    return rotating_models(datetime.date.today().timetuple().tm_yday)


def test_rotation_spreads_over_the_list_and_moves_each_day():
    import torchvision

    names = sorted(torchvision.models.list_models())
    today, tomorrow = rotating_models(10), rotating_models(11)
    assert len(set(today)) == COUNT and set(today) <= set(names)
    assert [names.index(n) for n in tomorrow] == [names.index(n) + 1 for n in today]


@pytest.mark.slow
@pytest.mark.parametrize("name", _picked())
def test_model_prunes_and_exports_with_parity(name, tmp_path):
    from compressor import outputs
    from compressor.api.common import ModelSpec
    from compressor.io.artifact import load_model

    pruned, onnx = tmp_path / "p.pt", tmp_path / "p.onnx"
    done = run_cli(
        "prune", f"torchvision:{name}", "--method", "l1", "--ratio", "0.5", "-o", str(pruned), "--json"
    )
    assert done.code == 0, done.stderr[-500:]
    assert done.json()["macs_after"] < done.json()["macs_before"]
    export = run_cli("export", str(pruned), "-o", str(onnx), "--samples", "4", "--no-simplify", "--json")
    assert export.code == 0, export.stderr[-500:]
    rows = json.loads(export.stdout)["outputs"]
    assert rows and all(row["passed"] for row in rows), rows
    seed_all()
    dense = ModelSpec(f"torchvision:{name}").load()
    x = dense.example_input()
    assert outputs.model_shapes(load_model(str(pruned)).module, x) == outputs.model_shapes(dense.module, x)

"""The Python API: one call shape, ``f(model, config, output=None, *, progress=None) -> Result``."""

from __future__ import annotations

import inspect

import pytest

import compressor
from compressor import DistillConfig, EvalConfig, ModelSpec, PruneConfig, SweepConfig, TrainConfig, UsageError
from compressor.sweep.plan import point_recipe
from tests.conftest import SAMPLES

SHAPED = ("prune", "slim", "distill", "finetune", "export", "bench", "evaluate")


@pytest.mark.parametrize("name", SHAPED)
def test_every_model_function_has_one_shape(name):
    params = inspect.signature(getattr(compressor, name)).parameters
    assert list(params)[:3] == ["model", "config", "output"]
    assert params["output"].default is None
    assert params["progress"].kind is inspect.Parameter.KEYWORD_ONLY and params["progress"].default is None


def test_evaluate_takes_the_model_first_or_in_its_config():
    cnn = str(SAMPLES / "simple_cnn.pt")
    new = compressor.evaluate(cnn, EvalConfig(data="digits", limit=64))
    old = compressor.evaluate(EvalConfig(ModelSpec(cnn), "digits", limit=64))
    assert (new.accuracy, new.samples, new.path) == (old.accuracy, old.samples, old.path)
    with pytest.raises(UsageError, match="no model"):
        compressor.evaluate(None, EvalConfig(data="digits"))


def test_prune_then_distill_in_the_new_shape(tmp_path):
    lines: list[str] = []
    cfg = PruneConfig(method="magnitude", sparsity=0.5)
    pruned = compressor.prune("sample:mlp", cfg, str(tmp_path / "p.pt"))
    assert pruned.after["sparsity"] > 0.4
    tune = DistillConfig(data="random", train=TrainConfig(epochs=1, max_batches=2), eval_limit=32)
    result = compressor.finetune(str(tmp_path / "p.pt"), tune, str(tmp_path / "ft.pt"), progress=lines.append)
    assert result.student == str(tmp_path / "p.pt") and (tmp_path / "ft.pt").is_file()
    assert len(lines) == 1 and lines[0].startswith("epoch 0: loss ")


def test_sweep_config_takes_a_model_spec_or_a_string(tmp_path):
    common = dict(data="digits", output_dir=str(tmp_path), methods=("l1",), levels=(0.5,))
    by_spec = SweepConfig(ModelSpec("sample:mlp", arch_kwargs={"num_classes": 10}), **common)
    by_text = SweepConfig("sample:mlp", arch_kwargs={"num_classes": 10}, **common)
    assert by_spec.spec == by_text.spec == ModelSpec("sample:mlp", arch_kwargs={"num_classes": 10})
    assert point_recipe(by_spec, "x", {}, 1, {}) == point_recipe(by_text, "x", {}, 1, {})
    with pytest.raises(UsageError, match="recipes"):
        SweepConfig(ModelSpec("sample:mlp", trust_pickle=True), **common)


def test_first_line_of_an_error_is_one_helper():
    from compressor.errors import first_line

    assert first_line(ValueError("  shape mismatch\n  at layer 3  ")) == "shape mismatch"
    assert first_line(ValueError("x" * 300), 160) == "x" * 160
    assert first_line(ValueError("x" * 300), None) == "x" * 300
    assert first_line(KeyError()) == "KeyError" and first_line(KeyError(), empty="") == ""

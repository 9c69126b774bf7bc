"""The preflight names what blocks structured pruning before any channel is removed, in bounded time."""

from __future__ import annotations

import pytest
import torch

from compressor.errors import UnsupportedError, UsageError
from compressor.pruning.structured import graph, preflight
from tests.conftest import invoke
from tests.preflight_models import FixedReshape, SlowWhenCut

SHAPE = "1,3,8,8"


def prune(ref: str, tmp_path, *extra: str):
    out = tmp_path / "out.pt"
    result = invoke(
        "prune", ref, "--input-shape", SHAPE, "--method", "l1", "--ratio", "0.5", "-o", out, *extra
    )
    return result, out


def test_fixed_width_reshape_names_the_group_and_the_ignore(tmp_path):
    result, out = prune("tests.preflight_models:fixed_reshape", tmp_path)
    assert result.code == 3
    assert "cutting channels of 'body' breaks the model" in result.stderr
    assert "--ignore 'body'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_the_suggested_ignore_makes_it_prune(tmp_path):
    result, out = prune("tests.preflight_models:fixed_reshape", tmp_path, "--ignore", "body")
    assert result.code == 0, result.stderr
    assert out.exists()


def test_forward_with_two_inputs_is_named(tmp_path):
    result, out = prune("tests.preflight_models:two_inputs", tmp_path)
    assert result.code == 3
    assert "forward needs other inputs than one tensor" in result.stderr and not out.exists()


def test_model_without_prunable_layers(tmp_path):
    result, out = prune("tests.preflight_models:no_layers", tmp_path)
    assert result.code == 3
    assert "no layer structured pruning can cut" in result.stderr and not out.exists()


def test_ignore_pattern_matching_nothing_is_bad_usage(tmp_path):
    result, out = prune("tests.preflight_models:fixed_reshape", tmp_path, "--ignore", "bodyy")
    assert result.code == 2
    assert "--ignore 'bodyy' matches no layer" in result.stderr and "did you mean 'body'" in result.stderr
    assert not out.exists()


def test_preflight_leaves_the_model_untouched():
    model = FixedReshape()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UnsupportedError, match="'body'"):
        preflight.run(model, torch.randn(1, 3, 8, 8), ["head"])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_passing_model_passes():
    from sample_models.models import simple_cnn

    model = simple_cnn()
    example = torch.randn(1, 1, 28, 28)
    reasons = graph.ignored_layers(model, example, (), False)
    preflight.run(model, example, reasons)  # no exception


def test_ignore_check_is_usage_error():
    with pytest.raises(UsageError, match="'stme' matches no layer") as caught:
        preflight.check_ignore_patterns(FixedReshape(), ["stme"])
    assert "did you mean 'stem'" in caught.value.one_line()
    preflight.check_ignore_patterns(FixedReshape(), ["st*", "head"])  # patterns that match pass


def test_deadline_bounds_a_slow_trial():
    """A cut model that would run for minutes: the trial stops at its deadline and gives no verdict
    (pruning then goes ahead and reports its own failure)."""
    preflight.run(SlowWhenCut(), torch.randn(1, 3, 8, 8), ["head"], seconds=1.0)


def test_deadline_while_the_dependency_graph_is_built_gives_no_verdict(monkeypatch):
    """On a busy machine the deadline can pass while torch-pruning traces the model: that is no
    verdict either (pruning goes ahead), not a refusal saying torch-pruning cannot prune it."""
    from sample_models.models import simple_cnn

    def deadline_passes(*args, **kwargs):
        raise preflight.PreflightTimeout

    monkeypatch.setattr(graph, "make_pruners", deadline_passes)
    preflight.run(simple_cnn(), torch.randn(1, 1, 28, 28), ["10"])  # no exception

"""The preflight names what blocks structured pruning before any channel is removed, in bounded time."""

from __future__ import annotations

import pytest
import torch

from compressor.errors import UnsupportedError, UsageError
from compressor.io.artifact import load_model
from compressor.pruning.structured import graph, preflight
from tests.conftest import invoke, prune_l1_half
from tests.preflight_models import FixedReshape, FixedReshapes, SlowWhenCut

SHAPE = "1,3,8,8"


def prune(ref: str, tmp_path, *extra: str, shape: str = SHAPE):
    out = tmp_path / "out.pt"
    result = invoke(
        "prune", ref, "--input-shape", shape, "--method", "l1", "--ratio", "0.5", "-o", out, *extra
    )
    return result, out


def test_a_group_whose_cut_breaks_the_model_is_kept_and_named(tmp_path):
    """A reshape to a fixed width: ``body`` is kept unpruned (as --ignore would keep it), the rest is
    pruned, and the report says which layer was kept and why."""
    result, out = prune("tests.preflight_models:fixed_reshape", tmp_path, "--json")
    assert result.code == 0, result.stderr
    body = result.json()
    kept = [n for n in body["notes"] if "cutting it breaks the model" in n]
    assert len(kept) == 1 and kept[0].endswith(": body") and "RuntimeError: shape" in kept[0]
    model = load_model(str(out)).module
    assert model.body.out_channels == 32 and model.stem.out_channels < 16  # kept; the rest pruned
    model(torch.randn(1, 3, 8, 8))  # and it runs


def test_a_group_a_concatenation_mapping_cannot_carry_is_kept(tmp_path):
    """torchvision's quantizable ShuffleNetV2: walking a branch's last conv through the join and
    channel shuffle overruns torch-pruning's concatenation offsets (was IndexError, exit 3). Such
    groups are kept and named; the rest is pruned and the outputs keep their shape."""
    result, out = prune("torchvision:quantized_shufflenet_v2_x0_5", tmp_path, "--json", shape="1,3,32,32")
    assert result.code == 0, result.stderr
    body = result.json()
    notes = [n for n in body["notes"] if "cannot map the channels" in n]
    assert len(notes) == 1 and "stage2.0.branch2.5" in notes[0]
    assert body["macs_after"] < 0.8 * body["macs_before"]
    assert load_model(str(out)).module(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


def test_strict_names_the_group_and_the_ignore(tmp_path):
    result, out = prune("tests.preflight_models:fixed_reshape", tmp_path, "--strict")
    assert result.code == 3
    assert "cutting channels of 'body' breaks the model" in result.stderr
    assert "--ignore 'body'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_a_cut_that_breaks_the_model_after_a_short_preflight_is_searched_again(tmp_path, monkeypatch):
    """The preflight's deadline passes before its search has a verdict (a large model on a loaded
    machine), and the cut then breaks the model: the search runs again with more time on the
    unpruned model, and pruning once more keeps the group it names."""
    monkeypatch.setattr(preflight, "PREFLIGHT_SECONDS", 0.0)
    result, out = prune("tests.preflight_models:fixed_reshape", tmp_path, "--json")
    assert result.code == 0, result.stderr
    assert any(n.endswith(": body") and "cutting it breaks the model" in n for n in result.json()["notes"])
    model = load_model(str(out)).module
    assert model.body.out_channels == 32 and model.stem.out_channels < 16
    model(torch.randn(1, 3, 8, 8))

    monkeypatch.setattr(preflight, "LATE_SECONDS", 0.0)  # no time the second time either: refused
    (tmp_path / "again").mkdir()
    result, out = prune("tests.preflight_models:fixed_reshape", tmp_path / "again")
    assert result.code == 3 and not out.exists()
    assert (
        "the pruned model no longer runs" in result.stderr and "in the model's own forward" in result.stderr
    )


def test_a_cut_torch_pruning_fails_after_a_short_preflight_is_searched_again(tmp_path, monkeypatch):
    """As above when the real cut fails inside torch-pruning (Res2NeXt: an index past a layer's
    channels) instead of in the forward after it: the search runs again and keeps the groups."""
    pytest.importorskip("timm")
    monkeypatch.setattr(preflight, "PREFLIGHT_SECONDS", 0.0)
    result, out = prune("tests.preflight_models:res2next_small", tmp_path, "--json", shape="1,3,32,32")
    assert result.code == 0, result.stderr
    kept = [n for n in result.json()["notes"] if "cutting it breaks the model" in n]
    assert any(n.endswith(": layer1.0.conv1") for n in kept)
    assert load_model(str(out)).module(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_a_group_a_grouped_conv_cannot_split_evenly_is_kept(tmp_path):
    """Channels concatenated into a grouped conv that cannot split them evenly over its groups
    (timm NextViT): those groups are kept, the grouped conv itself is pruned, the model runs."""
    result, out = prune("tests.preflight_models:cat_into_grouped_conv", tmp_path, "--json")
    assert result.code == 0, result.stderr
    notes = [n for n in result.json()["notes"] if "cannot map the channels" in n]  # named, not silent
    assert len(notes) == 1 and notes[0].endswith(": a, b")
    model = load_model(str(out)).module
    assert (model.a.out_channels, model.b.out_channels) == (8, 4) and model.g.out_channels < 12
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 5)


def test_a_failure_inside_torch_pruning_ranking_is_a_clean_refusal(tmp_path, monkeypatch):
    """Whatever torch-pruning raises while it ranks or cuts the trial copy is exit 3 with its reason,
    not an unexpected error (here: the grouped conv's uneven split, with the guard that keeps such
    groups switched off)."""
    from compressor.pruning.structured import coupling

    monkeypatch.setattr(coupling, "unmapped_roots", lambda pruner: [])
    result, out = prune("tests.preflight_models:cat_into_grouped_conv", tmp_path)
    assert result.code == 3 and not out.exists()
    assert "torch-pruning cannot prune this model (RuntimeError: shape" in result.stderr


def keep_breaking(n: int) -> dict[str, str]:
    """The preflight on ``n`` branches whose cut each breaks the model (the heads kept)."""
    model, example = FixedReshapes(n), torch.randn(1, 3, 8, 8)
    return preflight.run(model, example, graph.ignored_layers(model, example, ()), seconds=600)


def test_each_breaking_group_is_kept_in_turn():
    kept = keep_breaking(3)
    assert sorted(kept) == ["branches.0", "branches.1", "branches.2"]
    assert all(why.startswith(preflight.KEPT_REASON) for why in kept.values())


def test_more_breaking_groups_than_the_bound_is_refused_naming_them_all(monkeypatch):
    monkeypatch.setattr(preflight, "KEEP_AT_MOST", 2)
    with pytest.raises(UnsupportedError) as caught:
        keep_breaking(3)
    line = caught.value.one_line()
    assert "breaks the model" in line and "3 groups break it when cut" in line
    assert all(f"branches.{i}" in line for i in range(3)) and "--method magnitude" in line


def test_a_layer_that_breaks_every_block_of_its_class_is_kept_in_each_in_one_search(monkeypatch):
    """Each block's forward reshapes ``qkv`` to its input's width: the search that names one
    block's ``qkv`` keeps the other three with it (cutting them alone breaks the model too), so
    two searches are enough (the residual stream, then qkv) where five were needed."""
    from tests.preflight_models import AttentionBlocks

    monkeypatch.setattr(preflight, "KEEP_AT_MOST", 2)
    torch.manual_seed(0)
    model, example = AttentionBlocks().eval(), torch.randn(1, 3, 8)
    kept = preflight.run(model, example, graph.ignored_layers(model, example, ()), seconds=600)
    assert {f"blocks.{i}.qkv" for i in range(4)} <= set(kept)
    assert sum("the same layer of the same block type" in why for why in kept.values()) >= 3


def test_the_same_layer_of_other_blocks_is_kept_only_where_its_cut_breaks_the_model():
    """Only the last block's output is read at a fixed width: its ``conv2`` is kept, the same conv
    of the two blocks before it (each cut alone, the model runs) is not."""
    from tests.preflight_models import LastBlockFlattened

    torch.manual_seed(0)
    model, example = LastBlockFlattened().eval(), torch.randn(1, 3, 6, 6)
    kept = preflight.run(model, example, graph.ignored_layers(model, example, ()), seconds=600)
    assert sorted(kept) == ["blocks.2.conv2"]


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
    assert list(preflight.run(model, torch.randn(1, 3, 8, 8), ["head"])) == ["body"]
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


def test_deadline_inside_the_trace_is_no_refusal(monkeypatch):
    """On a loaded machine the deadline can pass while torch-pruning traces the model: the trial
    then gives no verdict (pruning goes ahead), instead of a refusal naming the alarm."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
    example = torch.randn(1, 3, 8, 8)

    def rings_while_tracing(*args, **kwargs):
        raise preflight.PreflightTimeout  # what the alarm does when it rings inside the trace

    monkeypatch.setattr(graph, "make_pruners", rings_while_tracing)
    preflight.run(model, example, ["2"])  # no exception


class _RingsInTracedForward(torch.nn.Module):
    """The alarm ringing (once) inside the model's own forward while torch-pruning traces it."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 3)
        self.rung = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and not self.rung:
            self.rung = True
            raise preflight.PreflightTimeout
        return self.b(torch.relu(self.a(x)))


def test_deadline_inside_the_traced_forward_is_no_verdict():
    """torch-pruning retries a failed forward under a bare ``except`` with the example wrapped in a
    tuple: the deadline ringing inside the model's forward became "TypeError: conv2d() received an
    invalid combination of arguments" and a refusal (torchvision's quantizable ShuffleNetV2 on a
    loaded machine). It is no verdict: the preflight ends without one."""
    torch.manual_seed(0)
    found = preflight.run(_RingsInTracedForward(), torch.randn(1, 3, 8, 8), [])
    assert found == {} and not found.complete


def test_deadline_inside_graph_tracing_is_no_verdict(monkeypatch):
    """The deadline can pass while torch-pruning builds the graph, inside the guard that turns
    tracer failures into refusals: that is still no verdict, not "cannot prune this model"."""
    from compressor.pruning.structured import coupling

    def ring(pruner):
        raise preflight.PreflightTimeout

    monkeypatch.setattr(coupling, "keep_unmapped", ring)  # runs inside graph.tracer_errors
    preflight.run(FixedReshape(), torch.randn(1, 3, 8, 8), ["head"])  # no verdict: no exception


def test_deadline_during_a_later_search_keeps_the_groups_found(monkeypatch):
    """The deadline rings in the second search: the first group found is kept (pruning goes ahead
    with it kept), no refusal."""
    locate, calls = preflight._Cuts.locate, []

    def rings_the_second_time(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise preflight.PreflightTimeout
        return locate(self, *args, **kwargs)

    monkeypatch.setattr(preflight._Cuts, "locate", rings_the_second_time)
    assert len(keep_breaking(3)) == 1


class WidthOutput(torch.nn.Module):
    """A second output sized by ``body``'s channels, made by no layer: cutting ``body`` runs, but
    that output changes shape."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.body = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(torch.relu(self.stem(x)))
        return self.head(f.mean((2, 3))), torch.zeros(f.shape[1])


@pytest.fixture
def trials(monkeypatch) -> list[int]:
    """One entry per trial cut the preflight makes on its copy."""
    made: list[int] = []
    trial = preflight._Cuts.trial
    monkeypatch.setattr(
        preflight._Cuts, "trial", lambda self, *a, **k: made.append(1) or trial(self, *a, **k)
    )
    return made


def test_a_cut_that_runs_goes_first_and_needs_no_trial(trials):
    """A single cut without a budget is made first and checked: a model it does not break is
    pruned without the preflight's trial cut on a copy."""
    torch.manual_seed(0)
    model = load_model("sample:resnet_small").module
    dense = sum(p.numel() for p in model.parameters())
    handle, report = prune_l1_half(model, (1, 1, 28, 28))
    assert trials == [] and sum(p.numel() for p in handle.module.parameters()) < dense / 2
    assert handle.module(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert not any("breaks the model" in note for note in report.notes)


def test_a_first_cut_that_changes_an_output_is_undone_and_its_group_kept(trials):
    """The first cut runs but changes the second output's shape: it is undone, the search names
    ``body``, and the model is pruned once more keeping it."""
    torch.manual_seed(0)
    handle, report = prune_l1_half(WidthOutput().eval(), (1, 3, 8, 8))
    model = handle.module
    assert trials and model.body.out_channels == 16 and model.stem.out_channels == 4
    assert model(torch.randn(1, 3, 8, 8))[1].shape == (16,)
    assert any("cutting it breaks the model" in n and "body" in n for n in report.notes)

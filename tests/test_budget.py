"""Pruning to a budget: the cost model's cache, the allocation, the landing loop and its bad input.

Timing never decides a test: cost models and meters are injected where an outcome is asserted, and
the runs on ONNX Runtime check structure (files, rows, widths), not speed.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from torch import nn

from compressor.api import ModelSpec, prune
from compressor.bench import costmodel
from compressor.bench.layergraph import LayerShape, PointTimer, layer_graph
from compressor.bench.profiles import get_profile
from compressor.errors import UsageError
from compressor.io.artifact import load_model
from compressor.pruning.base import PruneConfig, PruneContext
from compressor.pruning.structured import norm
from compressor.pruning.structured.budget.allocate import Group, Layer, PlanCost, allocate
from compressor.pruning.structured.budget.config import BudgetConfig
from compressor.pruning.structured.budget.meters import Reading
from tests.conftest import invoke


@pytest.fixture(autouse=True)
def cost_cache(tmp_path, monkeypatch):
    """Every cost model of these tests lives in a fresh folder, never in the user's cache."""
    folder = tmp_path / "costmodel"
    monkeypatch.setenv(costmodel.ENV_DIR, str(folder))
    return folder


# ---------------------------------------------------------------- the allocation (pure)


def _two_groups(cost_a: float, cost_b: float, scores_a=None, scores_b=None):
    """Two independent groups of 32 channels, one conv each; a layer's cost is per output channel."""
    groups = [
        Group("a", 32, 4, 8, tuple(scores_a or [1 / 32] * 32)),
        Group("b", 32, 4, 8, tuple(scores_b or [1 / 32] * 32)),
    ]
    layers = [Layer("a", 3, 32, "a"), Layer("b", 3, 32, "b")]
    per = {"a": cost_a, "b": cost_b}
    return groups, PlanCost(layers, groups, lambda name, cin, cout: per[name] * cout)


def test_allocation_cuts_where_the_cost_is():
    groups, cost = _two_groups(cost_a=4.0, cost_b=1.0)
    dense = cost.total({"a": 32, "b": 32})  # 160
    result = allocate(groups, cost, budget=dense - 4.0 * 16, lookahead=1)
    assert result.plan == {"a": 16, "b": 32} and result.reached


def test_allocation_keeps_the_important_group():
    scores_a = sorted([0.001] * 16 + [0.06] * 16)  # half of a's channels carry almost nothing
    groups, cost = _two_groups(cost_a=1.0, cost_b=1.0, scores_a=scores_a)
    result = allocate(groups, cost, budget=48.0, lookahead=1)
    assert result.plan == {"a": 16, "b": 32}


def test_allocation_never_cuts_a_layer_that_saves_nothing():
    groups, cost = _two_groups(cost_a=1.0, cost_b=0.0)
    result = allocate(groups, cost, budget=1.0)  # beyond reach: a stops at its floor, b is never cut
    assert result.plan == {"a": 8, "b": 32} and not result.reached


def test_allocation_widths_are_steps_above_the_floor():
    group = Group("g", 30, 9, 8, tuple([1 / 30] * 30))
    assert group.candidates() == [30, 24, 16]
    assert Group("g", 30, 1, 8, ()).candidates() == [30, 24, 16, 8]
    assert group.loss(30, 24) == pytest.approx(6 / 30)


def test_relative_loss_prices_halving_the_same_at_any_width():
    group = Group("g", 8, 1, 1, (0.25,) * 8, relative=True)  # worth 2 (two layers), equal channels
    assert group.loss(8, 4) == pytest.approx(2 * math.log(2))
    assert group.loss(4, 2) == pytest.approx(group.loss(8, 4)) == pytest.approx(group.loss(2, 1))
    assert group.loss(8, 7) < group.loss(2, 1)  # the last channels are the dearest


def test_layer_widths_follow_the_groups_that_set_them():
    groups = [Group("p", 4, 1, 1, (0.25,) * 4)]
    flat = Layer("fc", 4 * 49, 10, None, ("p",), in_scale=49)  # a linear after a flatten of 7x7
    dw = Layer("dw", 4, 4, "p", (), depthwise=True)
    cost = PlanCost([flat, dw], groups, lambda n, i, o: 0.0)
    assert cost.widths(flat, {"p": 2}) == (98, 10)
    assert cost.widths(dw, {"p": 2}) == (2, 2)


# ---------------------------------------------------------------- the cost model and its cache

LAYERS = {
    "a": LayerShape("conv", 16, 32, (3, 3), (1, 1), (1, 1), (1, 1), 1, False, (8, 8)),
    "b": LayerShape("linear", 32, 10),
}
VARIABLE = {"a": (False, True), "b": (True, False)}


class CountingTimer:
    """A fake point timer: cin * cout ms, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, shape, cin, cout):
        self.calls += 1
        return float(cin * cout)


def _build(folder, layers=LAYERS, profile="mobile", timer=None):
    settings = costmodel.BuildSettings((1.0, 0.5, 0.25), 8, str(folder), 1, 0.0)
    return costmodel.build(layers, VARIABLE, get_profile(profile), settings, timer or CountingTimer())


def test_cost_model_second_build_measures_nothing(tmp_path):
    first = CountingTimer()
    built = _build(tmp_path, timer=first)
    assert first.calls == built.measured == 3 + 3  # a: 3 output widths; b: 3 input widths
    again = CountingTimer()
    reused = _build(tmp_path, timer=again)
    assert again.calls == 0 and reused.measured == 0 and reused.points == built.points


@pytest.mark.parametrize("change", ["profile", "structure", "machine"])
def test_cost_model_remeasures_when_profile_structure_or_machine_change(tmp_path, monkeypatch, change):
    _build(tmp_path)
    layers, profile = LAYERS, "mobile"
    if change == "profile":
        profile = "edge"  # 2 threads instead of 1
    elif change == "structure":
        layers = {
            **LAYERS,
            "a": LayerShape("conv", 16, 32, (3, 3), (1, 1), (1, 1), (1, 1), 1, False, (16, 16)),
        }
    else:
        real = costmodel.machine_info()
        monkeypatch.setattr(costmodel, "machine_info", lambda: {**real, "cores": real["cores"] + 1})
    timer = CountingTimer()
    _build(tmp_path, layers=layers, profile=profile, timer=timer)
    assert timer.calls == 6
    assert len(list(tmp_path.glob("*.json"))) == 2  # a new file; the old one is left for its own key


def test_cost_model_ignores_a_cache_file_of_another_key(tmp_path):
    built = _build(tmp_path)
    doc = json.loads(built.path.read_text())
    built.path.write_text(json.dumps({**doc, "profile": {**doc["profile"], "threads": 99}}))
    timer = CountingTimer()
    _build(tmp_path, timer=timer)
    assert timer.calls == 6


def test_cost_model_interpolates_between_measured_widths(tmp_path):
    model = _build(tmp_path)
    assert model.grids["a"] == ((16,), (8, 16, 32))
    assert model.layer_ms("a", 16, 24) == pytest.approx(16 * 24)  # between 16 and 32: linear
    assert model.layer_ms("b", 20, 10) == pytest.approx(20 * 10)
    assert model.layer_ms("a", 16, 4) == pytest.approx(16 * 8)  # below the grid: clamped


def test_grid_widths_snap_to_the_unit_and_the_groups():
    assert costmodel.grid_widths(64, (1.0, 0.5, 0.3, 0.1), 8) == (8, 16, 32, 64)
    assert costmodel.grid_widths(60, (1.0, 0.5), 8, multiple=3) == (24, 60)
    assert costmodel.grid_widths(6, (1.0, 0.5), 8) == (6,)


def test_point_timer_runs_a_real_one_layer_graph():
    profile = get_profile("mobile")
    timer = PointTimer(profile, runs=2, min_time_s=0.0)
    for shape in (
        LAYERS["a"],
        LAYERS["b"],
        LayerShape("linear", 8, 4, spatial=(5,)),
        LayerShape("conv", 8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 8, True, (6, 6)),
    ):
        assert timer(shape, shape.cin, shape.cout) > 0
    assert timer.overhead_ms() > 0
    dw = LayerShape("conv", 8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 8, True, (6, 6))
    weight = layer_graph(dw, 4, 4, 1).graph.initializer[0]
    assert list(weight.dims) == [4, 1, 3, 3]  # a depthwise conv keeps one group per channel


def test_point_timer_times_every_point_once_per_pass_and_keeps_the_median(monkeypatch):
    """Points are timed in passes (chunks of points at a time), each pass's empty-call cost
    subtracted, and the median over the passes kept: a slow pass skews nothing."""
    from compressor.bench import layergraph

    monkeypatch.setattr(layergraph, "CHUNK", 2)  # three points: two chunks
    shapes = {
        "a": LAYERS["a"],
        "b": LAYERS["b"],
        "c": LayerShape("linear", 8, 4, spatial=(5,)),
    }
    calls: list[str] = []
    slow = {"a": [1.0, 9.0, 1.2], "b": [2.0, 2.2, 30.0], "c": [3.0, 3.1, 2.9]}

    by_shape = {layergraph.input_feed(s, s.cin, 1)["x"].shape: k for k, s in shapes.items()}
    assert len(by_shape) == 3 and (1, 8) not in by_shape

    def fake(sess, feed, runs, min_time_s):
        if feed["x"].shape == (1, 8):  # the empty call of each pass
            return 0.5
        key = by_shape[feed["x"].shape]
        calls.append(key)
        return 0.5 + slow[key][calls.count(key) - 1]

    monkeypatch.setattr(layergraph, "time_session", fake)
    advanced: list[int] = []
    points = {k: (s, s.cin, s.cout) for k, s in shapes.items()}
    found, overhead = PointTimer(get_profile("mobile")).many(points, 3, lambda: advanced.append(1))
    assert sorted(calls) == sorted(list(shapes) * 3)
    assert found == pytest.approx({"a": 1.2, "b": 2.2, "c": 3.0})
    assert overhead == pytest.approx(0.5) and len(advanced) == 3


def test_point_timer_closes_each_layer_session_before_timing_the_next(monkeypatch):
    """With more than one thread, a session left open keeps its idle pool spinning on a core the
    next point needs: every point is timed with no other layer's session alive."""
    from compressor.bench import layergraph

    live: list[int] = []

    class Session:
        def __init__(self):
            live.append(1)

        def __del__(self):
            live.pop()

    alive_at_timing: list[int] = []

    def fake(sess, feed, runs, min_time_s):
        alive_at_timing.append(len(live))
        return 1.0

    monkeypatch.setattr(layergraph, "session", lambda model, profile: Session())
    monkeypatch.setattr(layergraph, "time_session", fake)
    points = {k: (s, s.cin, s.cout) for k, s in LAYERS.items()}
    found, _ = PointTimer(get_profile("edge")).many(points, 3)
    assert len(found) == len(LAYERS) and len(alive_at_timing) == 3 * (len(LAYERS) + 1)
    assert set(alive_at_timing) == {1} and not live


# ---------------------------------------------------------------- the landing loop (injected)


def _first_conv_ms(name, cin, cout):
    """A fake cost model: only simple_cnn's first conv costs, one ms per output channel."""
    return float(cout) if name == "0" else 0.0


class FakeMeter:
    """Measures simple_cnn by its first conv's width; ``power`` distorts the measured factor."""

    def __init__(self, handle, power=1.0, constant=False):
        self.handle, self.power, self.constant, self.calls = handle, power, constant, 0

    def dense(self):
        return float(self.handle.module[0].out_channels)

    def compare(self, module):
        self.calls += 1
        dense, pruned = self.dense(), float(module[0].out_channels)
        factor = 1.0 if self.constant else (dense / pruned) ** self.power
        return Reading(dense, dense / factor, factor)


def _land(budget: BudgetConfig, meter_kwargs=None, **cfg):
    handle = load_model("sample:simple_cnn")
    meters = []

    def make(b, h, folder):
        meters.append(FakeMeter(h, **(meter_kwargs or {})))
        return meters[-1]

    ctx = PruneContext(latency_model=lambda *a: _first_conv_ms, budget_meter=make)
    report = norm.run(handle, PruneConfig("l1", budget=budget, **cfg), ctx)
    return handle, report, meters[0]


def test_injected_cost_model_drives_the_widths():
    handle, report, meter = _land(BudgetConfig(target_speedup=2.0))
    widths = [
        m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        for m in handle.module
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    assert widths == [16, 64, 128, 10]  # only the costly conv was cut, to half
    assert report.figures["landed"] and meter.calls == 1
    row = report.layers["0"]
    assert (row["cout_before"], row["cout_after"], row["latency_ms_before"], row["latency_ms_after"]) == (
        32,
        16,
        32,
        16,
    )
    assert row["share_before"] == row["share_after"] == 1.0  # the only layer that costs: all of the time
    assert report.layers["3"]["share_after"] == 0.0


def test_retry_rescales_the_internal_target_when_the_measurement_is_off():
    handle, report, meter = _land(BudgetConfig(target_speedup=2.0), {"power": 2.0}, round_to=2)
    internal = [row["internal_target"] for row in report.steps]
    assert internal[0] == pytest.approx(2.0) and internal[1] < 1.6  # measured 4x: aim lower
    assert report.figures["landed"] and report.figures["attempts"] == len(internal) == meter.calls
    assert handle.module[0].out_channels == 22  # (32 / 22) ** 2 = 2.12: inside [1.9, 2.3]


def test_an_over_cut_plan_that_a_lower_aim_repeats_is_replaced_by_the_next_wider_one():
    # 32 channels in steps of 8: the allocation aiming at 1.4x cuts to 16 (2x, above the band's
    # 1.61x), and the re-aim at 1.4x gives 16 again; the next wider plan, 24 (1.33x), lands
    handle, report, meter = _land(BudgetConfig(target_speedup=1.4), round_to=8)
    assert [row["measured_factor"] for row in report.steps] == pytest.approx([2.0, 32 / 24])
    assert report.figures["landed"] and handle.module[0].out_channels == 24 and meter.calls == 2


def test_no_retry_when_none_is_allowed():
    handle, report, meter = _land(BudgetConfig(target_speedup=2.0, retries=0), {"power": 2.0}, round_to=2)
    assert meter.calls == 1 and not report.figures["landed"]


def test_landing_band():
    from compressor.pruning.structured.budget.land import landed

    speed = BudgetConfig(target_speedup=2.0)
    assert [landed(speed, Reading(10, 10 / f, f)) for f in (1.89, 1.9, 2.3, 2.31)] == [
        False,
        True,
        True,
        False,
    ]
    macs = BudgetConfig(target_macs=0.5)  # exact counts: at or under the target, within 1/1.15 of it
    assert [landed(macs, Reading(10, 10 / f, f)) for f in (1.99, 2.0, 2.3, 2.31)] == [
        False,
        True,
        True,
        False,
    ]
    ms = BudgetConfig(target_latency_ms=5.0)  # the latency itself: [5 / 1.15, 5 / 0.95]
    assert [landed(ms, Reading(10, p, 10 / p)) for p in (4.3, 4.4, 5.2, 5.3)] == [False, True, True, False]


def test_retries_are_bounded_and_the_closest_plan_is_kept():
    handle, report, meter = _land(BudgetConfig(target_speedup=2.0, retries=1), {"power": 0.2}, round_to=2)
    # two landing attempts, then (the target out of reach) at most one back-off plan per retry
    assert 2 <= meter.calls <= 3 and not report.figures["landed"]
    assert any(n.startswith("not landed") for n in report.notes)


def test_a_target_beyond_the_floor_is_reported_with_the_floor_plan():
    handle, report, meter = _land(BudgetConfig(target_speedup=50.0), max_layer_ratio=0.5)
    assert not report.figures["landed"] and meter.calls == 1
    assert handle.module[0].out_channels == 16  # half of 32: the floor --max-layer-ratio 0.5 leaves
    assert any("--max-layer-ratio 0.5" in n for n in report.notes)


def test_an_out_of_reach_latency_target_is_planned_short_of_the_floor():
    from compressor.pruning.structured.budget.land import reach

    speed = BudgetConfig(target_speedup=4.0)  # floor 100 / 40 = 2.5x: 4x is out of reach
    assert reach(speed, 4.0, 100.0, 40.0) == pytest.approx(100 / (40 + 0.05 * 60))
    assert reach(speed, 2.4, 100.0, 40.0) == pytest.approx(2.5)  # within reach: the floor bounds the plan
    macs = BudgetConfig(target_macs=0.1)  # exact counts: the closest plan is the floor
    assert reach(macs, 10.0, 100.0, 40.0) == pytest.approx(2.5)
    handle, report, meter = _land(BudgetConfig(target_speedup=50.0), max_layer_ratio=0.9, round_to=1)
    assert not report.figures["landed"]
    assert handle.module[0].out_channels == 5  # the floor leaves 4; 95% of the saving needs 5.4


def test_macs_target_lands_within_the_band():
    handle = load_model("sample:resnet_small")
    base = sum(1 for _ in handle.module.parameters())
    report = norm.run(handle, PruneConfig("l1", budget=BudgetConfig(target_macs=0.4)), PruneContext())
    assert 0.4 / 1.15 <= report.figures["macs_kept"] <= 0.4 and report.figures["landed"]
    assert sum(1 for _ in handle.module.parameters()) == base  # same layers, fewer channels


def test_counted_macs_and_params_match_the_model():
    from compressor.pruning.structured import graph
    from compressor.pruning.structured.budget.meters import count_fn
    from compressor.pruning.structured.budget.structure import find_structure
    from compressor.stats import count_macs

    handle = load_model("sample:resnet_small")
    model, x = handle.module, handle.example_input()
    structure = find_structure(model, x, norm.importance("l1"), ["fc"], 0.9, 1)
    macs = count_fn("macs", structure.shapes)
    assert sum(macs(n, s.cin, s.cout) for n, s in structure.shapes.items()) == count_macs(model, x)
    params = count_fn("params", structure.shapes)
    weights = sum(
        m.weight.numel() + m.weight.shape[0] for m in model.modules() if isinstance(m, graph.PRUNABLE)
    )
    assert sum(params(n, s.cin, s.cout) for n, s in structure.shapes.items()) == weights


def test_group_importance_counts_each_layer_it_narrows():
    from compressor.pruning.structured.budget.structure import find_structure

    handle = load_model("sample:resnet_small")
    structure = find_structure(handle.module, handle.example_input(), norm.importance("l1"), ["fc"], 0.9, 8)
    worth = {g.name: sum(g.scores) for g in structure.groups}
    narrowed = {
        g.name: sum(
            1 for lay in structure.layers.values() if lay.out_group == g.name or g.name in lay.in_groups
        )
        for g in structure.groups
    }
    assert worth == pytest.approx(narrowed)
    assert worth["stem.0"] >= 5 and worth["layers.0.conv1"] == pytest.approx(
        2
    )  # a residual stream vs an inner conv
    assert all(g.relative for g in structure.groups)  # priced by the log of the importance kept


def test_where_the_time_went_names_cut_layers_that_bought_no_time():
    from compressor.pruning.structured.budget.report import where_time_went
    from compressor.pruning.structured.budget.structure import Structure

    shapes = {
        "dw": LayerShape("conv", 64, 64, (3, 3), (1, 1), (1, 1), (1, 1), 64, True, (56, 56)),
        "pw": LayerShape("conv", 64, 128, (1, 1), (1, 1), (0, 0), (1, 1), 1, False, (56, 56)),
        "fc": LayerShape("linear", 128, 10),
    }
    rows = {
        "dw": dict(
            cin_before=64,
            cin_after=32,
            cout_before=64,
            cout_after=32,
            latency_ms_before=0.5,
            latency_ms_after=0.49,
        ),
        "pw": dict(
            cin_before=64,
            cin_after=32,
            cout_before=128,
            cout_after=128,
            latency_ms_before=1.0,
            latency_ms_after=0.5,
        ),
        "fc": dict(
            cin_before=128,
            cin_after=64,
            cout_before=10,
            cout_after=10,
            latency_ms_before=0.004,
            latency_ms_after=0.004,
        ),
    }
    note = where_time_went(Structure(shapes, {}, []), rows)
    assert "dw (depthwise" in note and "fc (op overhead" in note and "pw" not in note


def test_slim_takes_a_target(tmp_path):
    from compressor.api import SlimConfig, slim

    cfg = SlimConfig(
        data="random:1,28,28:10", budget=BudgetConfig(target_macs=0.5), max_batches=2, finetune_epochs=0
    )
    r = slim(ModelSpec("sample:vgg_bn"), cfg, str(tmp_path / "s.pt"))
    assert r.landed and 0.5 / 1.15 <= r.figures["macs_kept"] <= 0.5 and r.figures["bn_channels_removed"] > 0
    assert "gamma_threshold" not in r.figures  # per-group widths, not one global threshold


# ---------------------------------------------------------------- real runs (structure, not timing)

FAST = dict(runs=3, warmup=1, min_time_s=0.0, point_runs=1, point_time_s=0.0, exporter="torchscript")


def test_latency_target_on_onnx_runtime_writes_a_report_with_measured_layers(tmp_path, cost_cache):
    out = tmp_path / "p.pt"
    budget = BudgetConfig(target_speedup=1.3, retries=1, **FAST)
    r = prune(ModelSpec("sample:resnet_small"), PruneConfig("l1", budget=budget, round_to=8), str(out))
    assert out.exists() and r.figures["attempts"] >= 1
    assert r.figures["dense_latency_ms_p50"] > 0 and r.figures["latency_ms_p50"] > 0
    assert r.figures["costmodel_grid_measured"] > 0 and list(cost_cache.glob("*.json"))
    rows = {row["name"]: row for row in r.layers}
    assert all("latency_ms_before" in row and "share_after" in row for row in rows.values())
    assert all(row["channels_after"] % 8 == 0 for row in rows.values() if row["name"] != "fc")
    again = prune(
        ModelSpec("sample:resnet_small"), PruneConfig("l1", budget=budget, round_to=8), str(tmp_path / "q.pt")
    )
    assert again.figures["costmodel_grid_measured"] == 0  # the cache served the whole grid


def test_size_target_counts_the_exported_file(tmp_path):
    dense = prune(
        ModelSpec("sample:vgg_bn"),
        PruneConfig("l1", budget=BudgetConfig(target_size="300KB", **FAST)),
        str(tmp_path / "s.pt"),
    )
    assert dense.figures["onnx_bytes"] <= 300_000 and dense.figures["landed"]
    assert dense.figures["onnx_bytes"] < dense.figures["dense_onnx_bytes"]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({}, "exactly one target"),
        ({"target_speedup": 2.0, "target_macs": 0.5}, "exactly one target"),
        ({"target_speedup": 1.0}, "> 1"),
        ({"target_macs": 1.5}, "fraction"),
        ({"target_size": "2 bananas"}, "cannot read size"),
        ({"target_speedup": 2.0, "profile": "phone"}, "unknown profile"),
    ],
)
def test_budget_config_refuses_bad_targets(kwargs, needle):
    with pytest.raises(UsageError, match=needle):
        BudgetConfig(**kwargs)


def test_a_target_with_a_ratio_or_steps_or_a_masked_method_is_usage():
    budget = BudgetConfig(target_speedup=2.0)
    with pytest.raises(UsageError, match="both set how much to prune"):
        PruneConfig("l1", ratio=0.5, budget=budget)
    with pytest.raises(UsageError, match="--steps"):
        PruneConfig("l1", steps=3, budget=budget)
    with pytest.raises(UsageError, match="masks do not speed up ONNX Runtime"):
        PruneConfig("magnitude", sparsity=0.5, budget=budget)


def test_a_recipe_takes_a_budget_as_a_mapping():
    from compressor.typed import build

    cfg = build(PruneConfig, {"method": "l1", "budget": {"target_macs": 0.5, "profile": "edge"}}, "step 1")
    assert cfg.budget == BudgetConfig(target_macs=0.5, profile="edge")
    with pytest.raises(UsageError, match="unknown key 'target_speed'"):
        build(PruneConfig, {"method": "l1", "budget": {"target_speed": 2}}, "step 1")


def test_budget_defaults_are_cheap_to_import():
    code = (
        "import sys; import compressor.pruning.structured.budget.config as c; "
        "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules"
    )
    assert os.system(f'cd "{os.path.dirname(os.path.dirname(__file__))}" && "{_python()}" -c "{code}"') == 0


def _python() -> str:
    import sys

    return sys.executable


def test_floor_is_never_passed_by_an_allocation_on_a_real_model():
    handle = load_model("sample:resnet_small")
    norm.run(
        handle, PruneConfig("l1", budget=BudgetConfig(target_macs=0.05), max_layer_ratio=0.5), PruneContext()
    )
    widths = [m.out_channels for m in handle.module.modules() if isinstance(m, nn.Conv2d)]
    assert min(widths) >= 8 and all(math.isfinite(w) for w in widths)  # half of 16 at the narrowest
    assert torch.isfinite(handle.module(handle.example_input())).all()


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--ratio", "0.5", "--target-speedup", "2"], "both set how much to prune"),
        (["--target-speedup", "2", "--target-macs", "0.5"], "exactly one target"),
        (
            ["--method", "magnitude", "--sparsity", "0.5", "--target-speedup", "2"],
            "masks do not speed up ONNX Runtime",
        ),
        (["--profile", "edge"], "applies to a target"),
        (["--target-speedup", "2", "--profile", "phone"], "unknown profile"),
        (["--target-size", "2 apples"], "cannot read size"),
    ],
)
def test_cli_bad_budget_is_exit_2_and_writes_nothing(args, needle, tmp_path):
    out = tmp_path / "out.pt"
    r = invoke(
        "prune",
        "sample:simple_cnn",
        *(["--method", "l1"] if "--method" not in args else []),
        *args,
        "-o",
        str(out),
    )
    assert r.code == 2, r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_cli_onnx_input_with_a_target_is_exit_2(tiny_onnx, tmp_path):
    r = invoke(
        "prune", str(tiny_onnx), "--method", "l1", "--target-macs", "0.5", "-o", str(tmp_path / "o.pt")
    )
    assert r.code == 2 and not list(tmp_path.iterdir())


def test_cli_landed_target_is_exit_0_with_one_json_document(tmp_path):
    out = tmp_path / "out.pt"
    r = invoke(
        "prune", "sample:resnet_small", "--method", "l1", "--target-params", "0.5", "-o", str(out), "--json"
    )
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["landed"] is True and doc["target_kind"] == "params" and out.exists()
    assert {"params_before", "params_after", "macs_before", "macs_after", "attempts", "layers"} <= set(doc)
    assert all("share_after" in row for row in doc["layers"])


class SaturatingMeter(FakeMeter):
    """Measured speed-up follows the first conv's width up to 2x, then stops (op overhead)."""

    def compare(self, module):
        reading = super().compare(module)
        factor = min(reading.factor, 2.0)
        return Reading(reading.dense, reading.dense / factor, factor)


def test_out_of_reach_keeps_the_least_cut_plan_as_fast_as_the_fastest():
    handle = load_model("sample:simple_cnn")
    ctx = PruneContext(
        latency_model=lambda *a: _first_conv_ms, budget_meter=lambda b, h, f: SaturatingMeter(h)
    )
    report = norm.run(handle, PruneConfig("l1", budget=BudgetConfig(target_speedup=8.0), round_to=1), ctx)
    assert not report.figures["landed"]
    kept = handle.module[0].out_channels  # the deepest plan keeps 4 of 32 and measures 2x, as does 16
    assert 14 <= kept <= 16, kept  # within 95% of 2x: at most 32 / 1.9 = 16.8 channels
    assert report.figures["attempts"] <= 1 + 2 * BudgetConfig(target_speedup=8.0).retries
    assert any("least-cut plan" in n for n in report.notes)
    assert any("--max-layer-ratio" in n for n in report.notes)


def test_cli_latency_target_below_the_floor_is_exit_1_and_writes_the_closest_plan(tmp_path, monkeypatch):
    from compressor.bench import profiles

    fast = profiles.PROFILES["mobile"].override(min_runs=3, warmup=1, min_time_s=0.0)
    monkeypatch.setitem(profiles.PROFILES, "mobile", fast)
    out = tmp_path / "out.pt"
    r = invoke(
        "prune",
        "sample:simple_cnn",
        "--method",
        "l1",
        "--target-latency-ms",
        "0.00001",
        "--max-layer-ratio",
        "0.3",
        "-o",
        str(out),
        "--json",
    )
    assert r.code == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["landed"] is False and out.exists() and doc["latency_ms_p50"] > 0
    assert any("--max-layer-ratio 0.3" in note for note in doc["notes"])
    widths = {row["name"]: row for row in doc["layers"]}
    assert widths["0"]["channels_after"] >= 0.7 * 32  # the floor, not past it


def test_dry_run_with_a_target_prints_the_plan_the_real_run_lands_on_and_writes_nothing(tmp_path):
    """A MAC budget is counted exactly, so the first plan is the one kept: the dry run's widths and
    predicted MACs are the pruned model's."""
    args = ("prune", "sample:resnet_small", "--method", "l1", "--target-macs", "0.5", "--json")
    dry = invoke(*args, "--dry-run", "-o", str(tmp_path / "dry.pt"))
    assert dry.code == 0, dry.stderr
    assert not list(tmp_path.iterdir())  # nothing written
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True and plan["target_kind"] == "macs" and plan["predicted_reaches_target"]
    assert 0.5 / 1.15 <= plan["predicted_macs"] / plan["dense_macs"] <= 0.5
    real = invoke(*args, "-o", str(tmp_path / "real.pt"))
    assert real.code == 0, real.stderr
    done = json.loads(real.stdout)
    assert plan["predicted_macs"] == done["macs_after"] and plan["predicted_params"] == done["params_after"]
    widths = {
        row["name"]: f"{row['cout_before']}->{row['cout_after']}"
        for row in done["layers"]
        if "cout_after" in row
    }
    assert {row["layer"]: row["out"] for row in plan["plan"] if "out" in row} == widths
    assert any(row["out"].split("->")[0] != row["out"].split("->")[1] for row in plan["plan"] if "out" in row)


def test_dry_run_of_a_latency_target_predicts_from_the_cost_model_and_times_no_pruned_model():
    handle = load_model("sample:simple_cnn")
    meters: list[FakeMeter] = []

    def make(b, h, folder):
        meters.append(FakeMeter(h))
        return meters[-1]

    ctx = PruneContext(latency_model=lambda *a: _first_conv_ms, budget_meter=make)
    rows, figures = norm.preview(handle, PruneConfig("l1", budget=BudgetConfig(target_speedup=2.0)), ctx)
    assert meters[0].calls == 0 and handle.module[0].out_channels == 32  # nothing pruned or timed but dense
    first = next(row for row in rows if row["layer"] == "0")
    assert (first["out"], first["latency_ms_before"], first["latency_ms_after"]) == ("32->16", 32, 16)
    assert figures["predicted_latency_ms"] == 16 and figures["predicted_factor"] == 2.0
    assert figures["dense_latency_ms"] == 32 and figures["predicted_reaches_target"]


def test_a_target_keeps_fine_tuning_and_distillation(tmp_path):
    cfg = PruneConfig(
        "l1",
        budget=BudgetConfig(target_macs=0.5),
        data="random:1,28,28:10",
        finetune_epochs=1,
        finetune_batches=2,
        distill_from="sample:simple_cnn",
    )
    r = prune(ModelSpec("sample:simple_cnn"), cfg, str(tmp_path / "ft.pt"))
    assert r.landed and "finetune_best_epoch" in r.figures and r.figures["bn_batches"] == 0  # no BatchNorm
    assert r.after["macs"] <= 0.5 * r.before["macs"]


# ---------------------------------------------------------------- sensitivity


def _structure_key(ref: str) -> str:
    from compressor.bench.costmodel import structure_hash
    from compressor.pruning.structured.budget.structure import layer_shapes

    handle = load_model(ref)
    return structure_hash(layer_shapes(handle.module, handle.example_input()))


def test_sensitivity_writes_json_csv_and_png_with_one_row_per_group_and_ratio(tmp_path):
    from compressor.api import SensitivityConfig, sensitivity

    cfg = SensitivityConfig("random:1,28,28:10", ratios=(0.25, 0.5), eval_limit=64)
    r = sensitivity(ModelSpec("sample:simple_cnn"), cfg, str(tmp_path / "sens"))
    doc = json.loads((tmp_path / "sens" / "sensitivity.json").read_text())
    assert doc["structure"] == _structure_key("sample:simple_cnn") and doc["ratios"] == [0.25, 0.5]
    assert [g["group"] for g in doc["groups"]] and all(len(g["points"]) == 2 for g in doc["groups"])
    point = doc["groups"][0]["points"][0]
    assert set(point) == {"ratio", "width", "accuracy", "accuracy_drop", "latency_saved_ms"}
    rows = (tmp_path / "sens" / "sensitivity.csv").read_text().splitlines()
    assert rows[0].startswith("group,width,ratio") and len(rows) == 1 + 2 * len(doc["groups"])
    assert (tmp_path / "sens" / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert r.to_json()["files"] == [
        str(tmp_path / "sens" / n) for n in ("sensitivity.json", "sensitivity.csv", "sensitivity.png")
    ]


def _fake_sensitivity(path, drops: dict[str, float]):
    """A sensitivity file for simple_cnn where removing half of a group costs ``drops[group]``."""
    widths = {"0": 32, "3": 64, "7": 128}
    groups = [
        {
            "group": g,
            "width": w,
            "layers": [],
            "points": [
                {
                    "ratio": 0.5,
                    "width": w // 2,
                    "accuracy": 0.9 - drops[g],
                    "accuracy_drop": drops[g],
                    "latency_saved_ms": 0.0,
                }
            ],
        }
        for g, w in widths.items()
    ]
    path.write_text(
        json.dumps({"format": 1, "structure": _structure_key("sample:simple_cnn"), "groups": groups})
    )
    return str(path)


def test_sensitivity_prices_the_cuts(tmp_path):
    handle = load_model("sample:simple_cnn")
    path = _fake_sensitivity(tmp_path / "s.json", {"0": 0.0, "3": 0.5, "7": 0.5})
    norm.run(
        handle, PruneConfig("l1", budget=BudgetConfig(target_params=0.97, sensitivity=path)), PruneContext()
    )
    widths = [
        m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        for m in handle.module
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    assert widths[1:] == [64, 128, 10] and widths[0] < 32  # only the group whose cut costs no accuracy


def test_priced_drop_curve_is_non_decreasing_per_channel():
    from compressor.pruning.structured.budget.sensitivity import priced

    group = Group("g", 4, 1, 1, (0.1, 0.2, 0.3, 0.4))
    doc = {
        "groups": [
            {
                "group": "g",
                "width": 4,
                "points": [
                    {"width": 3, "accuracy_drop": 0.3},
                    {"width": 2, "accuracy_drop": 0.1},
                    {"width": 1, "accuracy_drop": 0.3},
                ],
            }
        ]
    }
    (out,) = priced([group], doc)  # measured 0.3, 0.1, 0.3: noise; the curve is 0.3 from the first cut on
    assert out.loss(4, 3) == pytest.approx(0.3, abs=1e-5) and out.loss(3, 1) == pytest.approx(0.0, abs=1e-5)
    assert all(s > 0 for s in out.scores)  # a noisy rise in accuracy is no gain: the scores break ties


def test_cuts_past_the_scan_cost_at_least_the_mean_measured_rate():
    """A curve that flattens at its last measured points: the channels past the scan are priced at
    the mean rate of the measured cuts, not at the flat last segment's nothing."""
    from compressor.pruning.structured.budget.sensitivity import priced

    group = Group("g", 10, 1, 1, tuple(0.1 * i for i in range(1, 11)))
    points = [
        {"width": 8, "accuracy_drop": 0.2},
        {"width": 6, "accuracy_drop": 0.4},
        {"width": 4, "accuracy_drop": 0.4},
    ]
    (out,) = priced([group], {"groups": [{"group": "g", "width": 10, "points": points}]})
    assert out.loss(10, 4) == pytest.approx(0.4, abs=1e-4)  # measured: unchanged
    assert out.loss(4, 1) == pytest.approx(3 * 0.4 / 6, abs=1e-4)  # three more at the mean 0.4 / 6 each


def test_sensitivity_of_another_model_is_exit_2_and_writes_nothing(tmp_path):
    path = _fake_sensitivity(tmp_path / "s.json", {"0": 0.0, "3": 0.5, "7": 0.5})
    r = invoke(
        "prune",
        "sample:resnet_small",
        "--method",
        "l1",
        "--target-macs",
        "0.5",
        "--sensitivity",
        path,
        "-o",
        str(tmp_path / "out.pt"),
    )
    assert r.code == 2 and "another model" in r.stderr and not (tmp_path / "out.pt").exists()


def test_cli_sensitivity_json_is_one_document(tmp_path):
    r = invoke(
        "sensitivity",
        "sample:simple_cnn",
        "--data",
        "random:1,28,28:10",
        "--ratios",
        "0.5",
        "--eval-limit",
        "32",
        "-o",
        str(tmp_path / "sens"),
        "--json",
    )
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["output"] == str(tmp_path / "sens") and doc["ratios"] == [0.5]

"""Sweeps: points as recipes, resume, exact reproduction, frontier, tables, plots, recommendations."""

from __future__ import annotations

import csv
import json
import random

import pytest

from compressor.api.recipe import load_recipe, run_recipe
from compressor.api.recommend import RecommendConfig, recommend
from compressor.api.sweep import SweepConfig, sweep
from compressor.sweep.pareto import dominates, frontier
from compressor.sweep.plan import model_step
from tests.conftest import SAMPLES, invoke

MLP = str(SAMPLES / "mlp.pt")
EXACT = ("accuracy", "params", "nonzero_params", "sparsity", "macs")


def _config(out, **kw) -> SweepConfig:
    base = dict(
        model=MLP,
        data="digits",
        output_dir=str(out),
        methods=("magnitude", "l1"),
        levels=(0.5,),
        finetune_epochs=1,
    )
    return SweepConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    seen: list[str] = []
    result = sweep(_config(out), on_point=lambda rec: seen.append(rec["id"]))
    return out, result, seen


def test_every_point_runs_once_and_is_stored(swept):
    out, result, seen = swept
    assert seen == ["baseline", "magnitude_0.5", "l1_0.5"] and result.computed == 3
    assert all(p["status"] == "ok" for p in result.points)
    for pid in seen:
        assert (out / "points" / f"{pid}.yaml").is_file() and (out / "points" / f"{pid}.json").is_file()
    rows = {p["id"]: p for p in result.points}
    assert abs(rows["magnitude_0.5"]["sparsity"] - 0.5) < 0.01
    assert rows["l1_0.5"]["params"] < rows["baseline"]["params"]  # channels really removed
    assert rows["baseline"]["accuracy_drop"] == 0


def test_csv_json_and_plots_have_the_columns(swept):
    out, result, _ = swept
    with open(out / "points.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [r["id"] for r in table] == ["baseline", "magnitude_0.5", "l1_0.5"]
    for col in (
        "method",
        "level",
        "sparsity",
        "params",
        "macs",
        "size_bytes",
        "compressed_bytes",
        "accuracy",
        "accuracy_drop",
        "robust_accuracy",
        "latency_ms_p50_mobile",
    ):
        assert col in table[0]
    assert float(table[1]["latency_ms_p50_mobile"]) > 0
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["frontiers"] == result.frontiers and "loadavg_start" in doc["machine"]
    for png in ("accuracy_vs_sparsity.png", "accuracy_vs_latency.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_frontier_points_are_not_dominated(swept):
    _, result, _ = swept
    ok = [p for p in result.points if p["status"] == "ok"]
    front = result.frontiers["accuracy_vs_sparsity"]
    assert front
    for pid in front:
        p = next(r for r in ok if r["id"] == pid)
        assert not any(dominates((o["sparsity"], o["accuracy"]), (p["sparsity"], p["accuracy"])) for o in ok)


def test_frontier_on_random_points_matches_brute_force():
    rng = random.Random(0)
    pts = [{"id": i, "x": rng.random(), "accuracy": rng.random()} for i in range(60)]
    front = frontier(pts, "x")
    brute = [
        p
        for p in pts
        if not any(
            o["x"] >= p["x"]
            and o["accuracy"] >= p["accuracy"]
            and (o["x"] > p["x"] or o["accuracy"] > p["accuracy"])
            for o in pts
        )
    ]
    assert {p["id"] for p in front} == {p["id"] for p in brute}
    assert [p["x"] for p in front] == sorted(p["x"] for p in front)
    low = frontier(pts, "x", x_higher_is_better=False)  # e.g. latency: lower is better
    assert min(pts, key=lambda p: p["x"]) in low


def test_rerun_skips_finished_points(tmp_path):
    """Its own sweep: the points a rerun adds must not reach the shared one the other tests read."""
    out = tmp_path / "sweep"
    first = sweep(_config(out, methods=("magnitude",)))
    assert first.computed == 2
    stamps = {f.name: f.stat().st_mtime_ns for f in (out / "points").glob("*.json")}
    seen: list[str] = []
    again = sweep(_config(out, methods=("magnitude",)), on_point=lambda rec: seen.append(rec["id"]))
    assert seen == [] and again.computed == 0 and again.skipped == 2
    assert {f.name: f.stat().st_mtime_ns for f in (out / "points").glob("*.json")} == stamps
    more = sweep(
        _config(out, methods=("magnitude",), levels=(0.5, 0.8)), on_point=lambda rec: seen.append(rec["id"])
    )
    assert seen == ["magnitude_0.8"] and more.skipped == 2


def test_point_recipe_reproduces_the_point_exactly(swept, tmp_path):
    out, result, _ = swept
    stored = json.loads((out / "points" / "magnitude_0.5.json").read_text())["metrics"]
    again = run_recipe(load_recipe(out / "points" / "magnitude_0.5.yaml", str(tmp_path / "again")))
    assert {k: again.metrics[k] for k in EXACT} == {k: stored[k] for k in EXACT}


def test_recommend_picks_within_the_drop(swept):
    out, _, _ = swept
    rec = recommend(RecommendConfig(str(out), max_drop=1.0))
    rows = {p["id"]: p for p in json.loads((out / "sweep.json").read_text())["points"]}
    mobile = rec.profiles[0]
    assert mobile["profile"] == "mobile"
    assert mobile["smallest"]["compressed_bytes"] == min(p["compressed_bytes"] for p in rows.values())
    fastest = min(rows.values(), key=lambda p: p["latency_ms_p50_mobile"])
    assert mobile["fastest"]["id"] == fastest["id"]
    strict = recommend(RecommendConfig(str(out), max_drop=0.0))
    kept = [p for p in rows.values() if p["accuracy"] >= rows["baseline"]["accuracy"]]
    assert strict.profiles[0]["smallest"]["id"] in {p["id"] for p in kept}


def test_iterative_methods_spread_the_epoch_budget():
    cfg = _config("unused", methods=("sap", "activation", "slim", "wanda"))
    sap, act = model_step("sap", 0.9, cfg, 420)["prune"], model_step("activation", 0.9, cfg, 420)["prune"]
    assert sap["steps"] * sap["finetune_batches"] >= 420 > (sap["steps"] - 1) * sap["finetune_batches"]
    assert act["steps"] * act["finetune_batches"] >= 420
    assert model_step("slim", 0.5, cfg, 420)["slim"]["max_batches"] == 210
    assert model_step("wanda", 0.5, cfg, 420)["prune"]["finetune_epochs"] == 1


@pytest.mark.parametrize(
    "args,text",
    [
        (["--methods", "magnitud"], "did you mean 'magnitude'"),
        (["--levels", "0.5,1.5"], "between 0 and 1"),
        (["--levels", "half"], "cannot read --levels"),
        (["--profiles", "mobil"], "did you mean 'mobile'"),
        (["--attack", "fgsn"], "did you mean 'fgsm'"),
    ],
)
def test_bad_sweep_flags_exit_2_before_writing(tmp_path, args, text):
    r = invoke("sweep", MLP, "--data", "digits", "-o", tmp_path / "out", *args)
    assert r.code == 2 and text in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_recommend_bad_input(tmp_path, swept):
    r = invoke("recommend", tmp_path)
    assert r.code == 2 and "no sweep.json" in r.stderr
    r = invoke("recommend", swept[0], "--profiles", "server")
    assert r.code == 2 and "did not measure profile 'server'" in r.stderr


@pytest.mark.slow
def test_jobs_run_points_in_processes_with_the_same_figures(tmp_path):
    serial = sweep(_config(tmp_path / "one", bench=False, jobs=1))
    pooled = sweep(_config(tmp_path / "two", bench=False, jobs=2))
    pick = lambda res: {p["id"]: p["params"] for p in res.points}  # noqa: E731
    assert pick(serial) == pick(pooled) and pooled.computed == 3


def test_plan_only_then_record_per_point_then_collect(tmp_path):
    out = tmp_path / "cluster"
    cfg = _config(out, methods=("magnitude",), finetune_epochs=0, bench=False)
    planned = sweep(cfg, plan_only=True)
    assert planned.computed == 0 and {p["status"] for p in planned.points} == {"pending"}
    for pid in ("baseline", "magnitude_0.5"):  # what each Slurm/Ray task runs
        r = invoke("run", out / "points" / f"{pid}.yaml", "--record")
        assert r.code == 0, r.stderr
    collected = sweep(cfg)
    assert collected.computed == 0 and {p["status"] for p in collected.points} == {"ok"}
    r = invoke("run", out / "points" / "baseline.yaml", "--record", "-o", tmp_path / "x")
    assert r.code == 2 and "drop -o" in r.stderr


def test_missing_model_or_data_fails_once_before_any_point(tmp_path):
    r = invoke("sweep", tmp_path / "missing.pt", "--data", "digits", "-o", tmp_path / "out")
    assert r.code == 2 and "missing.pt" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- budgeted points (--targets)


@pytest.fixture(scope="module")
def targeted(tmp_path_factory):
    """l1 at ratio 0.5 and at two parameter budgets, magnitude at 0.5; counted targets, no timing."""
    out = tmp_path_factory.mktemp("targets")
    cfg = _config(out, targets=("params=0.2", "macs=0.5"), bench=False, finetune_epochs=0)
    return out, cfg, sweep(cfg)


def test_targets_add_one_budgeted_point_per_structured_method(targeted):
    out, _, result = targeted
    assert [p["id"] for p in result.points] == [
        "baseline",
        "magnitude_0.5",
        "l1_0.5",
        "l1@params=0.2",
        "l1@macs=0.5",
    ]  # no magnitude@...: masks have no budget
    rows = {p["id"]: p for p in result.points}
    assert all(p["status"] == "ok" for p in result.points)
    small, half = rows["l1@params=0.2"], rows["l1@macs=0.5"]
    assert small["target"] == "params=0.2" and small["level"] is None and small["method"] == "l1"
    assert small["landed"] is True and small["target_factor"] == pytest.approx(5.0)
    assert 0.2 / 1.15 <= small["params"] / rows["baseline"]["params"] <= 0.2  # the budget engine's band
    assert half["landed"] is True and 0.5 / 1.15 <= half["macs"] / rows["baseline"]["macs"] <= 0.5
    assert rows["l1_0.5"]["target"] is None and rows["l1_0.5"]["landed"] is None
    recipe = load_recipe(out / "points" / "l1@params=0.2.yaml")
    assert recipe.steps[0].config.budget.target_params == 0.2 and recipe.steps[0].config.ratio is None
    with open(out / "points.csv") as fh:
        table = {r["id"]: r for r in csv.DictReader(fh)}
    assert table["l1@params=0.2"]["target"] == "params=0.2" and table["l1@params=0.2"]["landed"] == "True"


def test_budgeted_points_share_the_frontier_and_recommend_picks_them(targeted):
    out, _, result = targeted
    # params=0.2 keeps a fifth of the weights: the sparsest point, so on the frontier and the smallest
    assert "l1@params=0.2" in result.frontiers["accuracy_vs_sparsity"]
    pick = recommend(RecommendConfig(str(out), max_drop=1.0)).profiles[0]["smallest"]
    assert pick["id"] == "l1@params=0.2" and pick["target"] == "params=0.2" and pick["landed"] is True


def test_rerun_reuses_budgeted_points(targeted):
    out, cfg, _ = targeted
    seen: list[str] = []
    again = sweep(cfg, on_point=lambda rec: seen.append(rec["id"]))
    assert seen == [] and again.computed == 0 and again.skipped == 5


def test_timed_targets_are_measured_on_the_first_profile(tmp_path):
    from compressor.sweep.plan import plan

    cfg = _config(
        tmp_path,
        methods=("l1", "slim", "wanda"),
        levels=(),
        profiles=("edge", "mobile"),
        targets=("speedup=2.0", "latency_ms=3", "size=2MB"),
        cost_cache=str(tmp_path / "cm"),
    )
    points = dict(plan(cfg, threads=1, epoch_batches=10))
    assert list(points) == [
        "baseline",
        "l1@speedup=2",
        "l1@latency_ms=3",
        "l1@size=2MB",
        "slim@speedup=2",
        "slim@latency_ms=3",
        "slim@size=2MB",
    ]
    prune = points["l1@speedup=2"]["steps"][0]["prune"]
    assert prune["budget"] == {"target_speedup": 2.0, "profile": "edge", "cost_cache": str(tmp_path / "cm")}
    assert "ratio" not in prune
    slim = points["slim@size=2MB"]["steps"][0]["slim"]
    assert (
        slim["budget"] == {"target_size": "2MB", "cost_cache": str(tmp_path / "cm")} and "ratio" not in slim
    )


@pytest.mark.parametrize(
    "args,text",
    [
        (["--methods", "magnitude,wanda", "--targets", "speedup=2"], "masks do not speed up ONNX Runtime"),
        (["--targets", "speed=2"], "did you mean 'speedup'"),
        (["--targets", "speedup=1"], "must be > 1"),
        (["--targets", "macs=1.5"], "fraction"),
        (["--targets", "macs=half"], "not a number"),
        (["--targets", "speedup"], "cannot read --targets"),
        (["--targets", "speedup=2;speedup=2"], "must not repeat"),
        (["--targets", "latency_ms=3", "--profiles", ""], "add --profiles mobile"),
    ],
)
def test_bad_targets_exit_2_before_writing(tmp_path, args, text):
    r = invoke("sweep", MLP, "--data", "digits", "-o", tmp_path / "out", "--methods", "l1", *args)
    assert r.code == 2 and text in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "out").exists()

"""Each method's own settings: one typed, validated dataclass that the CLI's ``--opt``, a recipe's
``options:``, the registry's smoke and sweep settings and the Python API all build the same way."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from compressor import registry
from compressor.api.config import (
    ActivationConfig,
    LotteryConfig,
    MethodSettings,
    NoSettings,
    PruneConfig,
    SapConfig,
    SlimConfig,
    SlimmingConfig,
    WandaConfig,
)
from compressor.errors import UsageError
from compressor.recipe.parse import parse_recipe
from compressor.sweep.plan import SweepConfig, model_step
from tests.conftest import invoke

SAP = {"method": "sap", "sparsity": 0.5, "data": "digits"}


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_every_method_names_a_frozen_settings_class_with_valid_defaults(name):
    cls = registry.method(name).settings_class()
    assert issubclass(cls, MethodSettings) and cls.__dataclass_params__.frozen
    assert all(f.default is not dataclasses.MISSING for f in dataclasses.fields(cls))
    assert cls() == cls(**{f.name: f.default for f in dataclasses.fields(cls)})  # defaults pass check()


def test_the_registry_names_each_methods_own_class():
    classes = {name: registry.method(name).settings_class() for name in registry.METHODS}
    assert classes == {
        "l1": NoSettings,
        "l2": NoSettings,
        "random": NoSettings,
        "magnitude": NoSettings,
        "slim": SlimmingConfig,
        "wanda": WandaConfig,
        "sap": SapConfig,
        "activation": ActivationConfig,
        "lottery": LotteryConfig,
    }


def test_spelled_values_convert_by_field_type():
    cfg = PruneConfig(**SAP, options={"p": "0.25", "gamma": 4, "beta": "1"})
    assert cfg.settings == SapConfig(p=0.25, gamma=4.0, beta=1.0)
    assert isinstance(cfg.settings.gamma, float) and cfg.options == {}
    act = PruneConfig(
        "activation",
        sparsity=0.5,
        data="digits",
        options={"threshold": "none", "skip_last": "false", "stat": "abs"},
    ).settings
    assert act == ActivationConfig(stat="abs", threshold=None, skip_last=False)
    assert ActivationConfig(threshold="0.01", skip_last=0) == ActivationConfig(
        threshold=0.01, skip_last=False
    )
    assert LotteryConfig(rewind_steps="3", rate=0.5).rewind_steps == 3
    assert LotteryConfig(rewind_steps=2.0).rewind_steps == 2  # a whole number written as a float


@pytest.mark.parametrize(
    "cls, field, value, expected",
    [
        (SapConfig, "p", "abc", "sap option 'p' expects a number, got 'abc'"),
        (SapConfig, "gamma", True, "sap option 'gamma' expects a number"),
        (LotteryConfig, "rewind_steps", 2.5, "lottery option 'rewind_steps' expects an integer, got 2.5"),
        (ActivationConfig, "skip_last", "maybe", "activation option 'skip_last' expects true or false"),
        (ActivationConfig, "threshold", "low", "expects a number or none, got 'low'"),
        (WandaConfig, "global_ranking", ["row"], "wanda option 'global_ranking' expects a string"),
        (SlimmingConfig, "max_batches", "two", "slim option 'max_batches' expects an integer or none"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_one_line_error_naming_the_field(cls, field, value, expected):
    with pytest.raises(UsageError) as info:
        cls(**{field: value})
    assert expected in info.value.one_line()
    assert f"default: {field}=" in info.value.one_line()


@pytest.mark.parametrize(
    "cls, values, expected",
    [
        (SapConfig, {"p": 1.0, "q": 0.5}, "0 < p < q"),
        (SapConfig, {"beta": 1.5}, "beta in (0, 1]"),
        (SapConfig, {"gamma": 0}, "gamma > 0"),
        (SapConfig, {"eta_r": -1}, "eta_r > -1"),
        (WandaConfig, {"global_normalize": "median"}, "valid: mean, raw"),
        (WandaConfig, {"global_ranking": "global"}, "valid: layer, row"),
        (WandaConfig, {"max_layer_sparsity": 0}, "(0, 1]"),
        (ActivationConfig, {"stat": "max"}, "valid: relu, abs"),
        (ActivationConfig, {"threshold": -0.1}, "threshold must be >= 0"),
        (LotteryConfig, {"rate": 1.0}, "0 < rate < 1"),
        (LotteryConfig, {"rewind_steps": -1}, "rewind_steps >= 0"),
        (SlimmingConfig, {"lam": -1e-4}, "--lambda must be >= 0"),
        (SlimmingConfig, {"max_batches": 0}, "--max-batches must be >= 1"),
    ],
)
def test_values_out_of_range_are_refused_on_construction(cls, values, expected):
    with pytest.raises(UsageError) as info:
        cls(**values)
    assert expected in info.value.one_line()


def test_an_unknown_option_names_the_closest_valid_one():
    with pytest.raises(UsageError) as info:
        PruneConfig(**SAP, options={"gama": 2})
    assert info.value.one_line() == (
        "unknown option 'gama' for method 'sap' (did you mean 'gamma'? valid: beta, eta_r, gamma, p, q)"
    )
    with pytest.raises(UsageError) as info:
        PruneConfig("magnitude", sparsity=0.5, options={"gamma": 2})
    assert "it has no options of its own" in info.value.one_line()


def test_settings_object_options_over_it_and_the_wrong_class():
    assert PruneConfig(**SAP).settings == SapConfig()  # None: the method's defaults
    both = PruneConfig(**SAP, settings=SapConfig(p=0.25), options={"gamma": "4"})
    assert both.settings == SapConfig(p=0.25, gamma=4.0)
    assert both == PruneConfig(**SAP, options={"p": 0.25, "gamma": 4})  # either spelling, equal configs
    with pytest.raises(UsageError, match="method 'wanda' takes WandaConfig settings, got SapConfig"):
        PruneConfig("wanda", sparsity=0.5, data="digits", settings=SapConfig())


def test_slim_command_defaults_are_the_slimming_settings():
    """compress slim's own flags (--lambda, --sparsity-epochs, ...) are SlimmingConfig's fields."""
    slim = {f.name: f.default for f in dataclasses.fields(SlimConfig)}
    for f in dataclasses.fields(SlimmingConfig):
        assert slim[f.name] == f.default, f.name
    cfg = SlimConfig(data="digits", lam=1e-3, sparsity_optimizer="sgd").to_prune_config()
    assert cfg.settings == SlimmingConfig(lam=1e-3, sparsity_optimizer="sgd", sparsity_lr=SlimConfig.lr)


def test_the_cli_and_a_recipe_build_the_same_config(monkeypatch, tmp_path):
    """``--opt`` strings and a recipe's typed YAML values give equal PruneConfigs (settings included)."""
    seen = []

    def capture(spec, cfg, *args, **kwargs):
        seen.append(cfg)
        raise UsageError("captured")

    monkeypatch.setattr(importlib.import_module("compressor.api.prune"), "prune", capture)
    invoke(
        "prune",
        "sample:mlp",
        "--method",
        "activation",
        "--sparsity",
        "0.5",
        "--data",
        "digits",
        "--opt",
        "threshold=0.01",
        "--opt",
        "skip_last=false",
        "--opt",
        "stat=abs",
        "-o",
        tmp_path / "x.pt",
    )
    recipe = parse_recipe(
        {
            "model": "sample:mlp",
            "data": "digits",
            "steps": [
                {
                    "prune": {
                        "method": "activation",
                        "sparsity": 0.5,
                        "options": {"threshold": 0.01, "skip_last": False, "stat": "abs"},
                    }
                }
            ],
        },
        str(tmp_path),
    )
    assert len(seen) == 1
    assert recipe.steps[0].config == seen[0]
    assert seen[0].settings == ActivationConfig(stat="abs", threshold=0.01, skip_last=False)


def test_a_recipe_refuses_bad_options_before_anything_runs(tmp_path):
    step = {"method": "sap", "sparsity": 0.5, "options": {"gamma": "fast"}}
    with pytest.raises(UsageError, match="sap option 'gamma' expects a number, got 'fast'"):
        parse_recipe({"model": "sample:mlp", "data": "digits", "steps": [{"prune": step}]}, str(tmp_path))
    typed = {"method": "sap", "sparsity": 0.5, "settings": {"gamma": 4.0}}
    with pytest.raises(UsageError, match="go under 'options'"):
        parse_recipe({"model": "sample:mlp", "data": "digits", "steps": [{"prune": typed}]}, str(tmp_path))


@pytest.mark.parametrize(
    "args, text",
    [
        (["--opt", "gamma=fast"], "sap option 'gamma' expects a number, got 'fast'"),
        (["--opt", "p=2"], "SAP needs 0 < p < q"),
        (["--opt", "gama=2"], "did you mean 'gamma'?"),
    ],
)
def test_cli_bad_opt_exits_2_with_one_line(tmp_path, args, text):
    out = tmp_path / "x.pt"
    r = invoke(
        "prune", "sample:mlp", "--method", "sap", "--sparsity", "0.5", "--data", "digits", *args, "-o", out
    )
    assert r.code == 2 and text in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("name", [m.name for m in registry.METHODS.values() if m.swept or m.smoke])
def test_registry_smoke_and_sweep_settings_build_typed_settings(name, tmp_path):
    """The settings a sweep point and the matrix's quick run give a method are valid fields."""
    entry = registry.method(name)
    point = model_step(name, 0.5, SweepConfig("sample:mlp", "digits", str(tmp_path), methods=(name,)), 10)
    recipe = parse_recipe({"model": "sample:mlp", "data": "digits", "steps": [point]}, str(tmp_path))
    settings = (
        recipe.steps[0].config.settings
        if entry.command == "prune"
        else (recipe.steps[0].config.to_prune_config().settings)
    )
    assert isinstance(settings, entry.settings_class())
    for key, value in {**entry.sweep.get("options", {})}.items():
        assert getattr(settings, key) == value
    smoke = {"ratio": 0.5} if entry.kind == "structured" else {"sparsity": 0.5}
    assert isinstance(
        PruneConfig(name, data="digits", **{**smoke, **entry.smoke}).settings, entry.settings_class()
    )


def test_wanda_global_settings_reach_the_method():
    """WandaConfig's fields steer --scope global: the ranking label and the per-layer cap."""
    from compressor.io.data import load_data
    from compressor.io.refs import build
    from compressor.model import ModelHandle
    from compressor.pruning.base import PruneContext
    from compressor.pruning.unstructured import wanda

    ctx = PruneContext(train=load_data("random:1,28,28:10", "train"))
    figures = {}
    for ranking, cap in (("layer", 0.99), ("row", 0.52)):
        handle = ModelHandle(build("sample:mlp").eval(), "sample:mlp", input_shape=(1, 1, 28, 28))
        cfg = PruneConfig(
            "wanda",
            sparsity=0.5,
            scope="global",
            data="random",
            calib_samples=16,
            settings=WandaConfig(global_ranking=ranking, max_layer_sparsity=cap),
        )
        figures[ranking] = wanda.run(handle, cfg, ctx).figures
    assert figures["layer"]["wanda_scope"] == "global-layer" and figures["row"]["wanda_scope"] == "global-row"
    # uncapped, the untrained mlp's layers get 0.49, 0.52 and 0.59; capped at 0.52, none passes it
    assert max(figures["layer"]["wanda_layer_allocation"].values()) > 0.56
    assert max(figures["row"]["wanda_layer_allocation"].values()) <= 0.52 + 1e-3

"""Each default lives in one place, its config field: every CLI option's default equals it.

Walks every command of the typer app. An option named like a field of the command's config must
default to that field's default (``--help`` shows it); list-like fields are compared in their
command-line spelling (``conv,linear``). Options that are not config settings are listed here by
name, so that a new option either gets a config field or is added to the list on purpose.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import typer

from compressor import registry
from compressor.api.config import (
    BenchConfig,
    DistillConfig,
    EvalConfig,
    ExportConfig,
    GateSpec,
    Profile,
    PruneConfig,
    RecommendConfig,
    SlimConfig,
    SweepConfig,
    TrainConfig,
)
from compressor.api.listing import list_all
from compressor.cli.app import app
from compressor.pruning.structured.budget.config import BudgetConfig
from compressor.pruning.structured.budget.sensitivity import SensitivityConfig

CONFIGS: dict[str, tuple[type, ...]] = {
    "prune": (PruneConfig, BudgetConfig),
    "slim": (SlimConfig, BudgetConfig),
    "sensitivity": (SensitivityConfig,),
    "distill": (TrainConfig, DistillConfig),
    "finetune": (TrainConfig, DistillConfig),
    "export": (ExportConfig,),
    "eval": (EvalConfig,),
    "bench": (BenchConfig, GateSpec),
    "sweep": (SweepConfig,),
    "recommend": (RecommendConfig,),
    "run": (),
    "info": (),
    "list": (),
}
SHARED = {"path", "arch", "arch_kwargs", "trust_pickle", "input_shape", "json_out", "debug"}
"""How a command names its model and prints: ModelSpec and output flags, not settings."""
NOT_SETTINGS = {
    "prune": {"output", "opt", "dry_run"},  # opt fills PruneConfig.options, one KEY=VALUE at a time
    "slim": {"output", "dry_run"},
    "distill": {"output", "teacher_arch"},
    "finetune": {"output"},
    "bench": {"gates_file", "md"},
    "sweep": {"plan_only"},
    "run": {"recipe", "output_dir", "check", "record"},
    "sensitivity": {"output"},
}
ONLY_WITH_A_TARGET = {("prune", "profile"), ("slim", "profile")}
"""Budget settings whose None means 'no target given' (alone they are an error); with a target the
config's default applies, and ``--help`` names it."""
RENAMED = {("sweep", "output"): "output_dir"}
PROFILE_OVERRIDES = {
    "device": "device",
    "runs": "min_runs",
    "warmup": "warmup",
    "min_time": "min_time_s",
    "max_time": "max_time_s",
    "batch": "batch",
    "threads": "threads",
    "graph_opt": "graph_optimization",
}
"""bench flags that override one field of the chosen profile; None means the profile's value."""


def _commands():
    return sorted(typer.main.get_command(app).commands.items())


def _field(classes: tuple[type, ...], name: str) -> dataclasses.Field | None:
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f
    return None


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _spelled(value):
    """A config default as the command line spells it."""
    if isinstance(value, Profile):
        return value.name
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or None
    return value


def test_every_command_is_covered():
    assert {name for name, _ in _commands()} == set(CONFIGS)


@pytest.mark.parametrize("name, command", _commands(), ids=[n for n, _ in _commands()])
def test_option_defaults_equal_config_defaults(name, command):
    checked, problems = 0, []
    for param in command.params:
        if param.name in SHARED | NOT_SETTINGS.get(name, set()):
            continue
        if name == "bench" and param.name in PROFILE_OVERRIDES:
            assert PROFILE_OVERRIDES[param.name] in {f.name for f in dataclasses.fields(Profile)}
            if param.default is not None:
                problems.append(f"--{param.name} overrides the profile, so its default must be None")
            continue
        f = _field(CONFIGS[name], RENAMED.get((name, param.name), param.name))
        if (name, param.name) in ONLY_WITH_A_TARGET and f is not None:
            if param.default is not None or f"default: {_spelled(_default(f))}" not in (param.help or ""):
                problems.append(
                    f"--{param.name} must default to None and name the config's default in its help"
                )
            continue
        if f is None:
            problems.append(f"{param.name}: no config field (add one, or list it in NOT_SETTINGS)")
            continue
        checked += 1
        default = _default(f)
        if param.required:
            continue  # the user gives it; a config may still check it (DistillConfig.data)
        if default is dataclasses.MISSING:
            problems.append(
                f"{param.name}: the config requires it, the command defaults to {param.default!r}"
            )
        elif param.default != _spelled(default):
            problems.append(f"{param.name}: command {param.default!r}, config {_spelled(default)!r}")
    assert not problems, f"compress {name}: " + "; ".join(problems)
    assert checked or not CONFIGS[name]


def test_finetune_help_and_train_config_agree():
    from typer.testing import CliRunner

    text = CliRunner().invoke(app, ["finetune", "--help"], terminal_width=200).output
    assert f"[default: {TrainConfig.epochs}]" in text.split("--epochs", 1)[1].split("--lr", 1)[0]


# ---------------------------------------------------------------- each method's own settings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "methods.md"


def _settings(name: str) -> list[dataclasses.Field]:
    return list(dataclasses.fields(registry.method(name).settings_class()))


def _spelled_setting(value) -> str:
    """A settings default as ``--opt`` writes it."""
    return str(value).lower() if value is None or isinstance(value, bool) else str(value)


def test_opt_help_shows_each_methods_settings_with_their_field_defaults():
    command = dict(_commands())["prune"]
    text = " ".join(next(p for p in command.params if p.name == "opt").help.split())
    for name in registry.methods_for("prune"):
        fields = _settings(name)
        if fields:
            expected = ", ".join(f"{f.name}={_spelled_setting(f.default)}" for f in fields)
            assert f"{name}: {expected}" in text, name


def test_list_shows_each_methods_settings_with_their_field_defaults():
    listed = {m["name"]: m for m in list_all()["methods"]}
    for name, info in registry.METHODS.items():
        cls = info.settings_class()
        assert listed[name]["settings_class"] == cls.__name__
        assert [(s["name"], s["default"]) for s in listed[name]["settings"]] == [
            (f.name, f.default) for f in dataclasses.fields(cls)
        ]


def _docs_tables() -> dict[str, list[tuple[str, str, str]]]:
    """``## method: `Class``` -> its table's (setting, type, default) rows."""
    tables: dict[str, list[tuple[str, str, str]]] = {}
    current = None
    for line in DOCS.read_text().splitlines():
        heading = re.match(r"## (\w+): `(\w+)`", line)
        if heading:
            current = heading.group(1)
            tables[current] = []
        elif current and line.startswith("| `"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            tables[current].append((cells[0].strip("`"), cells[1], cells[2]))
    return tables


def test_docs_tables_match_the_settings_classes():
    tables = _docs_tables()
    with_settings = [name for name in registry.METHODS if _settings(name)]
    assert sorted(tables) == sorted(with_settings)
    hints = {name: typing.get_type_hints(registry.method(name).settings_class()) for name in with_settings}
    for name in with_settings:
        expected = [
            (f.name, _type(hints[name][f.name]), _spelled_setting(f.default)) for f in _settings(name)
        ]
        assert tables[name] == expected, name


def _type(hint) -> str:
    args = typing.get_args(hint)
    if args:
        return " | ".join("None" if a is type(None) else a.__name__ for a in args)
    return hint.__name__


def test_recovery_defaults_are_the_measured_choice():
    """TrainConfig's learning rate and schedule are the candidate the recovery benchmark chose (its
    result file names it); changing either default means measuring it there first."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "benchmarks/results/recovery_defaults.md").read_text()
    flags = text.split("Chosen defaults: `", 1)[1].split("`", 1)[0].split()
    chosen = dict(zip(flags[::2], flags[1::2]))
    assert float(chosen["--lr"]) == TrainConfig.lr and chosen["--schedule"] == TrainConfig.schedule
    assert chosen.get("--optimizer", "adam") == TrainConfig.optimizer

"""Recipes: typed steps from the commands' own configs, strict keys, chaining, gates, exit codes."""

from __future__ import annotations

import pytest
import yaml

from compressor.api.distill import DistillConfig
from compressor.api.evaluate import EvalConfig
from compressor.api.recipe import load_recipe, parse_recipe, run_recipe
from compressor.errors import UsageError
from compressor.export.config import ExportConfig
from compressor.pruning.base import PruneConfig
from tests.conftest import SAMPLES, invoke

MLP = str(SAMPLES / "mlp.pt")


def _recipe(tmp_path, steps, **top):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"model": MLP, "data": "digits", "threads": 1, "steps": steps, **top}))
    return path


def test_steps_are_the_commands_typed_configs(tmp_path):
    recipe = parse_recipe(
        {
            "model": MLP,
            "data": "digits",
            "steps": [
                {"prune": {"method": "magnitude", "sparsity": 0.5, "layers": ["linear"]}},
                {"finetune": {"epochs": 1, "max_batches": 2}},
                {"eval": {"attack": "fgsm"}},
                {"export": None},
                {"bench": {"profile": "edge", "min_runs": 5, "gates": {"max-size": "5MB"}}},
            ],
        },
        str(tmp_path),
    )
    prune, tune, ev, export, bench = recipe.steps
    assert isinstance(prune.config, PruneConfig) and prune.config.layers == ("linear",)
    assert prune.config.data == "digits" and prune.output == str(tmp_path / "01_prune.pt")
    assert isinstance(tune.config, DistillConfig) and tune.config.student.path == prune.output
    assert tune.config.train.max_batches == 2
    assert isinstance(ev.config, EvalConfig) and ev.config.model.path == tune.output
    assert isinstance(export.config, ExportConfig) and export.config.output == str(
        tmp_path / "04_export.onnx"
    )
    assert bench.model.path == export.output and bench.config.profile.threads == 2
    assert bench.config.profile.min_runs == 5 and bench.config.gates.max_size == 5_000_000


@pytest.mark.parametrize(
    "steps,text",
    [
        (
            [{"prune": {"method": "magnitude", "sparsty": 0.5}}],
            "unknown key 'sparsty' (did you mean 'sparsity'?",
        ),
        ([{"prun": {"method": "l1"}}], "did you mean 'prune'"),
        ([{"finetune": {"epocks": 1}}], "did you mean 'epochs'"),
        ([{"bench": {"profil": "mobile"}}], "did you mean 'profile'"),
        ([{"prune": {"method": "magnitude", "sparsity": "half"}}], "'sparsity' expects a number"),
        ([{"prune": {"method": "l1", "ratio": 1.5}}], "between 0 and 1"),
        ([{"export": {"quantize": "int4"}}], "unknown quantization"),
    ],
)
def test_bad_recipes_exit_2_naming_the_fix(tmp_path, steps, text):
    r = invoke("run", str(_recipe(tmp_path, steps)), "-o", str(tmp_path / "out"))
    assert r.code == 2, r.stderr
    assert text in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()  # validated before anything ran or was written


def test_unknown_top_level_key_and_missing_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"modle": MLP, "steps": [{"info": {}}]}))
    r = invoke("run", str(path))
    assert r.code == 2 and "did you mean 'model'" in r.stderr
    r = invoke("run", str(tmp_path / "missing.yaml"))
    assert r.code == 2 and "does not exist" in r.stderr


def test_recipe_chains_steps_and_a_failed_gate_exits_1(tmp_path):
    steps = [
        {"prune": {"method": "magnitude", "sparsity": 0.5, "finetune_epochs": 1, "finetune_batches": 2}},
        {"info": {}},
        {"export": {}},
        {"bench": {"min_runs": 5, "warmup": 1, "min_time_s": 0.05, "gates": {"max_latency_ms": 1e-6}}},
    ]
    r = invoke("run", str(_recipe(tmp_path, steps)), "-o", str(tmp_path / "out"), "--json")
    assert r.code == 1, r.stderr
    doc = r.json()
    assert [s["kind"] for s in doc["steps"]] == ["prune", "info", "export", "bench"]
    assert abs(doc["sparsity"] - 0.5) < 0.01 and doc["latency_ms_p50_mobile"] > 0
    assert doc["gates_passed"] is False and doc["gates"][0]["name"] == "max_latency_ms"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["01_prune.pt", "03_export.onnx"]


def test_check_validates_without_running(tmp_path):
    r = invoke("run", str(_recipe(tmp_path, [{"prune": {"method": "wanda", "sparsity": 0.5}}])), "--check")
    assert r.code == 0 and "recipe is valid" in r.stderr
    assert not (tmp_path / "recipe_out").exists()


def test_failing_step_is_named_and_keeps_its_exit_code(tmp_path):
    path = _recipe(tmp_path, [{"slim": {"ratio": 0.5}}])  # mlp has no BatchNorm: exit 3
    with pytest.raises(Exception) as err:
        run_recipe(load_recipe(path))
    assert "step 1 (slim)" in str(err.value) and err.value.exit_code == 3


def test_distill_needs_a_teacher():
    with pytest.raises(UsageError) as err:
        parse_recipe({"model": MLP, "data": "digits", "steps": [{"distill": {"epochs": 1}}]}, "out")
    assert "teacher" in err.value.one_line()


def test_recipe_failing_before_any_output_leaves_no_folder(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": str(tmp_path / "missing.pt"),
                "data": "digits",
                "steps": [{"prune": {"method": "magnitude", "sparsity": 0.5}}],
            }
        )
    )
    r = invoke("run", path, "-o", tmp_path / "out")
    assert r.code == 2 and "step 1 (prune)" in r.stderr and "missing.pt" in r.stderr
    assert not (tmp_path / "out").exists()

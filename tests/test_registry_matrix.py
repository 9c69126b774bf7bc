"""The registries are the extension points, so registering is what puts a method or a format under
test: every method prunes every sample model it supports, every export format writes, verifies and
reads back, and a method registered at run time is validated, listed and run with no other change.

Methods run with quick settings: ratio 0.3 or sparsity 0.5, the small digits data, 32 calibration
samples, fine-tunes capped at two batches, plus the method's own ``smoke`` settings from its entry.
For each method the cheapest sample it supports runs in the default suite, the others are slow.
"""

from __future__ import annotations

import json

import pytest
import torch

from compressor import registry
from compressor.api import ExportConfig, ModelSpec, evaluate, export, info, prune
from compressor.errors import InputError, UnsupportedError, UsageError
from compressor.io.artifact import load_model, save_artifact
from compressor.io.data import load_data
from compressor.pruning.base import PruneConfig
from compressor.stats import count_macs, count_params
from compressor.sweep.plan import SweepConfig, model_step
from compressor.train import TrainConfig, fit
from compressor.train.config import EvalConfig
from tests.conftest import invoke

RATIO, SPARSITY = 0.3, 0.5
CHEAPEST_FIRST = ("mlp", "simple_cnn", "vgg_bn", "tiny_vit", "resnet_small")  # prune time, measured


def _cost(sample: str) -> int:
    return CHEAPEST_FIRST.index(sample) if sample in CHEAPEST_FIRST else len(CHEAPEST_FIRST)


def method_cases() -> list:
    """(method, sample) for every registered method and every sample it supports; all but the
    cheapest sample of each method are marked slow."""
    cases = []
    for name in registry.METHODS:
        for rank, sample in enumerate(sorted(registry.samples_for(name), key=_cost)):
            cases.append(
                pytest.param(name, sample, id=f"{name}-{sample}", marks=[pytest.mark.slow] if rank else [])
            )
    return cases


def refused_cases() -> list:
    """(method, sample) for the sample models a method does not support."""
    return [
        pytest.param(m, s, id=f"{m}-{s}")
        for m in registry.METHODS
        for s in registry.SAMPLES
        if s not in registry.samples_for(m)
    ]


def quick_config(name: str) -> PruneConfig:
    """A run of method ``name`` at the least cost that still goes through all of it."""
    entry = registry.method(name)
    settings = {
        "method": name,
        **({"ratio": RATIO} if entry.kind == "structured" else {"sparsity": SPARSITY}),
    }
    if entry.needs_data:
        settings.update(data="digits", calib_samples=32, batch_size=64, finetune_batches=2)
    return PruneConfig(**{**settings, **entry.smoke})


def _fresh(sample: str):
    torch.manual_seed(0)  # the initialisation prune() starts from (its --seed 0)
    return load_model(f"sample:{sample}")


def check_method(name: str, sample: str, tmp_path) -> None:
    """Prune, reload the artifact, and check what the method's kind promises."""
    out = tmp_path / "pruned.pt"
    prune(ModelSpec(f"sample:{sample}"), quick_config(name), str(out), measure_input=False)
    dense, pruned = _fresh(sample), load_model(str(out))
    x = torch.randn(3, *registry.sample(sample).input_shape[1:])
    with torch.no_grad():
        expected, got = dense.module.eval()(x), pruned.module.eval()(x)
    assert got.shape == expected.shape and torch.isfinite(got).all()
    before, after = count_params(dense.module)[0], count_params(pruned.module)[0]
    if registry.method(name).kind == "structured":
        # ratio 0.3 of the channels removes 27-55% of these models' parameters; nothing removed: 0%
        assert after < 0.9 * before and not pruned.masks
        return
    assert after == before and pruned.masks  # masks zero weights, they remove none
    kept = sum(int(m.sum()) for m in pruned.masks.values())
    total = sum(m.numel() for m in pruned.masks.values())
    # every method lands within 0.3% of the target here; a method that masks nothing gives 0.0
    assert abs((1 - kept / total) - SPARSITY) < 0.02
    _check_masks_hold_through_a_finetune_step(pruned)


def _check_masks_hold_through_a_finetune_step(handle) -> None:
    params = dict(handle.module.named_parameters())
    start = {k: params[k].detach().clone() for k in handle.masks}
    fit(
        handle.module,
        load_data("digits", "train"),
        TrainConfig(epochs=1, lr=1e-2, max_batches=1, device="cpu"),
        masks=handle.masks,
    )
    for key, mask in handle.masks.items():
        assert torch.count_nonzero(params[key].detach()[~mask]) == 0, key  # masked weights stay zero
    moved = [not torch.equal(params[k].detach()[m], start[k][m]) for k, m in handle.masks.items()]
    assert any(moved)  # and the step did train the kept ones


@pytest.mark.parametrize("name, sample", method_cases())
def test_every_method_prunes_every_sample_it_supports(name, sample, tmp_path):
    check_method(name, sample, tmp_path)


@pytest.mark.parametrize("name, sample", refused_cases())
def test_a_method_refuses_the_samples_it_does_not_support(name, sample, tmp_path):
    with pytest.raises(UnsupportedError):
        prune(ModelSpec(f"sample:{sample}"), quick_config(name), str(tmp_path / "x.pt"), measure_input=False)
    assert not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------- export formats


@pytest.mark.parametrize("fmt", list(registry.FORMATS))
def test_every_format_writes_verifies_and_reads_back(fmt, tmp_path):
    """Export the mlp sample, then read the file back through the format's own module (info, eval)."""
    entry = registry.export_format(fmt)
    dense, source = _fresh("mlp"), tmp_path / "source" / "mlp.pt"
    source.parent.mkdir()
    save_artifact(dense, source)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / f"mlp{entry.suffixes[0]}"
    result = export(ModelSpec(str(source)), ExportConfig(output=str(out), format=fmt, samples=8))
    assert result.figures["parity_passed"] and result.figures["parity_batch_sizes"] == [1, 7]
    assert registry.format_of(str(out)) is entry and [p.name for p in folder.iterdir()] == [out.name]

    if entry.runs_code:  # a program in the file runs when it is read: refused unless trusted
        with pytest.raises(InputError, match="runs code from the file"):
            info(str(out))
        with pytest.raises(InputError, match="runs code from the file"):
            evaluate(str(out), EvalConfig(data="digits", limit=8))
        refused, trusted = invoke("info", out), invoke("info", out, "--trust-pickle")
        assert refused.code == 2 and "runs code" in refused.stderr and trusted.code == 0
    written = ModelSpec(str(out), trust_pickle=entry.runs_code)
    read = info(written)
    assert (read.kind, read.ref, read.input_shape) == (fmt, "sample:mlp", [1, 1, 28, 28])
    # ONNX counts its shape constants among the initializers (2 values here, of 535,818 weights)
    assert read.params == pytest.approx(count_params(dense.module)[0], abs=16)
    assert read.macs == count_macs(dense.module, dense.example_input())

    cfg = EvalConfig(data="digits", limit=64, batch_size=32)
    from_file, from_torch = evaluate(written, cfg), evaluate(str(source), cfg)
    assert from_file.backend == entry.runtime and from_file.samples == from_torch.samples == 64
    # the same weights: logits agree to float32 rounding (1e-7 here), a wrong weight moves the loss by 1e-2
    assert from_file.loss == pytest.approx(from_torch.loss, rel=1e-5)


@pytest.mark.parametrize("fmt", list(registry.FORMATS))
def test_bench_times_a_format_with_its_backend_or_says_none_does(fmt):
    served = [b for b in registry.BACKENDS.values() if fmt in b.formats]
    path = f"model{registry.export_format(fmt).suffixes[0]}"
    if served:
        assert registry.backend_for(path) is served[0]
        assert served[0].load().name == served[0].name  # the class reports the registry's name
    else:
        with pytest.raises(UsageError, match=f"no bench backend times {fmt} files"):
            registry.backend_for(path)


def test_an_unknown_format_lists_the_registered_ones(tmp_path):
    r = invoke("export", "sample:mlp", "-o", tmp_path / "m.onnx", "--format", "onnxx")
    assert r.code == 2 and "did you mean 'onnx'" in r.stderr
    assert all(name in r.stderr for name in registry.FORMATS)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- a method added by registering it


@pytest.fixture
def leading(monkeypatch):
    """A method registered at run time: one module in tests/ and one registry entry."""
    entry = registry.MethodInfo(
        "leading",
        "unstructured",
        "tests.registry_method",
        "mask the leading weights of each layer",
        "none: a test method",
        samples=("mlp",),
        sweep={"scope": "layer", "steps": 2},
    )
    monkeypatch.setitem(registry.METHODS, entry.name, entry)
    return entry


def test_an_unregistered_method_is_refused(tmp_path):
    r = invoke("prune", "sample:mlp", "--method", "leading", "--sparsity", "0.5", "-o", tmp_path / "x.pt")
    assert r.code == 2 and "unknown method 'leading'" in r.stderr


def test_a_registered_method_is_validated_listed_run_and_in_the_matrix(leading, tmp_path):
    listed = invoke("list", "--json")
    assert listed.code == 0
    assert {"name": "leading", "samples": ["mlp"]}.items() <= next(
        m for m in json.loads(listed.stdout)["methods"] if m["name"] == "leading"
    ).items()

    typo = invoke("prune", "sample:mlp", "--method", "leadin", "--sparsity", "0.5", "-o", tmp_path / "x.pt")
    assert typo.code == 2 and "did you mean 'leading'" in typo.stderr
    missing = invoke("prune", "sample:mlp", "--method", "leading", "-o", tmp_path / "x.pt")
    assert missing.code == 2 and "needs --sparsity" in missing.stderr  # validated as an unstructured method

    out = tmp_path / "leading.pt"
    r = invoke("prune", "sample:mlp", "--method", "leading", "--sparsity", "0.25", "-o", out, "--json")
    assert r.code == 0 and json.loads(r.stdout)["method"] == "leading"
    masks = load_model(str(out)).masks
    assert len(masks) == 3  # the mlp's three linear layers
    for mask in masks.values():  # exactly what the module does: the leading quarter masked
        quarter = round(0.25 * mask.numel())
        assert not mask.flatten()[:quarter].any() and mask.flatten()[quarter:].all()

    assert [p.values for p in method_cases() if p.values[0] == "leading"] == [("leading", "mlp")]
    check_method("leading", "mlp", tmp_path)  # the matrix's own check passes for it

    # a sweep point takes the entry's settings; one epoch of 10 batches spread over its 2 steps
    point = model_step(
        "leading",
        0.5,
        SweepConfig("sample:mlp", "digits", str(tmp_path / "sweep"), methods=("leading",)),
        epoch_batches=10,
    )
    assert point == {
        "prune": {
            "method": "leading",
            "sparsity": 0.5,
            "seed": 0,
            "scope": "layer",
            "steps": 2,
            "finetune_epochs": 1,
            "finetune_batches": 5,
        }
    }


def test_a_registered_format_is_accepted_listed_written_and_read_back(monkeypatch, tmp_path):
    """A second name for the TorchScript module, with its own suffix: one registry entry."""
    entry = registry.FormatInfo(
        "script-copy",
        "compressor.export.torchscript",
        "TorchScript under another name",
        (".tsc",),
        "torch.jit",
        "TorchScript",
    )
    monkeypatch.setitem(registry.FORMATS, entry.name, entry)
    assert "script-copy" in [f["name"] for f in json.loads(invoke("list", "--json").stdout)["formats"]]
    out = tmp_path / "mlp.tsc"
    r = invoke("export", "sample:mlp", "-o", out, "--format", "script-copy", "--samples", "4", "--json")
    assert r.code == 0 and json.loads(r.stdout)["parity_passed"]
    assert info(str(out)).ref == "sample:mlp"  # read back: the suffix names the format
    refused = invoke("export", "sample:mlp", "-o", tmp_path / "m.tsc", "--format", "script-copy", "--fp16")
    assert refused.code == 2 and "only apply to --format onnx" in refused.stderr

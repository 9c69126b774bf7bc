"""compress bench: statistics, sizes, gates, profiles, backends and the CLI contract."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compressor.bench import roofline
from compressor.bench.gates import GateSpec, evaluate_gates, load_gate_file, parse_size, spec_from_mapping
from compressor.bench.latency import cv, iqr, noisy_warning, paired_ratios, speedup, summarize
from compressor.bench.profiles import PROFILES, get_profile
from compressor.errors import CompressorError, UsageError
from tests.conftest import seed_all

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--runs", "5", "--warmup", "1", "--min-time", "0"]


# ---------------------------------------------------------------- fixtures: real tiny models


def _export(name: str, path: Path) -> Path:
    import torch

    from compressor.io.refs import build

    seed_all()  # the same weights whichever test builds the fixture
    model = build(f"sample:{name}").eval()
    torch.onnx.export(
        model,
        (torch.randn(1, 1, 28, 28),),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """mlp.onnx (fast), vgg.onnx (about 100x the MACs), mlp.pt artifact, and a non-model file."""
    from compressor.io.artifact import load_model, save_artifact

    folder = tmp_path_factory.mktemp("bench")
    seed_all()
    save_artifact(load_model("sample:mlp"), folder / "mlp.pt")
    (folder / "junk.onnx").write_text("not a model")
    (folder / "junk.pt").write_text("not a model")
    return {
        "mlp": _export("mlp", folder / "mlp.onnx"),
        "vgg": _export("vgg_bn", folder / "vgg.onnx"),
        "mlp_pt": folder / "mlp.pt",
        "junk_onnx": folder / "junk.onnx",
        "junk_pt": folder / "junk.pt",
        "dir": folder,
    }


def bench(*args: str):
    """Invoke ``compress bench ARGS`` in-process; the typer Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from compressor.cli.app import app

    return CliRunner().invoke(app, ["bench", *map(str, args)])


@pytest.fixture
def latency(monkeypatch) -> dict[str, float]:
    """Set each model file's latency in ms (by file name): the backends return it instead of timing
    a run, so speed-ups, latency gates and the choice of block timing are the same on every machine.
    Everything else (loading, sizes, MACs, the measurement loop) is real."""
    from compressor.bench import runner

    table: dict[str, float] = {}
    monkeypatch.setattr(runner.OrtBackend, "run", lambda self: table[Path(self.path).name])
    monkeypatch.setattr(runner.TorchBackend, "run", lambda self: table[Path(self.spec.path).name])
    monkeypatch.setattr(runner, "SETTLE_S", 0.01)  # untimed runs at a block switch: nothing to settle
    return table


class Clock:
    """Stands in for the ``time`` module in the runner: the time moves only when a fake model runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    from compressor.bench import runner

    fake = Clock()
    monkeypatch.setattr(runner, "time", fake)
    return fake


# ---------------------------------------------------------------- statistics on hand-made arrays


def test_summarize_hand_made():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0], batch=4)
    assert s.runs == 5 and s.latency_ms_p50 == 3.0 and s.latency_ms_mean == 3.0
    assert s.latency_ms_p90 == pytest.approx(4.6) and s.latency_ms_p99 == pytest.approx(4.96)
    assert s.latency_ms_iqr == pytest.approx(2.0) and s.latency_ms_min == 1.0
    assert s.latency_cv == pytest.approx(math.sqrt(2) / 3)
    assert s.throughput_samples_per_s == pytest.approx(4000 / 3)


def test_stats_edge_cases():
    assert cv([2.0, 2.0, 2.0]) == 0.0 and iqr([7.0]) == 0.0
    with pytest.raises(UsageError):
        summarize([])


def test_speedup_is_median_of_pairs():
    model, base = [1.0, 2.0, 4.0, 1.0], [2.0, 4.0, 8.0, 100.0]  # one noisy pair
    assert paired_ratios(base, model) == [2.0, 2.0, 2.0, 100.0]
    assert speedup(model, base) == 2.0
    assert speedup([2.0, 2.0], [1.0, 1.0]) == 0.5


def test_cv_warning_above_ten_percent():
    assert noisy_warning(summarize([1.0, 1.01, 0.99])) is None
    warning = noisy_warning(summarize([1.0, 3.0, 1.0, 3.0]), "m.onnx")
    assert warning and "m.onnx" in warning and "CV" in warning


def test_roofline_floor_of_a_known_layer(tmp_path, latency, monkeypatch):
    """Conv2d(1, 8, 3) on a 28x28 image: 26 x 26 positions x 8 filters x 9 weights = 48,672 MACs a
    sample. At batch 4 and a peak of 1 GFLOP/s (2 FLOPs a MAC) the floor is 389,376 FLOPs / 1e9 =
    0.389376 ms; a median of 0.778752 ms is half the peak."""
    import torch

    path = tmp_path / "conv.onnx"
    torch.onnx.export(
        torch.nn.Conv2d(1, 8, 3, bias=False),
        (torch.randn(1, 1, 28, 28),),
        str(path),
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "batch"}},
    )
    monkeypatch.setattr(roofline, "peak_flops", lambda device, threads: 1e9)
    latency["conv.onnx"] = 0.778752
    r = bench(path, *FAST, "--batch", "4", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["macs"] == 48_672 and doc["peak_gflops"] == 1.0
    assert doc["roofline_floor_ms"] == pytest.approx(0.389376)
    assert doc["roofline_efficiency"] == pytest.approx(0.5)
    assert roofline.efficiency(1.0, 0.0) == 0.0 and roofline.floor_ms(48_672, 4, 0.0) == 0.0


@pytest.fixture
def probe(monkeypatch):
    """The peak probe with its matmul timed at 4 ms on 1 thread and ``probe.two`` s on 2 threads;
    the probes it made are in ``probe.calls``. The caches start and end empty."""
    from types import SimpleNamespace

    import torch

    state = SimpleNamespace(two=0.002, calls=[])

    def best_time(fn, device):
        threads = torch.get_num_threads()
        state.calls.append(threads)
        return {1: 0.004, 2: state.two}[threads]

    monkeypatch.setattr(roofline, "_best_time", best_time)
    threads = torch.get_num_threads()
    roofline.peak_flops.cache_clear()
    roofline._probe.cache_clear()
    yield state
    roofline.peak_flops.cache_clear()
    roofline._probe.cache_clear()
    torch.set_num_threads(threads)


def test_peak_probe_counts_the_matmul_flops_per_thread_setting(probe):
    """A 384 x 384 matmul is 2 x 384^3 = 113,246,208 FLOPs: in 4 ms, 28.3 GFLOP/s."""
    import torch

    torch.set_num_threads(3)  # neither of the probes' settings
    assert roofline.peak_flops("cpu", 1) == pytest.approx(28_311_552_000)
    assert roofline.peak_flops("cpu", 1) == pytest.approx(28_311_552_000) and probe.calls == [1]  # cached
    assert roofline.peak_flops("cpu", 2) == pytest.approx(56_623_104_000) and probe.calls == [1, 2]
    assert torch.get_num_threads() == 3  # the thread setting is put back


def test_a_slower_multithread_probe_falls_back_to_one_thread(probe):
    probe.two = 0.008  # a busy machine: 2 threads measured slower than 1
    assert roofline.peak_flops("cpu", 2) == pytest.approx(28_311_552_000)


class _Fake:
    """A backend that logs its calls and takes a fixed time (on ``clock`` when given)."""

    device = "cpu"

    def __init__(self, name: str, log: list[str], ms: float = 1.0, clock: Clock | None = None) -> None:
        self.name, self.log, self.ms, self.clock, self.notes = name, log, ms, clock, []

    def run(self) -> float:
        if self.clock is not None:
            self.clock.now += self.ms / 1000
        self.log.append(self.name)
        return self.ms


def test_measure_interleaves_alternating_and_stops(clock):
    from compressor.bench.runner import measure

    log: list[str] = []
    profile = get_profile("mobile").override(min_runs=4, warmup=1, min_time_s=0.0)
    timings = measure([_Fake("A", log), _Fake("B", log, 2.0)], profile)
    assert log == ["A", "B", "A", "B"] + ["A", "B", "B", "A", "A", "B", "B", "A"]  # first, warm-up, timed
    assert [t.samples_ms for t in timings] == [[1.0] * 4, [2.0] * 4] and timings[1].first_inference_ms == 2.0
    # 1 ms runs and --max-time 50.5 ms: the timed loop stops after the 51st run, short of min_runs
    capped = get_profile("mobile").override(min_runs=10**9, warmup=0, min_time_s=0.0, max_time_s=0.0505)
    assert len(measure([_Fake("A", [], clock=clock)], capped)[0].samples_ms) == 51


# ---------------------------------------------------------------- sizes, gate specs, gate files


@pytest.mark.parametrize(
    "text, expected",
    [
        ("5MB", 5_000_000),
        ("5MiB", 5 * 1024**2),
        ("5000000", 5_000_000),
        ("1.5kb", 1500),
        ("2 GiB", 2 * 1024**3),
        (123, 123),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["5XB", "MB", "-1", "five", "", "5 M B", "1e6"])
def test_parse_size_rejects(text):
    with pytest.raises(UsageError) as err:
        parse_size(text)
    assert err.value.exit_code == 2 and "5MB" in err.value.one_line()


def test_gate_spec_validation_and_needs():
    with pytest.raises(UsageError):
        GateSpec(max_latency_ms=-1)
    with pytest.raises(UsageError, match="fraction"):
        GateSpec(min_sparsity=50)
    for spec, flag in (
        (GateSpec(min_speedup=1.5), "--baseline"),
        (GateSpec(min_accuracy=0.8), "--data"),
        (GateSpec(max_accuracy_drop=0.01), "--data"),
    ):
        with pytest.raises(UsageError) as err:
            spec.check_inputs(has_baseline=False, has_data=False)
        assert flag in err.value.one_line()
    GateSpec(min_speedup=1.5).check_inputs(has_baseline=True, has_data=False)


def test_gate_numbers_read_well():
    from compressor.bench.report import gate_number

    assert gate_number(5_000_000) == "5,000,000" and gate_number(1.5) == "1.5"
    assert gate_number(0.12345) == "0.1235" and gate_number(None) == "missing"


def test_evaluate_gates_pass_fail_missing():
    spec = GateSpec(max_size=1000, max_latency_ms=2.0, min_sparsity=0.5, min_accuracy=0.9)
    results = {
        g.name: g for g in evaluate_gates(spec, {"size_bytes": 1000, "latency_ms_p50": 2.5, "sparsity": 0.6})
    }
    assert results["max_size"].passed and results["min_sparsity"].passed
    assert not results["max_latency_ms"].passed and results["max_latency_ms"].value == 2.5
    assert not results["min_accuracy"].passed and results["min_accuracy"].value is None
    assert evaluate_gates(GateSpec(), {"size_bytes": 1}) == []


def test_gate_files(tmp_path):
    toml = tmp_path / "pyproject.toml"
    toml.write_text(
        '[project]\nname = "x"\n[tool.compressor.gates]\nmax-size = "5MB"\n'
        "max_latency_ms = 2\nmin-sparsity = 0.5\n"
    )
    assert load_gate_file(toml) == GateSpec(max_size=5_000_000, max_latency_ms=2.0, min_sparsity=0.5)
    yml = tmp_path / "gates.yaml"
    yml.write_text("gates:\n  max-size: 5MiB\n  max-params: 1000\n")
    spec = load_gate_file(yml)
    assert spec == GateSpec(max_size=5 * 1024**2, max_params=1000)
    assert spec.merged(GateSpec(max_params=7)).max_params == 7 and spec.merged(GateSpec()).max_params == 1000


def test_gate_file_errors(tmp_path):
    with pytest.raises(UsageError) as err:
        spec_from_mapping({"max-sise": "5MB"})
    assert "did you mean 'max-size'" in err.value.one_line()
    with pytest.raises(UsageError):
        spec_from_mapping({"max-latency-ms": "fast"})
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    for bad in (tmp_path / "pyproject.toml", tmp_path / "missing.yaml", tmp_path / "g.json"):
        if bad.suffix == ".json":
            bad.write_text("{}")
        with pytest.raises(CompressorError) as err:
            load_gate_file(bad)
        assert err.value.exit_code == 2


def test_profiles():
    mobile, server = get_profile("mobile"), PROFILES["server"]
    assert (mobile.batch, mobile.threads, mobile.device) == (1, 1, "cpu")
    assert server.batch > 1 and server.device == "auto"
    assert mobile.override(batch=8, threads=None).batch == 8 and mobile.override(threads=None).threads == 1
    for bad in (
        lambda: get_profile("mobil"),
        lambda: mobile.override(device="tpu"),
        lambda: mobile.override(batch=0),
        lambda: mobile.override(bogus=1),
    ):
        with pytest.raises(UsageError):
            bad()


# ---------------------------------------------------------------- the CLI contract


def test_json_keys_and_figures(models):
    r = bench(models["mlp"], *FAST, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    for key in (
        "latency_ms_p50",
        "latency_ms_p90",
        "latency_ms_p99",
        "latency_ms_mean",
        "latency_ms_iqr",
        "latency_cv",
        "throughput_samples_per_s",
        "size_bytes",
        "compressed_bytes",
        "runs",
        "params",
        "nonzero_params",
        "macs",
        "session_ms",
        "first_inference_ms",
        "peak_rss_bytes",
        "roofline_floor_ms",
        "roofline_efficiency",
        "gates",
    ):
        assert key in doc, key
    assert doc["runs"] == 5 and len(doc["latency_ms_samples"]) == 5 and doc["backend"] == "onnxruntime"
    assert doc["size_bytes"] == models["mlp"].stat().st_size
    assert doc["params"] == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    assert doc["macs"] == 784 * 512 + 512 * 256 + 256 * 10
    assert doc["latency_ms_p50"] <= doc["latency_ms_p90"] <= doc["latency_ms_p99"]
    assert 0 < doc["roofline_floor_ms"] and doc["gates"] == [] and doc["gates_passed"]


def test_pytorch_backend_and_batch(models):
    r = bench(models["mlp_pt"], *FAST, "--batch", "4", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["backend"] == "pytorch" and doc["batch"] == 4
    assert doc["throughput_samples_per_s"] == pytest.approx(4000 / doc["latency_ms_p50"])


def test_gates_pass_exit_0_and_fail_exit_1(models):
    ok = bench(models["mlp"], *FAST, "--json", "--max-size", "10MB", "--max-params", "1000000")
    assert ok.exit_code == 0, ok.stderr
    assert [g["passed"] for g in json.loads(ok.stdout)["gates"]] == [True, True]
    bad = bench(models["mlp"], *FAST, "--json", "--max-size", "100KB", "--max-params", "1000000")
    assert bad.exit_code == 1
    gates = {g["name"]: g for g in json.loads(bad.stdout)["gates"]}
    assert not gates["max_size"]["passed"] and gates["max_size"]["limit"] == 100_000
    assert gates["max_params"]["passed"]  # every gate listed, the passing one too


def test_gates_listed_in_table(models, latency):
    latency["mlp.onnx"] = 1.5
    r = bench(models["mlp"], *FAST, "--max-size", "100KB", "--max-latency-ms", "2")
    assert r.exit_code == 1 and r.stdout == ""
    assert "FAIL" in r.stderr and "pass" in r.stderr and "max-latency-ms" in r.stderr
    r = bench(models["mlp"], *FAST, "--max-latency-ms", "1", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["gates"] == [
        {"name": "max_latency_ms", "limit": 1.0, "value": 1.5, "passed": False}
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["--max-size", "5XB"],
        ["--max-latency-ms", "-1"],
        ["--min-sparsity", "2"],
        ["--min-speedup", "1.5"],
        ["--min-accuracy", "0.9"],
        ["--profile", "phone"],
        ["--device", "tpu"],
        ["--runs", "0"],
        ["--md", "--json"],
        ["--plot", "/no/such/folder/lat.png"],
        ["--gates", "missing.toml"],
        ["--max-accuracy-drop", "0.01", "--data", "random"],
    ],
)
def test_bad_values_exit_2(models, args):
    r = bench(models["mlp"], *FAST, *args)
    assert r.exit_code == 2, (args, r.stderr)
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1


def test_cuda_without_gpu_exit_2_auto_falls_back(models):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = bench(models["mlp"], *FAST, "--device", "cuda")
    assert r.exit_code == 2 and "--device auto" in r.stderr
    auto = bench(models["mlp_pt"], *FAST, "--device", "auto", "--json")
    assert auto.exit_code == 0 and json.loads(auto.stdout)["device"] == "cpu"


def test_cuda_pytorch_backend_when_a_gpu_exists(models):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    r = bench(models["mlp_pt"], *FAST, "--device", "cuda", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["device"] == "cuda" and doc["backend"] == "pytorch" and doc["latency_ms_p50"] > 0


@pytest.mark.parametrize("name", ["missing.onnx", "missing.pt", "junk_onnx", "junk_pt"])
def test_missing_or_non_model_exit_2(models, name):
    path = models.get(name, models["dir"] / name)
    for args in ([path], [models["mlp"], "--baseline", path]):
        r = bench(*args, *FAST)
        assert r.exit_code == 2, r.stderr
        assert r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_fixed_batch_onnx_is_timed_at_its_batch(models, tmp_path):
    import torch

    from compressor.io.refs import build

    path = tmp_path / "fixed.onnx"
    torch.onnx.export(build("sample:mlp").eval(), (torch.randn(2, 1, 28, 28),), str(path), dynamo=False)
    r = bench(path, *FAST, "--batch", "8", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["batch"] == 2 and any("fixed batch of 2" in n for n in doc["notes"])
    assert doc["macs"] == 784 * 512 + 512 * 256 + 256 * 10  # per sample, not per fixed batch


def test_external_data_onnx_is_benched_with_both_files_counted(models, tmp_path):
    """A graph over 2 GiB comes as model.onnx + model.onnx.data: bench loads it from the path and
    counts both files in size_bytes; params and MACs are those of the single-file model."""
    import onnx

    path = tmp_path / "ext.onnx"
    onnx.save_model(
        onnx.load(str(models["mlp"])),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.onnx.data",
        size_threshold=1024,
    )
    data = tmp_path / "ext.onnx.data"
    assert path.stat().st_size < 100_000 < data.stat().st_size
    r = bench(path, *FAST, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["size_bytes"] == path.stat().st_size + data.stat().st_size
    assert doc["params"] == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    assert doc["macs"] == 784 * 512 + 512 * 256 + 256 * 10


def test_dynamic_spatial_onnx_needs_input_shape(tmp_path):
    import torch

    from compressor.io.refs import build

    path = tmp_path / "dyn.onnx"
    torch.onnx.export(
        build("sample:simple_cnn").eval(),
        (torch.randn(1, 1, 28, 28),),
        str(path),
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}},
    )
    r = bench(path, *FAST)
    assert r.exit_code == 2 and "--input-shape" in r.stderr
    assert bench(path, *FAST, "--input-shape", "1,1,28").exit_code == 2  # wrong rank
    ok = bench(path, *FAST, "--input-shape", "1,1,28,28", "--batch", "3", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["batch"] == 3


def test_baseline_speedup_interleaved(models, latency):
    latency.update({"mlp.onnx": 1.0, "vgg.onnx": 3.0})
    faster = bench(models["mlp"], "--baseline", models["vgg"], *FAST, "--json", "--min-speedup", "1.5")
    assert faster.exit_code == 0, faster.stderr
    doc = json.loads(faster.stdout)
    assert doc["speedup"] == pytest.approx(3.0) and doc["baseline_runs"] == doc["runs"] == 5
    assert doc["size_ratio"] == pytest.approx(doc["size_bytes"] / doc["baseline_size_bytes"])
    slower = bench(models["vgg"], "--baseline", models["mlp"], *FAST, "--json", "--min-speedup", "1.5")
    assert slower.exit_code == 1 and json.loads(slower.stdout)["speedup"] == pytest.approx(1 / 3)


def test_gate_file_via_cli_and_flags_win(models, tmp_path):
    gates = tmp_path / "pyproject.toml"
    gates.write_text('[tool.compressor.gates]\nmax-size = "100KB"\n')
    assert bench(models["mlp"], *FAST, "--gates", gates).exit_code == 1
    r = bench(models["mlp"], *FAST, "--gates", gates, "--max-size", "10MB", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["gates"][0]["limit"] == 10_000_000


def test_markdown_and_plot(models, tmp_path):
    png = tmp_path / "lat.png"
    r = bench(
        models["mlp"], "--baseline", models["mlp_pt"], *FAST, "--md", "--plot", png, "--max-size", "10MB"
    )
    assert r.exit_code == 0, r.stderr
    assert "| latency p50 (ms) |" in r.stdout and "| max_size |" in r.stdout and "speed-up" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp"))


def test_accuracy_gates(models):
    data = ["--data", "random:1,28,28:10", "--eval-limit", "64"]
    r = bench(
        models["mlp_pt"],
        "--baseline",
        models["mlp_pt"],
        *FAST,
        *data,
        "--json",
        "--max-accuracy-drop",
        "0.001",
        "--min-accuracy",
        "0.99",
    )
    assert r.exit_code == 1, r.stderr  # an untrained model on random labels is far below 99%
    doc = json.loads(r.stdout)
    gates = {g["name"]: g["passed"] for g in doc["gates"]}
    assert gates == {"min_accuracy": False, "max_accuracy_drop": True}  # same model: no drop
    assert doc["accuracy"] == pytest.approx(doc["baseline_accuracy"]) and doc["accuracy"] < 0.99


def test_sparse_model_note(models, tmp_path):
    import torch

    from compressor.io.artifact import load_model, save_artifact

    handle = load_model(models["mlp_pt"])
    with torch.no_grad():
        for p in handle.module.parameters():
            p[p.abs() < p.abs().median()] = 0
    save_artifact(handle, tmp_path / "sparse.pt")
    r = bench(tmp_path / "sparse.pt", *FAST, "--json", "--min-sparsity", "0.4")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["sparsity"] >= 0.4 and any("do not speed up dense runtimes" in n for n in doc["notes"])


def test_real_process_exit_code_and_one_json_document(models):
    cmd = [
        sys.executable,
        "-m",
        "compressor",
        "bench",
        str(models["mlp"]),
        *FAST,
        "--json",
        "--max-size",
        "1KB",
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)  # exactly one document: json.loads rejects trailing data
    assert doc["gates"] == [{"name": "max_size", "limit": 1000, "value": doc["size_bytes"], "passed": False}]


class _Numbered(_Fake):
    """A fake whose result also carries the call's number, 1e-9 ms per call: far below anything the
    runner decides on, enough to tell which calls were timed."""

    def run(self) -> float:
        return super().run() + len(self.log) * 1e-9


def _call_numbers(samples: list[float], ms: float) -> list[int]:
    return [round((v - ms) * 1e9) for v in samples]


def test_multithread_pairs_are_timed_in_blocks_after_a_settle(clock, monkeypatch):
    """Two fast models with 2 CPU threads are timed in blocks of runs, A B then B A, each block after
    SETTLE_S of untimed runs of its model. Calls, numbered from 1 on a clock that moves 5 ms per run
    of a and 2 ms per run of b: first runs 1-2, warm-up 3-6; block_runs: 300 ms / 5 ms = 60 runs;
    a settles 4 runs (20 ms >= 19 ms) and b 10 runs. a: 7-10 settle, 11-70 timed; b: 71-80, 81-140;
    b again: 141-150, 151-210; a: 211-214, 215-274. Two rounds give 120 >= 100 runs: done."""
    from compressor.bench import runner

    monkeypatch.setattr(runner, "SETTLE_S", 0.019)
    log: list[str] = []
    a, b = _Numbered("a", log, 5.0, clock), _Numbered("b", log, 2.0, clock)
    two = get_profile("edge").override(threads=2, warmup=2, min_runs=100, min_time_s=0.0, max_time_s=0.0)
    ta, tb = runner.measure([a, b], two)
    assert log == ["a", "b"] * 3 + ["a"] * 64 + ["b"] * 140 + ["a"] * 64
    assert _call_numbers(ta.samples_ms, 5.0) == [*range(11, 71), *range(215, 275)]
    assert _call_numbers(tb.samples_ms, 2.0) == [*range(81, 141), *range(151, 211)]
    assert ta.first_inference_ms == pytest.approx(5.0) and tb.first_inference_ms == pytest.approx(2.0)
    assert any("timed in blocks (60 runs of each model in turn" in n for n in a.notes + b.notes)


def test_one_thread_or_one_model_keep_run_by_run_order_and_slow_pairs_are_blocked(clock):
    from compressor.bench import runner

    log: list[str] = []
    a, b = _Fake("a", log, 1.0, clock), _Fake("b", log, 1.0, clock)
    two = get_profile("edge").override(threads=2, warmup=1, min_runs=2, min_time_s=0.0, max_time_s=0.0)
    runner.measure([a, b], two.override(threads=1))
    assert log == ["a", "b", "a", "b", "a", "b", "b", "a"] and not a.notes  # first, warm-up, timed
    assert runner.blocked([a, b], two)
    assert not runner.blocked([a], two)
    assert not runner.blocked([a, b], two.override(threads=1))
    log.clear()  # 200 ms runs: a spinning tail still slows the first run after a switch by ~40%
    slow_a, slow_b = _Fake("a", log, 200.0, clock), _Fake("b", log, 200.0, clock)
    runner.measure([slow_a, slow_b], two.override(min_runs=3))
    assert log[4:] == ["a"] * 4 + ["b"] * 4 + ["b"] * 4 + ["a"] * 4  # 1 settle run + 3 timed per block


def test_blocks_stop_at_max_time_with_paired_lists(clock, monkeypatch):
    """10 ms and 5 ms runs, --max-time 0.5 s, checked after each block: block_runs 300 / 10 = 30;
    a block of a takes 310 ms (1 settle run), of b 160 ms (2 settle runs). After a, b (470 ms) the
    time is not up; after the next b (630 ms) it is: a has 30 samples, b 60, cut to 30 each."""
    from compressor.bench import runner

    monkeypatch.setattr(runner, "SETTLE_S", 0.009)
    log: list[str] = []
    slow = get_profile("edge").override(threads=2, warmup=1, min_runs=10_000, min_time_s=0.0, max_time_s=0.5)
    ta, tb = runner.measure([_Fake("a", log, 10.0, clock), _Fake("b", log, 5.0, clock)], slow)
    assert len(ta.samples_ms) == len(tb.samples_ms) == 30
    assert log[4:] == ["a"] * 31 + ["b"] * 32 + ["b"] * 32
    assert clock.now == pytest.approx(0.015 + 0.015 + 0.630)  # first runs, warm-up, three blocks


def test_multithread_baseline_bench_reports_the_blocks(models, latency):
    latency.update({"mlp.onnx": 1.0, "vgg.onnx": 4.0})
    r = bench(models["mlp"], "--baseline", models["vgg"], *FAST, "--threads", "2", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert sum("timed in blocks (75 runs" in n for n in doc["notes"]) == 1  # 300 ms / 4 ms, said once
    assert doc["runs"] == doc["baseline_runs"] == 150 and doc["speedup"] == 4.0  # two rounds of blocks

"""compress bench: statistics, sizes, gates, profiles, backends and the CLI contract."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compressor.bench import roofline
from compressor.bench.gates import GateSpec, evaluate_gates, load_gate_file, parse_size, spec_from_mapping
from compressor.bench.latency import cv, iqr, noisy_warning, paired_ratios, speedup, summarize
from compressor.bench.profiles import PROFILES, get_profile
from compressor.errors import CompressorError, UsageError

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--runs", "5", "--warmup", "1", "--min-time", "0"]


# ---------------------------------------------------------------- fixtures: real tiny models

def _export(name: str, path: Path) -> Path:
    import torch

    from compressor.io.refs import build

    torch.manual_seed(0)
    model = build(f"sample:{name}").eval()
    torch.onnx.export(model, (torch.randn(1, 1, 28, 28),), str(path), dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """mlp.onnx (fast), vgg.onnx (about 100x the MACs), mlp.pt artifact, and a non-model file."""
    from compressor.io.artifact import load_model, save_artifact

    folder = tmp_path_factory.mktemp("bench")
    save_artifact(load_model("sample:mlp"), folder / "mlp.pt")
    (folder / "junk.onnx").write_text("not a model")
    (folder / "junk.pt").write_text("not a model")
    return {"mlp": _export("mlp", folder / "mlp.onnx"), "vgg": _export("vgg_bn", folder / "vgg.onnx"),
            "mlp_pt": folder / "mlp.pt", "junk_onnx": folder / "junk.onnx",
            "junk_pt": folder / "junk.pt", "dir": folder}


def bench(*args: str):
    """Invoke ``compress bench ARGS`` in-process; the typer Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from compressor.cli.app import app

    return CliRunner().invoke(app, ["bench", *map(str, args)])


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


def test_roofline_pure_and_probe():
    assert roofline.floor_ms(macs=1_000_000, batch=2, peak_flops=4e9) == pytest.approx(1.0)
    assert roofline.efficiency(1.0, 4.0) == 0.25 and roofline.efficiency(1.0, 0.0) == 0.0
    peak = roofline.peak_flops("cpu", 1)
    assert 1e8 < peak < 1e13 and roofline.peak_flops("cpu", 1) == peak  # measured once, cached
    assert roofline.peak_flops("cpu", 2) >= peak  # more threads never lower the peak


class _Fake:
    """A backend that logs its calls and takes a fixed time."""

    def __init__(self, name: str, log: list[str], ms: float = 1.0) -> None:
        self.name, self.log, self.ms = name, log, ms

    def run(self) -> float:
        self.log.append(self.name)
        return self.ms


def test_measure_interleaves_alternating_and_stops():
    from compressor.bench.runner import measure

    log: list[str] = []
    profile = get_profile("mobile").override(min_runs=4, warmup=1, min_time_s=0.0)
    timings = measure([_Fake("A", log), _Fake("B", log, 2.0)], profile)
    assert log == ["A", "B", "A", "B"] + ["A", "B", "B", "A", "A", "B", "B", "A"]  # first, warm-up, timed
    assert [t.samples_ms for t in timings] == [[1.0] * 4, [2.0] * 4] and timings[1].first_inference_ms == 2.0
    capped = get_profile("mobile").override(min_runs=10**9, warmup=0, min_time_s=0.0, max_time_s=0.05)
    assert 1 <= len(measure([_Fake("A", [])], capped)[0].samples_ms) < 10**9


# ---------------------------------------------------------------- sizes, gate specs, gate files

@pytest.mark.parametrize("text, expected", [("5MB", 5_000_000), ("5MiB", 5 * 1024**2), ("5000000", 5_000_000),
                                            ("1.5kb", 1500), ("2 GiB", 2 * 1024**3), (123, 123)])
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
    for spec, flag in ((GateSpec(min_speedup=1.5), "--baseline"), (GateSpec(min_accuracy=0.8), "--data"),
                       (GateSpec(max_accuracy_drop=0.01), "--data")):
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
    results = {g.name: g for g in evaluate_gates(spec, {"size_bytes": 1000, "latency_ms_p50": 2.5,
                                                         "sparsity": 0.6})}
    assert results["max_size"].passed and results["min_sparsity"].passed
    assert not results["max_latency_ms"].passed and results["max_latency_ms"].value == 2.5
    assert not results["min_accuracy"].passed and results["min_accuracy"].value is None
    assert evaluate_gates(GateSpec(), {"size_bytes": 1}) == []


def test_gate_files(tmp_path):
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[project]\nname = "x"\n[tool.compressor.gates]\nmax-size = "5MB"\n'
                    'max_latency_ms = 2\nmin-sparsity = 0.5\n')
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
    for bad in (lambda: get_profile("mobil"), lambda: mobile.override(device="tpu"),
                lambda: mobile.override(batch=0), lambda: mobile.override(bogus=1)):
        with pytest.raises(UsageError):
            bad()


# ---------------------------------------------------------------- the CLI contract

def test_json_keys_and_figures(models):
    r = bench(models["mlp"], *FAST, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    for key in ("latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean", "latency_ms_iqr",
                "latency_cv", "throughput_samples_per_s", "size_bytes", "compressed_bytes", "runs",
                "params", "nonzero_params", "macs", "session_ms", "first_inference_ms", "peak_rss_bytes",
                "roofline_floor_ms", "roofline_efficiency", "gates"):
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


def test_gates_listed_in_table(models):
    r = bench(models["mlp"], *FAST, "--max-size", "100KB", "--max-latency-ms", "10000")
    assert r.exit_code == 1 and r.stdout == ""
    assert "FAIL" in r.stderr and "pass" in r.stderr and "max-latency-ms" in r.stderr


@pytest.mark.parametrize("args", [["--max-size", "5XB"], ["--max-latency-ms", "-1"],
                                  ["--min-sparsity", "2"], ["--min-speedup", "1.5"],
                                  ["--min-accuracy", "0.9"], ["--profile", "phone"],
                                  ["--device", "tpu"], ["--runs", "0"], ["--md", "--json"],
                                  ["--plot", "/no/such/folder/lat.png"], ["--gates", "missing.toml"],
                                  ["--max-accuracy-drop", "0.01", "--data", "random"]])
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
    onnx.save_model(onnx.load(str(models["mlp"])), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext.onnx.data", size_threshold=1024)
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
    torch.onnx.export(build("sample:simple_cnn").eval(), (torch.randn(1, 1, 28, 28),), str(path),
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}})
    r = bench(path, *FAST)
    assert r.exit_code == 2 and "--input-shape" in r.stderr
    assert bench(path, *FAST, "--input-shape", "1,1,28").exit_code == 2  # wrong rank
    ok = bench(path, *FAST, "--input-shape", "1,1,28,28", "--batch", "3", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["batch"] == 3


def test_baseline_speedup_interleaved(models):
    faster = bench(models["mlp"], "--baseline", models["vgg"], *FAST, "--json", "--min-speedup", "1.5")
    assert faster.exit_code == 0, faster.stderr
    doc = json.loads(faster.stdout)
    assert doc["speedup"] > 1.5 and doc["baseline_runs"] == doc["runs"] == 5
    assert doc["size_ratio"] == pytest.approx(doc["size_bytes"] / doc["baseline_size_bytes"])
    slower = bench(models["vgg"], "--baseline", models["mlp"], *FAST, "--json", "--min-speedup", "1.5")
    assert slower.exit_code == 1 and json.loads(slower.stdout)["speedup"] < 1


def test_gate_file_via_cli_and_flags_win(models, tmp_path):
    gates = tmp_path / "pyproject.toml"
    gates.write_text('[tool.compressor.gates]\nmax-size = "100KB"\n')
    assert bench(models["mlp"], *FAST, "--gates", gates).exit_code == 1
    r = bench(models["mlp"], *FAST, "--gates", gates, "--max-size", "10MB", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["gates"][0]["limit"] == 10_000_000


def test_markdown_and_plot(models, tmp_path):
    png = tmp_path / "lat.png"
    r = bench(models["mlp"], "--baseline", models["mlp_pt"], *FAST, "--md", "--plot", png,
              "--max-size", "10MB")
    assert r.exit_code == 0, r.stderr
    assert "| latency p50 (ms) |" in r.stdout and "| max_size |" in r.stdout and "speed-up" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp"))


def test_accuracy_gates(models):
    data = ["--data", "random:1,28,28:10", "--eval-limit", "64"]
    r = bench(models["mlp_pt"], "--baseline", models["mlp_pt"], *FAST, *data, "--json",
              "--max-accuracy-drop", "0.001", "--min-accuracy", "0.99")
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
    cmd = [sys.executable, "-m", "compressor", "bench", str(models["mlp"]), *FAST, "--json",
           "--max-size", "1KB"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)  # exactly one document: json.loads rejects trailing data
    assert doc["gates"] == [{"name": "max_size", "limit": 1000, "value": doc["size_bytes"], "passed": False}]


def test_multithread_pairs_are_timed_in_blocks_after_a_settle(monkeypatch):
    """Two fast models with 2 CPU threads: each model's timed runs are the last ``runs`` calls of its
    block, which start SETTLE_S after the block's first (untimed) call; blocks go A B, B A.
    One thread, or one model, or a slow model keeps the run-by-run alternation."""
    from compressor.bench import runner
    from compressor.bench.profiles import get_profile

    monkeypatch.setattr(runner, "SETTLE_S", 0.02)
    calls: list[tuple[str, int, float]] = []

    class Fake:
        device = "cpu"

        def __init__(self, name: str, ms: float) -> None:
            self.name, self.ms, self.notes = name, ms, []

        def run(self) -> float:
            calls.append((self.name, len(calls), time.perf_counter()))
            time.sleep(self.ms / 1000)
            return float(len(calls) - 1)  # the call's number, so the test sees which calls were kept

    two = get_profile("edge").override(threads=2, warmup=2, min_runs=100, min_time_s=0.0, max_time_s=0.0)
    a, b = Fake("a", 4.0), Fake("b", 2.0)
    ta, tb = runner.measure([a, b], two)
    runs = runner.block_runs([4.0, 2.0])
    assert runs == 75 and len(ta.samples_ms) == len(tb.samples_ms) == 2 * runs  # two rounds: 150 >= 100
    assert any("timed in blocks" in n for n in a.notes)
    chunks = []  # (start call, model) of every timed block
    for name, samples in (("a", ta.samples_ms), ("b", tb.samples_ms)):
        for k in range(0, len(samples), runs):
            chunk = [int(n) for n in samples[k:k + runs]]
            assert chunk == list(range(chunk[0], chunk[0] + runs))  # one unbroken block of calls
            assert all(calls[n][0] == name for n in chunk)
            first = chunk[0] - 1  # walk back over this block's untimed settle calls
            timed = {int(n) for n in ta.samples_ms + tb.samples_ms}
            while calls[first - 1][0] == name and first - 1 not in timed and first - 1 >= 6:
                first -= 1
            assert first < chunk[0] and calls[chunk[0]][2] - calls[first][2] >= 0.02  # settled first
            chunks.append((chunk[0], name))
    assert [name for _, name in sorted(chunks)] == ["a", "b", "b", "a"]
    calls.clear()
    a2, b2 = Fake("a", 1.0), Fake("b", 1.0)
    runner.measure([a2, b2], two.override(threads=1, warmup=1, min_runs=2))
    assert [n for n, _, _ in calls[4:8]] == ["a", "b", "b", "a"] and not a2.notes  # run by run
    assert not runner.blocked([a2], two)
    assert not runner.blocked([a2, b2], two, [60.0, 1.0])  # a 60 ms run dwarfs a spinning tail


def test_blocks_stop_at_max_time_with_paired_lists(monkeypatch):
    from compressor.bench import runner
    from compressor.bench.profiles import get_profile

    monkeypatch.setattr(runner, "SETTLE_S", 0.01)

    class Fake:
        device, notes = "cpu", []

        def __init__(self, ms: float) -> None:
            self.ms, self.notes = ms, []

        def run(self) -> float:
            time.sleep(self.ms / 1000)
            return self.ms

    slow = get_profile("edge").override(threads=2, warmup=1, min_runs=10_000, min_time_s=0.0, max_time_s=0.5)
    start = time.perf_counter()
    ta, tb = runner.measure([Fake(10.0), Fake(5.0)], slow)
    assert time.perf_counter() - start < 1.5 and len(ta.samples_ms) == len(tb.samples_ms) > 0


def test_multithread_baseline_bench_reports_the_blocks(models):
    r = bench(models["mlp"], "--baseline", models["vgg"], *FAST, "--threads", "2", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert sum("timed in blocks" in n for n in doc["notes"]) == 1 and doc["speedup"] > 0

"""``compress bench``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from compressor.api.config import BenchConfig as B
from compressor.api.config import GateSpec as G
from compressor.cli.common import (
    ArchKwargsOpt,
    ArchOpt,
    DebugOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    TrustPickleOpt,
    console,
    execute,
    human_bytes,
    human_count,
    model_spec,
)


def _gate(kind, text: str):
    """A gate option: exit 1 when the measured figure breaks it."""
    return Annotated[Optional[kind], typer.Option(help=f"Gate (exit 1 if broken): {text}")]


def _opt(kind, text: str, *names: str):
    """An optional flag whose None means: the profile's (or no) value."""
    return Annotated[Optional[kind], typer.Option(*names, help=text)]


ProfileOpt = Annotated[
    str,
    typer.Option(
        help="mobile (batch 1, 1 thread), edge (batch 1, 2 threads) "
        "or server (batch 32, all cores or the GPU)."
    ),
]
DeviceOpt = _opt(
    str,
    "cpu, cuda or auto (cuda when a GPU is usable, else cpu); cuda without a GPU "
    "is exit 2. Default: the profile's.",
)
GatesFileOpt = _opt(str, "Gate file: pyproject.toml ([tool.compressor.gates]) or YAML. Flags win.", "--gates")
MdOpt = Annotated[
    bool, typer.Option("--md", help="Print a Markdown report on stdout (e.g. >> $GITHUB_STEP_SUMMARY).")
]


def bench(
    path: ModelArg,
    profile: ProfileOpt = B.profile.name,
    device: DeviceOpt = None,
    runs: _opt(int, "Minimum timed runs (default: the profile's).") = None,
    warmup: _opt(int, "Untimed warm-up runs.") = None,
    min_time: _opt(float, "Minimum seconds of timed runs.") = None,
    max_time: _opt(float, "Stop timing after this many seconds even below --runs (0: never).") = None,
    batch: _opt(int, "Samples per inference.") = None,
    threads: _opt(int, "Intra-op CPU threads.") = None,
    graph_opt: _opt(
        str, "ONNX Runtime graph optimisation: disable, basic, extended, all.", "--graph-opt"
    ) = None,
    baseline: _opt(str, "A model to compare with, timed interleaved (A B A B ...) in this run.") = B.baseline,
    gates_file: GatesFileOpt = None,
    max_size: _gate(str, "largest file size: 5MB, 5MiB or 5000000.") = G.max_size,
    max_latency_ms: _gate(float, "largest median latency in ms.") = G.max_latency_ms,
    min_speedup: _gate(float, "smallest measured speed-up over --baseline.") = G.min_speedup,
    max_params: _gate(int, "most parameters.") = G.max_params,
    min_sparsity: _gate(float, "smallest share of zero parameters (0..1).") = G.min_sparsity,
    min_accuracy: _gate(float, "smallest accuracy on --data (0..1).") = G.min_accuracy,
    max_accuracy_drop: _gate(
        float, "largest accuracy drop from --baseline on --data (0.01 = one point)."
    ) = G.max_accuracy_drop,
    data: _opt(str, "Data for the accuracy gates (see compress list).") = B.data,
    eval_limit: _opt(int, "Evaluate accuracy on at most N samples.") = B.eval_limit,
    output: _opt(str, "The output the accuracy is measured on, by name (default: the first).") = B.output,
    md: MdOpt = False,
    plot: _opt(str, "Write a PNG of the latency distribution (both models with --baseline).") = B.plot,
    arch: ArchOpt = None,
    arch_kwargs: ArchKwargsOpt = None,
    trust_pickle: TrustPickleOpt = False,
    input_shape: InputShapeOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure latency, size and cost of a .onnx (ONNX Runtime) or .pt (PyTorch) model, with gates.

    Examples:

      compress bench small.onnx --profile mobile --max-latency-ms 5 --max-size 2MB

      compress bench small.onnx --baseline model.onnx --min-speedup 1.5 --md

      compress bench small.onnx --gates pyproject.toml --json
    """

    def action():
        from compressor.api.bench import BenchConfig, GateSpec, get_profile, load_gate_file, parse_size
        from compressor.api.bench import bench as api_bench
        from compressor.errors import UsageError

        if md and json_out:
            raise UsageError("--md and --json both print on stdout", "choose one")
        prof = get_profile(profile).override(
            device=device,
            min_runs=runs,
            warmup=warmup,
            min_time_s=min_time,
            max_time_s=max_time,
            batch=batch,
            threads=threads,
            graph_optimization=graph_opt,
        )
        flags = GateSpec(
            parse_size(max_size) if max_size is not None else None,
            max_latency_ms,
            min_speedup,
            max_params,
            min_sparsity,
            min_accuracy,
            max_accuracy_drop,
        )
        gates = load_gate_file(gates_file).merged(flags) if gates_file else flags
        spec = model_spec(path, arch, arch_kwargs, trust_pickle, input_shape)
        base = model_spec(baseline, arch, arch_kwargs, trust_pickle, input_shape) if baseline else None
        return api_bench(spec, BenchConfig(None, prof, base, gates, data, eval_limit, plot, output))

    render = _print_markdown if md else _render
    execute(action, render, json_out, debug, exit_code=lambda r: 0 if r.passed else 1)


def _print_markdown(result) -> None:
    from compressor.bench.report import markdown

    sys.stdout.write(markdown(result.to_json()))
    sys.stdout.flush()


def _render(result) -> None:
    from rich.table import Table

    from compressor.bench.report import ROWS, cell

    doc, out = result.to_json(), console()
    has_base = result.baseline is not None
    table = Table(title=f"compress bench · profile {doc['profile']} · {doc['device']}")
    table.add_column("figure")
    table.add_column(Path(doc["path"]).name, justify="right")
    if has_base:
        table.add_column(f"baseline {Path(doc['baseline_path']).name}", justify="right")
    for label, key, fmt in ROWS:
        if key in ("size_bytes", "compressed_bytes"):
            row = [human_bytes(doc[key])] + ([human_bytes(doc[f"baseline_{key}"])] if has_base else [])
        elif key in ("params", "nonzero_params", "macs"):
            row = [human_count(doc[key])] + ([human_count(doc[f"baseline_{key}"])] if has_base else [])
        else:
            row = [cell(doc, key, fmt)] + ([cell(doc, key, fmt, "baseline_")] if has_base else [])
        table.add_row(label, *row)
    out.print(table)
    out.print(
        f"peak float32 matmul {doc['peak_gflops']:.1f} GFLOP/s · peak RSS "
        f"{human_bytes(doc['peak_rss_bytes'])}"
    )
    if has_base:
        out.print(
            f"speed-up (median of interleaved pairs, measured): [bold]{doc['speedup']:.3f}x[/] · "
            f"size ratio {doc['size_ratio']:.3f}"
        )
    _render_gates(out, result.gates)
    for note in doc["notes"]:
        out.print(f"note: {note}")
    for warning in doc["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}")


def _render_gates(out, gates) -> None:
    from rich.table import Table

    from compressor.bench.report import gate_number

    if not gates:
        return
    table = Table(title="gates")
    for col in ("gate", "limit", "value", "result"):
        table.add_column(col, justify="left" if col == "gate" else "right")
    for g in gates:
        verdict = "[green]pass[/]" if g.passed else "[red bold]FAIL[/]"
        table.add_row(g.name.replace("_", "-"), gate_number(g.limit), gate_number(g.value), verdict)
    out.print(table)

"""``compress info``."""

from __future__ import annotations

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


def info(
    path: ModelArg,
    arch: ArchOpt = None,
    arch_kwargs: ArchKwargsOpt = None,
    trust_pickle: TrustPickleOpt = False,
    input_shape: InputShapeOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show params, non-zero params, sparsity, MACs, file size, layers and history.

    Works on compressor artifacts, state_dicts with --arch, .safetensors and .onnx files.

    Example: compress info sample_models/simple_cnn.pt
    """

    def action():
        from compressor.api import info as api_info

        return api_info(model_spec(path, arch, arch_kwargs, trust_pickle, input_shape))

    execute(action, _render, json_out, debug)


def _render(r) -> None:
    from rich.table import Table

    out = console()
    out.print(f"[bold]{r.path}[/]  ({r.kind}{', ' + r.ref if r.ref else ''})")
    summary = Table(show_header=False, box=None)
    for key, value in [
        ("params", human_count(r.params)),
        ("non-zero params", f"{human_count(r.nonzero_params)} (sparsity {r.sparsity:.1%})"),
        ("MACs (theoretical)", human_count(r.macs)),
        ("file size", human_bytes(r.size_bytes)),
        ("compressed (zlib)", human_bytes(r.compressed_bytes)),
        ("input shape", "x".join(str(d) for d in r.input_shape)),
        (
            "outputs",
            ", ".join(f"{name} {'x'.join(str(d) for d in shape)}" for name, shape in r.outputs.items()),
        ),
        ("integrity", r.integrity),
    ]:
        summary.add_row(key, value)
    out.print(summary)
    if r.layers:
        table = Table(title="layers")
        for col in ("name", "type", "shape", "params", "sparsity"):
            table.add_column(col, justify="right" if col in ("params", "sparsity") else "left")
        for row in r.layers:
            table.add_row(
                row["name"],
                row["type"],
                "x".join(map(str, row["shape"])),
                human_count(row["params"]),
                f"{row['sparsity']:.1%}",
            )
        out.print(table)
    for i, step in enumerate(r.history):
        metrics = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in step.get("metrics", {}).items()
        )
        out.print(
            f"history {i}: {step.get('time', '')} {step.get('command', '')} "
            f"{step.get('method', '')} {metrics}"
        )
    for note in r.notes:
        out.print(f"note: {note}")

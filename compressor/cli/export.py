"""``compress export``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from compressor.api.config import ExportConfig as X
from compressor.cli.common import (
    ArchKwargsOpt,
    ArchOpt,
    DataOpt,
    DebugOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    TrustPickleOpt,
    console,
    execute,
    human_bytes,
    model_spec,
)
from compressor.registry import FORMATS

_OUTPUT_HELP = "File to write (" + "; ".join(f"{f.suffixes[0]} for {f.name}" for f in FORMATS.values()) + ")."
_FORMAT_HELP = "Format: " + ", ".join(FORMATS) + " (compress list shows each)."


def export(
    path: ModelArg,
    output: Annotated[str, typer.Option("-o", "--output", help=_OUTPUT_HELP, show_default=False)],
    format: Annotated[str, typer.Option("--format", help=_FORMAT_HELP)] = X.format,
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = X.opset,
    batch: Annotated[
        str, typer.Option(help="'dynamic' (symbolic batch axis) or a fixed batch size.")
    ] = X.batch,
    input_shape: InputShapeOpt = None,
    data: DataOpt = X.data,
    rtol: Annotated[float, typer.Option(help="Parity: relative tolerance.")] = X.rtol,
    atol: Annotated[float, typer.Option(help="Parity: absolute tolerance.")] = X.atol,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify", help="Compare ONNX Runtime with PyTorch; exit 1 beyond tolerances."
        ),
    ] = X.verify,
    simplify: Annotated[
        bool,
        typer.Option("--simplify/--no-simplify", help="Simplify the graph with onnxslim when parity holds."),
    ] = X.simplify,
    quantize: Annotated[
        Optional[str],
        typer.Option(help="int8: ONNX Runtime quantization (dynamic, or static QDQ calibrated on --data)."),
    ] = X.quantize,
    quant_mode: Annotated[
        str, typer.Option(help="auto (static for conv nets with --data, else dynamic), dynamic or static.")
    ] = X.quant_mode,
    fp16: Annotated[bool, typer.Option("--fp16", help="Float16 weights and compute (float32 I/O).")] = X.fp16,
    sparse_storage: Annotated[
        bool,
        typer.Option(
            "--sparse-storage",
            help="Store mostly-zero weights as ONNX sparse initializers when the "
            "file gets smaller and ONNX Runtime still loads it.",
        ),
    ] = X.sparse_storage,
    exporter: Annotated[
        str, typer.Option(help="auto (dynamo, TorchScript fallback), dynamo or torchscript.")
    ] = X.exporter,
    samples: Annotated[int, typer.Option(help="Random (and real, with --data) parity samples.")] = X.samples,
    calib_samples: Annotated[int, typer.Option(help="Static int8 calibration samples.")] = X.calib_samples,
    eval_samples: Annotated[
        int, typer.Option(help="Test samples for the accuracy figures.")
    ] = X.eval_samples,
    seed: Annotated[int, typer.Option(help="Seed of the random inputs and sample choice.")] = X.seed,
    arch: ArchOpt = None,
    arch_kwargs: ArchKwargsOpt = None,
    trust_pickle: TrustPickleOpt = False,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Export to ONNX (or another registry format, --format) and verify it against PyTorch.

    Checks the graph with onnx.checker, compares ONNX Runtime with PyTorch on random inputs (and
    real samples with --data) in batches of 1 and 7, writes metadata (producer, preprocessing,
    model ref, history) into the file, and writes it atomically. Exit 1 when parity fails.
    A graph over protobuf's 2 GiB limit keeps its weights in OUTPUT.data beside OUTPUT (ONNX
    external data, loaded by ONNX Runtime from the path); keep the two files together.

    Examples:

      compress export small.pt -o small.onnx

      compress export sample_models/simple_cnn.pt -o cnn-int8.onnx --quantize int8 --data fashion-mnist
    """

    def action():
        from compressor.api.export import ExportConfig
        from compressor.api.export import export as api_export

        cfg = ExportConfig(
            output=output,
            format=format,
            opset=opset,
            batch=batch,
            data=data,
            rtol=rtol,
            atol=atol,
            verify=verify,
            simplify=simplify,
            quantize=quantize,
            quant_mode=quant_mode,
            fp16=fp16,
            sparse_storage=sparse_storage,
            exporter=exporter,
            samples=samples,
            calib_samples=calib_samples,
            eval_samples=eval_samples,
            seed=seed,
        )
        spec = model_spec(path, arch, arch_kwargs, trust_pickle, input_shape)
        return api_export(spec, cfg, progress=lambda line: console().print(line))

    execute(action, render, json_out, debug)


def render(r) -> None:
    """One summary table and the notes."""
    from rich.table import Table

    f = r.figures
    table = Table(title=f"{r.format} -> {r.output}", show_header=False)
    rows = [
        ("exporter", f.get("exporter")),
        ("batch", f.get("batch")),
        ("opset", f.get("opset")),
        (
            "file size",
            human_bytes(f["size_bytes"]) + (" (graph + external data)" if "external_data" in f else ""),
        ),
        (
            "compressed (zlib)",
            human_bytes(f["compressed_bytes"]) + (" (estimated)" if f.get("compressed_estimated") else ""),
        ),
        ("nodes before/after simplify", _pair(f, "nodes_before", "nodes_after")),
        ("max abs error", _num(f.get("max_abs_error"))),
        ("max rel error", _num(f.get("max_rel_error"))),
        ("top-1 agreement", _num(f.get("top1_agreement"))),
        ("parity", {True: "passed", False: "FAILED", None: "not checked"}[f.get("parity_passed")]),
    ]
    for tag in ("int8", "fp16"):
        if f"{tag}_max_abs_error" in f:
            rows += [
                (f"{tag} max abs error", _num(f[f"{tag}_max_abs_error"])),
                (f"{tag} top-1 agreement (parity inputs)", _num(f[f"{tag}_top1_agreement"])),
                (
                    f"{tag} top-1 agreement with fp32 (test samples)",
                    _num(f.get(f"{tag}_top1_agreement_data")),
                ),
                ("size vs fp32", f"{f['size_ratio']:.1%}"),
            ]
    if "accuracy" in f:
        rows.append(
            (
                "accuracy",
                _num(f["accuracy"])
                + (
                    f" (fp32 {_num(f['accuracy_fp32'])}, {f['accuracy_delta']:+.4f})"
                    if "accuracy_fp32" in f
                    else ""
                ),
            )
        )
    for label, value in rows:
        if value is not None:
            table.add_row(label, str(value))
    out = console()
    out.print(table)
    if len(r.outputs) > 1:
        out.print(_outputs_table(r.outputs))
    for note in r.notes:
        out.print(f"note: {note}")


def _outputs_table(rows: list[dict]):
    """Parity per output: name, shape, errors, verdict."""
    from rich.table import Table

    table = Table(title="parity per output")
    for col in ("output", "shape", "max abs error", "max rel error", "parity"):
        table.add_column(col)
    for i, row in enumerate(rows):
        shape = "x".join(str(d) for d in row.get("shape", [])) or row.get("error", "")
        table.add_row(
            row.get("name", str(i)),
            shape,
            _num(row.get("max_abs_error")) or "",
            _num(row.get("max_rel_error")) or "",
            "passed" if row.get("passed") else "FAILED",
        )
    return table


def _pair(f: dict, a: str, b: str) -> str | None:
    return f"{f[a]} -> {f[b]}" if a in f else None


def _num(value) -> str | None:
    if value is None:
        return None
    return f"{value:.4g}" if isinstance(value, float) else str(value)

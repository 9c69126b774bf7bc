"""The ONNX format: export, check, verify, simplify, quantize / fp16, sparse storage, write; and
the figures and runner of an ``.onnx`` file for ``compress info`` and ``compress eval``.

Every step works on an in-memory ONNX model or in a private temp folder; the output file is
written once, atomically, at the end, so a failed or refused export leaves nothing on disk.
A graph over protobuf's 2 GiB limit goes through files with its weights as external data
(:mod:`compressor.export.large`) and is written as ``OUT.onnx`` plus ``OUT.onnx.data``.
The fp32 graph must pass parity (exit 1 otherwise, unless ``verify`` is off); int8 and fp16
graphs are compared too, but their errors are reported, not gated: quantization changes outputs
by design, and the accuracy change on ``--data`` is the figure that matters for them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import CheckFailed, CompressorError, UnsupportedError, first_line
from compressor.export import large, onnx_export, parity, quantize, simplify, sparse
from compressor.export.config import ExportConfig
from compressor.io import integrity
from compressor.io.atomic import atomic_write, check_writable
from compressor.io.onnx_file import weight_figures
from compressor.stats import ESTIMATE_NOTE, files_figures


@dataclass
class Inputs:
    """What the pipeline runs on: the model, its parity inputs and optional real data."""

    handle: Any  # ModelHandle
    example: Any  # torch.Tensor used for tracing
    parity_inputs: np.ndarray
    calib: np.ndarray | None = None
    test: Any = None  # Data (test split) for the accuracy change
    output_names: list[str] = field(default_factory=list)  # the model's outputs, as the ONNX graph names them
    log: Callable[[str], None] = lambda line: None
    scaled_outputs: tuple[str, ...] = ()  # compared on their own scale (parity.compare_output)


@dataclass
class Outcome:
    """Flat figures, per-output parity rows and notes."""

    figures: dict[str, Any] = field(default_factory=dict)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def session(model):
    """An ONNX Runtime CPU session on an in-memory model, or on a file (a path)."""
    import onnxruntime as ort

    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


def verify(model, inp: Inputs, cfg: ExportConfig) -> parity.Parity:
    """Parity of an ONNX model against the PyTorch model on the parity inputs."""
    try:
        candidate = parity.ort_runner(session(model))
    except Exception as exc:  # noqa: BLE001 - a graph ORT cannot load fails parity
        row = {
            "error": f"ONNX Runtime cannot load it: {first_line(exc)}",
            "max_abs_error": float("inf"),
            "max_rel_error": float("inf"),
            "top1_agreement": None,
            "passed": False,
        }
        return parity.summarise([row], 0, [])
    return parity.check(
        parity.torch_runner(inp.handle.module),
        candidate,
        inp.parity_inputs,
        cfg.fixed_batch,
        cfg.rtol,
        cfg.atol,
        inp.output_names,
        inp.scaled_outputs,
    )


def _ort_or_none(model) -> parity.Runner | None:
    try:
        return parity.ort_runner(session(model))
    except Exception:  # noqa: BLE001 - ORT cannot load it: no float64 diagnosis
        return None


def write(inp: Inputs, cfg: ExportConfig) -> Outcome:
    """Export to ONNX and write ``cfg.output`` (the format's writer; see the module docstring)."""
    return run_onnx(inp, cfg)


def run_onnx(inp: Inputs, cfg: ExportConfig) -> Outcome:
    """Export to ONNX and write ``cfg.output``; see the module docstring."""
    out = Outcome()
    exported = onnx_export.export_onnx(inp.handle.module, inp.example, cfg.opset, cfg.dynamic, cfg.exporter)
    if exported.model is None:
        return _run_large(exported, inp, cfg, out)
    model, props, fp32 = _exported(inp, cfg, out, exported)
    if fp32 is not None:
        gate(fp32, cfg, out, inp, lambda: _ort_or_none(model))
    final = _reduced(model, props, inp, cfg, out)
    if cfg.sparse_storage:
        final = _sparse(final, inp, cfg, out)
    stale = large.data_files_of(Path(cfg.output))  # the weights of a large export written here before
    integrity.stamp_onnx(final)
    data = final.SerializeToString()
    atomic_write(cfg.output, lambda tmp: tmp.write_bytes(data))
    for file in stale:
        file.unlink(missing_ok=True)
        out.notes.append(
            f"removed {file.name}: the external data of the {Path(cfg.output).name} this replaces"
        )
    out.figures.update(**written([Path(cfg.output)], out), **weight_figures(final))
    return out


def written(files: list[Path], out: Outcome) -> dict[str, Any]:
    """:func:`files_figures` of the written files (a note when the compressed size is estimated)."""
    figures = files_figures(files)
    if figures["compressed_estimated"]:
        out.notes.append(ESTIMATE_NOTE)
    return figures


def _exported(
    inp: Inputs,
    cfg: ExportConfig,
    out: Outcome,
    exported: onnx_export.Exported | None = None,
    exporter: str | None = None,
):
    """Stamp, check and simplify; a dynamo graph that fails parity is retried with TorchScript."""
    exported = exported or onnx_export.export_onnx(
        inp.handle.module, inp.example, cfg.opset, cfg.dynamic, exporter or cfg.exporter
    )
    props = onnx_export.metadata(inp.handle, exported.exporter, extra_metadata(cfg))
    model = _finish(exported.model, props)
    inp.log(f"exported with the {exported.exporter} exporter: {simplify.node_count(model)} nodes")
    model, fp32 = _simplified(model, props, inp, cfg, out)
    out.figures.update(
        exporter=exported.exporter, opset=cfg.opset, batch="dynamic" if cfg.dynamic else cfg.fixed_batch
    )
    if fp32 is None or fp32.passed or exporter or cfg.exporter != "auto" or exported.exporter != "dynamo":
        out.notes += exported.notes
        return model, props, fp32
    fresh = Outcome()
    try:
        retry = _exported(inp, cfg, fresh, exporter="torchscript")
    except CompressorError:
        return model, props, fp32
    if not retry[2].passed:
        return model, props, fp32
    out.figures.update(fresh.figures)
    out.notes += fresh.notes + [
        f"the dynamo graph failed parity (max abs error {fp32.max_abs_error:.3g}); "
        "used the TorchScript-based exporter, whose graph passes"
    ]
    return retry


def _run_large(exported: onnx_export.Exported, inp: Inputs, cfg: ExportConfig, out: Outcome) -> Outcome:
    """A graph over 2 GiB: files from the start (see :mod:`compressor.export.large`)."""
    size = large.weight_bytes(exported.program.model) / 2**30
    asked = [
        flag
        for flag, on in (
            ("--quantize", cfg.quantize),
            ("--fp16", cfg.fp16),
            ("--sparse-storage", cfg.sparse_storage),
        )
        if on
    ]
    if asked:
        flag = asked[0]
        raise UnsupportedError(
            f"the ONNX graph's weights are {size:.1f} GiB, over protobuf's 2 GiB limit; "
            f"{flag} needs them in one protobuf",
            f"export without {flag}, or prune the model first",
        )
    output = check_writable(cfg.output)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as tmp:
        graph_file, data_file = large.save(exported.program.model, Path(tmp) / output.name)
        graph = large.load_graph(graph_file)
        onnx_export.stamp(graph, onnx_export.metadata(inp.handle, exported.exporter, extra_metadata(cfg)))
        integrity.stamp_onnx(graph, graph_file.parent)
        large.rewrite(graph, graph_file)
        onnx_export.check(graph_file)
        nodes = simplify.node_count(graph)
        inp.log(
            f"exported with the {exported.exporter} exporter: {nodes} nodes, {size:.1f} GiB of weights "
            "as external data"
        )
        out.figures.update(
            exporter=exported.exporter,
            opset=cfg.opset,
            batch="dynamic" if cfg.dynamic else cfg.fixed_batch,
            nodes_before=nodes,
            nodes_after=nodes,
            simplified=False,
        )
        out.notes += exported.notes + [
            f"the graph's weights are over protobuf's 2 GiB limit: they are in {data_file.name} beside "
            f"{output.name} (ONNX external data); keep the two files together",
            "onnxslim skipped: it needs the graph in one protobuf",
        ]
        if cfg.verify:
            gate(verify(graph_file, inp, cfg), cfg, out, inp, lambda: _ort_or_none(graph_file))
        if inp.test is not None:
            out.figures["accuracy"] = accuracy(predictions(graph_file, inp, cfg), inp)
        out.figures.update(weight_figures(graph, Path(tmp)))
        files = large.move_into_place(graph_file, data_file, output)
    out.figures.update(external_data=str(files[1]), **written(files, out))
    return out


def extra_metadata(cfg: ExportConfig) -> dict[str, Any]:
    return {
        "compressor.batch": str(cfg.batch),
        "compressor.quantize": cfg.quantize or ("fp16" if cfg.fp16 else "none"),
    }


def _finish(model, props: dict[str, str]):
    onnx_export.stamp(model, props)
    onnx_export.check(model)
    return model


def _simplified(model, props, inp: Inputs, cfg: ExportConfig, out: Outcome):
    """Simplify when asked and when parity holds; returns (model, fp32 parity or None)."""
    before = simplify.node_count(model)
    out.figures.update(nodes_before=before, nodes_after=before, simplified=False)
    base = verify(model, inp, cfg) if cfg.verify else None
    if not cfg.simplify:
        return model, base
    slim = simplify.simplify(model)
    if slim.note:
        out.notes.append(slim.note)
        return model, base
    candidate = _finish(slim.model, props)
    checked = verify(candidate, inp, cfg) if cfg.verify else None
    if checked is not None and not checked.passed and base is not None and base.passed:
        out.notes.append("onnxslim's graph broke parity; kept the exported graph")
        return model, base
    out.figures.update(nodes_after=slim.nodes_after, simplified=True)
    inp.log(f"onnxslim: {before} -> {slim.nodes_after} nodes")
    return candidate, checked


def gate(
    result: parity.Parity,
    cfg: ExportConfig,
    out: Outcome,
    inp: Inputs | None = None,
    candidate: Callable[[], parity.Runner | None] | None = None,
) -> None:
    """Record the parity figures; an output beyond the tolerances still passes when a float64 run
    of the model shows its error is float32 rounding (:class:`parity.Float64`); otherwise raise
    CheckFailed with that diagnosis when one can be made (``candidate`` builds the exported
    model's runner only then)."""
    out.figures.update(result.flat(), parity_samples=result.samples, parity_batch_sizes=result.batch_sizes)
    out.outputs = result.outputs
    if result.passed:
        return
    hint = "loosen --rtol/--atol, try another --exporter or --no-simplify, or pass --no-verify"
    why = ""
    runner = (
        candidate()
        if inp is not None and candidate is not None and np.isfinite(result.max_abs_error)
        else None
    )
    if runner is not None:
        diag = parity.float64_diagnosis(
            inp.handle.module, runner, inp.parity_inputs, cfg.fixed_batch, result.max_abs_error
        )
        if diag:
            out.figures.update(diag.figures())
            if _passed_as_rounding(result, diag, cfg, out):
                return
            why, hint = _verdict(result, diag, hint)
    raise CheckFailed(
        f"ONNX Runtime and PyTorch disagree beyond rtol={cfg.rtol} atol={cfg.atol}: max abs error "
        f"{result.max_abs_error:.3g}, max rel error {result.max_rel_error:.3g}{why}; nothing written",
        hint,
    )


def _failing(result: parity.Parity) -> list[int]:
    return [i for i, row in enumerate(result.outputs) if not row.get("passed")]


def _passed_as_rounding(result: parity.Parity, diag: parity.Float64, cfg: ExportConfig, out: Outcome) -> bool:
    """Pass every output beyond the tolerances whose error is float32 rounding (all or none); the
    rows say so and carry the float64 figures."""
    failing = _failing(result)
    if not failing or not all(diag.rounding(i) for i in failing):
        return False
    for i in failing:
        result.outputs[i].update(
            passed=True,
            passed_by="float64 reference",
            torch_fp32_vs_fp64_max_abs=diag.torch_fp32[i],
            exported_vs_fp64_max_abs=diag.exported[i],
        )
    out.figures.update(parity_passed=True, parity_passed_by="float64 reference")
    own, exported = max(diag.torch_fp32[i] for i in failing), max(diag.exported[i] for i in failing)
    out.notes.append(
        f"parity beyond rtol={cfg.rtol} atol={cfg.atol} (max abs error {result.max_abs_error:.3g}, max rel "
        f"error {result.max_rel_error:.3g}) passed as float32 rounding: against a float64 run of the "
        f"model the export is off by {exported:.2g}, PyTorch float32 itself by {own:.2g}"
    )
    return True


def _verdict(result: parity.Parity, diag: parity.Float64, hint: str) -> tuple[str, str]:
    """A clause for the error line and the hint: a model that is not deterministic, or the float64
    figures of the worst output that is not rounding."""
    if diag.nondeterministic:
        return (
            " (PyTorch itself gives different outputs on two runs of the same input: the model is "
            "not deterministic)",
            "make the forward pass deterministic (eval mode, no random ops), or pass --no-verify",
        )
    wrong = [i for i in _failing(result) if not diag.rounding(i)] or [0]
    worst = max(wrong, key=lambda i: diag.exported[i])
    return (
        f" (not rounding: against a float64 run, the export is off by {diag.exported[worst]:.2g}, PyTorch "
        f"float32 by {diag.torch_fp32[worst]:.2g})",
        hint,
    )


def _reduced(model, props, inp: Inputs, cfg: ExportConfig, out: Outcome):
    """The int8 / fp16 model when asked (with its parity and accuracy figures), else ``model``."""
    if not (cfg.quantize or cfg.fp16):
        if inp.test is not None:
            out.figures["accuracy"] = accuracy(predictions(model, inp, cfg), inp)
        return model
    fp32_bytes = len(model.SerializeToString())
    reduced = _int8(model, inp, cfg, out) if cfg.quantize else quantize.to_fp16(model)
    quantize.compact(reduced)
    reduced = _finish(reduced, props)
    result = verify(reduced, inp, cfg)
    tag = "int8" if cfg.quantize else "fp16"
    out.figures.update(
        {
            **result.flat(f"{tag}_"),
            "fp32_size_bytes": fp32_bytes,
            "size_ratio": len(reduced.SerializeToString()) / fp32_bytes,
        }
    )
    out.notes.append(
        f"{tag} outputs differ from PyTorch by design (max abs error "
        f"{result.max_abs_error:.3g}, top-1 agreement {result.top1_agreement} on the parity inputs, random "
        "ones included); not gated: the accuracy change on --data is the figure to judge"
    )
    if inp.test is not None:
        full, small = predictions(model, inp, cfg), predictions(reduced, inp, cfg)
        before, after = accuracy(full, inp), accuracy(small, inp)
        out.figures.update(
            {
                "accuracy_fp32": before,
                "accuracy": after,
                "accuracy_delta": after - before,
                f"{tag}_top1_agreement_data": float((full == small).mean()),
            }
        )
    return reduced


def _int8(model, inp: Inputs, cfg: ExportConfig, out: Outcome):
    import onnx

    conv, linear = quantize.layer_macs(inp.handle.module, inp.example)
    mode, note = quantize.choose_mode(cfg.quant_mode, conv, linear, inp.calib is not None)
    out.figures["quant_mode"] = mode
    out.figures["int8_weight_bits"] = quantize.WEIGHT_BITS
    if note:
        out.notes.append(note)
    with tempfile.TemporaryDirectory(prefix="compressor-export-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        quantize.quantize_int8(src, dst, mode, inp.calib, cfg.fixed_batch or 32)
        return onnx.load(str(dst))


def _sparse(model, inp: Inputs, cfg: ExportConfig, out: Outcome):
    """Sparse initializers when the file gets smaller and ORT still loads it with parity."""
    result = sparse.to_sparse(model)
    dense_size = len(model.SerializeToString())
    out.figures.update(dense_size_bytes=dense_size, sparse_tensors=0)
    if result.tensors == 0:
        out.notes.append(
            "--sparse-storage: no weight is sparse enough (density must be < 1/3 for float32); stored dense"
        )
        return model
    candidate = _loads(result.model)
    check = (
        parity.check(
            parity.ort_runner(session(model)),
            candidate,
            inp.parity_inputs,
            cfg.fixed_batch,
            cfg.rtol,
            cfg.atol,
            inp.output_names,
            inp.scaled_outputs,
        )
        if candidate
        else None
    )
    smaller = len(result.model.SerializeToString()) < dense_size
    if check is None or not check.passed or not smaller:
        why = (
            "not smaller" if check is not None and check.passed else "ONNX Runtime could not run it unchanged"
        )
        out.notes.append(f"--sparse-storage: {why}; stored dense")
        return model
    onnx_export.check(result.model, full=False)
    out.figures["sparse_tensors"] = result.tensors
    out.notes.append(
        f"--sparse-storage: {result.tensors} tensors stored sparse; ONNX Runtime "
        "densifies them on load, so run time and memory are unchanged; onnx.checker's "
        "full check (type inference) rejects sparse inputs to dense operators, the "
        "structural check passes"
    )
    return result.model


def _loads(model):
    try:
        return parity.ort_runner(session(model))
    except Exception:  # noqa: BLE001 - any load failure means: keep the dense file
        return None


def accuracy(pred: np.ndarray, inp: Inputs) -> float:
    """Top-1 accuracy of predictions on the test samples."""
    return float((pred == inp.test[1][: len(pred)]).mean())


def predictions(model, inp: Inputs, cfg: ExportConfig) -> np.ndarray:
    """Arg-max class of an ONNX model on the test samples (a fixed batch drops the ragged rest)."""
    x = inp.test[0]
    batch = cfg.fixed_batch or 256
    usable = len(x) // batch * batch if cfg.fixed_batch else len(x)
    sizes = [batch] * (usable // batch) + ([usable % batch] if usable % batch else [])
    return parity.run_batches(parity.ort_runner(session(model)), x[:usable], sizes)[0].argmax(1)


def predictor(path: str) -> parity.Predictor:
    """An ``.onnx`` file on an ONNX Runtime CPU session, with its fixed batch if it has one."""
    from compressor.io.onnx_file import ort_session

    sess = ort_session(path)
    first = sess.get_inputs()[0].shape[0]
    names = tuple(o.name for o in sess.get_outputs())
    return parity.Predictor(parity.ort_runner(sess), first if isinstance(first, int) else None, names)


def describe(path: str) -> dict[str, Any]:
    """The figures ``compress info`` shows of an ``.onnx`` file (read from the graph, not run)."""
    from compressor.io.onnx_file import onnx_figures
    from compressor.stats import MASK_NOTE

    fig = onnx_figures(path)
    shape = fig["inputs"][0]["shape"] if fig["inputs"] else []
    notes = [MASK_NOTE] if fig["sparsity"] > 0.2 else []
    history = [{"command": "export", "metadata": fig["metadata"]}] if fig["metadata"] else []
    return dict(
        kind="onnx",
        ref=fig["metadata"].get("compressor.ref"),
        params=fig["params"],
        nonzero_params=fig["nonzero_params"],
        sparsity=fig["sparsity"],
        macs=fig["macs"],
        size_bytes=fig["size_bytes"],
        compressed_bytes=fig["compressed_bytes"],
        input_shape=[d if isinstance(d, int) else 1 for d in shape],
        history=history,
        outputs={o["name"]: o["shape"] for o in fig["outputs"]},
        integrity=integrity.VERIFIED if integrity.ONNX_KEY in fig["metadata"] else "no digest",
        notes=notes
        + [f"opset {fig['opset']}, {fig['nodes']} nodes"]
        + [
            f"weights in {', '.join(fig['external_data'])} beside it (ONNX external data; file size counts "
            "both)"
        ]
        * bool(fig["external_data"])
        + [ESTIMATE_NOTE] * fig["compressed_estimated"],
    )

"""PyTorch -> ONNX with ``torch.onnx.export``: the dynamo exporter first, TorchScript as fallback.

The dynamo-based exporter (``torch.export`` + onnxscript) is PyTorch's default since 2.9; the
TorchScript-based exporter still handles a few models it cannot trace, so it stays as a fallback,
named in the report's notes. The exporter's chatter is captured so ``--json`` keeps stdout clean.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compressor import __version__, registry
from compressor.errors import InputError, UnsupportedError, first_line, forward_failure
from compressor.export import large
from compressor.outputs import named_tensors

INPUT_NAME = "input"


@dataclass
class Exported:
    """An exported ONNX model and how it was made."""

    model: Any  # onnx.ModelProto; None when the weights are over 2 GiB (then see ``program``)
    exporter: str
    notes: list[str] = field(default_factory=list)
    program: Any = None  # torch.onnx.ONNXProgram (dynamo): its IR model is saved as files when large


def forward_outputs(module: nn.Module, example: torch.Tensor) -> Any:
    """Run one forward pass and return what it returns; a failure on this input shape is a
    bad-input error (exit 2)."""
    try:
        with torch.no_grad():
            out = module(example)
    except Exception as exc:  # noqa: BLE001 - any forward failure means the shape does not fit
        raise forward_failure(exc, tuple(example.shape), InputError) from None
    named_tensors(out)  # a model that returns something other than tensors is refused here
    return out


def flatten_outputs(out: Any) -> list[torch.Tensor]:
    """The tensors of a model output (a tensor, a tuple/list, a dict, a named tuple, nested), in the
    order of :func:`output_names`."""
    return [t for _, t in named_tensors(out)]


def output_names(out: Any) -> list[str]:
    """The names of a model output's tensors, from its structure (:mod:`compressor.outputs`):
    ``output`` for one tensor, ``output_0..`` for a tuple, dict keys such as ``out`` and ``aux``."""
    return [name for name, _ in named_tensors(out)]


def export_onnx(
    module: nn.Module, example: torch.Tensor, opset: int, dynamic: bool, exporter: str = "auto"
) -> Exported:
    """Export ``module`` traced on ``example``; ``dynamic`` makes the batch axis symbolic."""
    names = output_names(forward_outputs(module, example))
    errors: list[str] = []
    if exporter in ("auto", "dynamo"):
        try:
            program = _dynamo(module, example, opset, dynamic, names)
            if large.is_large(program.model):
                return Exported(None, "dynamo", program=program)
            proto, notes = program.model_proto, []
            broken = _invalid(proto)
            if broken:  # the exporter's graph optimizer made it so (onnxscript): export without it
                proto = _dynamo(module, example, opset, dynamic, names, optimize=False).model_proto
                notes.append(
                    f"the dynamo exporter's graph optimizer made an invalid graph ({broken}); "
                    "exported without it"
                )
            return Exported(proto, "dynamo", notes)  # the program (and its weights) can go
        except Exception as exc:  # noqa: BLE001 - any exporter failure triggers the fallback
            errors.append(f"dynamo: {first_line(exc)}")
    if exporter in ("auto", "torchscript"):
        try:
            model = _torchscript(module, example, opset, dynamic, names)
            notes = (
                [f"the dynamo exporter failed ({errors[0]}); used the TorchScript-based exporter"]
                if errors
                else []
            )
            return Exported(model, "torchscript", notes)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"torchscript: {first_line(exc)}")
    others = "/".join(name for name in registry.FORMATS if name != "onnx")
    raise UnsupportedError(
        f"ONNX export failed at opset {opset}: {'; '.join(errors)}",
        f"try another --opset, --exporter, or --format {others}",
    )


def _invalid(proto: Any) -> str:
    """Why ``onnx.checker`` (without shape inference) rejects ``proto``; "" when it does not."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types
        return first_line(exc, 160)
    return ""


def _dynamo(
    module: nn.Module,
    example: torch.Tensor,
    opset: int,
    dynamic: bool,
    names: list[str],
    optimize: bool = True,
):
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    with quiet():
        program = torch.onnx.export(
            module,
            (example,),
            None,
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_shapes=shapes,
            optimize=optimize,
            verbose=False,
        )
    got = program.model.opset_imports.get("", program.model.opset_imports.get("ai.onnx", 0))
    if got != opset:
        raise UnsupportedError(f"asked for opset {opset}, the exporter produced {got}")
    if dynamic and isinstance(program.model.graph.inputs[0].shape[0], int):
        # torch.export specialises the batch axis when the code fixes it (RAFT's frame split)
        raise UnsupportedError(f"the batch axis came out fixed at {program.model.graph.inputs[0].shape[0]}")
    return program


def _torchscript(module: nn.Module, example: torch.Tensor, opset: int, dynamic: bool, names: list[str]):
    import onnx

    axes = {n: {0: "batch"} for n in [INPUT_NAME, *names]} if dynamic else None
    buf = io.BytesIO()
    with quiet(), one_input(module):
        torch.onnx.export(
            module,
            (example,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())


@contextlib.contextmanager
def one_input(module: nn.Module) -> Iterator[None]:
    """``module.forward`` seen as taking the example tensor only, while the TorchScript-based
    exporter traces it.

    That exporter appends the defaults of a forward's other parameters to its inputs, and the
    tracer turns a ``bool`` among them into a tensor: ``forward(x, is_causal=False)`` (timm's EVA)
    then hands ``scaled_dot_product_attention`` a tensor ``is_causal`` and the export fails.
    Parameter names, and so the graph's initializers, are unchanged.
    """
    own = module.__dict__.get("forward")
    bound = module.forward

    def forward(x: torch.Tensor) -> Any:
        return bound(x)

    module.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own is None:
            del module.forward
        else:
            module.forward = own


@contextlib.contextmanager
def quiet():
    """Silence the exporters' prints, warnings and log records (stdout must stay JSON-only)."""
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def metadata(handle, exporter: str, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """``compressor.*`` metadata: producer, preprocessing, model ref, history summary."""
    props: dict[str, Any] = {
        "compressor.version": __version__,
        "compressor.exporter": f"torch.onnx {exporter} (torch {torch.__version__})",
        "compressor.ref": handle.ref or "",
        "compressor.arch_kwargs": handle.arch_kwargs,
        "compressor.source": handle.source,
        "compressor.input_shape": list(handle.input_shape),
        "compressor.mean": handle.mean,
        "compressor.std": handle.std,
        "compressor.masked_layers": len(handle.masks),
        "compressor.history": history_summary(handle.history),
        **(extra or {}),
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in props.items()}


def history_summary(history: list[dict[str, Any]]) -> list[str]:
    """One line per step: ``prune l1 ratio=0.5 -> accuracy=0.91``."""
    lines = []
    for step in history:
        params = " ".join(
            f"{k}={v}"
            for k, v in step.get("params", {}).items()
            if k in ("ratio", "sparsity", "method", "nm", "scope", "steps")
        )
        metrics = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in step.get("metrics", {}).items()
            if k in ("accuracy", "sparsity", "params", "macs")
        )
        lines.append(
            " ".join(
                p
                for p in (
                    step.get("time", ""),
                    step.get("command", ""),
                    step.get("method", ""),
                    params,
                    f"-> {metrics}" if metrics else "",
                )
                if p
            )
        )
    return lines


def stamp(model, props: dict[str, str]) -> None:
    """Set producer name/version and replace the ``compressor.*`` metadata of ``model``."""
    model.producer_name, model.producer_version = "compressor", __version__
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def check(model, full: bool = True) -> None:
    """``onnx.checker`` check of a model or a path (a graph with external data), full (with shape
    inference) by default; a failure is an export failure."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=full)
    except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types
        raise UnsupportedError(
            f"the exported graph fails onnx.checker: {first_line(exc)}",
            "try another --opset or --exporter torchscript",
        ) from None

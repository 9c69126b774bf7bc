"""Int8 and float16 ONNX models with ONNX Runtime's tools.

Int8 (onnxruntime.quantization, see onnxruntime.ai/docs/performance/model-optimizations/
quantization.html): *dynamic* quantization stores int8 weights and quantizes activations at run
time (the recommended mode for linear/attention-heavy models); *static* quantization inserts
QuantizeLinear/DequantizeLinear (QDQ) pairs whose activation ranges are calibrated (MinMax) on
real samples (the recommended mode for conv nets). Static weights are int8 per output channel;
dynamic weights per tensor (ORT's default: on tiny_vit per-channel scales made the file 30.3% of
fp32 against 28.7%, with no accuracy gain).
Float16 uses ``onnxruntime.transformers.float16`` and keeps float32 inputs and outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from compressor.errors import UnsupportedError, first_line
from compressor.export.onnx_export import quiet

# Weights in 7 bits (ONNX Runtime's ``reduce_range``): x86 CPUs without VNNI (AVX2, AVX-512F)
# multiply u8 x s8 pairs into a saturating int16, which 8-bit weights overflow; measured on an AVX2
# machine, the sample MLP's int8 outputs were 5.5% of their range off with 8 bits, 1.3% with 7, and
# vgg_bn's static int8 lost 1.09 points of accuracy with 8 bits, none with 7.
WEIGHT_BITS = 7
CONV_HEAVY = 0.5  # share of MACs in convolutions above which static QDQ is preferred


def layer_macs(module: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(conv MACs, linear MACs) of one forward pass, from the layers' output sizes."""
    totals = {"conv": 0, "linear": 0}

    def hook(sub: nn.Module, _inp, out: torch.Tensor) -> None:
        if isinstance(sub, nn.modules.conv._ConvNd):
            per = sub.in_channels // sub.groups * int(np.prod(sub.kernel_size))
            totals["conv"] += out.numel() * per
        else:
            totals["linear"] += out.numel() * sub.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))
    ]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in handles:
            h.remove()
    return totals["conv"], totals["linear"]


def choose_mode(requested: str, conv_macs: int, linear_macs: int, has_data: bool) -> tuple[str, str | None]:
    """Pick dynamic or static int8; returns (mode, note explaining an automatic choice)."""
    if requested != "auto":
        return requested, None
    share = conv_macs / max(conv_macs + linear_macs, 1)
    if share <= CONV_HEAVY:
        return "dynamic", f"dynamic int8: {1 - share:.0%} of the MACs are in linear layers"
    if has_data:
        return "static", f"static QDQ int8 calibrated on --data: {share:.0%} of the MACs are in convolutions"
    return "dynamic", (
        f"dynamic int8 although {share:.0%} of the MACs are in convolutions: "
        "add --data to calibrate static QDQ int8, which suits conv nets better"
    )


class _Reader:
    """A CalibrationDataReader over fixed numpy batches."""

    def __init__(self, name: str, samples: np.ndarray, batch: int):
        self._batches = iter(
            [{name: samples[i : i + batch]} for i in range(0, len(samples) - batch + 1, batch)]
        )

    def get_next(self):
        return next(self._batches, None)


def quantize_int8(src: Path, dst: Path, mode: str, calib: np.ndarray | None = None, batch: int = 32) -> None:
    """Write an int8 model of ``src`` to ``dst`` (dynamic, or static QDQ calibrated on ``calib``)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    prepared = _preprocess(src)
    try:
        with quiet():
            if mode == "dynamic":
                quantize_dynamic(
                    prepared,
                    dst,
                    weight_type=QuantType.QInt8,
                    per_channel=False,
                    reduce_range=WEIGHT_BITS == 7,
                )
            else:
                import onnxruntime as ort

                name = (
                    ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"])
                    .get_inputs()[0]
                    .name
                )
                quantize_static(
                    prepared,
                    dst,
                    _Reader(name, calib, min(batch, len(calib))),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    reduce_range=WEIGHT_BITS == 7,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                )
    except Exception as exc:  # noqa: BLE001 - the quantizer raises many types
        raise UnsupportedError(
            f"int8 {mode} quantization failed: {first_line(exc)}",
            "try --quant-mode dynamic, or export without --quantize",
        ) from None


def _preprocess(src: Path) -> Path:
    """ORT's recommended pre-processing (shape inference, graph optimisation); src on failure."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = src.with_name(src.stem + ".pre.onnx")
    try:
        with quiet():
            quant_pre_process(str(src), str(out))
        return out
    except Exception:  # noqa: BLE001 - pre-processing is optional
        return src


def to_fp16(model):
    """A float16 copy of ``model`` (float32 inputs and outputs kept)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        with quiet():
            half = convert_float_to_float16(model, keep_io_types=True)
    except Exception as exc:  # noqa: BLE001
        raise UnsupportedError(
            f"float16 conversion failed: {first_line(exc)}", "export without --fp16"
        ) from None
    topological_sort(half.graph)
    return half


def topological_sort(graph) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (Kahn).

    The float16 converter appends its input Cast nodes at the end, which onnx.checker rejects.
    """
    produced_by = {out: i for i, node in enumerate(graph.node) for out in node.output}
    nodes, done, order = list(graph.node), set(), []

    def visit(i: int) -> None:
        stack = [(i, False)]
        while stack:
            j, expanded = stack.pop()
            if j in done:
                continue
            if expanded:
                done.add(j)
                order.append(nodes[j])
                continue
            stack.append((j, True))
            stack.extend(
                (produced_by[n], False)
                for n in nodes[j].input
                if n in produced_by and produced_by[n] not in done
            )

    for i in range(len(nodes)):
        visit(i)
    del graph.node[:]
    graph.node.extend(order)


def compact(model) -> None:
    """Shrink what is not computation: drop value_info and doc strings, short node and tensor names.

    Graph inputs and outputs keep their names. On a small model these strings are several percent
    of an int8 file (tiny_vit: ~15 KB of 140 KB).
    """
    graph = model.graph
    if any(a.type in (a.GRAPH, a.GRAPHS) for n in graph.node for a in n.attribute):
        return  # subgraphs refer to outer names: leave such models as they are
    keep = {v.name for v in list(graph.input) + list(graph.output)}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names):x}")

    del graph.value_info[:]
    for tensor in list(graph.initializer) + [s.values for s in graph.sparse_initializer]:
        tensor.name = short(tensor.name)
    for i, node in enumerate(graph.node):
        node.name, node.doc_string = f"n{i:x}", ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]

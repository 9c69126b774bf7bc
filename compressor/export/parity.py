"""Parity: the exported model and PyTorch on the same inputs, per output.

An output passes when every element satisfies ``|exported - torch| <= atol + rtol * |torch|``
(``numpy.allclose``). An output compared on its own scale (``scaled``: a model adapter's
``parity_scaled``, such as optical flow) passes when ``|exported - torch| <= atol + rtol *
max|torch|``, the largest magnitude over the whole output: its rounding errors are of the
output's scale everywhere, so an element whose own value is near zero has no smaller error. ``max_rel_error`` is ``|exported - torch| / |torch|`` over the elements with
``|torch| > atol`` (below that the absolute tolerance governs). ``top1_agreement`` is the share of
rows of a 2-D output whose arg-max agrees. With a dynamic batch axis the inputs are fed in
batches of 1 and 7 so that the symbolic axis is really exercised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from compressor.export.config import PARITY_BATCHES

Runner = Callable[[np.ndarray], list[np.ndarray]]


@dataclass(frozen=True)
class Predictor:
    """A saved model file ready to run on batches (what ``compress eval`` needs of a format).

    Attributes:
        run: numpy batch in, every output out (float32).
        fixed_batch: the only batch size the file takes (None: any).
        names: the outputs' names, in the order ``run`` returns them (empty: not stored).
    """

    run: Runner
    fixed_batch: int | None = None
    names: tuple[str, ...] = ()


@dataclass
class Parity:
    """Errors of one comparison, worst over outputs, plus the per-output rows."""

    max_abs_error: float
    max_rel_error: float
    top1_agreement: float | None
    passed: bool
    reference_max_abs: float
    samples: int
    batch_sizes: list[int] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)

    def flat(self, prefix: str = "") -> dict[str, Any]:
        """Flat keys, e.g. ``max_abs_error`` or with a prefix ``int8_max_abs_error``."""
        flat = {
            f"{prefix}max_abs_error": self.max_abs_error,
            f"{prefix}max_rel_error": self.max_rel_error,
            f"{prefix}top1_agreement": self.top1_agreement,
        }
        return (
            flat
            if prefix
            else {**flat, "parity_passed": self.passed, "output_max_abs": self.reference_max_abs}
        )


def compare_output(
    reference: np.ndarray, actual: np.ndarray, rtol: float, atol: float, scaled: bool = False
) -> dict[str, Any]:
    """Errors of one output: max abs, max rel, mismatch share, top-1 agreement, passed; ``scaled``:
    ``rtol`` applies to the output's largest magnitude (see the module docstring)."""
    if reference.shape != actual.shape:
        return {
            "shape": list(actual.shape),
            "max_abs_error": float("inf"),
            "max_rel_error": float("inf"),
            "mismatch_fraction": 1.0,
            "top1_agreement": None,
            "passed": False,
        }
    ref, act = reference.astype(np.float64), actual.astype(np.float64)
    diff = np.abs(act - ref)
    big = np.abs(ref) > atol
    rel = float((diff[big] / np.abs(ref[big])).max()) if big.any() else 0.0
    scale = np.abs(ref).max() if scaled and ref.size else np.abs(ref)
    bad = ~(diff <= atol + rtol * scale)
    return {
        "shape": list(ref.shape),
        **({"tolerance_scale": "largest |output|"} if scaled else {}),
        "reference_max_abs": float(np.abs(ref).max()) if ref.size else 0.0,
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "max_rel_error": rel,
        "mismatch_fraction": float(bad.mean()) if bad.size else 0.0,
        "top1_agreement": top1_agreement(ref, act),
        "passed": not bool(bad.any()),
    }


def top1_agreement(reference: np.ndarray, actual: np.ndarray) -> float | None:
    """Share of rows with the same arg-max; None unless the output is (batch, classes>1)."""
    if reference.ndim != 2 or reference.shape[1] < 2:
        return None
    return float((reference.argmax(1) == actual.argmax(1)).mean())


def summarise(rows: list[dict[str, Any]], samples: int, batch_sizes: Sequence[int]) -> Parity:
    """Worst figures over outputs."""
    tops = [r["top1_agreement"] for r in rows if r["top1_agreement"] is not None]
    return Parity(
        max((r["max_abs_error"] for r in rows), default=0.0),
        max((r["max_rel_error"] for r in rows), default=0.0),
        min(tops) if tops else None,
        all(r["passed"] for r in rows),
        max((r.get("reference_max_abs", 0.0) for r in rows), default=0.0),
        samples,
        sorted(set(batch_sizes)),
        rows,
    )


def batch_plan(total: int, fixed: int | None) -> list[int]:
    """Batch sizes that cover ``total`` samples: cycles 1, 7 (dynamic) or ``fixed`` (drops the rest)."""
    if fixed:
        return [fixed] * max(total // fixed, 1)
    sizes, left, i = [], total, 0
    while left > 0:
        size = min(PARITY_BATCHES[i % len(PARITY_BATCHES)], left)
        sizes.append(size)
        left -= size
        i += 1
    return sizes


def run_batches(run: Runner, inputs: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """Feed ``inputs`` in batches of ``sizes``; concatenate each output over batches."""
    chunks, start = [], 0
    for size in sizes:
        chunks.append(run(inputs[start : start + size]))
        start += size
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def torch_runner(module: torch.nn.Module, dtype: torch.dtype = torch.float32) -> Runner:
    """Run a PyTorch module on numpy input; floating inputs and the outputs in ``dtype``."""
    from compressor.export.onnx_export import flatten_outputs

    def run(x: np.ndarray) -> list[np.ndarray]:
        t = torch.from_numpy(x)
        with torch.no_grad():
            outs = flatten_outputs(module(t.to(dtype) if t.is_floating_point() else t))
            return [o.detach().to(dtype).numpy() for o in outs]

    return run


def ort_runner(session) -> Runner:
    """Run an ONNX Runtime session on numpy input (float32 outputs)."""
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o, dtype=np.float32) for o in session.run(None, {name: x})]

    return run


def check(
    reference: Runner,
    candidate: Runner,
    inputs: np.ndarray,
    fixed: int | None,
    rtol: float,
    atol: float,
    names: Sequence[str] = (),
    scaled: Sequence[str] = (),
) -> Parity:
    """Compare ``candidate`` with ``reference`` on ``inputs`` fed in the planned batch sizes, every
    output; ``names`` (the outputs' names, :mod:`compressor.outputs`) label the rows, and the
    outputs named in ``scaled`` are compared on their own scale."""
    sizes = batch_plan(len(inputs), fixed)
    used = inputs[: sum(sizes)]
    expected = run_batches(reference, used, sizes)
    try:
        got = run_batches(candidate, used, sizes)
    except Exception as exc:  # noqa: BLE001 - a runtime failure is a parity failure
        from compressor.export.onnx_export import first_line

        row = {
            "error": first_line(exc),
            "max_abs_error": float("inf"),
            "max_rel_error": float("inf"),
            "top1_agreement": None,
            "mismatch_fraction": 1.0,
            "passed": False,
        }
        return summarise([row], len(used), sizes)
    if len(got) != len(expected):
        row = {
            "error": f"{len(got)} outputs, PyTorch gives {len(expected)}",
            "max_abs_error": float("inf"),
            "max_rel_error": float("inf"),
            "top1_agreement": None,
            "passed": False,
        }
        return summarise([row], len(used), sizes)
    labels = list(names) if len(names) == len(expected) else [""] * len(expected)
    rows = [compare_output(e, g, rtol, atol, n in scaled) for e, g, n in zip(expected, got, labels)]
    if len(names) == len(rows):
        rows = [{"name": name, **row} for name, row in zip(names, rows)]
    return summarise(rows, len(used), sizes)


DIAGNOSIS_MAX_PARAMS = 200_000_000  # a float64 copy beside the float32 model and ORT: skip above
ROUNDING_FACTOR = 3.0  # an output within this many times PyTorch float32's own error: rounding


@dataclass(frozen=True)
class Float64:
    """Per output, how far PyTorch float32 and the export each are from a float64 run of the model
    (max abs), or that PyTorch float32 is not deterministic (then the lists are empty).

    Two float32 evaluations that order their sums differently are each off from the exact result
    by rounding of the same size; an export whose output is within ``ROUNDING_FACTOR`` times
    PyTorch float32's own distance from float64 is as exact as PyTorch float32 itself.
    """

    torch_fp32: list[float] = field(default_factory=list)
    exported: list[float] = field(default_factory=list)
    nondeterministic: bool = False

    def rounding(self, output: int) -> bool:
        """True when output number ``output`` of the export is off by no more than rounding."""
        if self.nondeterministic or output >= len(self.exported):
            return False
        return self.exported[output] <= ROUNDING_FACTOR * max(self.torch_fp32[output], 1e-12)

    def figures(self) -> dict[str, float]:
        """Flat figures, worst over outputs."""
        if self.nondeterministic:
            return {"nondeterministic": 1.0}
        return {
            "torch_fp32_vs_fp64_max_abs": max(self.torch_fp32),
            "exported_vs_fp64_max_abs": max(self.exported),
        }


def float64_diagnosis(
    module: torch.nn.Module,
    candidate: Runner,
    inputs: np.ndarray,
    fixed: int | None,
    disagreement: float = 0.0,
) -> Float64 | None:
    """How far PyTorch float32 and ``candidate`` each are from a float64 run of ``module``, per output.

    A disagreement beyond the tolerances can be float32 rounding that PyTorch itself shows (deep
    random-init networks whose outputs reach 1e1-1e4) rather than an export error. None when the
    module cannot run in float64 or has more than DIAGNOSIS_MAX_PARAMS parameters; ``nondeterministic``
    when PyTorch float32 itself gives outputs on two runs of the same inputs that differ by at least
    a tenth of ``disagreement`` (the export's max abs error).
    """
    import copy

    if sum(p.numel() for p in module.parameters()) > DIAGNOSIS_MAX_PARAMS:
        return None

    sizes = batch_plan(len(inputs), fixed)
    used = inputs[: sum(sizes)]
    try:
        f32 = run_batches(torch_runner(module), used, sizes)
        again = run_batches(torch_runner(module), used, sizes)
        drift = max(
            (
                float(np.nanmax(np.abs(a - b)))
                if a.size and not np.array_equal(a, b, equal_nan=True)
                else 0.0
                for a, b in zip(f32, again)
            ),
            default=0.0,
        )
        if drift > 0 and drift >= 0.1 * disagreement:
            return Float64(nondeterministic=True)
        wide = torch_runner(copy.deepcopy(module).double().eval(), torch.float64)
        ref = run_batches(wide, used, sizes)
        got = run_batches(candidate, used, sizes)
    except Exception:  # noqa: BLE001 - an op without a float64 kernel: no diagnosis
        return None
    if not ref or not (len(ref) == len(f32) == len(got)) or any(r.shape != g.shape for r, g in zip(ref, got)):
        return None

    def off(outs: list[np.ndarray]) -> list[float]:
        return [
            float(np.abs(o.astype(np.float64) - r.astype(np.float64)).max()) if r.size else 0.0
            for o, r in zip(outs, ref)
        ]

    return Float64(off(f32), off(got))


def make_inputs(shape: Sequence[int], samples: int, seed: int, real: np.ndarray | None = None) -> np.ndarray:
    """``samples`` standard-normal inputs of ``shape`` (batch axis replaced), then any real samples."""
    gen = torch.Generator().manual_seed(seed)
    random = torch.randn((samples, *shape[1:]), generator=gen).numpy()
    return random if real is None else np.concatenate([random, real.astype(np.float32)])

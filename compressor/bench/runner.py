"""Timing backends and the measurement loop.

The backends share one interface and are listed in :data:`compressor.registry.BACKENDS`, which
says what each one times: ONNX Runtime for ``.onnx`` files (CPU, or the CUDA provider when
onnxruntime-gpu and a GPU are there) and PyTorch for PyTorch models (CPU timed with
``perf_counter``; CUDA timed with events and a synchronise after each run). Several backends are
timed interleaved (A B A B ...; with several CPU threads in blocks of runs) so that machine noise
hits all of them alike.
"""

from __future__ import annotations

import contextlib
import gc
import math
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from compressor import registry
from compressor.bench.profiles import Profile
from compressor.errors import InputError, UsageError, first_line

ORT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
}


class Backend(Protocol):
    """One loaded model ready to time."""

    name: str
    device: str
    batch: int
    session_ms: float
    figures: dict[str, Any]
    notes: list[str]

    def run(self) -> float:
        """One inference; its latency in ms."""


def cuda_available(onnx: bool) -> bool:
    """True when a CUDA GPU can run this kind of model here."""
    try:
        import torch

        if not torch.cuda.is_available():
            return False
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    if not onnx:
        return True
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def resolve_device(requested: str, onnx_flags: list[bool]) -> str:
    """cpu, cuda or auto -> cpu or cuda; ``cuda`` without a usable GPU is exit 2."""
    if requested == "cpu":
        return "cpu"
    usable = all(cuda_available(onnx) for onnx in onnx_flags)
    if requested == "cuda" and not usable:
        need = "onnxruntime-gpu and " if any(onnx_flags) else ""
        raise UsageError(
            "--device cuda: no usable CUDA GPU here",
            f"it needs {need}a CUDA GPU; use --device cpu, or --device auto to fall back",
        )
    return "cuda" if usable else "cpu"


@dataclass
class OrtBackend:
    """An ONNX Runtime session on random inputs of the profile's batch."""

    path: str
    profile: Profile
    device: str = "cpu"
    input_shape: tuple[int, ...] | None = None
    name: str = "onnxruntime"
    batch: int = 1
    session_ms: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, spec, profile: Profile, device: str) -> OrtBackend:
        """The backend of a ModelSpec naming an ``.onnx`` file."""
        return cls(spec.path, profile, device, spec.input_shape)

    def __post_init__(self) -> None:
        from compressor.io.onnx_file import onnx_figures
        from compressor.stats import ESTIMATE_NOTE

        self.figures = onnx_figures(self.path)  # validates the file first (exit 2 if not a model)
        if self.figures["compressed_estimated"]:
            self.notes.append(f"{self.path}: {ESTIMATE_NOTE}")
        start = time.perf_counter()
        self.session = self._session()
        self.session_ms = (time.perf_counter() - start) * 1000
        self.feed = self._feed()

    def _session(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.profile.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, ORT_LEVELS[self.profile.graph_optimization]
        )
        providers = (["CUDAExecutionProvider"] if self.device == "cuda" else []) + ["CPUExecutionProvider"]
        try:
            return ort.InferenceSession(self.path, opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own unrelated types
            raise InputError(f"{self.path}: ONNX Runtime cannot load it ({first_line(exc, 160)})") from None

    def _feed(self) -> dict[str, Any]:
        import numpy as np

        inputs = self.session.get_inputs()
        fixed = inputs[0].shape[0] if inputs and inputs[0].shape else None
        fixed = fixed if isinstance(fixed, int) and fixed > 0 else None
        self.batch = fixed or self.profile.batch
        if fixed:  # onnx_macs counted the fixed batch; keep MACs per sample
            self.figures["macs"] //= fixed
        if fixed and fixed != self.profile.batch:
            self.notes.append(
                f"{self.path} has a fixed batch of {fixed}: timed at batch {fixed}, "
                f"not {self.profile.batch} (export with a dynamic batch axis)"
            )
        rng = np.random.default_rng(0)
        feed = {}
        for i, inp in enumerate(inputs):
            dims = (
                self._dims(inp) if i == 0 else [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
            )
            dtype = np.dtype(ORT_TYPES.get(inp.type, "float32"))
            # random floats; zeros for integer inputs (valid token ids / indices for any vocabulary)
            feed[inp.name] = (
                rng.standard_normal(dims).astype(dtype) if dtype.kind == "f" else np.zeros(dims, dtype)
            )
        return feed

    def _dims(self, inp) -> list[int]:
        """Shape of the first input: the batch, then --input-shape or the model's fixed dims."""
        shape = list(inp.shape)
        if self.input_shape is not None:
            if len(self.input_shape) != len(shape):
                raise UsageError(
                    f"--input-shape {self.input_shape} has {len(self.input_shape)} dims but "
                    f"{self.path} input '{inp.name}' has {len(shape)}",
                    f"its shape is {shape}",
                )
            return [self.batch, *self.input_shape[1:]]
        if any(not (isinstance(d, int) and d > 0) for d in shape[1:]):
            raise UsageError(
                f"{self.path} input '{inp.name}' has dynamic dimensions {shape}",
                "give the shape to time, e.g. --input-shape 1,3,224,224",
            )
        return [self.batch, *shape[1:]] if shape else []

    def run(self) -> float:
        """One inference; ms (host to host, copies included)."""
        start = time.perf_counter()
        self.session.run(None, self.feed)
        return (time.perf_counter() - start) * 1000


@dataclass
class TorchBackend:
    """A PyTorch module in eval mode under ``inference_mode``."""

    spec: Any  # compressor.io.spec.ModelSpec
    profile: Profile
    device: str = "cpu"
    name: str = "pytorch"
    batch: int = 1
    session_ms: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, spec, profile: Profile, device: str) -> TorchBackend:
        """The backend of a ModelSpec naming a PyTorch model."""
        return cls(spec, profile, device)

    def __post_init__(self) -> None:
        from compressor.stats import model_figures

        start = time.perf_counter()
        handle = self.spec.load()
        load_s = time.perf_counter() - start
        source = self.spec.path if handle.source_kind != "reference" else None
        self.figures = model_figures(handle.module, handle.example_input(), source)
        start = time.perf_counter()
        self.module = handle.module.eval().to(self.device)
        self.input = handle.example_input(self.profile.batch).to(self.device)
        self.session_ms = (load_s + time.perf_counter() - start) * 1000
        self.batch = self.profile.batch

    def run(self) -> float:
        """One forward pass; ms (CUDA: event-timed and synchronised)."""
        import torch

        with torch.inference_mode():
            if self.device != "cuda":
                start = time.perf_counter()
                self.module(self.input)
                return (time.perf_counter() - start) * 1000
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            self.module(self.input)
            end.record()
            end.synchronize()
            return begin.elapsed_time(end)


SETTLE_S = 0.15  # untimed runs after switching models (an idle pool spins for tens of ms)
BLOCK_S = 0.3  # timed runs per model per block: at least this long for the slowest model
BLOCK_NOTE = (
    "timed in blocks ({runs} runs of each model in turn, after {settle:.2f} s of untimed runs "
    "at every switch): with {threads} threads an idle ONNX Runtime or OpenMP pool keeps "
    "spinning for tens of ms after its model's last run, on a core the next model needs "
    "(measured on a 2-core machine: the first 5 runs after a switch were up to 2.6x slower; benchmarks/results/switch_profile.md); "
    "spinning stays on, as in deployment"
)


def make_backend(spec, profile: Profile, device: str) -> Backend:
    """The registry's backend for the model (ONNX Runtime for ``.onnx`` files, PyTorch for PyTorch
    models); a file no backend times is a usage error naming what each one times."""
    return registry.backend_for(spec.path).load().open(spec, profile, device)


@dataclass(frozen=True)
class Timings:
    """Raw timings of one backend."""

    first_inference_ms: float
    samples_ms: list[float]


def measure(backends: list[Backend], profile: Profile) -> list[Timings]:
    """First run, warm-up, then interleaved timed runs until min runs and min time are reached.

    With several backends the order alternates each round (A B, B A, ...), so a first-position
    effect cannot bias the pair-by-pair comparison. With several CPU threads they run in blocks
    instead (:func:`blocked`; see :data:`BLOCK_NOTE`).
    """
    with _threads(profile.threads):
        first = [b.run() for b in backends]
        warm: list[list[float]] = [[] for _ in backends]
        for _ in range(profile.warmup):
            for i, b in enumerate(backends):
                warm[i].append(b.run())
        typical = [statistics.median(w) if w else f for w, f in zip(warm, first)]
        samples: list[list[float]] = [[] for _ in backends]
        gc_was_enabled = gc.isenabled()
        gc.disable()  # a collection inside one run would land on whichever model ran then
        try:
            if blocked(backends, profile):
                runs = block_runs(typical)
                for b in backends:
                    b.notes.append(BLOCK_NOTE.format(runs=runs, settle=SETTLE_S, threads=profile.threads))
                _timed_blocks(backends, profile, samples, runs)
            else:
                _timed_loop(backends, profile, samples)
        finally:
            if gc_was_enabled:
                gc.enable()
    return [Timings(f, s) for f, s in zip(first, samples, strict=True)]


def blocked(backends: list[Backend], profile: Profile) -> bool:
    """Several models with several CPU threads each: time them in blocks, not run by run.

    However slow the models: the idle pool's spinning slows the other model's next run by about as
    much as it spins (2-thread ResNet-50 on a 2-core machine: the first run after a switch 100 ms,
    the settled ones 59-62 ms; ``benchmarks/results/switch_profile.md``), and run by run every run is
    the first after a switch.
    """
    return len(backends) > 1 and profile.threads > 1 and all(b.device == "cpu" for b in backends)


def block_runs(latest_ms: list[float]) -> int:
    """Timed runs per model per block: the slowest model's block lasts about :data:`BLOCK_S`."""
    return max(3, min(1000, math.ceil(BLOCK_S * 1000 / max(max(latest_ms), 1e-3))))


def _timed_loop(backends: list[Backend], profile: Profile, samples: list[list[float]]) -> None:
    start, order = time.perf_counter(), list(range(len(backends)))
    while True:
        for i in order:  # A B, B A, A B ...: neither model always runs first after the loop's overhead
            samples[i].append(backends[i].run())
        order.reverse()
        if _done(profile, time.perf_counter() - start, len(samples[0])):
            return


def _timed_blocks(backends: list[Backend], profile: Profile, samples: list[list[float]], runs: int) -> None:
    """A x runs, B x runs, B x runs, A x runs, ...; each block starts after SETTLE_S of untimed runs,
    so the previous model's spinning pool has gone quiet. Run k of A pairs with run k of B, a block
    apart (well under a second). Rounds come in pairs (A B, B A) so neither model always goes first;
    ``--max-time`` is checked after every block (then the lists are cut to the same length)."""
    start, order, rounds = time.perf_counter(), list(range(len(backends))), 0
    while True:
        for i in order:
            settle = time.perf_counter()
            backends[i].run()
            while time.perf_counter() - settle < SETTLE_S:
                backends[i].run()
            samples[i].extend(backends[i].run() for _ in range(runs))
            if profile.max_time_s and all(samples) and time.perf_counter() - start >= profile.max_time_s:
                shortest = min(len(x) for x in samples)
                for x in samples:
                    del x[shortest:]
                return
        order.reverse()
        rounds += 1
        if rounds % 2 == 0 and _done(profile, time.perf_counter() - start, len(samples[0])):
            return


def _done(profile: Profile, elapsed: float, runs: int) -> bool:
    if runs >= profile.min_runs and elapsed >= profile.min_time_s:
        return True
    return bool(profile.max_time_s) and elapsed >= profile.max_time_s


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """Set PyTorch's intra-op threads for the block (ORT sessions carry their own)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (the OS reports KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)

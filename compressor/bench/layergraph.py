"""One conv or linear layer as its own ONNX graph, timed on ONNX Runtime under a profile.

The latency cost model (:mod:`compressor.bench.costmodel`) measures a model's own layer shapes at
candidate widths this way. A graph holds one ``Conv`` (or ``Gemm`` / ``MatMul`` + ``Add``) with a
bias, random weights as initializers (so ONNX Runtime's layout transforms apply as in the whole
model, where BatchNorm is folded into the bias) and the layer's input shape at the profile's batch.
ONNX Runtime's fixed cost of one ``run`` call, measured on an ``Identity`` graph, is subtracted.
Pure numpy/onnx: no torch.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from compressor.bench.profiles import Profile

OPSET = 18
IR_VERSION = 8  # what ONNX Runtime releases of the last years all read (opset 18 needs IR 8)
WARMUP = 2  # untimed runs per point: the first run allocates, the second settles caches
MAX_RUNS = 200  # per point, so that a tiny layer does not spin for long
CHUNK = 64  # cost-model points whose graphs (with their weights) are held in memory at once


@dataclass(frozen=True)
class LayerShape:
    """What a layer's latency depends on, besides its two widths.

    Attributes:
        kind: ``conv`` or ``linear``.
        cin / cout: the dense input and output channels (features for linear).
        kernel / stride / padding / dilation: per spatial dim (conv); empty for linear.
        groups: the dense conv's groups (1 for linear).
        depthwise: groups == cin == cout > 1: one width sets both (and the groups).
        spatial: input spatial dims (conv) or the token dims between batch and features (linear).
    """

    kind: str
    cin: int
    cout: int
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    depthwise: bool = False
    spatial: tuple[int, ...] = ()

    def signature(self) -> str:
        """Everything but the widths: layers with one signature share measured points."""
        return (
            f"{self.kind}:k{self.kernel}:s{self.stride}:p{self.padding}:d{self.dilation}"
            f":g{1 if self.depthwise else self.groups}:dw{int(self.depthwise)}:x{self.spatial}"
        )

    def groups_at(self, cin: int) -> int:
        """The conv's groups at input width ``cin`` (depthwise convs keep one group per channel)."""
        return cin if self.depthwise else self.groups


def layer_graph(shape: LayerShape, cin: int, cout: int, batch: int, seed: int = 0):
    """An ``onnx.ModelProto`` of the layer at widths (cin, cout) on an input of ``batch``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    if shape.kind == "conv":
        groups = shape.groups_at(cin)
        w = rng.standard_normal((cout, cin // groups, *shape.kernel), dtype=np.float32) * 0.05
        node = helper.make_node(
            "Conv",
            ["x", "w", "b"],
            ["y"],
            group=groups,
            kernel_shape=list(shape.kernel),
            strides=list(shape.stride),
            pads=list(shape.padding) * 2,
            dilations=list(shape.dilation),
        )
        nodes, x_shape = [node], [batch, cin, *shape.spatial]
    else:
        w = rng.standard_normal((cin, cout), dtype=np.float32) * 0.05
        x_shape = [batch, *shape.spatial, cin]
        nodes = (
            [helper.make_node("Gemm", ["x", "w", "b"], ["y"])]
            if not shape.spatial
            else [helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])]
        )
    b = rng.standard_normal(cout, dtype=np.float32) * 0.05
    graph = helper.make_graph(
        nodes,
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )


def identity_graph():
    """The smallest graph: what one ``run`` call costs with no work in it."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "empty",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
    )
    return helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )


def session(model, profile: Profile):
    """A CPU session with the profile's threads and graph optimisation (as ``compress bench``) for
    an ``onnx.ModelProto`` or its serialized bytes."""
    import onnxruntime as ort

    from compressor.bench.runner import ORT_LEVELS

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = profile.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, ORT_LEVELS[profile.graph_optimization]
    )
    opts.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def time_session(sess, feed: dict, runs: int, min_time_s: float) -> float:
    """Median ms of at least ``runs`` runs lasting at least ``min_time_s`` (at most MAX_RUNS)."""
    for _ in range(WARMUP):
        sess.run(None, feed)
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < MAX_RUNS and (len(samples) < runs or time.perf_counter() - start < min_time_s):
        begin = time.perf_counter()
        sess.run(None, feed)
        samples.append((time.perf_counter() - begin) * 1000)
    return statistics.median(samples)


def input_feed(shape: LayerShape, cin: int, batch: int) -> dict[str, np.ndarray]:
    """A random input of the layer's shape at width ``cin``."""
    rng = np.random.default_rng(1)
    dims = [batch, cin, *shape.spatial] if shape.kind == "conv" else [batch, *shape.spatial, cin]
    return {"x": rng.standard_normal(dims, dtype=np.float32)}


@dataclass(frozen=True)
class PointTimer:
    """Times one layer at one pair of widths on ONNX Runtime (the cost model's measurement).

    Attributes:
        profile: threads, batch and graph optimisation.
        runs / min_time_s: timed runs per point (the median is kept).
    """

    profile: Profile
    runs: int = 5
    min_time_s: float = 0.02

    def overhead_ms(self) -> float:
        """What an empty ``run`` call costs here (subtracted from every point)."""
        sess = session(identity_graph(), self.profile)
        return time_session(sess, {"x": np.zeros((1, 8), np.float32)}, 20, 0.01)

    def __call__(self, shape: LayerShape, cin: int, cout: int) -> float:
        """Median ms of the layer at (cin, cout), the empty-call cost not subtracted."""
        return time_session(*self._open(shape, cin, cout), self.runs, self.min_time_s)

    def _open(self, shape: LayerShape, cin: int, cout: int) -> tuple[Any, dict[str, np.ndarray]]:
        """The layer's session at (cin, cout) and an input for it."""
        model, feed = self._graph(shape, cin, cout)
        return session(model, self.profile), feed

    def _graph(self, shape: LayerShape, cin: int, cout: int) -> tuple[bytes, dict[str, np.ndarray]]:
        """The layer's serialized graph at (cin, cout) and an input for it."""
        batch = self.profile.batch
        return layer_graph(shape, cin, cout, batch).SerializeToString(), input_feed(shape, cin, batch)

    def many(
        self,
        points: dict[str, tuple[LayerShape, int, int]],
        passes: int,
        advance: Callable[[], None] = lambda: None,
    ) -> tuple[dict[str, float], float]:
        """Every point timed in ``passes`` passes spread over time, the empty-call cost of each pass
        subtracted from its points: (key -> median ms over the passes, median empty-call ms).

        One point timed once lasts a few milliseconds, so a spell of a slower machine (they last
        about a second) skews whole points; timed in passes (a chunk of points at a time, each pass
        in a shuffled order) and with the median kept, a spell skews one pass of a few points.

        Each timing opens the point's session and closes it after: with more than one thread, a
        session left open keeps its idle pool spinning for tens of milliseconds on a core that the
        next point needs (measured with two threads: held-open points timed 1.5x to 6x slower than
        alone, the large ones most; opening a one-layer session costs about a millisecond).
        """
        keys, rng = list(points), random.Random(0)
        found: dict[str, float] = {}
        overheads: list[float] = []
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            graphs = {k: self._graph(*points[k]) for k in chunk}
            samples: dict[str, list[float]] = {k: [] for k in chunk}
            for _ in range(max(passes, 1)):
                overhead = self.overhead_ms()
                overheads.append(overhead)
                for k in rng.sample(chunk, len(chunk)):
                    model, feed = graphs[k]
                    ms = time_session(session(model, self.profile), feed, self.runs, self.min_time_s)
                    samples[k].append(max(ms - overhead, 0.0))
            for k in chunk:
                found[k] = statistics.median(samples[k])
                advance()
        return found, statistics.median(overheads) if overheads else 0.0

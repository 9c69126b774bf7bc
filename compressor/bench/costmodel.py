"""A measured per-layer latency cost model, cached per model structure, profile and machine.

For every conv/linear layer of a model, its latency on ONNX Runtime under a profile (threads, batch,
graph optimisation) at candidate widths: each layer shape is built as its own one-layer ONNX graph
(:mod:`compressor.bench.layergraph`) and timed at a grid of input and output widths (fractions of
the dense width snapped to multiples of a unit, e.g. the ``--round-to`` value); layers with the same
shape share their points, and widths between grid points are interpolated (bilinear; clamped at the
grid's ends). A width that nothing can change (the model's input channels, the classifier's outputs)
gets one grid point. The measured points are kept in a JSON file under the cache folder
(``--cost-cache``, else ``$COMPRESSOR_COSTMODEL_DIR``, else ``~/.cache/compressor/costmodel``), named
by a hash of the model's layer shapes, the profile's measurement settings and the machine (CPU
model, core count, ONNX Runtime version): a rerun reuses them, and a change to any of the three
starts a new file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.bench.layergraph import LayerShape
from compressor.bench.profiles import Profile

ENV_DIR = "COMPRESSOR_COSTMODEL_DIR"
FORMAT = 3  # 3: points timed in passes, each in a session of its own (older points are measured again)

Timer = Callable[[LayerShape, int, int], float]


def default_cache_dir() -> Path:
    """``$COMPRESSOR_COSTMODEL_DIR``, else ``$XDG_CACHE_HOME/compressor/costmodel``, else
    ``~/.cache/compressor/costmodel``."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "compressor" / "costmodel"


def grid_widths(full: int, fractions: Iterable[float], unit: int, multiple: int = 1) -> tuple[int, ...]:
    """Widths measured for one dimension: ``full`` and each fraction of it, snapped to multiples of
    ``unit`` (and of ``multiple``, the groups a grouped conv needs), ascending."""
    step = math.lcm(max(unit, 1), max(multiple, 1))
    widths = {full}
    for f in (f for f in fractions if f < 1):
        w = max(step, round(full * f / step) * step)
        if w < full:
            widths.add(w)
    return tuple(sorted(widths))


def machine_info() -> dict[str, Any]:
    """What makes measurements from another machine invalid here."""
    import onnxruntime

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "onnxruntime": onnxruntime.__version__,
        "system": platform.system(),
        "arch": platform.machine(),
    }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def profile_settings(profile: Profile) -> dict[str, Any]:
    """The profile fields a layer's latency depends on (not its run counts)."""
    return {
        "batch": profile.batch,
        "threads": profile.threads,
        "device": profile.device,
        "graph_optimization": profile.graph_optimization,
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def structure_hash(layers: dict[str, LayerShape]) -> str:
    """A hash of every layer's name and shape (dense widths included)."""
    return _digest([[name, asdict(shape)] for name, shape in sorted(layers.items())])


def point_key(shape: LayerShape, cin: int, cout: int) -> str:
    """The cache key of one measured point."""
    return f"{shape.signature()}|{cin}|{cout}"


@dataclass
class CostModel:
    """Measured layer latencies and the interpolation between them.

    Attributes:
        layers: layer name -> shape.
        grids: layer name -> (input widths, output widths) measured.
        points: point key -> measured ms (the empty-call cost already subtracted).
        overhead_ms: what an empty ONNX Runtime call cost when the points were measured.
        path: the cache file (None when not cached).
        measured: points measured by this process (0: everything came from the cache).
        grid_measured: of those, the grid points measured while building (0: a cached build).
        seconds: time spent measuring.
        profile / settings / timer: how missing points are measured (:meth:`ensure`).
    """

    layers: dict[str, LayerShape]
    grids: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    points: dict[str, float] = field(default_factory=dict)
    overhead_ms: float = 0.0
    path: Path | None = None
    measured: int = 0
    grid_measured: int = 0
    seconds: float = 0.0
    profile: Profile | None = None
    settings: Any = None
    timer: Timer | None = None

    def ensure(
        self, pairs: dict[str, tuple[int, int]], log: Callable[[str], None] = lambda line: None
    ) -> int:
        """Measure layers at exact widths (layer -> (cin, cout)) where no point exists; returns how many."""
        wanted = {point_key(self.layers[n], i, o): (self.layers[n], i, o) for n, (i, o) in pairs.items()}
        return measure_points(self, self.profile, wanted, self.settings, self.timer, log)

    def layer_ms(self, name: str, cin: int, cout: int) -> float:
        """Estimated ms of layer ``name`` at widths (cin, cout): a measured point, or interpolated."""
        shape = self.layers[name]
        exact = self.points.get(point_key(shape, cin, cout))
        if exact is not None:
            return exact
        ins, outs = self.grids[name]
        if shape.depthwise:
            return _interp1(cout, outs, [self.points[point_key(shape, w, w)] for w in outs])
        rows = [_interp1(cout, outs, [self.points[point_key(shape, i, o)] for o in outs]) for i in ins]
        return _interp1(cin, ins, rows)

    def dense_ms(self, name: str) -> float:
        """Measured ms of layer ``name`` at its dense widths."""
        shape = self.layers[name]
        return self.layer_ms(name, shape.cin, shape.cout)


def _interp1(x: float, xs: tuple[int, ...], ys: list[float]) -> float:
    return float(np.interp(x, xs, ys)) if len(xs) > 1 else float(ys[0])


def grid_points(shape: LayerShape, grids: tuple[tuple[int, ...], tuple[int, ...]]) -> list[tuple[int, int]]:
    """The (cin, cout) pairs measured for one layer (the diagonal for a depthwise conv)."""
    ins, outs = grids
    return [(w, w) for w in outs] if shape.depthwise else [(i, o) for i in ins for o in outs]


def cache_file(folder: Path, layers: dict[str, LayerShape], profile: Profile) -> Path:
    """The cache file of this structure, profile and machine."""
    key = f"{structure_hash(layers)[:16]}-{_digest(profile_settings(profile))[:8]}-{_digest(machine_info())[:8]}"
    return folder / f"{key}.json"


def load_points(
    path: Path, layers: dict[str, LayerShape], profile: Profile
) -> tuple[dict[str, float], float | None]:
    """Points of a matching cache file (an unreadable or mismatched one counts as empty)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}, None
    expected = {
        "format": FORMAT,
        "structure": structure_hash(layers),
        "profile": profile_settings(profile),
        "machine": machine_info(),
    }
    if any(doc.get(k) != v for k, v in expected.items()):
        return {}, None
    return {str(k): float(v) for k, v in doc.get("points", {}).items()}, doc.get("overhead_ms")


def save_points(model: CostModel, profile: Profile) -> None:
    """Write the cache file atomically (the folder is created when missing)."""
    from compressor.io.atomic import atomic_write_text

    if model.path is None:
        return
    model.path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT,
        "structure": structure_hash(model.layers),
        "profile": profile_settings(profile),
        "machine": machine_info(),
        "overhead_ms": model.overhead_ms,
        "points": model.points,
    }
    atomic_write_text(model.path, json.dumps(doc, indent=0, sort_keys=True))


@dataclass(frozen=True)
class BuildSettings:
    """How the cost model is measured (the defaults live in the budget's config).

    Attributes:
        fractions: fractions of each dense width measured.
        unit: grid widths are multiples of this (the ``--round-to`` value, else 8).
        cache_dir: the cache folder (None: :func:`default_cache_dir`).
        runs / min_time_s: timed runs per point and pass (median kept).
        passes: each point is timed once per pass, the passes spread over time (median kept).
    """

    fractions: tuple[float, ...]
    unit: int
    cache_dir: str | None
    runs: int
    min_time_s: float
    passes: int = 1


def build(
    layers: dict[str, LayerShape],
    variable: dict[str, tuple[bool, bool]],
    profile: Profile,
    settings: BuildSettings,
    timer: Timer | None = None,
    log: Callable[[str], None] = lambda line: None,
    multiples: dict[str, int] | None = None,
) -> CostModel:
    """The cost model of ``layers``: cached points reused, missing ones measured and cached.

    Args:
        layers: layer name -> shape at the dense widths.
        variable: layer name -> (input width can change, output width can change).
        timer: measures one point in ms (default: ONNX Runtime under ``profile``); its results
            have the empty-call cost subtracted when it is the default.
        multiples: layer name -> widths must be multiples of this (grouped convs).
    """
    folder = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir()
    path = cache_file(folder, layers, profile)
    points, overhead = load_points(path, layers, profile)
    grids = {
        name: _grids(shape, variable.get(name, (False, False)), settings, (multiples or {}).get(name, 1))
        for name, shape in layers.items()
    }
    model = CostModel(
        layers, grids, points, overhead or 0.0, path, profile=profile, settings=settings, timer=timer
    )
    wanted = {point_key(s, i, o): (s, i, o) for n, s in layers.items() for i, o in grid_points(s, grids[n])}
    model.grid_measured = measure_points(model, profile, wanted, settings, timer, log)
    return model


def _grids(
    shape: LayerShape, variable: tuple[bool, bool], settings: BuildSettings, multiple: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    cin_var, cout_var = variable
    if shape.depthwise:
        widths = grid_widths(shape.cout, settings.fractions, settings.unit) if cout_var else (shape.cout,)
        return widths, widths
    ins = grid_widths(shape.cin, settings.fractions, settings.unit, multiple) if cin_var else (shape.cin,)
    outs = grid_widths(shape.cout, settings.fractions, settings.unit, multiple) if cout_var else (shape.cout,)
    return ins, outs


def measure_points(
    model: CostModel,
    profile: Profile,
    wanted: dict[str, tuple[LayerShape, int, int]],
    settings: BuildSettings,
    timer: Timer | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> int:
    """Measure the ``wanted`` points the model lacks, add them and rewrite the cache; returns how many."""
    from compressor.bench.layergraph import PointTimer
    from compressor.progress import progress

    missing = {k: v for k, v in wanted.items() if k not in model.points}
    if not missing:
        return 0
    start = time.perf_counter()
    log(
        f"cost model: measuring {len(missing)} layer point(s) on ONNX Runtime "
        f"({profile.threads} thread(s), batch {profile.batch}, {settings.passes} pass(es)); "
        f"cached in {model.path}"
    )
    with progress(len(missing), "cost model") as advance:
        if timer is None:
            found, overhead = PointTimer(profile, settings.runs, settings.min_time_s).many(
                missing, settings.passes, advance
            )
            model.points.update(found)
            if model.overhead_ms <= 0:  # cached points keep the empty-call cost they were measured with
                model.overhead_ms = overhead
        else:
            for key, (shape, cin, cout) in missing.items():
                model.points[key] = float(timer(shape, cin, cout))
                advance()
    model.measured += len(missing)
    model.seconds += time.perf_counter() - start
    save_points(model, profile)
    return len(missing)

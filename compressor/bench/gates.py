"""CI gates: limits on size, latency, speed-up, params, sparsity and accuracy.

Gates come from flags (``--max-size 5MB``) or from a file kept in the repository
(``[tool.compressor.gates]`` in pyproject.toml, or a YAML mapping), flags winning. Every gate is
evaluated and listed as passed or failed; any failure makes ``compress bench`` exit 1. Values that
do not parse are usage errors (exit 2), never silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from compressor.errors import InputError, UsageError, first_line, unknown_name

SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int | float) -> int:
    """``5MB`` -> 5000000, ``5MiB`` -> 5242880, ``5000000`` -> 5000000; anything else exit 2."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text >= 0:
        return int(text)
    match = _SIZE_RE.match(str(text))
    unit = match.group(2).lower() if match else None
    if not match or unit not in SIZE_UNITS:
        raise UsageError(f"cannot read size '{text}'", "write e.g. 5MB, 5MiB, 500KB or 5000000 (bytes)")
    return int(float(match.group(1)) * SIZE_UNITS[unit])


@dataclass(frozen=True)
class GateSpec:
    """Requested limits; None means the gate is not requested.

    Attributes:
        max_size: largest file size in bytes.
        max_latency_ms: largest median latency in ms.
        min_speedup: smallest median pair-by-pair speed-up over the baseline.
        max_params: most parameters (all of them, zeros included).
        min_sparsity: smallest share of zero parameters (0..1).
        min_accuracy: smallest top-1 accuracy on ``--data`` (0..1).
        max_accuracy_drop: largest baseline accuracy minus model accuracy (0.01 = one point).
    """

    max_size: int | None = None
    max_latency_ms: float | None = None
    min_speedup: float | None = None
    max_params: int | None = None
    min_sparsity: float | None = None
    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise UsageError(f"gate {_flag(f.name)} must be a number >= 0, got {value}")
        for name in ("min_sparsity", "min_accuracy", "max_accuracy_drop"):
            value = getattr(self, name)
            if value is not None and value > 1:
                raise UsageError(
                    f"gate {_flag(name)} is a fraction in 0..1, got {value}", "write 0.9 for 90%"
                )

    @property
    def requested(self) -> list[str]:
        """Names of the gates that are set."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def merged(self, other: GateSpec) -> GateSpec:
        """A copy with every gate set in ``other`` taking precedence."""
        return replace(self, **{k: v for k, v in asdict(other).items() if v is not None})

    def check_inputs(self, has_baseline: bool, has_data: bool) -> None:
        """Fail early (exit 2) when a gate needs a baseline or data that was not given."""
        if self.min_speedup is not None and not has_baseline:
            raise UsageError("--min-speedup needs a model to compare with", "add --baseline OTHER")
        if self.max_accuracy_drop is not None and not (has_baseline and has_data):
            raise UsageError(
                "--max-accuracy-drop needs a baseline and data", "add --baseline OTHER --data fashion-mnist"
            )
        if self.min_accuracy is not None and not has_data:
            raise UsageError("--min-accuracy needs data to evaluate on", "add --data fashion-mnist")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _number(name: str, value: Any) -> float | int:
    """A gate value from a file: numbers, numeric strings, sizes for max_size."""
    if name == "max_size":
        return parse_size(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        return int(value) if name == "max_params" else float(value)
    except (TypeError, ValueError):
        raise UsageError(f"gate {name}: cannot read '{value}' as a number") from None


def spec_from_mapping(mapping: dict[str, Any], source: str = "gates") -> GateSpec:
    """A GateSpec from ``{"max-size": "5MB", "max_latency_ms": 2, ...}``; unknown keys exit 2."""
    if not isinstance(mapping, dict):
        raise InputError(f"{source}: gates must be a mapping of name to limit", "e.g. max-size: 5MB")
    known = [f.name for f in fields(GateSpec)]
    values = {}
    for key, value in mapping.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise unknown_name(f"gate in {source}", str(key), [k.replace("_", "-") for k in known])
        values[name] = _number(name, value)
    return GateSpec(**values)


def load_gate_file(path: str | Path) -> GateSpec:
    """Gates from ``[tool.compressor.gates]`` in a TOML file or from a YAML file."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"gate file {file} does not exist", "pass pyproject.toml or a YAML file")
    text = file.read_text(errors="replace")
    if file.suffix.lower() == ".toml":
        return spec_from_mapping(_toml_gates(text, file), str(file))
    if file.suffix.lower() in (".yaml", ".yml"):
        return spec_from_mapping(_yaml_gates(text, file), str(file))
    raise InputError(f"gate file {file}: unknown format", "use pyproject.toml or a .yaml/.yml file")


def _toml_gates(text: str, file: Path) -> dict[str, Any]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{file}: not valid TOML ({exc})") from None
    gates = data.get("tool", {}).get("compressor", {}).get("gates")
    if gates is None:
        raise InputError(
            f"{file} has no [tool.compressor.gates] table",
            'add one, e.g. [tool.compressor.gates] max-size = "5MB"',
        )
    return gates


def _yaml_gates(text: str, file: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{file}: not valid YAML ({first_line(exc, None)})") from None
    if isinstance(data, dict) and isinstance(data.get("gates"), dict):
        return data["gates"]
    return data


@dataclass(frozen=True)
class GateResult:
    """One evaluated gate."""

    name: str
    limit: float
    value: float | None
    passed: bool


# gate name -> (figure it reads, True when the figure must be <= the limit)
GATE_FIGURES: dict[str, tuple[str, bool]] = {
    "max_size": ("size_bytes", True),
    "max_latency_ms": ("latency_ms_p50", True),
    "min_speedup": ("speedup", False),
    "max_params": ("params", True),
    "min_sparsity": ("sparsity", False),
    "min_accuracy": ("accuracy", False),
    "max_accuracy_drop": ("accuracy_drop", True),
}


def evaluate_gates(spec: GateSpec, figures: dict[str, Any]) -> list[GateResult]:
    """Every requested gate against ``figures``; a missing figure fails its gate."""
    results = []
    for name in spec.requested:
        key, at_most = GATE_FIGURES[name]
        limit, value = getattr(spec, name), figures.get(key)
        passed = value is not None and (value <= limit if at_most else value >= limit)
        results.append(GateResult(name, limit, value, bool(passed)))
    return results

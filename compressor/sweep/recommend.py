"""Picking from a finished sweep: per profile, the smallest and the fastest point within a drop.

Reads ``SWEEP_DIR/sweep.json`` (written by ``compress sweep``). A candidate is a finished point
whose test accuracy is at least the baseline's minus ``max_drop``. Smallest: the fewest
compressed bytes of the artifact (zlib; what a download or a flash image costs). Fastest: the
lowest measured median latency under that profile. Ties go to the more accurate point. When no
pruned point is within the drop, the baseline itself is the answer (and a note says so).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compressor.errors import InputError, UsageError

SHOWN = (
    "id",
    "method",
    "level",
    "target",
    "landed",
    "accuracy",
    "accuracy_drop",
    "sparsity",
    "compressed_bytes",
    "params",
    "macs",
    "recipe",
)


@dataclass(frozen=True)
class RecommendConfig:
    """Where the sweep is and how much accuracy may go.

    Attributes:
        sweep_dir: a ``compress sweep`` output folder.
        max_drop: largest accuracy drop from the baseline (0.01 = one point).
        profiles: profiles to answer for (None: every profile the sweep measured).
    """

    sweep_dir: str
    max_drop: float = 0.01
    profiles: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.max_drop <= 1:
            raise UsageError(f"--max-drop is a fraction in [0, 1], got {self.max_drop}", "0.01 = one point")


@dataclass(frozen=True)
class RecommendResult:
    """Per profile the smallest and the fastest candidate."""

    sweep_dir: str
    max_drop: float
    baseline_accuracy: float
    candidates: int
    profiles: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Flat top level plus one entry per profile."""
        return asdict(self)


def recommend(cfg: RecommendConfig) -> RecommendResult:
    """Pick, for each profile, the smallest and the fastest point within ``cfg.max_drop``."""
    doc = _load(Path(cfg.sweep_dir))
    rows = [r for r in doc["points"] if r.get("status") == "ok" and r.get("accuracy") is not None]
    base = next((r for r in rows if r["id"] == "baseline"), None)
    if base is None:
        raise InputError(
            f"{cfg.sweep_dir}: the sweep has no finished baseline point", "rerun compress sweep to finish it"
        )
    measured = list(doc["config"]["profiles"]) if doc["config"].get("bench") else []
    profiles = list(cfg.profiles) if cfg.profiles else measured
    for p in profiles:
        if p not in measured:
            raise UsageError(
                f"the sweep did not measure profile '{p}' (measured: {', '.join(measured) or 'none'})",
                f"rerun compress sweep with --profiles {','.join(measured + [p])}",
            )
    ok = [r for r in rows if base["accuracy"] - r["accuracy"] <= cfg.max_drop + 1e-12]
    notes = (
        []
        if len(ok) > 1
        else [f"no pruned point is within {cfg.max_drop} of the baseline: keep the baseline"]
    )
    answers = [_answer(ok, p) for p in profiles] or [_answer(ok, None)]
    return RecommendResult(cfg.sweep_dir, cfg.max_drop, base["accuracy"], len(ok) - 1, answers, notes)


def _answer(ok: list[dict[str, Any]], profile: str | None) -> dict[str, Any]:
    smallest = min(ok, key=lambda r: (r.get("compressed_bytes") or float("inf"), -r["accuracy"]))
    answer: dict[str, Any] = {"profile": profile, "smallest": _brief(smallest, profile)}
    if profile is not None:
        key = f"latency_ms_p50_{profile}"
        timed = [r for r in ok if r.get(key) is not None]
        answer["fastest"] = (
            _brief(min(timed, key=lambda r: (r[key], -r["accuracy"])), profile) if timed else None
        )
    return answer


def _brief(row: dict[str, Any], profile: str | None) -> dict[str, Any]:
    out = {k: row.get(k) for k in SHOWN}
    if profile is not None:
        out["latency_ms_p50"] = row.get(f"latency_ms_p50_{profile}")
        out["speedup"] = row.get(f"speedup_{profile}")
    return out


def _load(folder: Path) -> dict[str, Any]:
    file = folder / "sweep.json"
    if not file.is_file():
        raise InputError(f"{folder}: no sweep.json", "pass the -o folder of a finished compress sweep")
    try:
        doc = json.loads(file.read_text())
        doc["points"], doc["config"]  # noqa: B018 - the keys a sweep document must have
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{file}: not a compress sweep document") from None
    return doc

"""Reports for people: a Markdown table (CI job summaries, pull-request comments) and a PNG plot.

Both take the flat JSON of a bench result (``BenchResult.to_json()``), so they also work on a
saved ``--json`` document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROWS: list[tuple[str, str, str]] = [  # (label, key, format)
    ("backend / device", "backend", "{}"),
    ("batch x threads", "batch", "{}"),
    ("runs", "runs", "{}"),
    ("latency p50 (ms)", "latency_ms_p50", "{:.3f}"),
    ("latency mean (ms)", "latency_ms_mean", "{:.3f}"),
    ("latency p90 (ms)", "latency_ms_p90", "{:.3f}"),
    ("latency p99 (ms)", "latency_ms_p99", "{:.3f}"),
    ("IQR (ms)", "latency_ms_iqr", "{:.3f}"),
    ("CV", "latency_cv", "{:.1%}"),
    ("throughput (samples/s)", "throughput_samples_per_s", "{:.1f}"),
    ("session creation (ms)", "session_ms", "{:.1f}"),
    ("first inference (ms)", "first_inference_ms", "{:.2f}"),
    ("file size", "size_bytes", "{:,} B"),
    ("compressed (zlib)", "compressed_bytes", "{:,} B"),
    ("params", "params", "{:,}"),
    ("non-zero params", "nonzero_params", "{:,}"),
    ("MACs / sample (theoretical)", "macs", "{:,}"),
    ("roofline floor (ms)", "roofline_floor_ms", "{:.4f}"),
    ("roofline efficiency", "roofline_efficiency", "{:.1%}"),
    ("accuracy", "accuracy", "{:.4f}"),
]


def cell(doc: dict[str, Any], key: str, fmt: str, prefix: str = "") -> str:
    """One formatted figure, or an empty cell when it is missing."""
    if key == "backend":
        return f"{doc.get(prefix + 'backend', '')} / {doc.get('device', '')}"
    if key == "batch":
        return f"{doc.get(prefix + 'batch', doc.get('batch'))} x {doc.get('threads')}"
    value = doc.get(prefix + key)
    return "" if value is None else fmt.format(value)


def markdown(doc: dict[str, Any]) -> str:
    """The figures (and the baseline's beside them), the gates and the notes as Markdown."""
    has_base = bool(doc.get("baseline_path"))
    head = f"| figure | {doc['path']} |" + (f" baseline {doc['baseline_path']} |" if has_base else "")
    lines = [
        f"### compress bench: profile {doc['profile']}",
        "",
        head,
        "|---|---:|" + ("---:|" if has_base else ""),
    ]
    for label, key, fmt in ROWS:
        row = f"| {label} | {cell(doc, key, fmt)} |"
        lines.append(row + (f" {cell(doc, key, fmt, 'baseline_')} |" if has_base else ""))
    if has_base:
        lines += [
            "",
            f"speed-up (median of pairs, measured): **{doc['speedup']:.3f}x** · "
            f"size ratio: **{doc['size_ratio']:.3f}**",
        ]
    lines += [
        "",
        f"peak float32 matmul {doc['peak_gflops']:.1f} GFLOP/s (roofline) · peak RSS "
        f"{doc['peak_rss_bytes']:,} B (whole process)",
    ]
    lines += _gate_lines(doc.get("gates", []))
    lines += [""] + [f"- note: {n}" for n in doc.get("notes", [])]
    lines += [f"- warning: {w}" for w in doc.get("warnings", [])]
    return "\n".join(lines).rstrip() + "\n"


def gate_number(value: float | None) -> str:
    """Whole numbers (bytes, params) with separators, others with 4 significant digits."""
    if value is None:
        return "missing"
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _gate_lines(gates: list[dict[str, Any]]) -> list[str]:
    if not gates:
        return []
    lines = ["", "| gate | limit | value | result |", "|---|---:|---:|---|"]
    for g in gates:
        verdict = "pass" if g["passed"] else "**FAIL**"
        lines.append(f"| {g['name']} | {gate_number(g['limit'])} | {gate_number(g['value'])} | {verdict} |")
    return lines


def plot(doc: dict[str, Any], path: str | Path) -> Path:
    """Latency distribution of the model (and the baseline) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from compressor.io.atomic import atomic_write

    series = {Path(doc["path"]).name: doc["latency_ms_samples"]}
    if doc.get("baseline_path"):
        series[f"baseline {Path(doc['baseline_path']).name}"] = doc["baseline_latency_ms_samples"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.boxplot(list(series.values()), vert=False, showfliers=True)
    left.set_yticks(range(1, len(series) + 1), list(series))
    left.set_xscale("log")  # scheduler stalls sit 10-100x above the typical run
    left.set_xlabel("latency per run (ms, log scale)")
    for label, samples in series.items():
        right.plot(samples, ".", markersize=3, label=label)
    right.set_xlabel("run (interleaved order)")
    right.set_yscale("log")
    right.set_ylabel("latency (ms, log scale)")
    right.legend(fontsize=8)
    fig.suptitle(f"compress bench, profile {doc['profile']}, batch {doc['batch']}, {doc['runs']} runs")
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)

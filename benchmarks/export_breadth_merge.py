"""Merge export-breadth runs into one table: the default run, then re-runs that replace its rows.

    python -m benchmarks.export_breadth_merge benchmarks/results/export_breadth.jsonl \
        benchmarks/results/export_breadth_big.jsonl benchmarks/results/export_breadth_diag.jsonl \
        benchmarks/results/export_breadth_large.jsonl --out benchmarks/results/export_breadth_all.md \
        --preface benchmarks/results/export_breadth_all_notes.md

A later file's row replaces an earlier file's row for the same model (the re-runs: models above the
default --max-params, the deep ResNets run on their own, the two models over 2 GiB as they are, without
the big run's BatchNorm calibration). Every replaced row is listed under the table, so nothing measured
disappears.

Command (from the repository root; further arguments pass through)::

    python -m benchmarks run export_breadth_merge                   # -> benchmarks/results/export_breadth_all.md
    python -m benchmarks run export_breadth_merge --config pruned   # -> benchmarks/results/export_breadth_pruned_all.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.export_breadth import conditions_line, model_refs, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="JSON-lines files, earliest first")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--title",
        default="every model, merged from the default run and its re-runs",
        help="what the runs are, for the heading (e.g. pruned with l1 at 0.5, then exported)",
    )
    parser.add_argument(
        "--preface",
        help="a markdown file whose text goes between the command and the table "
        "(the findings of the re-runs, kept beside the generated table)",
    )
    args = parser.parse_args()
    rows: dict[str, dict] = {}
    replaced: list[tuple[str, dict]] = []
    for run in args.runs:
        for line in Path(run).read_text().splitlines():
            row = json.loads(line)
            if row["model"] in rows:
                replaced.append((run, rows[row["model"]]))
            rows[row["model"]] = {**row, "run": Path(run).name}
    order = [r for r in model_refs(None) if r in rows]
    merged = [rows[r] for r in order]
    out = Path(args.out)
    out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in merged))
    command = "python -m benchmarks.export_breadth_merge " + " ".join(args.runs) + f" --out {out}"
    if args.preface:
        command += f" --preface {args.preface}"
    preface = Path(args.preface).read_text().strip() + "\n\n" if args.preface else ""
    missing = len(model_refs(None)) - len(merged)
    notes = "\n".join(
        f"- {r['model']} (in {r['run']}, replaced by {Path(run).name}): {r['status']}"
        + (f" - {r['error'][:160]}" if r.get("error") else "")
        for run, r in replaced
    )
    out.write_text(
        f"# Export breadth: {args.title}\n\n"
        f"Command: `{command}"
        + (f" --title '{args.title}'" if args.title != parser.get_default("title") else "")
        + "`\n\n"
        + preface
        + f"{len(merged)} of {len(model_refs(None))} models have a row ({missing} have none; rows marked "
        "skipped were not run). Random-init "
        "models; all-zero weight tensors get N(0, 0.02) values. bn_calibrated: BatchNorm statistics set "
        "from random batches before export (`--calibrate-bn`), see export_breadth.py.\n\n"
        + conditions_line(merged)
        + table(merged)
        + "\nRows replaced by a later run:\n\n"
        + (notes or "- none")
        + "\n"
    )


if __name__ == "__main__":
    main()

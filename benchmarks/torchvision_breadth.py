"""Breadth over torchvision: every model of every task through prune -> export -> parity.

    python -m benchmarks run torchvision_breadth             # every model (resumes: done ones skipped)
    python -m benchmarks.torchvision_breadth vgg11 raft_small # only these models (rerun them)
    python -m benchmarks.torchvision_breadth --table          # rebuild the table only
    python -m benchmarks.torchvision_breadth --shard 0/2 & python -m benchmarks.torchvision_breadth --shard 1/2
                                                              # two workers side by side
    python -m benchmarks.torchvision_breadth --out DIR/STEM ... # STEM.jsonl, STEM.md, STEM_models.json

Every name of ``torchvision.models.list_models()`` (classification, quantized classification,
semantic segmentation, video classification, detection, optical flow) runs the CLI as a user
would, each step its own process under a time limit (a hang or a crash is a row, not a stall):

1. ``compress prune torchvision:NAME --method l1 --ratio 0.5 -o NAME.pt --json`` at the task's
   example input (:mod:`compressor.io.zoo`; detection and optical flow: the adapter's,
   :mod:`compressor.io.detection`);
2. ``compress export NAME.pt -o NAME.onnx --samples 4 --no-simplify --json``: ONNX Runtime
   against PyTorch on every output at the default tolerances (rtol 1e-3, atol 1e-5);
3. the output shapes of the dense model and of the pruned artifact on the same input.

A model passes when all three succeed and the shapes are equal; a refused step (exit 3) is a
clean refusal when it comes with its one-line reason. One JSON line per model is appended to
``benchmarks/results/torchvision_breadth.jsonl`` (the latest row of a model wins); the table is
``benchmarks/results/torchvision_breadth.md``; the model list with tasks, parameter counts and
inputs is kept in ``benchmarks/results/torchvision_breadth_models.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import breadth_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
JSONL = RESULTS / "torchvision_breadth.jsonl"
TABLE = RESULTS / "torchvision_breadth.md"
MODELS = RESULTS / "torchvision_breadth_models.json"
LIMIT_S = 600  # per step (prune, export, shape check), seconds the step runs
TICK_S = 2.0  # how often a running step is looked at
# CPU is scarce: 4 parity inputs (batches of 1 and 3), no onnxslim pass; parity is the export's own.
EXPORT_FLAGS = ("--samples", "4", "--no-simplify")
# Smaller inputs than the task's example, for heavy models that accept them (stated in each row).
INPUTS: dict[str, tuple[int, ...]] = {}
# What the table cannot tell by itself about the recorded run (edit when the run resumes).
NOTES = [
    "The models ran on 2 CPUs shared with other jobs at times (1-minute load up to 17). Rows that "
    "passed the 600 s limit of a step on a loaded machine were run again on a quieter one "
    "(`python -m benchmarks.torchvision_breadth NAME ...`); so were the rows refused before "
    "quantized models were built as torchvision builds them (float, `quantize=False`), before the "
    "example input was traced as one batched call (the three ResNet-50 R-CNNs) and before the "
    "preflight's deadline inside a trace stopped being taken for a torch-pruning failure "
    "(ShuffleNetV2, VGG-13-BN). The latest row of a model is the one shown; rows that passed "
    "before those changes were not run again."
]
COMMAND = (
    "python -m benchmarks run torchvision_breadth (resumes; run as two workers: "
    "python -m benchmarks.torchvision_breadth --shard 0/2 & python -m benchmarks.torchvision_breadth --shard 1/2)"
)


def task_name(name: str) -> str:
    """The task of a torchvision model, as the table prints it."""
    from compressor.io import detection, zoo

    if detection.is_adapted(name):
        return "optical flow" if detection.MODELS[name][0] == "flow" else "detection"
    found = zoo.find(name)
    return found[0].name if found else "unknown"


def _params(name: str) -> int | None:
    """Parameters of the random-init model, counted on the meta device where it builds there."""
    import torch
    import torchvision

    from compressor.io import detection, zoo

    kwargs: dict = {}
    found = zoo.find(name)
    if found:
        kwargs = found[0].builder_kwargs(name)
    elif detection.is_adapted(name) and detection.MODELS[name][0] != "flow":
        kwargs = {"weights_backbone": None}
    for device in ("meta", "cpu"):  # RegNet's builder reads tensor values: not on meta
        try:
            with torch.device(device):
                model = torchvision.models.get_model(name, weights=None, **kwargs)
            return sum(p.numel() for p in model.parameters())
        except Exception:  # noqa: BLE001 - try the next device; unknown if none builds it
            continue
    return None


def models(names: list[str] | None = None) -> dict[str, dict]:
    """Model -> task, parameters and input shape for every ``list_models()`` name (kept once made),
    or only for ``names`` (not kept) while the full list is not made yet."""
    if MODELS.exists():
        return json.loads(MODELS.read_text())
    import warnings

    import torchvision

    from compressor.io.refs import torchvision_shape

    warnings.filterwarnings("ignore")
    listed = sorted(torchvision.models.list_models())
    found = {}
    for name in [n for n in listed if n in names] if names else listed:
        shape = INPUTS.get(name) or torchvision_shape(name)
        found[name] = {"task": task_name(name), "params": _params(name), "input": list(shape or [])}
    if not names:
        MODELS.write_text(json.dumps(found, indent=1) + "\n")
    return found


def order(picks: dict[str, dict]) -> list[str]:
    """From the fewest parameters up (the most rows in the least time)."""
    return sorted(picks, key=lambda n: (picks[n]["params"] or 10**12, n))


def _stopped(pid: int) -> bool:
    """True while the process is stopped (SIGSTOP: the machine's other work paused it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in "Tt"
    except (OSError, IndexError):
        return False


def _run(args: list[str], limit: float) -> tuple[int | None, str, str, float]:
    """(exit code or None past the limit, stdout, stderr, seconds run) of one process group.

    Only the time the step runs counts against ``limit``: not while it is stopped, nor while this
    process is (a tick counts at most :data:`TICK_S`), so a paused job is not a hang."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=err,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
        ran, last = 0.0, time.monotonic()
        while proc.poll() is None and ran <= limit:
            try:
                proc.wait(timeout=TICK_S)
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            ran += 0.0 if _stopped(proc.pid) else min(now - last, TICK_S + 1)
            last = now
        if proc.poll() is None:  # past the limit: the step and anything it started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.seek(0), err.seek(0)
        rc = None if ran > limit else proc.returncode
        return rc, out.read(), err.read(), ran


def cli(*args: str) -> tuple[int | None, dict, str, float]:
    """(exit code, JSON document or {}, error one-liner, seconds) of one ``compress`` call."""
    rc, out, err, secs = _run([sys.executable, "-W", "ignore", "-m", "compressor", *args, "--json"], LIMIT_S)
    try:
        doc = json.loads(out) if out.strip() else {}
    except json.JSONDecodeError:
        doc = {}
    lines = [line for line in err.splitlines() if line.startswith(("error", "hint"))]
    if rc is None:
        return rc, doc, f"no result within {LIMIT_S} s", secs
    if not lines and rc:  # no one-line error: the last line of what it printed (a traceback, a crash)
        tail = (err.strip().splitlines() or [""])[-1]
        lines = [f"exit {rc}: {tail}"]
    return rc, doc, " ".join(lines)[:300], secs


def shapes(name: str, pruned: str, shape: list[int]) -> dict:
    """Output shapes of the dense model and of the pruned artifact on one seeded input."""
    import torch

    from compressor import outputs
    from compressor.api.common import ModelSpec
    from compressor.io.artifact import load_model

    torch.manual_seed(0)
    example = torch.randn(*shape)
    dense = outputs.model_shapes(ModelSpec(f"torchvision:{name}").load().module, example)
    after = outputs.model_shapes(load_model(pruned).module, example)
    return {"dense": dense, "pruned": after}


def run_one(name: str, info: dict, folder: Path) -> dict:
    """Prune, export and compare shapes for one model; a refused or failed step ends the row.
    Seconds are those the steps ran (pauses of the whole job excluded)."""
    pruned, onnx = folder / f"{name}.pt", folder / f"{name}.onnx"
    shape = info["input"]
    row: dict = {"model": name, "task": info["task"], "input": "x".join(map(str, shape[1:]))}
    extra = ("--input-shape", ",".join(map(str, shape))) if name in INPUTS else ()
    if extra:
        row["input_note"] = "smaller than the task's example input"
    rc, doc, err, secs = cli(
        "prune", f"torchvision:{name}", "--method", "l1", "--ratio", "0.5", "-o", str(pruned), *extra
    )
    row.update(
        prune_rc=rc,
        prune_s=round(secs, 1),
        **{k: doc.get(k) for k in ("macs_before", "macs_after", "params_before", "params_after")},
    )
    if rc != 0:
        status = "refused" if rc == 3 and err.startswith("error") else "fail"
        return {**row, "status": status, "detail": err, "seconds": _spent(row)}
    rc, doc, err, secs = cli("export", str(pruned), "-o", str(onnx), *EXPORT_FLAGS)
    row.update(
        export_rc=rc,
        export_s=round(secs, 1),
        exporter=doc.get("exporter"),
        parity=[
            {k: o.get(k) for k in ("name", "shape", "max_abs_error", "reference_max_abs", "passed")}
            for o in doc.get("outputs", [])
        ],
    )
    if rc != 0:
        status = "refused" if rc == 3 and err.startswith("error") else "fail"
        return {**row, "status": status, "detail": err, "seconds": _spent(row)}
    code = f"import json,sys; from benchmarks.torchvision_breadth import shapes; print(json.dumps(shapes({name!r}, {str(pruned)!r}, {shape!r})))"
    rc, out, err, secs = _run([sys.executable, "-W", "ignore", "-c", code], LIMIT_S)
    row["shapes_s"] = round(secs, 1)
    try:
        found = json.loads(out.strip().splitlines()[-1])
        row.update(shapes_dense=found["dense"], shapes_pruned=found["pruned"])
        row["shapes_equal"] = found["dense"] == found["pruned"]
    except (IndexError, json.JSONDecodeError):
        row["shapes_equal"] = None
        row["detail"] = f"shape check: exit {rc}: {(err.strip().splitlines() or [''])[-1][:200]}"
    passed = bool(row["parity"]) and all(p.get("passed") for p in row["parity"]) and row["shapes_equal"]
    row["status"] = "pass" if passed else "fail"
    return {**row, "seconds": _spent(row)}


def _spent(row: dict) -> float:
    return round(sum(row.get(k) or 0 for k in ("prune_s", "export_s", "shapes_s")), 1)


def conditions() -> dict:
    """Versions, machine and load, written with every row."""
    return breadth_rows.conditions("torchvision")


def load_rows() -> dict[str, dict]:
    """The latest row of every model."""
    return breadth_rows.latest_rows(JSONL, "model")


def _macs(r: dict) -> str:
    if not r.get("macs_before") or not r.get("macs_after"):
        return ""
    return f"{r['macs_before'] / 1e9:.2f} G -> {r['macs_after'] / 1e9:.2f} G ({r['macs_after'] / r['macs_before']:.2f})"


def _params_cell(r: dict) -> str:
    if not r.get("params_before") or not r.get("params_after"):
        return ""
    return f"{r['params_before'] / 1e6:.1f} M -> {r['params_after'] / 1e6:.1f} M"


def _parity(r: dict) -> str:
    return "; ".join(
        f"{'ok' if p['passed'] else 'FAIL'} {p['max_abs_error']:.1e}/{p['reference_max_abs']:.1e}"
        for p in r.get("parity") or []
        if p.get("max_abs_error") is not None and p.get("reference_max_abs") is not None
    )


def _yes(value: bool | None) -> str:
    return {True: "yes", False: "no"}.get(value, "") if value is not None else ""


def summary(rows: list[dict], total: dict[str, int]) -> list[str]:
    """The pass count overall and per task, with how many models each task has."""
    passed = [r for r in rows if r["status"] == "pass"]
    refused = [r for r in rows if r["status"] == "refused"]
    failed = [r for r in rows if r["status"] not in ("pass", "refused")]
    lines = [
        f"**{len(passed)} of {len(rows)} models pass** ({100 * len(passed) / max(len(rows), 1):.0f}%); "
        f"{len(refused)} refused cleanly (exit 3, one-line reason), {len(failed)} fail. {len(rows)} of the "
        f"{sum(total.values())} models of `list_models()` are in this run.\n",
        "| task | models | run | pass | refused | fail |",
        "|---|---|---|---|---|---|",
    ]
    for task in sorted(total):
        mine = [r for r in rows if r["task"] == task]
        count = {s: sum(r["status"] == s for r in mine) for s in ("pass", "refused")}
        lines.append(
            f"| {task} | {total[task]} | {len(mine)} | {count['pass']} | {count['refused']} | "
            f"{len(mine) - count['pass'] - count['refused']} |"
        )
    return lines + [""]


def table(rows: list[dict]) -> str:
    """The Markdown result: command, conditions, summary, what does not pass, one line per model."""
    picks = json.loads(MODELS.read_text()) if MODELS.exists() else {r["model"]: r for r in rows}
    total: dict[str, int] = {}
    for info in picks.values():
        total[info["task"]] = total.get(info["task"], 0) + 1
    out = [
        "# torchvision breadth: every model of every task through prune (l1, ratio 0.5) -> ONNX export -> parity\n",
        f"Command: `{COMMAND}`\n",
        *summary(rows, total),
        "Reading: models have random weights and random inputs at each task's example input "
        "(classification 224x224, inception_v3 299x299; segmentation 520x520; video 16 frames of "
        "112x112, s3d / MViT / Swin3D 224x224; detection and optical flow: the one-tensor adapter's "
        "input, see docs/detection.md). MACs after / before is theoretical (counted, not timed). "
        "Parity: max abs error of ONNX Runtime against the pruned PyTorch model per output, next to the "
        "largest absolute output (random-init classifiers can give outputs far below the 1e-5 absolute "
        "tolerance, where parity says little; the largest output shows when). Shapes: "
        "the dense model's and the pruned artifact's outputs on the same input. A refusal is `compress`'s "
        "exit 3 with its one-line reason. Models missing from the table were not reached in this run; "
        "the command resumes where it stopped.\n",
    ]
    out += [*NOTES, ""] if NOTES else []
    out += conditions_section(rows)
    bad = [r for r in rows if r["status"] != "pass"]
    if bad:
        out += ["## Not passing\n", *_not_passing(bad), ""]
    missing = sorted(set(picks) - {r["model"] for r in rows})
    if missing:
        out += ["## Not run yet\n", ", ".join(missing) + "\n"]
    out += [
        "## All models\n",
        "| model | task | input | status | prune rc | MACs before -> after (ratio) | params | export rc | "
        "exporter | parity per output (max abs err / largest abs output) | shapes equal | s (prune / export / all) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["task"], r["model"])):
        secs = f"{r.get('prune_s', '')} / {r.get('export_s', '')} / {r.get('seconds', '')}"
        out.append(
            f"| {r['model']} | {r['task']} | {r.get('input', '')}{' (smaller)' if r.get('input_note') else ''} | "
            f"{r['status']} | {r.get('prune_rc', '')} | {_macs(r)} | {_params_cell(r)} | "
            f"{r.get('export_rc', '')} | {r.get('exporter') or ''} | {_parity(r)} | "
            f"{_yes(r.get('shapes_equal'))} | {secs} |"
        )
    return "\n".join(out) + "\n"


def _not_passing(bad: list[dict]) -> list[str]:
    """One line per model."""
    return [
        f"- **{r['model']}** ({r['task']}): {r['status']}: {r.get('detail') or 'parity or shapes failed'}"
        for r in sorted(bad, key=lambda r: (r["task"], r["model"]))
    ]


def conditions_section(rows: list[dict]) -> list[str]:
    """Versions, machine, load range and settings of the run."""
    cond = next((r["conditions"] for r in rows if "conditions" in r), {})
    loads = [r["conditions"]["load_1min"] for r in rows if "conditions" in r]
    return [
        "## Conditions\n",
        f"torch {cond.get('torch')}, torchvision {cond.get('torchvision')}, torch-pruning "
        f"{cond.get('torch_pruning')}, onnxruntime {cond.get('onnxruntime')}; {cond.get('machine')}, "
        f"{cond.get('cpus')} CPUs shared with other jobs (1-minute load {min(loads, default=0)} to "
        f"{max(loads, default=0)} when the models started), {cond.get('threads')} torch threads; run "
        f"as two workers side by side under `nice -n 19`. Each step (prune, export, shape check) is "
        f"its own process with a {LIMIT_S} s limit. Export: `{' '.join(EXPORT_FLAGS)}` (4 random "
        "inputs, batches of 1 and 3; default exporter: dynamo, falling back to TorchScript), parity at "
        "the default tolerances (rtol 1e-3, atol 1e-5). Seconds: wall time of each step's process "
        "(Python start, model build, the step) on that loaded machine, counted while the step ran (the "
        "machine's other work paused the whole job at times; those pauses are not counted): compare "
        "them with each other only.\n",
    ]


def main(argv: list[str]) -> None:
    global JSONL, TABLE, MODELS
    if "--out" in argv:  # another place for the three files (a smoke run)
        at = argv.index("--out")
        stem, argv = Path(argv[at + 1]), argv[:at] + argv[at + 2 :]
        JSONL, TABLE = stem.with_suffix(".jsonl"), stem.with_suffix(".md")
        MODELS = stem.parent / f"{stem.name}_models.json"
    JSONL.parent.mkdir(parents=True, exist_ok=True)
    shard = (0, 1)
    if argv[:1] == ["--shard"]:  # --shard I/N: every N-th model from the I-th (N workers side by side)
        i, n = argv[1].split("/")
        shard, argv = (int(i), int(n)), argv[2:]
    if argv != ["--table"]:
        picks = models(argv)
        wanted = argv or order(picks)
        done = load_rows() if not argv else {}
        cond = conditions()
        with tempfile.TemporaryDirectory() as tmp:
            for name in wanted[shard[0] :: shard[1]]:
                if name in done or name not in picks:
                    continue
                row = {
                    **run_one(name, picks[name], Path(tmp)),
                    "conditions": {**cond, "load_1min": round(os.getloadavg()[0], 1)},
                }
                print(json.dumps(row), flush=True)
                with JSONL.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                for leftover in Path(tmp).iterdir():  # big artifacts do not pile up
                    leftover.unlink()
    TABLE.write_text(table(list(load_rows().values())))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Breadth over timm: the smallest model of every timm family through prune -> export -> parity.

    python -m benchmarks run timm_breadth                    # every family (resumes: done ones skipped)
    python -m benchmarks.timm_breadth levit fastvit          # only these families (rerun them)
    python -m benchmarks.timm_breadth --table                # rebuild the table only
    python -m benchmarks.timm_breadth --shard 0/2 & python -m benchmarks.timm_breadth --shard 1/2
                                                             # two workers side by side
    python -m benchmarks.timm_breadth --out DIR/STEM ...     # STEM.jsonl, STEM.md, STEM_models.json

A family is one timm model module (``timm.list_modules()``: ``vision_transformer``, ``levit``,
``resnet``, ...); its model is the one with the fewest parameters among the few whose names say
they are the small ones (counted on the meta device). The selection is kept in
``benchmarks/results/timm_breadth_models.json``.

Each model runs in its own process under a time limit (600 s; ``TIMM_BREADTH_LIMIT_S`` sets
another), so nothing hangs, through the library calls
the CLI makes (``compress prune timm:NAME --method l1 --ratio 0.5`` then ``compress export`` of the
result with ``--exporter torchscript --samples 4``: parity of ONNX Runtime against PyTorch on every
output; where the TorchScript exporter cannot export the model, the export is rerun with the
default ``--exporter auto``, whose dynamo exporter handles what TorchScript tracing cannot); the
exit code recorded is the one the CLI would return. The input is small (96x96, passing ``img_size=96`` to
models with a fixed grid) where the model allows, else the smallest input timm's configuration
gives for it (``min_input_size``: DeepSeek ViT 126x126 instead of its default 546x546), else its
default input size. One JSON line
per model is appended to ``benchmarks/results/timm_breadth.jsonl``; the table and summary are
``benchmarks/results/timm_breadth.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import breadth_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
JSONL = RESULTS / "timm_breadth.jsonl"
TABLE = RESULTS / "timm_breadth.md"
MODELS = RESULTS / "timm_breadth_models.json"
LIMIT_S = int(os.environ.get("TIMM_BREADTH_LIMIT_S", "600"))  # seconds per model
# The TorchScript exporter and 4 parity samples (batches of 1 and 7) keep each export short; the
# parity check itself is the export command's own. The dynamo exporter takes 3-4x as long (vit_tiny
# 33 s vs 7.5 s, resnet18 12 s vs 2.4 s, levit_128 47 s vs 13 s), so it runs only where the
# TorchScript exporter fails on the model (an op it cannot export): FALLBACK, the default exporter.
EXPORT: dict[str, Any] = {"exporter": "torchscript", "samples": 4}
FALLBACK: dict[str, Any] = {**EXPORT, "exporter": "auto"}
# Families named in the guide first, then the others from the fewest parameters up.
FIRST = (
    "vision_transformer",
    "deit",
    "mobilevit",
    "levit",
    "fastvit",
    "edgenext",
    "efficientformer",
    "efficientformer_v2",
    "resnet",
    "efficientnet",
    "mobilenetv3",
    "convnext",
    "regnet",
    "ghostnet",
)
SMALL = 96
COMMAND = (
    "python -m benchmarks run timm_breadth (resumes; first run as two workers: "
    "python -m benchmarks.timm_breadth --shard 0/2 & python -m benchmarks.timm_breadth --shard 1/2)"
)
# Name parts that mark the small members of a family, smallest first.
SMALL_WORDS = (
    "atto",
    "femto",
    "pico",
    "zepto",
    "nano",
    "xxxs",
    "xxs",
    "xx_small",
    "xxsmall",
    "mini",
    "xs",
    "x_small",
    "xsmall",
    "tiny",
    "t0",
    "s0",
    "b0",
    "small",
    "002",
    "lite0",
    "050",
    "035",
    "075",
    "100",
    "light",
    "_t",
    "_s",
    "18",
    "26",
)
CANDIDATES = 6


def _score(name: str) -> tuple[int, int]:
    hits = [i for i, w in enumerate(SMALL_WORDS) if w in name]
    return (min(hits) if hits else len(SMALL_WORDS), len(name))


def smallest(module: str) -> tuple[str, int] | None:
    """The model of ``module`` with the fewest parameters among its likeliest small ones."""
    import timm
    import torch

    best: tuple[str, int] | None = None
    for name in sorted(timm.list_models(module=module), key=_score)[:CANDIDATES]:
        try:
            with torch.device("meta"):
                params = sum(p.numel() for p in timm.create_model(name).parameters())
        except Exception:  # noqa: BLE001 - a model that cannot be built is not a candidate
            continue
        if best is None or params < best[1]:
            best = (name, params)
    return best


def families() -> dict[str, dict]:
    """Family (timm module) -> its smallest model and parameter count, computed once and kept."""
    if MODELS.exists():
        return json.loads(MODELS.read_text())
    import warnings

    import timm

    warnings.filterwarnings("ignore")
    found = {}
    for module in timm.list_modules():
        pick = smallest(module)
        if pick:
            found[module] = {"model": pick[0], "params": pick[1]}
            print(f"{module}: {pick[0]} ({pick[1]} params)", file=sys.stderr, flush=True)
    MODELS.write_text(json.dumps(found, indent=1) + "\n")
    return found


def probe(name: str) -> tuple[tuple[int, ...], dict]:
    """The smallest input the model runs on and build kwargs: 96x96 (with ``img_size=96`` if needed),
    else the smallest input timm's configuration names for it (``min_input_size``), else its
    default input size."""
    import warnings

    import timm
    import torch

    warnings.filterwarnings("ignore")
    cfg = timm.get_pretrained_cfg(name)
    default = tuple(cfg.input_size) if cfg else (3, 224, 224)
    least = tuple(cfg.min_input_size) if cfg and cfg.min_input_size else default
    small = (3, SMALL, SMALL)
    tries = (
        ({}, small),
        ({"img_size": SMALL}, small),
        ({}, least),
        ({"img_size": least[-1]}, least),
        ({}, default),
    )
    for kwargs, shape in tries:
        try:
            model = timm.create_model(name, **kwargs).eval()
            with torch.no_grad():
                model(torch.randn(1, *shape))
            return (1, *shape), kwargs
        except Exception:  # noqa: BLE001 - this size or these kwargs do not fit; try the next
            continue
    return (1, *default), {}


def _call(step: Callable[[], Any]) -> tuple[int, Any, str, float]:
    """Run one library call as the CLI would: its exit code, result, error line and seconds."""
    from compressor.errors import CompressorError, first_line

    start = time.time()
    try:
        return 0, step(), "", round(time.time() - start, 1)
    except CompressorError as exc:
        return exc.exit_code, None, exc.one_line()[:300], round(time.time() - start, 1)
    except Exception as exc:  # noqa: BLE001 - a traceback in the CLI: recorded as exit 1
        return 1, None, f"{type(exc).__name__}: {first_line(exc, 200)}", round(time.time() - start, 1)


def check(family: str, name: str) -> dict:
    """Prune (l1 0.5) and export one model through ``compressor.api`` (what the CLI calls); one row."""
    from compressor.api import ExportConfig, ModelSpec, export, prune
    from compressor.pruning.base import PruneConfig

    start = time.time()
    row: dict = {"family": family, "model": name}
    try:
        shape, kwargs = probe(name)
    except Exception as exc:  # noqa: BLE001 - recorded, not raised
        return {**row, "status": "fail", "detail": f"probe: {type(exc).__name__}: {exc}"[:300]}
    row["input"] = "x".join(map(str, shape[1:]))
    row["arch_kwargs"] = kwargs
    spec = ModelSpec("timm:" + name, arch_kwargs=kwargs, input_shape=shape)
    with tempfile.TemporaryDirectory() as tmp:
        pruned, onnx = str(Path(tmp) / "p.pt"), str(Path(tmp) / "p.onnx")
        rc, res, err, secs = _call(
            lambda: prune(spec, PruneConfig("l1", ratio=0.5), pruned, measure_input=False)
        )
        row.update(prune_rc=rc, prune_s=secs)
        if res is not None:
            row.update(
                macs_before=res.before.get("macs"),
                macs_after=res.after.get("macs"),
                params_before=res.before.get("params"),
                params_after=res.after.get("params"),
                notes=[n for n in res.notes if "classifier head" not in n] if hasattr(res, "notes") else [],
            )
        if rc != 0:
            status = "refused" if rc == 3 else "fail"
            return {**row, "status": status, "detail": err, "seconds": round(time.time() - start, 1)}
        rc, res, err, secs = _call(lambda: export(pruned, ExportConfig(onnx, **EXPORT)))
        if rc == 3 and err.startswith("ONNX export failed"):  # the TorchScript exporter cannot export it
            row["torchscript_detail"] = err
            rc, res, err, more = _call(lambda: export(pruned, ExportConfig(onnx, **FALLBACK)))
            secs = round(secs + more, 1)
        outputs = res.outputs if res is not None else []
        row.update(
            export_rc=rc,
            export_s=secs,
            exporter=res.figures.get("exporter") if res else None,
            parity=[
                {
                    "shape": o.get("shape"),
                    "passed": o.get("passed"),
                    "max_rel_error": o.get("max_rel_error"),
                    **({"passed_by": o["passed_by"]} if o.get("passed_by") else {}),
                }
                for o in outputs
            ],
        )
        passed = rc == 0 and bool(outputs) and all(o.get("passed") for o in outputs)
        if not passed:
            row["detail"] = err or "parity failed"
        row["status"] = "pass" if passed else "fail"
    row["seconds"] = round(time.time() - start, 1)
    return row


def run_one(family: str, name: str) -> dict:
    """:func:`check` in its own process under a time limit (a hang or a crash is a row, not a stall)."""
    limit = LIMIT_S
    start = time.time()
    try:
        proc = subprocess.run(
            [sys.executable, "-W", "ignore", __file__, "--one", family, name],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=limit,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        lines = proc.stdout.strip().splitlines()
        if lines:
            return json.loads(lines[-1])
        detail = (proc.stderr.strip().splitlines() or [""])[-1][:300]
        return {
            "family": family,
            "model": name,
            "status": "fail",
            "detail": f"exit {proc.returncode}: {detail}",
            "seconds": round(time.time() - start, 1),
        }
    except subprocess.TimeoutExpired:
        return {
            "family": family,
            "model": name,
            "status": "fail",
            "detail": f"no result within {limit} s",
            "seconds": round(time.time() - start, 1),
        }


def conditions() -> dict:
    """Versions, machine and load, written with every row."""
    return breadth_rows.conditions("timm")


def load_rows() -> dict[str, dict]:
    """The latest row of every family."""
    return breadth_rows.latest_rows(JSONL, "family")


def table(rows: list[dict]) -> str:
    """Markdown summary (pass rate, each refusal reason) and one line per family."""
    passed = [r for r in rows if r["status"] == "pass"]
    refused = [r for r in rows if r["status"] == "refused"]
    failed = [r for r in rows if r["status"] not in ("pass", "refused")]
    cond = rows[0].get("conditions", {}) if rows else {}
    total = len(json.loads(MODELS.read_text())) if MODELS.exists() else len(rows)
    loads = [r["conditions"]["load_1min"] for r in rows if "conditions" in r]
    out = [
        "# timm breadth: prune (l1, ratio 0.5) -> ONNX export -> parity, smallest model per family\n",
        f"Command: `{COMMAND}`\n",
        f"Conditions: torch {cond.get('torch')}, timm {cond.get('timm')}, torch-pruning "
        f"{cond.get('torch_pruning')}, onnxruntime {cond.get('onnxruntime')}; {cond.get('cpus')} CPUs "
        f"shared with other jobs (1-minute load {min(loads, default=0)} to {max(loads, default=0)} "
        f"when the models started), {cond.get('threads')} torch threads. Export: "
        f"`--exporter torchscript --samples 4` (`--exporter auto` where the TorchScript exporter "
        "cannot export the model: the exporter column says which one made the graph), parity on every "
        "output at the default tolerances (rtol 1e-3, atol 1e-5; beyond them only as float32 rounding "
        "shown against a float64 run). Seconds: wall time of the model's process (input probe, prune, "
        "export and parity) on that loaded machine.\n",
        f"**{len(passed)} of {len(rows)} families pass** ({100 * len(passed) / max(len(rows), 1):.0f}%); "
        f"{len(refused)} refused cleanly (exit 3, reason below); {len(failed)} fail. "
        f"{len(rows)} of the {total} families are in this run.\n",
    ]
    out.append(
        "Reading: models have random weights (timm's init) and random inputs. MACs after / before is "
        "theoretical (counted, not timed). Parity compares ONNX Runtime with the pruned PyTorch "
        "model on every output; a max relative error of 0 means equal outputs (an untrained model "
        "with zero-initialised layers can give near-constant logits, so parity there says less). "
        "Families missing from the table were not reached in this run; the command resumes "
        "where it stopped.\n"
    )
    if refused or failed:
        out.append("## Not passing\n")
        out += [
            f"- **{r['family']}** (`{r['model']}`): {r['status']}: {r.get('detail', '')}"
            for r in sorted(refused + failed, key=lambda r: r["family"])
        ]
        out.append("")
    out += [
        "## All families\n",
        "| family | model | input | status | MACs before | MACs after / before | exporter | parity (max rel err) | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["family"]):
        ratio = (
            f"{r['macs_after'] / r['macs_before']:.3f}"
            if r.get("macs_before") and r.get("macs_after")
            else ""
        )
        parity = ", ".join(
            f"{'ok' if p['passed'] else 'FAIL'} ({p['max_rel_error']:.1e}"
            f"{'; float32 rounding vs float64' if p.get('passed_by') else ''})"
            for p in r.get("parity", [])
            if p.get("max_rel_error") is not None
        )
        out.append(
            f"| {r['family']} | {r['model']} | {r.get('input', '')} | {r['status']} | "
            f"{r.get('macs_before') or ''} | {ratio} | {r.get('exporter') or ''} | {parity} | "
            f"{r.get('seconds', '')} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> None:
    global JSONL, TABLE, MODELS
    if "--out" in argv:  # another place for the three files (a smoke run, a second machine)
        at = argv.index("--out")
        stem, argv = Path(argv[at + 1]), argv[:at] + argv[at + 2 :]
        JSONL, TABLE = stem.with_suffix(".jsonl"), stem.with_suffix(".md")
        MODELS = stem.parent / f"{stem.name}_models.json"
    JSONL.parent.mkdir(parents=True, exist_ok=True)
    if argv[:1] == ["--one"]:
        print(json.dumps(check(argv[1], argv[2])), flush=True)
        return
    shard = (0, 1)
    if argv[:1] == ["--shard"]:  # --shard I/N: every N-th family from the I-th (N workers side by side)
        i, n = argv[1].split("/")
        shard, argv = (int(i), int(n)), argv[2:]
    if argv != ["--table"]:
        picks = families()
        wanted = argv or sorted(
            picks, key=lambda f: (f not in FIRST, FIRST.index(f) if f in FIRST else 0, picks[f]["params"])
        )
        done = load_rows() if not argv else {}
        cond = conditions()
        for family in wanted[shard[0] :: shard[1]]:
            if family in done or family not in picks:
                continue
            row = {
                **run_one(family, picks[family]["model"]),
                "conditions": {**cond, "load_1min": round(os.getloadavg()[0], 1)},
            }
            print(json.dumps(row), flush=True)
            with JSONL.open("a") as f:
                f.write(json.dumps(row) + "\n")
    TABLE.write_text(table(list(load_rows().values())))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Accuracy at equal measured latency: budgeted l1 against uniform l1 and NVIDIA FastNAS.

One trained model (``--model``, by default ``sample_models/resnet_wide.pt``, Fashion-MNIST), the
mobile profile (ONNX Runtime, one thread, batch 1), target speed-ups 1.5x, 2x and 3x, three fine-tuning seeds:

- **ours**: ``compress prune --method l1 --target-speedup T --sensitivity S`` (the budget engine:
  measured per-layer cost model, the sensitivity scan of ``compress sensitivity`` on the validation
  split, the pruned model measured against the dense one); one run per seed, so the landing's own
  measurement noise is part of the figures.
- **uniform**: bare torch-pruning (``MagnitudePruner``, L1 norm, the same ratio in every group,
  the classifier kept) at the ratio whose measured speed-up is closest to ours (mean over the
  seeds), chosen from a grid of measured ratios.
- **uniform8**: the same with torch-pruning's ``round_to=8``, every width a multiple of 8 like ours
  (ONNX Runtime's blocked convolution kernels take channels in blocks of 8 on AVX2: a width off the
  block can cost more time than the channels it removed).
- **fastnas**: NVIDIA Model Optimizer FastNAS (``mtp.prune(mode="fastnas")``, validation accuracy as
  the score, channel counts in multiples of 8 like ours) limited to the FLOPs fraction of ours,
  run by ``benchmarks/peers/fastnas_prune.py`` in its own environment (``--peer-python``).

Every pruned model is then measured the same way (exported to ONNX, timed interleaved with the
dense model, speed-up = median of pair-by-pair ratios) and fine-tuned with the same budget (one
epoch, or ``--max-batches`` steps of it) of cross-entropy at ``compress``'s training defaults (Adam, one-cycle to 3e-3, batch 128),
seeded; accuracy is top-1 on the full test split (10,000 images). The dense model fine-tuned the
same way gives the ceiling of that budget. With several ``--lrs``, each method (per target) and the
dense model fine-tune at the peak learning rate whose first-seed run ends with the best validation
accuracy. Stages are cached in ``--work`` (one folder per model, shared by every fine-tuning
setting, so they compare the same pruned models), so an interrupted run resumes.

    FASTNAS_PYTHON=PEER/bin/python python -m benchmarks.accuracy_at_latency
    python -m benchmarks.accuracy_at_latency --targets 2 --seeds 0 --max-batches 20 --out OUT  # smoke

Command (from the repository root)::

    FASTNAS_PYTHON=PEER/bin/python python -m benchmarks run accuracy_at_latency

where PEER is a virtual environment with ``nvidia-modelopt[torch]==0.47.0 requests huggingface_hub
torchprofile==0.0.4`` and the same torch (without it FastNAS is left out).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.breadth_rows import load

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
MODEL = ROOT / "sample_models" / "resnet_wide.pt"
GRID = tuple(round(0.05 + 0.025 * i, 3) for i in range(31))  # uniform ratios 0.05 .. 0.8
METHODS = ("ours", "uniform", "uniform8", "fastnas")
UNIFORM = {"uniform": None, "uniform8": 8}  # uniform methods and their round_to


class Study:
    def __init__(self, args: argparse.Namespace):
        import torch

        from compressor.io.artifact import load_model
        from compressor.io.data import load_data

        torch.set_num_threads(args.threads)
        self.args = args
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.handle = load_model(str(args.model))
        self.train = load_data("fashion-mnist", "train")
        self.val = load_data("fashion-mnist", "val")
        self.test = load_data("fashion-mnist", "test")
        self.example = torch.zeros(self.handle.input_shape)
        # fine-tuning settings other than compress's default keep their own rows and state
        tag = "" if args.lrs == [None] else "_lr" + "_".join(f"{lr:g}" for lr in args.lrs)
        self.rows_file, self.state_file = f"rows{tag}.json", f"state{tag}.json"
        self.state = self._read(self.state_file, {}) or self._models_state()

    # ---- cache -------------------------------------------------------------------------------
    def _read(self, name: str, default):
        path = self.work / name
        return json.loads(path.read_text()) if path.exists() else default

    def _models_state(self) -> dict:
        """The pruned models' entries of the default state (plans, ratios, FastNAS runs), so that
        another fine-tuning setting compares the same models."""
        keep = ("ours_", "uniform_", "fastnas_")
        state = self._read("state.json", {})
        return {k: v for k, v in state.items() if k in ("dense", "sensitivity_seconds") or k.startswith(keep)}

    def save(self) -> None:
        (self.work / self.state_file).write_text(json.dumps(self.state, indent=1))

    # ---- measurement -------------------------------------------------------------------------
    def meter(self):
        from compressor.pruning.structured.budget.config import BudgetConfig
        from compressor.pruning.structured.budget.meters import LatencyMeter

        if not hasattr(self, "_meter"):
            folder = self.work / "onnx"
            folder.mkdir(exist_ok=True)
            budget = BudgetConfig(target_speedup=2.0, profile="mobile", min_time_s=self.args.min_time)
            self._meter = LatencyMeter(self.handle, budget, folder)
        return self._meter

    def figures(self, module) -> dict:
        from compressor.stats import count_macs, count_params

        reading = self.meter().compare(module)
        return {
            "speedup": reading.factor,
            "dense_ms": reading.dense,
            "pruned_ms": reading.pruned,
            "macs": count_macs(module, self.example),
            "params": count_params(module)[0],
        }

    def dense_figures(self) -> dict:
        from compressor.stats import count_macs, count_params
        from compressor.train import evaluate

        if "dense" not in self.state:
            module = self.handle.module
            self.state["dense"] = {
                "macs": count_macs(module, self.example),
                "params": count_params(module)[0],
                "accuracy": evaluate(module, self.test, progress_bar=False)["accuracy"],
                "ms": self.meter().dense(),
            }
            self.save()
        return self.state["dense"]

    # ---- the three methods -------------------------------------------------------------------
    def sensitivity(self) -> str:
        from compressor.api import ModelSpec
        from compressor.api.sensitivity import sensitivity
        from compressor.pruning.structured.budget.sensitivity import SensitivityConfig

        out = self.work / "sensitivity"
        if not (out / "sensitivity.json").exists():
            start = time.perf_counter()
            sensitivity(ModelSpec(str(self.args.model)), SensitivityConfig(data="fashion-mnist"), str(out))
            self.state["sensitivity_seconds"] = time.perf_counter() - start
            self.save()
        return str(out / "sensitivity.json")

    def ours(self, target: float, seed: int):
        from compressor.api import ModelSpec, prune
        from compressor.io.artifact import load_model
        from compressor.pruning.base import PruneConfig
        from compressor.pruning.structured.budget.config import BudgetConfig

        path = self.work / f"ours_{target}_{seed}.pt"
        key = f"ours_{target}_{seed}"
        if key not in self.state:
            budget = BudgetConfig(
                target_speedup=target,
                profile="mobile",
                sensitivity=self.sensitivity() if self.args.sensitivity else None,
                cost_cache=str(self.work / "costmodel"),
            )
            start = time.perf_counter()
            r = prune(
                ModelSpec(str(self.args.model)),
                PruneConfig("l1", budget=budget),
                str(path),
                measure_input=False,
            )
            self.state[key] = {
                "landed": r.figures["landed"],
                "engine_speedup": r.figures["speedup"],
                "attempts": r.figures["attempts"],
                "seconds": time.perf_counter() - start,
            }
            self.save()
        return load_model(str(path)).module

    def uniform_module(self, ratio: float, round_to: int | None = None):
        import torch_pruning as tp

        module = copy.deepcopy(self.handle.module).eval()
        head = [m for m in module.modules() if isinstance(m, __import__("torch").nn.Linear)][-1]
        pruner = tp.pruner.MagnitudePruner(
            module,
            self.example,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=ratio,
            ignored_layers=[head],
            round_to=round_to,
        )
        pruner.step()
        return module

    def uniform_ratio(self, target: float, method: str = "uniform") -> float:
        """The grid ratio whose latency matches ours: bisection on the grid, each candidate timed
        interleaved with our seed-0 model (a pair-by-pair ratio, robust to the machine's spells)."""
        from compressor.pruning.structured.budget.config import BudgetConfig
        from compressor.pruning.structured.budget.meters import LatencyMeter

        key = f"{method}_{target}"
        if key in self.state:
            return self.state[key]["ratio"]
        reference = self.ours(target, self.args.seeds[0])
        folder = self.work / f"onnx_match_{method}_{target}"
        folder.mkdir(exist_ok=True)
        budget = BudgetConfig(target_speedup=2.0, profile="mobile", min_time_s=self.args.min_time)
        meter = LatencyMeter(dataclasses.replace(self.handle, module=reference), budget, folder)
        lo, hi, tried = 0, len(GRID) - 1, {}
        while lo <= hi:  # factor = ours ms / uniform ms grows with the ratio
            mid = (lo + hi) // 2
            tried[GRID[mid]] = meter.compare(self.uniform_module(GRID[mid], UNIFORM[method])).factor
            if tried[GRID[mid]] < 1.0:
                lo = mid + 1
            else:
                hi = mid - 1
        ratio = min(tried, key=lambda r: abs(tried[r] - 1.0))
        self.state[key] = {"ratio": ratio, "vs_ours": tried}
        self.save()
        return ratio

    def fastnas(self, target: float):
        import torch

        path = self.work / f"fastnas_{target}.pkl"
        if self.state.get(f"fastnas_{target}", {}).get("unreachable"):
            return None
        if not path.exists():
            dense = self.dense_figures()
            macs = statistics.mean(
                self.state[f"ours_{target}_{s}"]["measured"]["macs"] for s in self.args.seeds
            )
            share = f"{100 * macs / dense['macs']:.2f}%"
            data = self.work / "fastnas_data.pt"
            if not data.exists():
                calib, _ = self.train.take(2560, seed=0)
                vx, vy = self.val.take(2000, seed=0)
                torch.save({"calib": calib, "val_x": vx, "val_y": vy}, data)
                torch.save(self.handle.module, self.work / "dense.pkl")
            command = [
                self.args.peer_python,
                "-m",
                "benchmarks.peers.fastnas_prune",
                "--model",
                str(self.work / "dense.pkl"),
                "--data",
                str(data),
                "--flops",
                share,
                "--divisor",
                "8",
                "--checkpoint",
                str(self.work / "fastnas_search.pth"),
                "--out",
                str(path),
            ]
            start = time.perf_counter()
            done = subprocess.run(
                command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True
            )
            if done.returncode and "constraints can be satisfied" in done.stdout + done.stderr:
                self.state[f"fastnas_{target}"] = {"flops_limit": share, "unreachable": True}
                self.save()
                return None
            if done.returncode:
                raise SystemExit(f"FastNAS failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
            report = json.loads(done.stdout.strip().splitlines()[-1])
            self.state[f"fastnas_{target}"] = {
                "flops_limit": share,
                "seconds": time.perf_counter() - start,
                "peer_val_accuracy": report["val_accuracy"],
            }
            self.save()
        return torch.load(path, weights_only=False)

    # ---- recovery ----------------------------------------------------------------------------
    def finetune(self, module, seed: int, lr: float | None = None) -> dict:
        from compressor.train import TrainConfig, evaluate, fit

        before = evaluate(module, self.test, progress_bar=False)["accuracy"]
        cfg = TrainConfig(epochs=1, seed=seed, max_batches=self.args.max_batches)
        cfg = cfg if lr is None else dataclasses.replace(cfg, lr=lr)
        start = time.perf_counter()
        fit(module, self.train, cfg, description="fine-tune")
        return {
            "accuracy_before": before,
            "accuracy": evaluate(module, self.test, progress_bar=False)["accuracy"],
            "val_accuracy": evaluate(module, self.val, progress_bar=False)["accuracy"],
            "lr": cfg.lr,
            "finetune_seconds": time.perf_counter() - start,
        }

    def chosen_lr(self, name: str, make) -> float | None:
        """With several ``--lrs``, the peak learning rate whose fine-tuning of ``make()`` (seed
        ``--seeds[0]``) ends with the best validation accuracy; the runs are kept, so the first
        seed's row reuses its run. One learning rate (or none: ``compress``'s default) is used as is."""
        if len(self.args.lrs) == 1:
            return self.args.lrs[0]
        tried = self.state.setdefault("lr_selection", {}).setdefault(name, {})
        for lr in self.args.lrs:
            if str(lr) not in tried:
                tried[str(lr)] = self.finetune(make(), self.args.seeds[0], lr)
                self.save()
        return float(best_lr(tried))

    def tuned(self, name: str, make, module, seed: int) -> dict:
        """Fine-tuning figures of ``module`` (made by ``make``) for ``seed`` at the chosen learning
        rate; the selection fine-tunes fresh copies from ``make``."""
        lr = self.chosen_lr(name, make)
        if len(self.args.lrs) > 1 and seed == self.args.seeds[0]:
            return self.state["lr_selection"][name][str(lr)]
        return self.finetune(module, seed, lr)

    def dense_finetuned(self) -> list[float]:
        """Test accuracy of the dense model after the same fine-tuning, per seed: what the budget
        leaves of a model nothing was cut from (a pruned model rarely ends above it)."""
        for seed in self.args.seeds:
            key = f"dense_finetuned_{seed}"
            if key not in self.state:
                make = lambda: copy.deepcopy(self.handle.module)  # noqa: E731
                self.state[key] = self.tuned("dense", make, make(), seed)["accuracy"]
                self.save()
        return [self.state[f"dense_finetuned_{seed}"] for seed in self.args.seeds]

    def module(self, method: str, target: float, seed: int):
        if method == "ours":
            return self.ours(target, seed)
        if method in UNIFORM:
            return self.uniform_module(self.uniform_ratio(target, method), UNIFORM[method])
        return self.fastnas(target)

    def run(self) -> list[dict]:
        rows = self._read(self.rows_file, [])
        done = {(r["method"], r["target"], r["seed"]) for r in rows}
        self.dense_figures()
        for target in self.args.targets:
            for seed in self.args.seeds:  # ours first: the others match its measured figures
                key = f"ours_{target}_{seed}"
                module = self.ours(target, seed)
                if "measured" not in self.state[key]:
                    self.state[key]["measured"] = self.figures(module)
                    self.save()
            for method in self.args.methods:
                for seed in self.args.seeds:
                    if (method, target, seed) in done:
                        continue
                    module = self.module(method, target, seed)
                    if module is None:  # the method cannot reach this budget
                        continue
                    row = {"method": method, "target": target, "seed": seed, "load": load()}
                    row.update(
                        self.state[f"ours_{target}_{seed}"]["measured"]
                        if method == "ours"
                        else self.figures(module)
                    )
                    fresh = lambda m=method, t=target, s=seed: self.module(m, t, s)  # noqa: E731
                    row.update(self.tuned(f"{method}_{target}", fresh, module, seed))
                    rows.append(row)
                    (self.work / self.rows_file).write_text(json.dumps(rows, indent=1))
                    print(json.dumps(row), flush=True)
        self.dense_finetuned()
        return rows


def mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    values = [v * scale for v in values]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def best_lr(tried: dict[str, dict]) -> str:
    """The learning rate (a key of ``tried``) whose fine-tuning ended with the best validation accuracy."""
    return max(tried, key=lambda lr: tried[lr]["val_accuracy"])


def lr_text(lr: float) -> str:
    """A learning rate as 3e-3."""
    return f"{lr:.0e}".replace("e-0", "e-")


def table(study: Study, rows: list[dict], command: str, start_load: str, seconds: float) -> str:
    import onnxruntime
    import torch

    from benchmarks.breadth_rows import torch_pruning_version

    s, dense = study.state, study.state["dense"]
    bases = [m for m in UNIFORM if m in study.args.methods] or ["uniform"]
    loads = [float(r["load"].split("/")[0]) for r in rows] or [0.0]
    steps = -(-len(study.train) // 128)
    cap = study.args.max_batches
    budget = "one epoch" if not cap or (steps and cap >= steps) else f"{cap} steps (of {steps} in an epoch)"
    from compressor.train import TrainConfig

    lrs = (
        lr_text(study.args.lrs[0] or TrainConfig().lr)
        if len(study.args.lrs) == 1
        else "the peak learning rate of "
        + ", ".join(lr_text(lr) for lr in study.args.lrs)
        + " with the best "
        f"validation accuracy after fine-tuning seed {study.args.seeds[0]}, chosen for each method and "
        "target and for the dense model"
    )
    lines = [
        "# Accuracy at equal measured latency\n",
        f"Command: `{command}`\n",
        f"Model: `{Path(study.args.model).resolve().relative_to(ROOT) if Path(study.args.model).resolve().is_relative_to(ROOT) else study.args.model}` (Fashion-MNIST), "
        f"dense test accuracy **{dense['accuracy']:.4f}**, {dense['macs'] / 1e6:.1f} M MACs, "
        f"{dense['params']:,} parameters, p50 {dense['ms']:.2f} ms on the mobile profile (ONNX Runtime, "
        "1 thread, batch 1). Speed-up: each pruned model exported and timed interleaved with the dense "
        f"one (median of pair-by-pair ratios). Fine-tuning: the same for every model, {budget} of "
        f"cross-entropy (Adam, one-cycle to {lrs}, batch 128), seeded; accuracy: top-1 on the 10,000 "
        "test images. Mean ± standard deviation over the seeds. The dense model fine-tuned the same "
        f"way reaches {mean_std(study.dense_finetuned(), 100)}%, the ceiling this budget leaves (a pruned "
        "model seldom ends above it): no method can gain more over uniform than that ceiling minus "
        "uniform's accuracy.\n",
        "| target | method | measured speed-up | MACs (M) | params | accuracy before fine-tuning | "
        "accuracy after fine-tuning | " + " | ".join(f"vs {b} (points)" for b in bases) + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(bases),
    ]
    by = {}
    for r in rows:
        by.setdefault((r["target"], r["method"]), []).append(r)
    for target in study.args.targets:
        for method in study.args.methods:
            group = by.get((target, method))
            if not group:
                continue
            gains = []
            for b in bases:
                base = by.get((target, b))
                gains.append(
                    f"{100 * (statistics.mean(r['accuracy'] for r in group) - statistics.mean(r['accuracy'] for r in base)):+.2f}"
                    if base and method != b
                    else ""
                )
            lines.append(
                f"| {target}x | {method} | {mean_std([r['speedup'] for r in group])}x | "
                f"{mean_std([r['macs'] for r in group], 1e-6)} | {mean_std([r['params'] for r in group], 1, 0)} | "
                f"{mean_std([r['accuracy_before'] for r in group], 100)}% | "
                f"{mean_std([r['accuracy'] for r in group], 100)}% | " + " | ".join(gains) + " |"
            )
    lines += ["", "Per method and target:\n"]
    for target in study.args.targets:
        ours = [s[f"ours_{target}_{seed}"] for seed in study.args.seeds if f"ours_{target}_{seed}" in s]
        if ours:
            engine = ", ".join(f"{o['engine_speedup']:.2f}" for o in ours)
            lines.append(
                f"- {target}x, ours: landed {sum(o['landed'] for o in ours)} of {len(ours)} "
                f"(the engine's own measured speed-ups {engine}; "
                f"{statistics.mean(o['seconds'] for o in ours):.0f} s per run)"
            )
        for method in [m for m in UNIFORM if f"{m}_{target}" in s]:
            u = s[f"{method}_{target}"]
            tried = ", ".join(
                f"{r}: {v:.2f}" for r, v in sorted(u["vs_ours"].items(), key=lambda kv: float(kv[0]))
            )
            lines.append(
                f"- {target}x, {method}: ratio {u['ratio']}, chosen by bisection, each candidate timed "
                f"interleaved with our seed-{study.args.seeds[0]} model (ratio: our latency / its latency: {tried})"
            )
        if s.get(f"fastnas_{target}", {}).get("unreachable"):
            lines.append(
                f"- {target}x, fastnas: no subnet of its search space is within {s[f'fastnas_{target}']['flops_limit']} "
                "of the dense FLOPs (its smallest keeps 5% of each layer's channels, at least 8)"
            )
        elif f"fastnas_{target}" in s:
            f = s[f"fastnas_{target}"]
            lines.append(
                f"- {target}x, fastnas: FLOPs limit {f['flops_limit']} of the dense model, search "
                f"{f['seconds']:.0f} s (validation accuracy before fine-tuning {f['peer_val_accuracy']:.4f})"
            )
    for name, tried in s.get("lr_selection", {}).items():
        chosen = best_lr(tried)
        scores = ", ".join(f"{lr_text(float(lr))}: {t['val_accuracy']:.4f}" for lr, t in tried.items())
        label = "the dense model" if name == "dense" else "{} at {}x".format(*name.split("_"))
        lines.append(
            f"- fine-tuning of {label}: lr {lr_text(float(chosen))} (validation accuracy at each lr: {scores})"
        )
    if "sensitivity_seconds" in s:
        lines.append(f"- sensitivity scan (once, reused by every target): {s['sensitivity_seconds']:.0f} s")
    lines += [
        "",
        "## Conditions\n",
        f"- {os.cpu_count()}-core CPU ({platform.machine()}), no GPU; training and evaluation with "
        f"{study.args.threads} threads; 1-minute load average {min(loads):.1f} to {max(loads):.1f} when the "
        f"rows were measured (other jobs shared the machine: latency ratios are interleaved, so both "
        f"models of a pair saw the same load); {study.state.get('elapsed_s', seconds) / 60:.0f} min in all.",
        f"- Python {platform.python_version()}, torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}, torch-pruning {torch_pruning_version()}"
        + (
            "; FastNAS from nvidia-modelopt 0.47.0 in a separate environment."
            if "fastnas" in study.args.methods
            else "."
        ),
    ]
    return "\n".join(lines) + "\n"


def default_work(args: argparse.Namespace) -> str:
    """The cache folder: one per model and per setting that shapes its pruned models or rows
    (the output's folder, the sensitivity scan, the timing, the fine-tuning steps), shared by the
    ``--lrs`` settings so that they compare the same pruned models; a smoke run into a temporary
    folder never reads a recorded run's cache."""
    import hashlib

    shape = [str(Path(args.out).resolve().parent), args.sensitivity, args.min_time, args.max_batches]
    key = hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:8]
    return str(Path(tempfile.gettempdir()) / f"compressor_aal_{Path(args.model).stem}_{key}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(MODEL))
    p.add_argument("--targets", nargs="*", type=float, default=[1.5, 2.0, 3.0])
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--methods", nargs="*", default=["ours", "uniform", "fastnas"], choices=METHODS)
    p.add_argument(
        "--peer-python",
        default=os.environ.get("FASTNAS_PYTHON"),
        help="interpreter of the FastNAS environment (default: $FASTNAS_PYTHON)",
    )
    p.add_argument("--no-sensitivity", dest="sensitivity", action="store_false")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-time", type=float, default=None, help="seconds per latency measurement")
    p.add_argument("--max-batches", type=int, default=None, help="cap fine-tuning steps (smoke runs)")
    p.add_argument(
        "--lrs",
        nargs="*",
        type=float,
        default=[None],
        help="peak learning rates; with several, each method (and the dense ceiling) fine-tunes at "
        "the one with the best validation accuracy on the first seed (default: compress's); the "
        "pruned models are those of the default run, read from the same --work cache",
    )
    p.add_argument(
        "--work", default=None, help="cache folder, resumed when it exists (default: in the temp folder)"
    )
    p.add_argument("--out", default=str(RESULTS / "accuracy_at_latency"))
    args = p.parse_args()
    if "fastnas" in args.methods and not args.peer_python:
        args.methods = [m for m in args.methods if m != "fastnas"]
        print("no --peer-python: FastNAS left out", file=sys.stderr)
    args.work = args.work or default_work(args)
    shown = [a for i, a in enumerate(sys.argv[1:]) if a != "--work" and sys.argv[i : i + 1] != ["--work"]]
    command = " ".join(["python -m benchmarks.accuracy_at_latency", *shown])  # the cache folder is local
    start, start_load = time.perf_counter(), load()
    study = Study(args)
    rows = study.run()
    study.state["elapsed_s"] = study.state.get("elapsed_s", 0.0) + time.perf_counter() - start
    study.save()
    Path(args.out + ".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    Path(args.out + ".md").write_text(table(study, rows, command, start_load, time.perf_counter() - start))
    print(Path(args.out + ".md").read_text())


if __name__ == "__main__":
    main()

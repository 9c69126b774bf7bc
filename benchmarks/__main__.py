"""``python -m benchmarks list`` and ``python -m benchmarks run NAME [--config CFG] [--quick] [ARGS...]``.

Run from the repository root. ``run`` starts ``python -m benchmarks.MODULE`` with the configuration's
arguments, then ARGS (passed through, so a later option overrides the configuration's; put ``--``
before ARGS that the runner has too, e.g. ``run sparse_storage -- --help``). ``--quick``
adds the study's smoke-run arguments and writes into a temporary folder instead of
``benchmarks/results``, so a smoke run never replaces a recorded result. A full run that writes its
Markdown result without a ``## Conditions`` section gets one appended: the command, the machine,
the load at the start and end, the wall time and the versions of the pinned packages.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.studies import RESULTS, ROOT, STUDIES, Config, Study, study


def command(
    s: Study, config: str, results: str = RESULTS, quick: bool = False, extra: tuple[str, ...] = ()
) -> list[str]:
    """The ``python -m benchmarks.MODULE ...`` argument list of one configuration."""
    cfg = s.configs[config]
    args = [a.replace("{results}", results) for a in cfg.args]
    if quick:
        args += [a.replace("{results}", results) for a in cfg.quick or ()]
    return [sys.executable, "-m", f"benchmarks.{s.module}", *args, *extra]


def runner_command(s: Study, config: str) -> str:
    """The command a reader types to make this configuration's result."""
    flag = "" if config == s.default else f" --config {config}"
    return f"python -m benchmarks run {s.name}{flag}"


def listing() -> str:
    """Every study: name, description, and per configuration the result file and its state."""
    lines = []
    for s in STUDIES:
        lines.append(f"{s.name}  (benchmarks/{s.module}.py): {s.description}")
        for name, cfg in s.configs.items():
            lines.append(f"    {name:<32} {cfg.result}{_state(cfg)}")
    return "\n".join(lines)


def listing_json() -> str:
    """The registry as one JSON document: studies, modules, configurations, results, arguments."""
    return json.dumps(
        [
            {
                "name": s.name,
                "module": f"benchmarks.{s.module}",
                "description": s.description,
                "configs": [
                    {
                        "name": name,
                        "result": cfg.result,
                        "args": list(cfg.args),
                        "quick": None if cfg.quick is None else list(cfg.quick),
                        "command": runner_command(s, name),
                    }
                    for name, cfg in s.configs.items()
                ],
            }
            for s in STUDIES
        ],
        indent=1,
    )


def _state(cfg: Config) -> str:
    marks = [] if (ROOT / cfg.result).exists() else ["not run yet"]
    marks += ["--quick"] if cfg.quick is not None else []
    return f"  [{', '.join(marks)}]" if marks else ""


def run(name: str, config: str | None, quick: bool, extra: list[str]) -> int:
    """Run one configuration from the repository root; the script's exit code."""
    s = study(name)
    config = config or s.default
    if config not in s.configs:
        raise KeyError(
            f"study {name} has no configuration {config!r}; configurations: {', '.join(s.configs)}"
        )
    if quick and s.configs[config].quick is None:
        raise KeyError(
            f"study {name} --config {config} has no --quick form; run it in full or pass arguments"
        )
    with tempfile.TemporaryDirectory(prefix="benchmarks-quick-") as tmp:
        argv = command(s, config, tmp if quick else RESULTS, quick, tuple(extra))
        print("+ " + shlex.join(["python", *argv[1:]]), file=sys.stderr, flush=True)
        start, load = time.time(), os.getloadavg()
        code = subprocess.run(argv, cwd=ROOT).returncode
    result = ROOT / s.configs[config].result
    if (
        not quick
        and code == 0
        and result.suffix == ".md"
        and result.is_file()
        and result.stat().st_mtime >= start
    ):
        add_conditions(result, shlex.join(["python", *argv[1:]]), start, load)
    return code


VERSIONS = ("torch", "torchvision", "torch-pruning", "onnx", "onnxruntime", "timm")


def cpu_features() -> str:
    """The vector extensions int8 and float kernels dispatch on (Linux; empty elsewhere): int8
    accuracy and speed differ with and without VNNI."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    names = {"avx2": "AVX2", "avx512f": "AVX-512F", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI"}
    found = [label for flag, label in names.items() if flag in flags]
    if found and not any("VNNI" in f for f in found):
        found.append("no VNNI")
    return ", ".join(found)


def conditions(cmd: str, start: float, load: tuple[float, float, float]) -> str:
    """The ``## Conditions`` section of a result made by ``cmd`` since ``start`` (load then: ``load``)."""
    versions = []
    for name in VERSIONS:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    end = os.getloadavg()
    minutes = (time.time() - start) / 60
    return (
        "## Conditions\n\n"
        f"- Command: `{cmd}` (from the repository root), {minutes:.1f} min, finished "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n"
        f"- Machine: {os.cpu_count()} CPUs ({', '.join(filter(None, [platform.machine(), cpu_features()]))}), "
        f"{platform.system()}; load average "
        f"(1/5/15 min) {'/'.join(f'{v:.1f}' for v in load)} at the start, "
        f"{'/'.join(f'{v:.1f}' for v in end)} at the end. Threads: as the study states above, "
        "else torch's and ONNX Runtime's defaults.\n"
        f"- Versions: Python {platform.python_version()}, {', '.join(versions)}.\n"
    )


def add_conditions(result: Path, cmd: str, start: float, load: tuple[float, float, float]) -> None:
    """Append the run's conditions to ``result`` unless the study wrote its own."""
    text = result.read_text()
    if "\n## Conditions" in text:
        return
    result.write_text(text.rstrip("\n") + "\n\n" + conditions(cmd, start, load))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    list_parser = sub.add_parser("list", help="every study, its configurations and result files")
    list_parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    run_parser = sub.add_parser("run", help="run one study configuration")
    run_parser.add_argument("name", choices=[s.name for s in STUDIES], metavar="NAME")
    run_parser.add_argument("--config", help="a configuration name (default: the study's first)")
    run_parser.add_argument("--quick", action="store_true", help="a small smoke run into a temporary folder")
    args, extra = parser.parse_known_args(argv)
    if args.action == "list":
        try:
            print(listing_json() if args.json else listing(), flush=True)
        except BrokenPipeError:  # `| head`: the reader left; stop quietly (Python's documented way)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if extra[:1] == ["--"]:
        extra = extra[1:]
    try:
        return run(args.name, args.config, args.quick, extra)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Every fenced ``compress`` command in README.md and docs/*.md runs as documented, or says why not.

The rules, kept visible here because the docs follow them:

* A command is a line of a ```bash, ```sh or ```console block that starts with ``compress `` (in a
  console block, ``$ compress ``); a trailing ``\\`` continues it on the next line and ``# ...`` is a
  comment.
* A block whose fence follows ``<!-- not run: REASON -->`` is not run; the reason is required.
* Every other command runs, in the file's order, in one temporary folder per file that links
  ``sample_models/``, ``docs/`` and ``benchmarks/`` (so commands chain: prune writes what export
  reads), through the CLI in this process. It must exit 0, or N when its comment says ``exit N``.
* Commands outside a not-run block must be quick: :func:`slow_reason` names what is not (sweeps,
  sensitivity analyses, training without a batch cap, measured latency targets), and such a command
  fails the test with what to do. bench gets :data:`QUICK_BENCH` appended for the options the line
  does not set: they shorten the timing, not what is checked.
* README.md's Python example runs as written, in a folder of its own.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import HAS_FASHION, ROOT, invoke

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = ("bash", "sh", "console")
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
EXPECTED_EXIT = re.compile(r"#.*\bexits? (\d+)")
LINKED = ("sample_models", "docs", "benchmarks")
QUICK_BENCH = {"--warmup": "2", "--runs": "10", "--min-time": "0.1", "--max-time": "1"}
"""Short timing for the commands' bench runs (flags the line itself sets are kept)."""


@dataclass(frozen=True)
class Command:
    """One documented command: where it is, its words, and why it is not run (None: it runs)."""

    doc: str
    line: int
    text: str
    not_run: str | None

    @property
    def args(self) -> list[str]:
        """The words after ``compress``, comments dropped."""
        return shlex.split(self.text, comments=True)[1:]

    @property
    def expected_exit(self) -> int:
        found = EXPECTED_EXIT.search(self.text)
        return int(found.group(1)) if found else 0

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def commands(path: Path) -> list[Command]:
    """The fenced compress commands of one Markdown file, in order."""
    doc, found = str(path.relative_to(ROOT)), []
    lang, not_run, before, pending = None, None, "", None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if raw.startswith("```"):
            if lang is None:
                lang = raw[3:].strip()
                marked = NOT_RUN.search(before)
                not_run = marked.group(1) if marked else None
            else:
                lang, before = None, ""  # a marker applies to the next block only
            continue
        if lang is None:
            before = raw if raw.strip() else before
            continue
        if lang not in SHELL_BLOCKS:
            continue
        text = raw.strip()
        if pending is not None:
            pending = (pending[0], pending[1] + " " + text.rstrip("\\").strip())
        elif lang == "console" and text.startswith("$ compress "):
            pending = (number, text[2:].rstrip("\\").strip())
        elif text.startswith("compress "):
            pending = (number, text.rstrip("\\").strip())
        if pending is not None and not text.endswith("\\"):
            found.append(Command(doc, pending[0], pending[1], not_run))
            pending = None
    return found


ALL = [c for path in DOCS for c in commands(path)]


def slow_reason(args: list[str]) -> str | None:
    """Why a command is too slow for this test (None: it is quick)."""
    name, flags = args[0], set(args)
    if name in ("sweep", "sensitivity"):
        return f"compress {name} prunes and measures many models"
    if flags & {"--target-speedup", "--target-latency-ms"}:
        return "a latency target times every layer"
    trains = name in ("finetune", "distill", "slim") or bool(flags & {"--finetune-epochs", "--distill-from"})
    if trains and not flags & {"--max-batches", "--finetune-batches"}:
        return "it trains without a batch cap (--max-batches / --finetune-batches)"
    if any(a.startswith(("torchvision:", "timm:")) for a in args):
        return "it builds a torchvision or timm model"
    return None


def shell_syntax(args: list[str]) -> str | None:
    """A shell construct the in-process run cannot reproduce."""
    return next((a for a in args if a in {"|", ">", ">>", "&&", ";", "<"} or a.startswith("$")), None)


def test_docs_have_commands_and_some_run():
    assert len(ALL) > 30, "the command extraction found too few commands"
    assert sum(c.not_run is None for c in ALL) >= 20


@pytest.mark.parametrize("command", ALL, ids=[f"{c.doc}:{c.line}" for c in ALL])
def test_every_command_runs_here_or_says_why_not(command):
    if command.not_run is not None:
        assert len(command.not_run) > 10, f"{command}: give the reason in <!-- not run: REASON -->"
        return
    args = command.args
    problem = shell_syntax(args) and "shell syntax" or slow_reason(args)
    assert problem is None, (
        f"{command}\n  is not quick ({problem}): make it quick, or put "
        "<!-- not run: REASON --> before its block"
    )


def _quick(args: list[str]) -> list[str]:
    if args[0] != "bench":
        return args
    return args + [part for flag, value in QUICK_BENCH.items() if flag not in args for part in (flag, value)]


def _workdir(tmp_path: Path) -> Path:
    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


RUN_DOCS = sorted({c.doc for c in ALL if c.not_run is None})


@pytest.mark.parametrize("doc", RUN_DOCS)
def test_documented_commands_exit_as_documented(doc, tmp_path, monkeypatch):
    runnable = [c for c in ALL if c.doc == doc and c.not_run is None]
    if not HAS_FASHION and any("fashion-mnist" in c.text for c in runnable):
        pytest.skip(f"{doc} uses Fashion-MNIST: apt-get install -y dataset-fashion-mnist")
    monkeypatch.chdir(_workdir(tmp_path))
    for command in runnable:
        result = invoke(*_quick(command.args))
        assert result.code == command.expected_exit, (
            f"{command}\n  exit {result.code}, documented {command.expected_exit}\n{result.stderr[-2000:]}"
        )


def readme_python_example() -> str:
    """The first ```python block after the README's "From Python" heading."""
    text = (ROOT / "README.md").read_text().split("## From Python", 1)[1]
    return text.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.skipif(not HAS_FASHION, reason="apt-get install -y dataset-fashion-mnist")
def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    code = readme_python_example()
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(_workdir(tmp_path))
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    assert "parity True" in printed
    assert (tmp_path / "small.pt").is_file() and (tmp_path / "small.onnx").is_file()

"""The benchmark suite: ``python -m benchmarks list`` names every study, every registered script is
importable without running, smoke runs write outside ``benchmarks/results``, links into
``benchmarks/`` resolve, and no test imports ``benchmarks`` (tests stand on the library alone).

The registry is read through ``python -m benchmarks list --json``; no study runs here.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Top-level statements a script may hold: importing it must not run the study.
QUIET = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
OUTPUTS = ("--out", "--workdir", "--table")


def _benchmarks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


@pytest.fixture(scope="module")
def studies() -> list[dict]:
    proc = _benchmarks("list", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_list_names_every_study_configuration_and_result(studies):
    proc = _benchmarks("list")
    assert proc.returncode == 0, proc.stderr
    assert len(studies) >= 20 and len({s["name"] for s in studies}) == len(studies)
    for s in studies:
        assert re.search(rf"^{re.escape(s['name'])}\s", proc.stdout, re.MULTILINE), s["name"]
        for cfg in s["configs"]:
            line = rf"^\s+{re.escape(cfg['name'])}\s+{re.escape(cfg['result'])}"
            assert re.search(line, proc.stdout, re.MULTILINE), (s["name"], cfg["name"])


def test_every_study_module_imports_without_running(studies):
    """Each module is found as ``benchmarks.NAME`` and its top level only defines: a study started on
    import would run under ``python -m benchmarks list``."""
    for s in studies:
        spec = importlib.util.find_spec(s["module"])
        assert spec is not None and spec.origin is not None, s["module"]
        for node in ast.parse(Path(spec.origin).read_text()).body:
            if isinstance(node, ast.If):  # only the `if __name__ == "__main__":` guard
                assert "__main__" in ast.unparse(node.test), (s["module"], node.lineno)
            elif isinstance(node, ast.For):  # a table built from constants
                assert all(isinstance(n, ast.Assign) for n in node.body), (s["module"], node.lineno)
            elif isinstance(node, ast.Expr):  # the docstring
                assert isinstance(node.value, ast.Constant), (s["module"], node.lineno)
            else:
                assert isinstance(node, QUIET), (s["module"], node.lineno)


def _outputs(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a in OUTPUTS]


def test_outputs_go_through_the_results_folder(studies):
    """Every output argument names ``{results}``: a full run writes the registered result into
    benchmarks/results, a ``--quick`` run into a temporary folder, so a smoke run replaces nothing."""
    for s in studies:
        for cfg in s["configs"]:
            outs = _outputs(cfg["args"]) + _outputs(cfg["quick"] or [])
            assert all(o.startswith("{results}/") for o in outs), (s["name"], cfg["name"], outs)
            if cfg["quick"] is not None:
                assert outs, f"{s['name']} --config {cfg['name']}: a smoke run would write into the results"
            if "--out" in cfg["args"]:
                out = Path(_outputs(cfg["args"])[0])
                assert Path(cfg["result"]).stem.startswith(out.stem), (s["name"], cfg["name"])


def test_unknown_configuration_is_a_usage_error():
    proc = _benchmarks("run", "structured_speed", "--config", "nope")
    assert proc.returncode == 2
    assert "nope" in proc.stderr and "mobilenet_spin" in proc.stderr


LINK = re.compile(r"\]\(([^)#\s]+)")
DOCS = [
    "README.md",
    "CONTRIBUTING.md",
    "benchmarks/README.md",
    *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.md"))),
]


@pytest.mark.parametrize("doc", DOCS)
def test_links_into_benchmarks_resolve(doc):
    """Renaming a result file must not break a link to it."""
    path = ROOT / doc
    for target in LINK.findall(path.read_text()):
        resolved = (path.parent / target).resolve()
        if "://" not in target and resolved.is_relative_to(ROOT / "benchmarks"):
            assert resolved.exists(), f"{doc}: {target}"


def test_tests_import_nothing_from_benchmarks():
    """Tests stand on the library: a helper both need lives in ``compressor`` or in the test."""
    for path in sorted((ROOT / "tests").glob("**/*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "benchmarks" for n in names), f"{path.name} imports benchmarks"
        assert not re.search(r"sys\.path.*benchmarks", text), f"{path.name} puts benchmarks/ on sys.path"

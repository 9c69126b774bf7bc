"""The package is layered: no import cycles, nothing imports upward, the CLI talks to the API only.

The import graph is read from the source (every ``import`` statement, at module level or inside
a function), so an import that runs only when a command runs counts as much as one at start-up.
Layers, top to bottom: the package root, ``cli``, ``api``, ``sweep``, ``recipe``, and the domain
packages below them (pruning, train, export, bench, io, ...). A module may import its own layer
(without cycles) or any layer below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "compressor"

LAYERS = ("compressor.cli", "compressor.api", "compressor.sweep", "compressor.recipe")
"""Named layers, top to bottom; the root package is above them and everything else below."""

CLI_HELPERS = (
    "compressor.errors",
    "compressor.registry",
    "compressor.defaults",
    "compressor.progress",
    "compressor.bench.report",
)
"""What the CLI may use besides ``compressor.api``: exit codes, names and defaults for ``--help``
(torch-free data), and presentation (the console, the bench report's Markdown)."""


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for file in PACKAGE.rglob("*.py"):
        parts = list(file.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = file
    return found


def imports(name: str, file: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source.

    ``from pkg import x`` counts as importing ``pkg.x`` when that is a module, else ``pkg``.
    Ancestor packages are left out: Python initialises them before any module inside, so they
    are part of every module's start, not an edge between modules.
    """
    is_package = file.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, is_package, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {m for m in found if m in known and m != name and m not in ancestors}


def _absolute(name: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = name.split(".") if is_package else name.split(".")[:-1]
    parts = parts[: len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, file, known) for name, file in known.items()}


def layer(module: str) -> int:
    """0 for the root package (and ``__main__``), 1.. for the named layers, then the domain layer."""
    if module in ("compressor", "compressor.__main__"):
        return 0
    for rank, prefix in enumerate(LAYERS, 1):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return len(LAYERS) + 1


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_sees_module_and_function_level_imports():
    edges = graph()
    assert "compressor.sweep.plan" in edges["compressor.sweep.engine"]  # module level
    assert "compressor.api.recipe" in edges["compressor.api.sweep"]  # inside run_point
    assert "compressor.io.artifact" in edges["compressor.io.spec"]  # inside ModelSpec.load


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_nothing_imports_upward():
    upward = sorted(f"{a} -> {b}" for a, targets in graph().items() for b in targets if layer(b) < layer(a))
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(upward)


def test_the_cli_talks_only_to_the_api():
    def allowed(target: str) -> bool:
        return target.startswith(("compressor.cli", "compressor.api")) or target in CLI_HELPERS

    stray = sorted(
        f"{a} -> {b}" for a, targets in graph().items() if layer(a) == 1 for b in targets if not allowed(b)
    )
    assert not stray, "the CLI reaches past compressor.api:\n" + "\n".join(stray)

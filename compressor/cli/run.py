"""``compress run``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from compressor.cli.common import DebugOpt, JsonOpt, console, execute


def run(
    recipe: Annotated[str, typer.Argument(help="Recipe file (.yaml).", show_default=False, metavar="RECIPE")],
    output_dir: Annotated[
        Optional[str],
        typer.Option(
            "--output-dir",
            "-o",
            help="Folder for the steps' outputs (default: the recipe's "
            "output_dir, else RECIPE_out beside the file).",
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only validate the recipe (keys, types, values); run nothing.")
    ] = False,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="A sweep point (SWEEP_DIR/points/ID.yaml): also store its result as "
            "points/ID.json, so compress sweep collects it (cluster runs).",
        ),
    ] = False,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run a recipe: prune -> fine-tune or distill -> eval -> export -> bench with gates, in one go.

    Each step takes exactly the settings of its command's config; unknown keys are exit 2 with the
    closest valid key. Every model step writes NN_KIND.pt in the output folder; bench measures the
    latest export. Exit 1 when a bench gate fails. A sweep point's recipe (SWEEP_DIR/points/*.yaml)
    reproduces that point.

    Example recipe (recipe.yaml):

    \b
      model: sample_models/simple_cnn.pt
      data: fashion-mnist
      threads: 1
      steps:
        - prune: {method: wanda, sparsity: 0.8, finetune_epochs: 1}
        - eval: {attack: fgsm, eps: 0.03}
        - export: {}
        - bench: {profile: mobile, gates: {max_size: 2MB, max_latency_ms: 5}}

    Examples:

      compress run recipe.yaml -o out/run1

      compress run recipe.yaml --check

      compress run sweep_out/points/wanda_0.8.yaml --json
    """

    def action():
        from compressor.api.recipe import load_recipe, run_recipe

        parsed = load_recipe(recipe, output_dir)
        if check:
            return _Checked(parsed)
        if record:
            return _record(recipe, parsed)
        return run_recipe(parsed, log=lambda line: console().print(line))

    execute(
        action, _render, json_out, debug, exit_code=lambda r: 0 if isinstance(r, _Checked) or r.passed else 1
    )


def _record(path: str, parsed):
    """Run a sweep point through the sweep's own runner, which stores points/ID.json."""
    from pathlib import Path

    from compressor.api.sweep import run_point
    from compressor.errors import EXIT_UNSUPPORTED, CompressorError, UsageError

    pid = parsed.meta.get("sweep_point")
    if not pid:
        raise UsageError(f"{path} is not a sweep point (no meta.sweep_point)", "drop --record")
    if parsed.output_dir != parsed.source.get("output_dir"):
        raise UsageError("--record keeps the sweep's own output folder", "drop -o")
    record = run_point(pid, parsed.source, str(Path(path).parent))
    if record["status"] != "ok":  # stored as such; the sweep shows it too
        raise CompressorError(
            f"point {pid} {record['status']}: {record.get('error')}", exit_code=EXIT_UNSUPPORTED
        )
    return _Recorded(record)


class _Recorded:
    """``--record``: the stored sweep record."""

    passed = True

    def __init__(self, record: dict) -> None:
        self.record = record

    def to_json(self) -> dict:
        return self.record


class _Checked:
    """``--check``: the validated recipe, nothing run."""

    def __init__(self, recipe) -> None:
        self.recipe = recipe

    def to_json(self) -> dict:
        return {
            "valid": True,
            "output_dir": self.recipe.output_dir,
            "steps": [s.kind for s in self.recipe.steps],
        }


def _render(r) -> None:
    from rich.table import Table

    out = console()
    if isinstance(r, _Recorded):
        out.print(
            f"point {r.record['id']}: {r.record['status']} in {r.record['seconds']:.0f} s, "
            f"accuracy {r.record['metrics'].get('accuracy')}; recorded for compress sweep"
        )
        return
    if isinstance(r, _Checked):
        out.print(
            f"recipe is valid: {' -> '.join(s.kind for s in r.recipe.steps)} "
            f"(outputs in {r.recipe.output_dir})"
        )
        return
    table = Table(title=f"compress run -> {r.output_dir}")
    for col in ("step", "kind", "output", "figures"):
        table.add_column(col)
    for row in r.steps:
        shown = {k: v for k, v in row.items() if k in _SHOWN}
        table.add_row(
            str(row["step"]),
            row["kind"],
            str(row["output"] or ""),
            ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()),
        )
    out.print(table)
    for g in r.gates:
        verdict = "[green]pass[/]" if g["passed"] else "[red bold]FAIL[/]"
        out.print(
            f"gate {g['name']} ({g['profile']}): limit {g['limit']}, value {_fmt(g['value'])}: {verdict}"
        )


_SHOWN = (
    "accuracy",
    "sparsity",
    "params",
    "macs",
    "size_bytes",
    "compressed_bytes",
    "robust_accuracy",
    "onnx_size_bytes",
    "latency_ms_p50_mobile",
    "latency_ms_p50_edge",
    "latency_ms_p50_server",
)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

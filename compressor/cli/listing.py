"""``compress list``."""

from __future__ import annotations

from compressor.cli.common import DebugOpt, JsonOpt, console, execute


class _Listing(dict):
    def to_json(self) -> dict:
        return dict(self)


def list_cmd(json_out: JsonOpt = False, debug: DebugOpt = False) -> None:
    """List pruning methods, export formats, bench backends and profiles, sample models, data
    sources and model sources."""

    def action():
        from compressor.api import list_all

        return _Listing(list_all())

    execute(action, _render, json_out, debug)


def _render(r) -> None:
    from rich.table import Table

    out = console()
    methods = Table(title="methods (compress prune --method NAME)")
    for col in ("name", "kind", "data", "N:M", "what", "paper", "own settings (defaults)"):
        methods.add_column(col)
    for m in r["methods"]:
        methods.add_row(
            m["name"],
            m["kind"],
            "yes" if m["needs_data"] else "",
            "yes" if m["supports_nm"] else "",
            m["summary"],
            m["paper"],
            " ".join(f"{s['name']}={_spelled(s['default'])}" for s in m["settings"]),
        )
    out.print(methods)
    formats = Table(title="export formats (compress export --format NAME)")
    for col in ("name", "file", "runs on", "what"):
        formats.add_column(col)
    for f in r["formats"]:
        formats.add_row(f["name"], ", ".join(f["suffixes"]), f["runtime"], f["summary"])
    out.print(formats)
    backends = Table(title="bench backends (chosen by the model's file)")
    for col in ("name", "times", "what"):
        backends.add_column(col)
    for b in r["backends"]:
        times = [f"{name} files" for name in b["formats"]] + ["PyTorch models"] * b["models"]
        backends.add_row(b["name"], ", ".join(times), b["summary"])
    out.print(backends)
    for key, title in (
        ("profiles", "bench profiles (--profile)"),
        ("samples", "sample models (sample:NAME)"),
        ("data_sources", "data sources (--data)"),
    ):
        _names(out, r[key], title, "name")
    _names(out, r["model_sources"], "model sources (a model named by reference)", "example")


def _spelled(value) -> str:
    """A default as --opt writes it: none, true, 0.5."""
    return str(value).lower() if value is None or isinstance(value, bool) else str(value)


def _names(out, rows: list[dict], title: str, key: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    table.add_column(key if key != "example" else "reference")
    table.add_column("what")
    for row in rows:
        table.add_row(escape(row[key]), escape(row["summary"]))  # summaries hold brackets: extras, specs
    out.print(table)

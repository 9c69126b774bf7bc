"""``compress list``."""

from __future__ import annotations

from compressor.cli.common import DebugOpt, JsonOpt, console, execute


class _Listing(dict):
    def to_json(self) -> dict:
        return dict(self)


def list_cmd(json_out: JsonOpt = False, debug: DebugOpt = False) -> None:
    """List pruning methods, bench profiles, sample models and data sources."""

    def action():
        from compressor.api import list_all

        return _Listing(list_all())

    execute(action, _render, json_out, debug)


def _render(r) -> None:
    from rich.table import Table

    out = console()
    methods = Table(title="methods (compress prune --method NAME)")
    for col in ("name", "kind", "data", "N:M", "what", "paper"):
        methods.add_column(col)
    for m in r["methods"]:
        methods.add_row(m["name"], m["kind"], "yes" if m["needs_data"] else "",
                        "yes" if m["supports_nm"] else "", m["summary"], m["paper"])
    out.print(methods)
    for key, title in (("profiles", "bench profiles (--profile)"), ("samples", "sample models (sample:NAME)"),
                       ("data_sources", "data sources (--data)")):
        table = Table(title=title)
        table.add_column("name")
        table.add_column("what")
        for row in r[key]:
            table.add_row(row["name"], row["summary"])
        out.print(table)

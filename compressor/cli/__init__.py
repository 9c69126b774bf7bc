"""The command line: typer only; parse flags -> config -> api call -> render. Heavy imports inside."""

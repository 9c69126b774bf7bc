#!/usr/bin/env bash
# Run the default (fast) test suite. Slow tests: bash scripts/test.sh -m slow
# Lint (ruff) and type checks (mypy, configured in pyproject.toml) run first; either failing fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m ruff check
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"

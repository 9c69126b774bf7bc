#!/usr/bin/env bash
# Run the default (fast) test suite in a random order (pytest-randomly); the order's seed is printed
# before and after the results. Slow tests: bash scripts/test.sh -m slow
# The same order again: bash scripts/test.sh --randomly-seed=N   File order: add -p no:randomly
# Lint and format checks (ruff) and type checks (mypy, configured in pyproject.toml) run first; any failing
# fails the run (fix formatting with: .venv/bin/python -m ruff format).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m ruff check
.venv/bin/python -m ruff format --check
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest -p randomly "$@"

#!/usr/bin/env bash
# Run the default (fast) test suite in a random order (pytest-randomly); the order's seed is printed
# before and after the results. Slow tests: bash scripts/test.sh -m slow
# The same order again: bash scripts/test.sh --randomly-seed=N   File order: add -p no:randomly
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -p randomly "$@"

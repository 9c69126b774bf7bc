#!/usr/bin/env bash
# Run the default (fast) test suite. Slow tests: bash scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest "$@"

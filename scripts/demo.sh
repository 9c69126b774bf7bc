#!/usr/bin/env bash
# The main job on a bundled sample model and bundled data; outputs land in out/.
set -euo pipefail
cd "$(dirname "$0")/.."
C=.venv/bin/compress
mkdir -p out
set -x
$C info sample_models/simple_cnn.pt
$C eval sample_models/simple_cnn.pt --data fashion-mnist

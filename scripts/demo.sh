#!/usr/bin/env bash
# The main job: prune -> export -> bench (with CI gates) of the bundled simple_cnn on Fashion-MNIST.
# Outputs land in out/. Exit code: 0 when every gate passes, 1 when a gate fails.
set -euo pipefail
cd "$(dirname "$0")/.."
C=.venv/bin/compress
mkdir -p out
set -x
# 1. physically remove half of the filters (L1 norm), keep widths multiples of 8, recover 1 epoch
$C prune sample_models/simple_cnn.pt --method l1 --ratio 0.5 --scope layer --round-to 8 \
  --data fashion-mnist --finetune-epochs 1 -o out/simple_cnn_l1.pt
# 2. export both to ONNX; parity with PyTorch is checked (exit 1 if ONNX Runtime disagrees)
$C export sample_models/simple_cnn.pt -o out/simple_cnn.onnx
$C export out/simple_cnn_l1.pt -o out/simple_cnn_l1.onnx --data fashion-mnist
# 3. bench the pruned model against the original, interleaved, on the mobile profile, with gates
$C bench out/simple_cnn_l1.onnx --baseline out/simple_cnn.onnx --profile mobile \
  --data fashion-mnist --max-size 1MB --max-accuracy-drop 0.02 --min-speedup 1.1 --md

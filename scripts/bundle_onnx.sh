#!/usr/bin/env bash
# The ONNX forms of the bundled weights (what `wdsr upscale` runs on ONNX Runtime by default):
# wdsr_cli/assets/weights/wdsr_xS.onnx + .onnx.json, written by `wdsr export` (parity checked
# against the checkpoint; the contract names the checkpoint's sha256). Rerun after the bundled
# .ckpt files change: tests/test_weights.py fails until the forms match them again.
#   usage: bash scripts/bundle_onnx.sh [path/to/wdsr]
set -euo pipefail
WDSR=${1:-.venv/bin/wdsr}
cd "$(dirname "$0")/.."
for s in 2 3 4; do
    "$WDSR" export --format onnx --force \
        --checkpoint "wdsr_cli/assets/weights/wdsr_x$s.ckpt" \
        --output "wdsr_cli/assets/weights/wdsr_x$s.onnx"
done

#!/usr/bin/env bash
# The ONNX forms of the bundled weights (what `wdsr upscale` runs on ONNX Runtime by default):
# wdsr_cli/assets/weights/wdsr_xS.onnx, wdsr_photo_xS.onnx and wdsr_photo_low_xS.onnx
# (+ .onnx.json), written by `wdsr export` (parity checked against the checkpoint; the contract
# names the checkpoint's sha256). Rerun after the bundled
# .ckpt files change: tests/test_weights.py fails until the forms match them again.
#   usage: bash scripts/bundle_onnx.sh [path/to/wdsr]
set -euo pipefail
WDSR=${1:-.venv/bin/wdsr}
cd "$(dirname "$0")/.."
for name in wdsr_x2 wdsr_x3 wdsr_x4 wdsr_photo_x2 wdsr_photo_x3 wdsr_photo_x4 \
        wdsr_photo_low_x2 wdsr_photo_low_x3 wdsr_photo_low_x4; do
    "$WDSR" export --format onnx --force \
        --checkpoint "wdsr_cli/assets/weights/$name.ckpt" \
        --output "wdsr_cli/assets/weights/$name.onnx"
done

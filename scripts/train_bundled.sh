#!/usr/bin/env bash
# Rebuilds the bundled weights (wdsr_cli/assets/weights/wdsr_x{2,3,4}.ckpt) from scratch:
# the photo set, the prepared shards, x2 training, then x3 and x4 started from x2.
# Needs the Debian package mirror (for the photos) and ~1.5-2 h on 2 CPU cores.
set -euo pipefail
WDSR=${WDSR:-.venv/bin/wdsr}
PY=${PY:-.venv/bin/python}
[ -d data/photos/DIV2K_train_HR ] || "$PY" scripts/build_photos.py --full data/photos
"$WDSR" prepare-data data/photos --out data/photos/prepared --scales 2,3,4
"$WDSR" train --config configs/bundled-x2.yaml --name bundled-x2
for s in 4 3; do
  "$WDSR" train --config configs/bundled-x$s.yaml --name bundled-x$s \
      --init runs/bundled-x2/best.ckpt
done
mkdir -p wdsr_cli/assets/weights
for s in 2 3 4; do
  cp runs/bundled-x$s/best.ckpt wdsr_cli/assets/weights/wdsr_x$s.ckpt
  "$WDSR" evaluate --scale $s --checkpoint wdsr_cli/assets/weights/wdsr_x$s.ckpt \
      --hr data/photos/DIV2K_valid_HR --bicubic --json runs/bundled-x$s/heldout.json
done

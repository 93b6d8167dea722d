#!/usr/bin/env bash
# `make demo`: the main job on a fresh install, end to end on the bundled sample photos:
# prepare -> train the demo recipe -> evaluate it and the bundled x2 model against bicubic
# -> upscale a photo (PNG, then as a JPEG) and a short clip with the bundled weights. Everything it writes goes under ./demo/.
set -euo pipefail
WDSR=${1:-wdsr}
case "$WDSR" in */*) WDSR="$(cd "$(dirname "$WDSR")" && pwd)/$(basename "$WDSR")" ;; esac
OUT=demo
mkdir -p "$OUT"
cd "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "wdsr $("$WDSR" --version | cut -d' ' -f2): the demo model"
"$WDSR" train --config demo --print-config | tail -n 11

step "1/4 prepare the bundled sample photos (a DIV2K-style tree + training shards)"
"$WDSR" prepare-data --sample data/sample

step "2/4 train the demo recipe (WDSR-B, 8 blocks, x2) on the CPU"
"$WDSR" train --config demo --name demo --runs-dir runs

step "3/4 evaluate: the demo run and the bundled x2 model against bicubic (held-out photos)"
"$WDSR" evaluate --scale 2 --checkpoint runs/demo/best.ckpt --hr data/sample/DIV2K_valid_HR \
    --bicubic --json eval_demo.json
"$WDSR" evaluate --scale 2 --checkpoint bundled --hr data/sample/DIV2K_valid_HR --bicubic \
    --json eval_bundled.json --report report_bundled --overwrite

step "4/4 upscale a photo (PNG, then as a JPEG) and a short clip with the bundled weights"
photo=$(ls data/sample/DIV2K_valid_HR/*.png | head -n 1)
"$WDSR" upscale "$photo" --scale 2 -o upscaled_x2.png --overwrite
# the same photo as the web often serves it (JPEG quality 75): auto runs the photo-low weights
PY="$(dirname "$(command -v "$WDSR")")/python"
"$PY" -c 'import sys; from PIL import Image; Image.open(sys.argv[1]).convert("RGB").save(sys.argv[2], quality=75)' \
    "$photo" photo_q75.jpg
"$WDSR" upscale photo_q75.jpg --scale 2 -o photo_q75_x2.png --overwrite
# a short clip (2 s panning across the photo, H.264): frames streamed, timing kept
"$PY" - "$photo" pan.mp4 <<'PYCLIP'
import sys, av, numpy as np
from PIL import Image
img = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
with av.open(sys.argv[2], "w") as out:
    stream = out.add_stream("libx264", rate=24, options={"crf": "18"})
    stream.width, stream.height, stream.pix_fmt = 192, 128, "yuv420p"
    for i in range(48):
        x = i * (img.shape[1] - 192) // 47
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:128, x:x + 192]), "rgb24")
        out.mux(stream.encode(frame))
    out.mux(stream.encode())
PYCLIP
"$WDSR" upscale pan.mp4 -o pan_x2.mp4 --overwrite

step "outputs (under $(pwd))"
printf '  %s\n' "runs/demo/        demo run: best.ckpt, last.ckpt, log.txt, metrics.jsonl, plot.svg, report/index.html" \
    "data/sample/       the sample as a DIV2K tree, prepared shards in data/sample/prepared" \
    "eval_demo.json     PSNR/SSIM of the demo run vs bicubic" \
    "eval_bundled.json  PSNR/SSIM of the bundled x2 model vs bicubic" \
    "report_bundled/    the same as a page: open report_bundled/index.html in a browser" \
    "upscaled_x2.png    $photo upscaled x2 by the bundled model" \
    "photo_q75_x2.png   the same photo saved as JPEG q75, upscaled x2 by the photo-low weights" \
    "pan_x2.mp4         a 2 s clip panning across it (pan.mp4), upscaled x2 frame by frame"

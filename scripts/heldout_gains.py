#!/usr/bin/env python3
"""Gain over bicubic of one set of weights on the held-out photos, one `--degrade` at a time.

The model card's "Photo against clean weights" table, one column per call:

    python scripts/heldout_gains.py --scale 4 --checkpoint bundled --weights photo
    python scripts/heldout_gains.py --scale 2 --checkpoint runs/bundled-photo-x2-stage2/best.ckpt

Each spec runs `wdsr evaluate --hr data/photos/DIV2K_valid_HR --bicubic --degrade SPEC
--precision fp32` (the LR is the MATLAB-bicubic LR, then SPEC; the bicubic column upscales the
same degraded LR) and prints the mean PSNR-Y gain in dB, then a Markdown row. The photos come
from `scripts/build_photos.py --full data/photos`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ["none", "jpeg:95", "jpeg:90", "jpeg:75", "jpeg:50", "noise:5", "noise:3,jpeg:75"]


def gain(wdsr: str, scale: int, checkpoint: str, weights: str | None, spec: str,
         hr: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scores.json"
        cmd = [wdsr, "evaluate", "--scale", str(scale), "--checkpoint", checkpoint,
               "--hr", hr, "--bicubic", "--precision", "fp32", "--json", str(out)]
        if weights:
            cmd += ["--weights", weights]
        if spec != "none":
            cmd += ["--degrade", spec]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
        mean = json.loads(out.read_text())["mean"]
    return mean["psnr"] - mean["bicubic_psnr"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--checkpoint", default="bundled")
    ap.add_argument("--weights", help="clean, photo or photo-low (bundled weights only)")
    ap.add_argument("--specs", default="|".join(SPECS),
                    help="'|'-separated --degrade specs (default: the model card's rows)")
    ap.add_argument("--hr", default="data/photos/DIV2K_valid_HR")
    ap.add_argument("--wdsr", default=str(ROOT / ".venv" / "bin" / "wdsr"))
    args = ap.parse_args()
    gains = []
    for spec in args.specs.split("|"):
        g = gain(args.wdsr, args.scale, args.checkpoint, args.weights, spec, args.hr)
        gains.append(g)
        print(f"{spec:>16}  {g:+.3f} dB", flush=True)
    print("| " + " | ".join(f"{g:+.3f}" for g in gains) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

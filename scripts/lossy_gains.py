#!/usr/bin/env python3
"""Gain over bicubic of the bundled clean / photo / photo-low weights on the held-out photos
whose LR was saved in a lossy format that is not JPEG (WebP, HEIC, AVIF), one quality at a time.

    python scripts/lossy_gains.py --scale 4 --specs webp:50,webp:75,heic:50,avif:75
    python scripts/lossy_gains.py --scale 2 --specs gray3+heic:90,colour3+avif:90

What `upscale --weights auto` gives a lossy WebP, HEIC or AVIF input rests on these numbers
(`core/inference/weights.py`, WEBP_PHOTO_MAX_QUALITY and the AVIF bands; the model card,
"Other lossy formats").
For each photo of `data/photos/DIV2K_valid_HR` (`scripts/build_photos.py --full data/photos`):
the MATLAB-bicubic LR, saved by Pillow (HEIC by pillow-heif) at the quality, decoded; the gain
is PSNR-Y of the weights' output minus that of the MATLAB bicubic of the same decoded LR
(border = scale), averaged over the photos. fp32, the engine `auto` picks. JPEG specs
(`jpeg:75`, 4:2:0) are there to compare with `wdsr evaluate --degrade jpeg:75`. A spec may
start with noise added to the LR before it is saved: `gray3+` (the same Gaussian noise of
sigma 3 in every channel) or `colour3+` (each channel its own), drawn from a seed per photo.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wdsr_cli.core.data.images import read_image  # noqa: E402
from wdsr_cli.core.data.resize import bicubic_downscale, bicubic_upscale  # noqa: E402
from wdsr_cli.core.inference.weights import load_predictor, resolve  # noqa: E402
from wdsr_cli.core.metrics import psnr  # noqa: E402

FORMATS = {"webp": "WEBP", "heic": "HEIF", "avif": "AVIF", "jpeg": "JPEG"}
KINDS = ("clean", "photo", "photo-low")


def noisy(lr: np.ndarray, noise: str, seed: int) -> np.ndarray:
    """``lr`` with Gaussian noise ``gray<sigma>`` or ``colour<sigma>`` (of 255) added."""
    if not noise:
        return lr
    rng = np.random.default_rng(seed)
    gray = noise.startswith("gray")
    sigma = float(noise.removeprefix("gray" if gray else "colour"))
    shape = lr.shape[:2] + ((1,) if gray else (3,))
    return np.clip(np.round(lr + rng.standard_normal(shape) * sigma), 0, 255).astype(np.uint8)


def saved(lr: np.ndarray, spec: str) -> tuple[np.ndarray, float]:
    """(``lr`` saved as ``spec`` and decoded, bits per pixel of the file)."""
    from PIL import Image as PILImage

    fmt, quality = spec.split(":")
    options = {"quality": int(quality)} | ({"subsampling": 2} if fmt == "jpeg" else {})
    buf = io.BytesIO()
    PILImage.fromarray(lr).save(buf, FORMATS[fmt], **options)
    with PILImage.open(io.BytesIO(buf.getvalue())) as im:
        decoded = np.asarray(im.convert("RGB"))
    return decoded, len(buf.getvalue()) * 8 / (lr.shape[0] * lr.shape[1])


def rounded(x: np.ndarray) -> np.ndarray:
    """Network output (float, 0..255) as the 8-bit image upscale writes."""
    return np.clip(np.floor(x + 0.5), 0, 255)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--specs", required=True, help="comma-separated FORMAT:QUALITY "
                    "(webp, heic, avif, jpeg), e.g. webp:75,heic:50")
    ap.add_argument("--hr", default=str(ROOT / "data" / "photos" / "DIV2K_valid_HR"))
    args = ap.parse_args()
    import pillow_heif

    pillow_heif.register_heif_opener()  # to write HEIC
    photos = sorted(Path(args.hr).glob("*.png"))
    if not photos:
        sys.exit(f"no photos in {args.hr}: run scripts/build_photos.py --full data/photos")
    models = {kind: load_predictor(resolve(scale=args.scale, default="bundled",
                                           device_target="CPU", precision="fp32",
                                           bundled=kind)) for kind in KINDS}
    print(f"| x{args.scale} | bits/pixel | " + " | ".join(KINDS) + " |")
    print("|---|---:|" + "---:|" * len(KINDS))
    for spec in args.specs.split(","):
        gains: dict[str, list[float]] = {kind: [] for kind in KINDS}
        bits = []
        noise, _, saved_as = spec.rpartition("+")
        for seed, path in enumerate(photos):
            hr = read_image(path).pixels
            hr = hr[: hr.shape[0] // args.scale * args.scale, : hr.shape[1] // args.scale
                    * args.scale]
            lr = bicubic_downscale(hr, args.scale)  # uint8 in, uint8 out: MATLAB's rounding
            decoded, bpp = saved(noisy(lr, noise, seed), saved_as)
            bits.append(bpp)
            base = psnr(bicubic_upscale(decoded, args.scale), hr, args.scale)
            for kind, model in models.items():
                sr = rounded(model.predict(decoded.astype(np.float32)))
                gains[kind].append(psnr(sr, hr, args.scale) - base)
        print(f"| {spec} | {np.mean(bits):.2f} | "
              + " | ".join(f"{np.mean(g):+.3f}" for g in gains.values()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

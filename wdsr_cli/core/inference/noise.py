"""How noisy a lossless (or nearly lossless) image is, so ``--weights auto`` can give it the
photo weights: the clean ones sharpen noise instead of the picture (on the held-out photos at
x2, colour noise sigma 5: -0.03 dB over bicubic where the photo weights gain +1.22; gray noise
sigma 3: +0.05 against +1.34).

The estimate follows the weak-texture idea of Liu, Tanaka and Okutomi (2012): keep the 7x7
patches whose gradient energy is what noise alone would give, and read the noise variance as
the smallest eigenvalue of their covariance; iterate, since the threshold depends on the
estimate. Two readings:

* **colour**, on the chroma differences (R - G) / sqrt 2 and (B - G) / sqrt 2: texture in
  photos is mostly brightness, so this reading ignores it, and sensor-like noise (each channel
  its own) shows at its per-channel sigma.
* **brightness**, on JPEG's luma (0.299 R + 0.587 G + 0.114 B): sees gray noise (the same in
  every channel, as film grain and phones' chroma-denoised noise are), and also fine texture.
  To tell them apart it is read again on the image halved (2 x 2 means): white noise halves
  there, so twice that reading stays near the first; texture packs closer and reads higher
  (an analog film photo at x4 LR reads 3.6, and 10.0 halved). A brightness reading counts only
  when the halved one is at most :data:`MAX_HALVED_RATIO` times it (and could be read at all).

A small image, and the halved and quartered ones, are read on patches every 2 pixels or every
pixel where every :data:`STRIDE` would give too few (:data:`MIN_PATCHES`): with few patches the
sample-size correction grows without bound (the held-out photos' x4 LR, 250-480 px a side,
read a median 8.9 to 16.7 quartered when clean; now 1.6 to 2.0).

Measured on the 38 photos of ``scripts/build_photos.py`` (their MATLAB-bicubic LR at x2, x3 and
x4, 114 images per level, each as PNG and as a 4:2:0 JPEG at q97), how many are read as noisy:
clean, none; colour noise sigma 1, none; sigma 2, 8 (PNG) / 6 (q97); sigma 3, all of the PNGs
(the colour reading: clean 0.00-0.64, sigma 1 1.01-1.27, sigma 2 1.78-2.22, sigma 3 2.90-3.23)
and 89% of the JPEGs; gray noise sigma 1, 0 / 3; sigma 1.5, 7 / 9; sigma 2, 89% / 89%; sigma 3,
90% / 91% (the misses are the most textured photos, read as texture). The photo weights
overtake the clean ones at colour sigma 2-2.5 and gray sigma 1.5 (x4: a tie) to 2 (x2 +0.62
dB, x4 +0.30), hence the thresholds.

JPEGs above quality 92 are read too (:func:`.weights.reads_noise`): every JPEG the quality alone
would give the clean weights. Quantisation removes much of the noise the full-size brightness
reading sees, most in the flattest patches it reads (gray sigma 3 reads a median 3.4 at q96, 2.8
at q95, 1.6 at q94; a smooth sky at q95, 1.0), and 4:2:0 removes the colour reading at every
quality. Noise at lower frequencies survives, so a JPEG is also noisy when the brightness read
on the image halved is at least :data:`JPEG_MIN_HALVED` and is not texture: read once more on
the image quartered, it stays within :data:`JPEG_MAX_QUARTERED_RATIO` times it (white noise
stays, texture grows). On the 114 LR images made with the bicubic, Lanczos-3 and box kernels
(342 per quality, as q93, q95 and q96 JPEGs), neither rule takes a clean image for noisy (at
q97 and q98, 2 and 5 of 342: textured photos box-downscaled). Gray sigma 3 is seen in 52% at
q93, 86% at q95, 93% at q96; gray sigma 2 in 9%, 30%, 45%; colour sigma 3 in 13%, 27%, 40%.
On 12 other photos (36 LR per level, fresh noise), no clean image at any quality, gray sigma
3 in 47%, 78%, 86%. MIN_PATCHES and the two ratios were chosen together on these counts: the
finer reading with the former ratios (2.5; 1.5) took 26 of 1,026 clean q93-96 JPEGs for noisy.

HEIC, AVIF (above q65) and lossy WebP (above q85) inputs (:func:`.weights.reads_noise`) are
read by the JPEG rules too: HEVC, AV1 and VP8 remove fine noise as JPEG does, and what they
leave of it costs the clean weights as much (x2 gray sigma 3: HEIC q50 clean +0.64 dB over
bicubic, photo +1.19; AVIF q70 +0.66 / +1.20; WebP q90 -0.02 / +1.24; AVIF q90 colour sigma 3
+0.88 / +1.42; clean, the clean weights win: HEIC q50 +1.27 / +1.14). On the 38 photos' x2 and
x4 LR (76 per level) as HEIC q50 and q75 and AVIF q70, q80 and q90: no clean image is read
noisy by either rule; with the halved rule gray sigma 3 is seen in 18 of 76 at HEIC q50, 9 at
AVIF q70, 33 at AVIF q80, and colour sigma 3 in 32 at AVIF q90 (full size alone: 1, 0, 0, 3). As
WebP q88, q92 and q96 no clean image is read noisy either, and gray sigma 3 is seen in 53, 68
and 68 of 76.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

__all__ = ["NOISY_MIN_BRIGHTNESS", "NOISY_MIN_SIGMA", "NoiseReading", "noise_of",
           "noise_reading"]

# Lossless inputs whose colour-noise estimate is at least this get the photo weights under
# --weights auto (the model card, "Photo against clean weights": clean wins at sigma 1, ties
# at sigma 2 at x2 and loses there by 0.1 dB at x4, photo wins from sigma 3 at every scale;
# sigma 1 reads at most 1.27, sigma 3 at least 2.90).
NOISY_MIN_SIGMA = 2.2
# ... and so do those whose brightness reading is at least this and is not texture (gray
# sigma 1.5 reads a median 1.59 and ties at x4; sigma 2 a median 2.07, where photo wins).
NOISY_MIN_BRIGHTNESS = 1.8
# White noise reads the same halved (x 2); on the 114 clean LR the three textured ones that
# reached NOISY_MIN_BRIGHTNESS read 2.8x to 4.4x halved, gray sigma 2 and 3 a median 1.08x
# and 1.05x (90% under 2.25x and 1.8x).
MAX_HALVED_RATIO = 2.0
# A JPEG is also noisy when its brightness reads at least this on the image halved and that is
# not texture either: read once more, quartered, it stays within JPEG_MAX_QUARTERED_RATIO times
# it (quantisation hides noise in the full-size reading, less so halved; see above).
JPEG_MIN_HALVED = 2.2
JPEG_MAX_QUARTERED_RATIO = 1.25

LUMA = np.array([0.299, 0.587, 0.114])  # JPEG's brightness: gray noise of sigma S reads S

PATCH = 7
STRIDE = 3  # patch positions are taken every STRIDE pixels ...
# ... or every 2 or every pixel in a plane that would give fewer than this many at STRIDE (a
# small image, or one halved or quartered; see above). The planes of a tiled image (GRID x GRID
# tiles; quartered, 65,536 px) keep STRIDE.
MIN_PATCHES = 7000
TILE = 256  # a large image is read on a grid of TILE x TILE tiles, at most GRID x GRID
GRID = 4
ITERATIONS = 5
CHUNK = 8192  # patches summed at a time into a covariance (bounds the memory a reading takes)
# Under noise alone, a patch's gradient energy (forward differences inside the patch) is
# sigma^2 times a chi-square-like variable: Gamma(shape PATCH^2 / 2) with mean sigma^2 * GRAD_TRACE.
GRAD_TRACE = 2.0 * 2 * PATCH * (PATCH - 1)
GAMMA_SHAPE = PATCH * PATCH / 2.0
Z_99 = 2.3263  # the standard normal's 99th percentile


def _gamma_quantile_99(shape: float, scale: float) -> float:
    """99th percentile of Gamma(shape, scale), Wilson-Hilferty (exact to ~1% at shape 24.5)."""
    c = 1.0 / (9.0 * shape)
    return shape * scale * (1.0 - c + Z_99 * np.sqrt(c)) ** 3


def _window_sums(a: np.ndarray, h: int, w: int) -> np.ndarray:
    c = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    c[1:, 1:] = a.cumsum(0).cumsum(1)
    return c[h:, w:] - c[:-h, w:] - c[h:, :-w] + c[:-h, :-w]


def _stride(area: int) -> int:
    """The patch stride for a plane of ``area`` pixels: :data:`STRIDE`, or finer where that
    would give fewer than about :data:`MIN_PATCHES` patches."""
    return int(min(max(np.sqrt(area / MIN_PATCHES), 1), STRIDE))


def _patch_corners(saturated: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the top-left corners of the PATCH x PATCH patches every ``stride``
    pixels that touch no clipped pixel (clipping hides the noise)."""
    h, w = saturated.shape
    if h < PATCH or w < PATCH:
        return np.empty(0, int), np.empty(0, int)
    clipped = _window_sums(saturated.astype(np.float64), PATCH, PATCH) > 0
    rows, cols = np.arange(0, h - PATCH + 1, stride), np.arange(0, w - PATCH + 1, stride)
    keep = ~clipped[np.ix_(rows, cols)]
    r, c = np.meshgrid(rows, cols, indexing="ij")
    return r[keep], c[keep]


def _patches(channel: np.ndarray, r: np.ndarray, c: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(gradient energy, flattened pixels) of the patches at corners (r, c)."""
    if len(r) == 0:
        return np.empty(0), np.empty((0, PATCH * PATCH))
    gh = np.diff(channel, axis=1) ** 2
    gv = np.diff(channel, axis=0) ** 2
    energy = (_window_sums(gh, PATCH, PATCH - 1) + _window_sums(gv, PATCH - 1, PATCH))
    off = np.arange(PATCH)
    pixels = channel[r[:, None, None] + off[None, :, None], c[:, None, None] + off[None, None, :]]
    return energy[r, c], pixels.reshape(len(r), PATCH * PATCH)


def _smallest_variance(pixels: np.ndarray, rows: np.ndarray | None = None) -> float:
    """The smallest eigenvalue of the covariance of the patches ``pixels[rows]`` (all of them
    if None), corrected for sample size: for n patches of d pixels of pure noise it comes out
    near sigma^2 (1 - sqrt(d / n))^2 (Marchenko-Pastur), which would bias every reading low, and
    more so on small images. Summed :data:`CHUNK` patches at a time: no copy of the patches."""
    def chunks():  # one chunk of the chosen patches at a time
        for i in range(0, len(pixels), CHUNK):
            yield pixels[i:i + CHUNK] if rows is None else pixels[i:i + CHUNK][rows[i:i + CHUNK]]

    d = pixels.shape[1]
    n = len(pixels) if rows is None else int(np.count_nonzero(rows))
    mean = sum(x.sum(axis=0) for x in chunks()) / n
    cov = np.zeros((d, d))
    for x in chunks():
        x = x - mean
        cov += x.T @ x
    cov /= max(n - 1, 1)
    return max(float(np.linalg.eigvalsh(cov)[0]), 0.0) / (1.0 - np.sqrt(d / n)) ** 2


def _channel_sigma(energy: np.ndarray, pixels: np.ndarray) -> float:
    if len(pixels) < 4 * PATCH * PATCH:
        return 0.0  # too few patches to tell: read as clean
    var = _smallest_variance(pixels)
    for _ in range(ITERATIONS):
        weak = energy < _gamma_quantile_99(GAMMA_SHAPE, 2.0 * var * GRAD_TRACE / (PATCH * PATCH))
        if weak.sum() < 4 * PATCH * PATCH:
            break
        new = _smallest_variance(pixels, weak)
        if abs(new - var) <= 1e-4 * max(var, 1e-6):
            var = new
            break
        var = new
    return float(np.sqrt(var))


def _tiles(h: int, w: int) -> list[tuple[slice, slice]]:
    """The whole image, or for a large one a GRID x GRID grid of TILE x TILE tiles, one in the
    middle of each cell (noise is the same everywhere; the grid keeps the cost bounded)."""
    if h * w <= (GRID * TILE) ** 2:
        return [(slice(0, h), slice(0, w))]
    out = []
    for i in range(GRID):
        for j in range(GRID):
            top = min(max((2 * i + 1) * h // (2 * GRID) - TILE // 2, 0), max(h - TILE, 0))
            left = min(max((2 * j + 1) * w // (2 * GRID) - TILE // 2, 0), max(w - TILE, 0))
            out.append((slice(top, top + TILE), slice(left, left + TILE)))
    return out


@dataclass(frozen=True)
class NoiseReading:
    """What :func:`noise_reading` finds in one image, each on the 8-bit scale."""

    colour: float  # the per-channel sigma of noise that differs between channels (sensor-like)
    brightness: float  # the sigma of the noise in the brightness (gray noise shows here too)
    halved: float  # the brightness read on the image halved, times 2 (0.0: too small to read)
    quartered: float = 0.0  # ... on the image quartered (4 x 4 means), times 4

    @property
    def texture(self) -> bool:
        """True when the brightness reading is texture, not noise: white noise halves when
        2 x 2 pixels are averaged, so ``halved`` stays near ``brightness``; fine texture packs
        closer and reads higher."""
        return not 0.0 < self.halved <= MAX_HALVED_RATIO * self.brightness

    @property
    def noisy(self) -> bool:
        """True when the photo weights do better than the clean ones on it."""
        return self.colour >= NOISY_MIN_SIGMA or (
            self.brightness >= NOISY_MIN_BRIGHTNESS and not self.texture)

    @property
    def noisy_halved(self) -> bool:
        """True when the reading on the image halved is noise, not texture (it stays near the
        one quartered): what is left to see of noise in a JPEG."""
        return self.halved >= JPEG_MIN_HALVED and \
            0.0 < self.quartered <= JPEG_MAX_QUARTERED_RATIO * self.halved

    def noisy_at(self, lossy: bool) -> bool:
        """:attr:`noisy` for a lossless input; a lossy one (JPEG, HEIC, AVIF) also when
        :attr:`noisy_halved`."""
        return self.noisy or (lossy and self.noisy_halved)

    def __str__(self) -> str:
        seen = " (texture)" if self.brightness >= NOISY_MIN_BRIGHTNESS and self.texture else ""
        return f"noise ~{self.colour:.1f} colour, ~{self.brightness:.1f} brightness{seen}"

    def describe(self, lossy: bool) -> str:
        """``str(self)``, naming the halved reading when it is what found a lossy input noisy."""
        halved = not self.noisy and self.noisy_at(lossy)
        return str(self) + (f", ~{self.halved:.1f} halved" if halved else "")


def _halve(a: np.ndarray) -> np.ndarray:
    """The means of 2 x 2 pixels of a plane (an odd last row or column left out)."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    return a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def noise_reading(image: np.ndarray, peak: float = 255.0) -> NoiseReading:
    """The colour and brightness noise in ``image`` (H x W x C or H x W, values 0..``peak``);
    a gray image has no colour to read (0.0)."""
    pixels = image if image.ndim == 3 else image[..., None]
    colour = pixels.shape[2] >= 3
    planes: dict[str, list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]] = {
        "r-g": [], "b-g": [], "y": [], "y/2": [], "y/4": []}  # per tile: (plane, its corners)
    # patch strides: full size, halved, quartered (a tiled image's are all STRIDE)
    area = pixels.shape[0] * pixels.shape[1]
    strides = _stride(area), _stride(area // 4), _stride(area // 16)
    for rows, cols in _tiles(*pixels.shape[:2]):
        tile = pixels[rows, cols, :3].astype(np.float64) * (255.0 / peak)
        saturated = ((tile <= 0.0) | (tile >= 255.0)).any(axis=2)
        corners = _patch_corners(saturated, strides[0])
        y = tile @ LUMA if colour else tile[..., 0]
        if colour:
            planes["r-g"].append(((tile[..., 0] - tile[..., 1]) / np.sqrt(2.0), corners))
            planes["b-g"].append(((tile[..., 2] - tile[..., 1]) / np.sqrt(2.0), corners))
        planes["y"].append((y, corners))
        half, half_saturated = _halve(y), _halve(saturated) > 0
        planes["y/2"].append((half, _patch_corners(half_saturated, strides[1])))
        planes["y/4"].append((_halve(half), _patch_corners(_halve(half_saturated) > 0, strides[2])))
    sigma = {}
    for name, tiles in planes.items():  # one plane's patches at a time: bounded memory
        counts = [len(rows) for _, (rows, _) in tiles]
        energy, patches = np.empty(sum(counts)), np.empty((sum(counts), PATCH * PATCH))
        starts = np.cumsum([0, *counts])[:-1]
        for (plane, corners), start, count in zip(tiles, starts, counts, strict=True):
            energy[start:start + count], patches[start:start + count] = \
                _patches(plane, *corners)
        sigma[name] = _channel_sigma(energy, patches)
        del energy, patches
    del planes
    _give_back_freed_memory()
    return NoiseReading(float(np.mean([sigma["r-g"], sigma["b-g"]])), sigma["y"],
                        2.0 * sigma["y/2"], 4.0 * sigma["y/4"])


def _give_back_freed_memory() -> None:
    """Return the memory the reading freed to the system. glibc keeps freed blocks in the
    arena of the thread that freed them (upscale reads on its reader thread, beside the
    network); ``malloc_trim`` gives them back: on six 1.2-1.5 MP PNGs, peak RSS 670 -> 614 MB.
    A C library without it (musl, macOS) is left as it is."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def noise_of(image) -> NoiseReading:
    """:func:`noise_reading` of a decoded image (:class:`data.images.Image`, 8 or 16 bits)."""
    return noise_reading(image.pixels, 65535.0 if image.bit_depth == 16 else 255.0)

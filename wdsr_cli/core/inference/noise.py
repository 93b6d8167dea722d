"""How much colour noise a lossless image carries, so ``--weights auto`` can give a noisy PNG
the photo weights (the clean ones sharpen noise instead of the picture: on the held-out photos
at noise sigma 5 they gain -0.03 dB at x2 where the photo weights gain +1.22).

The estimate follows the weak-texture idea of Liu, Tanaka and Okutomi (2012): keep the 7x7
patches whose gradient energy is what noise alone would give, and read the noise variance as
the smallest eigenvalue of their covariance; iterate, since the threshold depends on the
estimate. It is read on the two chroma differences (R - G) / sqrt 2 and (B - G) / sqrt 2,
not on the brightness: texture in photos is mostly brightness, so a photo that is fine
texture everywhere (leather, a rocky stream, a small downscaled image) reads as noisy on
brightness but not on chroma, while sensor-like noise (each channel its own) shows on chroma
at its per-channel sigma. The price: noise that is the same in every channel (gray noise) is
not seen, and a gray image reads 0. Measured on the 38 photos of ``scripts/build_photos.py``
(their MATLAB-bicubic LR at x2, x3 and x4, 114 images per level; colour Gaussian noise of
sigma S added): clean 0.00-0.78, S = 1 1.01-1.44, S = 2 1.77-2.44, S = 3 2.90-3.39, S = 5
4.88-6.40. The photo weights overtake the clean ones between S = 2 (x2) and S = 2.5 (x4),
hence :data:`NOISY_MIN_SIGMA`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NOISY_MIN_SIGMA", "colour_noise_of", "colour_noise_sigma"]

# Lossless inputs whose colour-noise estimate is at least this get the photo weights under
# --weights auto (the model card, "Photo against clean weights": clean wins at sigma 1, ties
# at sigma 2 at x2 and loses there by 0.1 dB at x4, photo wins from sigma 3 at every scale;
# sigma 1 reads at most 1.44, sigma 3 at least 2.90).
NOISY_MIN_SIGMA = 2.2

PATCH = 7
STRIDE = 3  # patch positions are taken every STRIDE pixels
TILE = 256  # a large image is read on a grid of TILE x TILE tiles, at most GRID x GRID
GRID = 4
ITERATIONS = 5
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


def _patch_corners(saturated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the top-left corners of the PATCH x PATCH patches every STRIDE pixels
    that touch no clipped pixel (clipping hides the noise)."""
    h, w = saturated.shape
    if h < PATCH or w < PATCH:
        return np.empty(0, int), np.empty(0, int)
    clipped = _window_sums(saturated.astype(np.float64), PATCH, PATCH) > 0
    rows, cols = np.arange(0, h - PATCH + 1, STRIDE), np.arange(0, w - PATCH + 1, STRIDE)
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


def _smallest_variance(pixels: np.ndarray) -> float:
    """The smallest eigenvalue of the patches' covariance, corrected for sample size: for n
    patches of d pixels of pure noise it comes out near sigma^2 (1 - sqrt(d / n))^2
    (Marchenko-Pastur), which would bias every reading low, and more so on small images."""
    n, d = pixels.shape
    x = pixels - pixels.mean(axis=0)
    cov = x.T @ x / max(n - 1, 1)
    return max(float(np.linalg.eigvalsh(cov)[0]), 0.0) / (1.0 - np.sqrt(d / n)) ** 2


def _channel_sigma(energy: np.ndarray, pixels: np.ndarray) -> float:
    if len(pixels) < 4 * PATCH * PATCH:
        return 0.0  # too few patches to tell: read as clean
    var = _smallest_variance(pixels)
    for _ in range(ITERATIONS):
        weak = energy < _gamma_quantile_99(GAMMA_SHAPE, 2.0 * var * GRAD_TRACE / (PATCH * PATCH))
        if weak.sum() < 4 * PATCH * PATCH:
            break
        new = _smallest_variance(pixels[weak])
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


def colour_noise_sigma(image: np.ndarray, peak: float = 255.0) -> float:
    """The per-channel standard deviation of the colour noise in ``image`` (H x W x C, values
    0..``peak``), on the 8-bit scale; 0.0 for an image with fewer than 3 channels."""
    if image.ndim != 3 or image.shape[2] < 3:
        return 0.0
    rgb = image[..., :3]
    found: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {0: [], 2: []}
    for rows, cols in _tiles(*rgb.shape[:2]):
        tile = rgb[rows, cols].astype(np.float64) * (255.0 / peak)
        r, c = _patch_corners(((tile <= 0.0) | (tile >= 255.0)).any(axis=2))
        for other in found:  # R - G and B - G
            found[other].append(_patches((tile[..., other] - tile[..., 1]) / np.sqrt(2.0), r, c))
    return float(np.mean([_channel_sigma(np.concatenate([e for e, _ in parts]),
                                         np.concatenate([p for _, p in parts]))
                          for parts in found.values()]))


def colour_noise_of(path) -> float | None:
    """:func:`colour_noise_sigma` of an image file; None when it cannot be read (the reader
    reports that when the image is upscaled)."""
    from ..data.images import read_image
    from ..errors import WdsrError

    try:
        img = read_image(path)
    except WdsrError:
        return None
    return colour_noise_sigma(img.pixels, 65535.0 if img.bit_depth == 16 else 255.0)

"""PSNR and SSIM for super-resolution, with named evaluation protocols.

Published SR numbers use two incompatible conventions; every score here names its protocol:

* ``"y"`` (the "benchmark" protocol, e.g. Set5/Set14/B100/Urban100 tables and the MindSpore
  model zoo): PSNR on the BT.601 luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` of
  0-255 RGB (float, not re-rounded), with ``scale`` pixels shaved from every side.
* ``"rgb"`` (the "DIV2K/EDSR" protocol, e.g. the WDSR paper's DIV2K validation numbers): PSNR
  over all three RGB channels with ``scale + 6`` pixels shaved.

Both are computed on 8-bit results: uint8 inputs are used as they are; float inputs are clipped
to 0..255 and rounded (halves away from zero) first, as a saved 8-bit image would be. Other
integer arrays are accepted only when their values already lie in 0..255 (convert 16-bit images
to 8-bit before scoring). Grayscale images (HxW or HxWx1) are scored on their single channel
under either protocol, with that protocol's border.

PSNR is ``10 log10(255^2 / MSE)``; identical images (MSE = 0) give ``float('inf')``.

SSIM (Wang, Bovik, Sheikh, Simoncelli 2004, the ``ssim_index`` reference): 11x11 Gaussian window
with sigma 1.5 (normalised to sum 1), ``K1 = 0.01``, ``K2 = 0.03``, ``L = 255``, only 'valid'
window positions (no padding), mean of the SSIM map, in float64. It is always computed on Y (or on
the single grayscale channel), never per RGB channel, with the protocol's border shaved first. No
automatic downsampling (unlike Wang's later ``ssim.m``). Pure numpy (separable filtering).

HR images are cropped to ``scale x`` LR size (top-left aligned) with :func:`crop_hr_to` before
comparison; mismatched shapes are an error here, never silently cropped.
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np

from .config import check_scale
from .errors import WdsrError

__all__ = [
    "PROTOCOLS",
    "rgb_to_y",
    "shave",
    "border_for",
    "psnr",
    "ssim",
    "evaluate_pair",
    "crop_hr_to",
    "region_psnr",
]

PROTOCOLS = ("y", "rgb")

_Y_COEFFS = np.array([65.481, 128.553, 24.966], dtype=np.float64)

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_PEAK = 255.0


def _check_protocol(protocol: object) -> str:
    if protocol not in PROTOCOLS:
        raise WdsrError(
            f"unknown evaluation protocol {protocol!r}",
            "use 'y' (PSNR on Y, border = scale; the benchmark convention) or "
            "'rgb' (PSNR on RGB, border = scale + 6; the DIV2K/EDSR convention)",
        )
    return str(protocol)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma as MATLAB's ``rgb2ycbcr`` computes it, for 0..255 RGB input (HxWx3).

    Returns float64 ``16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (range 16..235), unrounded.
    """
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise WdsrError(
            f"rgb_to_y expects an HxWx3 RGB image, got shape {arr.shape}",
            "grayscale images are already luma; drop an alpha channel first",
        )
    return 16.0 + (arr.astype(np.float64) @ _Y_COEFFS) / 255.0


def shave(img: np.ndarray, border: int) -> np.ndarray:
    """``img`` without ``border`` pixels on each of its four sides (a view)."""
    if isinstance(border, bool) or not isinstance(border, Integral) or border < 0:
        raise WdsrError(
            f"border must be a non-negative integer, got {border!r}", "use 0 to keep every pixel"
        )
    if border == 0:
        return img
    h, w = img.shape[:2]
    if h <= 2 * border or w <= 2 * border:
        raise WdsrError(
            f"image of {h}x{w} pixels is too small to shave a border of {border} pixels",
            "evaluate larger images or a smaller scale",
        )
    return img[border : h - border, border : w - border]


def border_for(protocol: str, scale: int) -> int:
    """Pixels shaved from each side: ``scale`` for ``"y"``, ``scale + 6`` for ``"rgb"``."""
    protocol = _check_protocol(protocol)
    s = check_scale(scale, supported=False)
    return s if protocol == "y" else s + 6


def _round_half_away(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    r = np.floor(ax)
    r += (ax - r) >= 0.5
    return np.copysign(r, x)


def _to_8bit(img: np.ndarray, name: str) -> np.ndarray:
    """An 8-bit-valued float64 array (HxW or HxWx3) from uint8 / float / small-int input."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise WdsrError(
            f"{name} image must be HxW, HxWx1 or HxWx3, got shape {arr.shape}",
            "drop an alpha channel before scoring",
        )
    if arr.size == 0:
        raise WdsrError(f"{name} image is empty (shape {arr.shape})", "check the input files")
    dt = arr.dtype
    if dt == np.uint8:
        return arr.astype(np.float64)
    if np.issubdtype(dt, np.floating):
        return _round_half_away(np.clip(arr.astype(np.float64), 0.0, _PEAK))
    if np.issubdtype(dt, np.integer) and dt != np.bool_:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise WdsrError(
                f"{name} image has values {lo}..{hi}, outside the 8-bit range 0..255",
                "convert 16-bit images to 8-bit (for example round(v / 257)) before scoring",
            )
        return arr.astype(np.float64)
    raise WdsrError(f"{name} image has unsupported dtype {dt}", "use uint8 or float 0..255")


def _prepare(sr: np.ndarray, hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = _to_8bit(sr, "SR")
    b = _to_8bit(hr, "HR")
    if a.shape != b.shape:
        raise WdsrError(
            f"SR and HR images differ in shape: {a.shape} vs {b.shape}",
            "crop HR to scale x LR size first (crop_hr_to), and compare RGB with RGB",
        )
    return a, b


def _luma(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else rgb_to_y(img)


def _psnr_from(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(_PEAK * _PEAK / mse)


def _gaussian_1d(size: int = _SSIM_WINDOW, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D array with ``outer(g, g)`` (g symmetric)."""
    n = g.size
    h, w = img.shape
    rows = g[0] * img[0 : h - n + 1]
    for k in range(1, n):
        rows += g[k] * img[k : h - n + 1 + k]
    out = g[0] * rows[:, 0 : w - n + 1]
    for k in range(1, n):
        out += g[k] * rows[:, k : w - n + 1 + k]
    return out


def _ssim_from(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape[0] < _SSIM_WINDOW or a.shape[1] < _SSIM_WINDOW:
        raise WdsrError(
            f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after shaving the border, "
            f"got {a.shape[0]}x{a.shape[1]}",
            "evaluate larger images",
        )
    c1 = (_SSIM_K1 * _PEAK) ** 2
    c2 = (_SSIM_K2 * _PEAK) ** 2
    g = _gaussian_1d()
    mu_a = _filter_valid(a, g)
    mu_b = _filter_valid(b, g)
    mu_aa = mu_a * mu_a
    mu_bb = mu_b * mu_b
    mu_ab = mu_a * mu_b
    var_a = _filter_valid(a * a, g) - mu_aa
    var_b = _filter_valid(b * b, g) - mu_bb
    cov = _filter_valid(a * b, g) - mu_ab
    ssim_map = ((2.0 * mu_ab + c1) * (2.0 * cov + c2)) / (
        (mu_aa + mu_bb + c1) * (var_a + var_b + c2)
    )
    return float(ssim_map.mean())


def psnr(sr: np.ndarray, hr: np.ndarray, scale: int, protocol: str = "y") -> float:
    """PSNR in dB of ``sr`` against ``hr`` under ``protocol``; ``inf`` for identical images.

    ``"y"``: on Y (or the gray channel), border ``scale``. ``"rgb"``: on RGB (or the gray
    channel), border ``scale + 6``.
    """
    border = border_for(protocol, scale)
    a, b = _prepare(sr, hr)
    if protocol == "y":
        a, b = _luma(a), _luma(b)
    return _psnr_from(shave(a, border), shave(b, border))


def region_psnr(sr: np.ndarray, hr: np.ndarray, protocol: str = "y") -> float:
    """PSNR of two same-sized regions (e.g. report crops) in the protocol's colour space (Y or
    RGB), with no border shaved."""
    protocol = _check_protocol(protocol)
    a, b = _prepare(sr, hr)
    if protocol == "y":
        a, b = _luma(a), _luma(b)
    return _psnr_from(a, b)


def ssim(sr: np.ndarray, hr: np.ndarray, scale: int, protocol: str = "y") -> float:
    """Mean SSIM on Y (or the gray channel) with the protocol's border shaved."""
    border = border_for(protocol, scale)
    a, b = _prepare(sr, hr)
    return _ssim_from(shave(_luma(a), border), shave(_luma(b), border))


def evaluate_pair(
    sr: np.ndarray, hr: np.ndarray, scale: int, protocol: str = "y"
) -> tuple[float, float]:
    """``(psnr, ssim)`` of one SR/HR pair under ``protocol`` (converts the inputs once)."""
    border = border_for(protocol, scale)
    a, b = _prepare(sr, hr)
    ya = shave(_luma(a), border)
    yb = shave(_luma(b), border)
    if protocol == "y":
        p = _psnr_from(ya, yb)
    else:
        p = _psnr_from(shave(a, border), shave(b, border))
    return p, _ssim_from(ya, yb)


def crop_hr_to(hr: np.ndarray, lr_shape: tuple[int, ...] | np.ndarray, scale: int) -> np.ndarray:
    """``hr`` cropped (top-left aligned) to ``scale * LR`` rows and columns.

    ``lr_shape`` is the LR image's shape (only its first two entries are used); an LR array is
    accepted too. Raises WdsrError if ``hr`` is smaller than ``scale * LR``.
    """
    s = check_scale(scale, supported=False)
    if isinstance(lr_shape, np.ndarray):
        lr_shape = lr_shape.shape
    try:
        lr_h, lr_w = int(lr_shape[0]), int(lr_shape[1])
    except (TypeError, ValueError, IndexError):
        raise WdsrError(
            f"lr_shape must start with (rows, cols), got {lr_shape!r}", "pass lr.shape"
        ) from None
    hr = np.asarray(hr)
    th, tw = lr_h * s, lr_w * s
    if hr.ndim < 2 or hr.shape[0] < th or hr.shape[1] < tw:
        raise WdsrError(
            f"HR image of shape {hr.shape} is smaller than {s} x LR ({lr_h}x{lr_w} -> {th}x{tw})",
            "check that the LR image belongs to this HR image and scale",
        )
    return hr[:th, :tw]

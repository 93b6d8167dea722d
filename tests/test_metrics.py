"""Tests for PSNR/SSIM and the named evaluation protocols."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import convolve2d

from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.metrics import (
    PROTOCOLS,
    border_for,
    crop_hr_to,
    evaluate_pair,
    psnr,
    rgb_to_y,
    shave,
    ssim,
)


def _rand_rgb(seed: int, shape=(48, 40, 3), lo: int = 0, hi: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, size=shape, dtype=np.uint8)


def _smooth_gray(shape=(64, 72)) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    img = 128 + 70 * np.sin(xx / 7.0) * np.cos(yy / 5.0) + 20 * np.cos((xx - yy) / 3.0)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- reference SSIM


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 straight from the paper: 2-D Gaussian window, 'valid' convolution."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    r = np.arange(11) - 5
    yy, xx = np.meshgrid(r, r, indexing="ij")
    win = np.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
    win /= win.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def f(x):
        return convolve2d(x, win, mode="valid")

    mu_a, mu_b = f(a), f(b)
    s_aa = f(a * a) - mu_a**2
    s_bb = f(b * b) - mu_b**2
    s_ab = f(a * b) - mu_a * mu_b
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    cs = (2 * s_ab + c2) / (s_aa + s_bb + c2)
    return float(np.mean(lum * cs))


# ----------------------------------------------------------------------------- Y conversion


def test_rgb_to_y_hand_values():
    px = np.array(
        [[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]],
        dtype=np.float64,
    )
    y = rgb_to_y(px)
    assert y.dtype == np.float64 and y.shape == (1, 6)
    # 16 + c*255/255 = 16 + c for the pure colours; (654.81 + 2571.06 + 748.98) / 255 for the last
    expected = [16.0, 235.0, 81.481, 144.553, 40.966, 16.0 + 3974.85 / 255.0]
    np.testing.assert_allclose(y[0], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y[0, 5], 31.587647058823529, rtol=0, atol=1e-12)
    # uint8 input gives the same numbers
    np.testing.assert_allclose(rgb_to_y(px.astype(np.uint8)), y, rtol=0, atol=1e-12)


def test_rgb_to_y_rejects_non_rgb():
    with pytest.raises(WdsrError, match=r"rgb_to_y expects an HxWx3 RGB image, got shape \(4, 4\)"):
        rgb_to_y(np.zeros((4, 4)))
    with pytest.raises(WdsrError, match=r"got shape \(4, 4, 4\)"):
        rgb_to_y(np.zeros((4, 4, 4)))


# ----------------------------------------------------------------------------- borders


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_border_for(scale):
    assert border_for("y", scale) == scale
    assert border_for("rgb", scale) == scale + 6


def test_shave():
    img = np.arange(10 * 12).reshape(10, 12)
    out = shave(img, 2)
    assert out.shape == (6, 8)
    assert out[0, 0] == img[2, 2] and out[-1, -1] == img[7, 9]
    assert shave(img, 0) is img
    rgb = np.zeros((10, 12, 3))
    assert shave(rgb, 3).shape == (4, 6, 3)
    with pytest.raises(WdsrError, match="too small to shave a border of 5"):
        shave(img, 5)
    with pytest.raises(WdsrError, match="non-negative integer, got -1"):
        shave(img, -1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("scale", [2, 4])
def test_border_changes_do_not_count(protocol, scale):
    hr = _rand_rgb(1, shape=(60, 52, 3))
    sr = hr.copy()
    sr[20:30, 20:30] = 255 - sr[20:30, 20:30]  # an interior difference
    base = psnr(sr, hr, scale, protocol)
    base_ssim = ssim(sr, hr, scale, protocol)
    b = border_for(protocol, scale)
    damaged = sr.copy()
    damaged[:b] = 0
    damaged[-b:] = 255
    damaged[:, :b] = 17
    damaged[:, -b:] = 200
    assert psnr(damaged, hr, scale, protocol) == base
    assert ssim(damaged, hr, scale, protocol) == base_ssim
    # one pixel further in does count
    inner = sr.copy()
    inner[b, b + 5] = 255 - inner[b, b + 5]
    assert psnr(inner, hr, scale, protocol) < base


# ----------------------------------------------------------------------------- PSNR


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_identical_is_inf(protocol):
    hr = _rand_rgb(2)
    assert psnr(hr, hr.copy(), 2, protocol) == float("inf")
    assert ssim(hr, hr.copy(), 2, protocol) == pytest.approx(1.0, abs=1e-12)
    p, s = evaluate_pair(hr, hr.copy(), 2, protocol)
    assert p == float("inf") and s == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_uniform_offset_rgb_exact(k):
    hr = _rand_rgb(3, lo=0, hi=256 - k)
    sr = hr + np.uint8(k)
    assert psnr(sr, hr, 2, "rgb") == pytest.approx(20 * math.log10(255 / k), abs=1e-12)
    # Y differs by k * (65.481 + 128.553 + 24.966) / 255 = k * 219 / 255 everywhere
    assert psnr(sr, hr, 2, "y") == pytest.approx(20 * math.log10(255 / (k * 219 / 255)), abs=1e-9)


def test_rgb_vs_y_protocol_on_hand_case():
    """Offset only the green channel by 6: RGB MSE = 36/3 = 12; Y diff = 6*128.553/255."""
    hr = _rand_rgb(4, lo=0, hi=240)
    sr = hr.copy()
    sr[..., 1] += 6
    assert psnr(sr, hr, 3, "rgb") == pytest.approx(10 * math.log10(255**2 / 12), abs=1e-12)
    dy = 6 * 128.553 / 255
    assert psnr(sr, hr, 3, "y") == pytest.approx(20 * math.log10(255 / dy), abs=1e-9)


def test_psnr_grayscale_and_hxwx1():
    hr = _rand_rgb(5, shape=(40, 40), lo=0, hi=250)
    sr = hr + np.uint8(5)
    expected = 20 * math.log10(255 / 5)
    for protocol in PROTOCOLS:
        assert psnr(sr, hr, 2, protocol) == pytest.approx(expected, abs=1e-12)
        assert psnr(sr[..., None], hr[..., None], 2, protocol) == pytest.approx(expected, abs=1e-12)
        assert psnr(sr[..., None], hr, 2, protocol) == pytest.approx(expected, abs=1e-12)


def test_psnr_matches_direct_formula():
    hr = _rand_rgb(6)
    noise = np.random.default_rng(6).normal(0, 8, hr.shape)
    sr = np.clip(np.round(hr + noise), 0, 255).astype(np.uint8)
    d = (sr.astype(float) - hr.astype(float))[8:-8, 8:-8]
    expected_rgb = 10 * math.log10(255**2 / np.mean(d**2))
    assert psnr(sr, hr, 2, "rgb") == pytest.approx(expected_rgb, abs=1e-10)
    w = np.array([65.481, 128.553, 24.966]) / 255
    dy = ((sr.astype(float) - hr.astype(float)) @ w)[2:-2, 2:-2]
    assert psnr(sr, hr, 2, "y") == pytest.approx(
        10 * math.log10(255**2 / np.mean(dy**2)), abs=1e-10
    )


def test_float_inputs_are_clipped_and_rounded():
    hr = np.full((30, 30, 3), 100, dtype=np.uint8)
    hr[0, 0] = 0
    sr = hr.astype(np.float64) + 0.4  # rounds back to hr
    assert psnr(sr, hr, 2, "rgb") == float("inf")
    sr = hr.astype(np.float64) + 0.5  # half rounds up: offset of exactly 1 level
    assert psnr(sr, hr, 2, "rgb") == pytest.approx(20 * math.log10(255), abs=1e-12)
    over = np.full((30, 30), 400.0)
    under = np.full((30, 30), -50.0)
    assert psnr(over, np.full((30, 30), 255, dtype=np.uint8), 2, "rgb") == float("inf")
    assert psnr(under, np.zeros((30, 30), dtype=np.uint8), 2, "rgb") == float("inf")
    assert psnr(np.float32(hr), hr, 2, "y") == float("inf")


def test_other_integer_dtypes():
    hr = _rand_rgb(7)
    assert psnr(hr.astype(np.int64), hr, 2, "rgb") == float("inf")
    with pytest.raises(WdsrError) as exc:
        psnr(hr.astype(np.uint16) * 257, hr, 2, "rgb")
    assert "16-bit" in exc.value.hint


# ----------------------------------------------------------------------------- SSIM


def test_ssim_gaussian_window_matches_2d_reference_gray():
    hr = _smooth_gray()
    rng = np.random.default_rng(8)
    sr = np.clip(hr + rng.normal(0, 12, hr.shape), 0, 255).round().astype(np.uint8)
    for protocol, b in (("y", 2), ("rgb", 8)):
        expected = reference_ssim(sr[b:-b, b:-b], hr[b:-b, b:-b])
        assert ssim(sr, hr, 2, protocol) == pytest.approx(expected, abs=1e-12)
    assert 0.3 < ssim(sr, hr, 2) < 0.99


def test_ssim_on_y_for_rgb():
    g = _smooth_gray()
    hr = np.stack([g, np.roll(g, 5, axis=1), g[::-1]], axis=2)
    rng = np.random.default_rng(9)
    sr = np.clip(hr + rng.normal(0, 10, hr.shape), 0, 255).round().astype(np.uint8)
    ya = rgb_to_y(sr.astype(float))[3:-3, 3:-3]
    yb = rgb_to_y(hr.astype(float))[3:-3, 3:-3]
    assert ssim(sr, hr, 3, "y") == pytest.approx(reference_ssim(ya, yb), abs=1e-12)
    p, s = evaluate_pair(sr, hr, 3, "rgb")
    assert p == psnr(sr, hr, 3, "rgb")
    assert s == ssim(sr, hr, 3, "rgb")
    ya, yb = rgb_to_y(sr.astype(float))[9:-9, 9:-9], rgb_to_y(hr.astype(float))[9:-9, 9:-9]
    assert s == pytest.approx(reference_ssim(ya, yb), abs=1e-12)
    p, s = evaluate_pair(sr, hr, 3, "y")
    assert (p, s) == (psnr(sr, hr, 3, "y"), ssim(sr, hr, 3, "y"))


def test_ssim_constant_images_hand_value():
    """Constant a vs b: sigmas are 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)."""
    a, b = 100.0, 120.0
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    sr = np.full((30, 30), a, dtype=np.uint8)
    hr = np.full((30, 30), b, dtype=np.uint8)
    assert ssim(sr, hr, 2) == pytest.approx(expected, abs=1e-12)
    assert expected < 0.99


def test_ssim_decreases_with_noise():
    hr = _smooth_gray()
    rng = np.random.default_rng(10)
    base = rng.normal(0, 1, hr.shape)
    values = []
    for sigma in (2, 5, 10, 20, 40):
        sr = np.clip(hr + sigma * base, 0, 255).round().astype(np.uint8)
        values.append(ssim(sr, hr, 2))
    assert all(x > y for x, y in zip(values[:-1], values[1:], strict=True))
    assert values[0] > 0.9 and values[-1] < 0.6


def test_ssim_needs_window():
    img = np.zeros((14, 14), dtype=np.uint8)
    with pytest.raises(WdsrError, match="SSIM needs at least 11x11 pixels .* got 10x10"):
        ssim(img, img, 2)  # 10x10 left after shaving 2
    assert psnr(img, img, 2) == float("inf")  # PSNR has no window


# ----------------------------------------------------------------------------- errors / crop


def test_unknown_protocol():
    img = _rand_rgb(11)
    for fn in (psnr, ssim, evaluate_pair):
        with pytest.raises(WdsrError) as exc:
            fn(img, img, 2, "ycbcr")
        assert "rgb" in exc.value.hint
    with pytest.raises(WdsrError, match="unknown evaluation protocol 'Y'"):
        border_for("Y", 2)


def test_bad_scale():
    img = _rand_rgb(12)
    for scale in (0, -2, 2.0, True):
        with pytest.raises(WdsrError, match=f"must be a positive integer, got {scale}"):
            psnr(img, img, scale)


def test_shape_mismatch():
    a = _rand_rgb(13, shape=(40, 40, 3))
    with pytest.raises(WdsrError) as exc:
        psnr(a, a[:38], 2)
    assert "crop_hr_to" in exc.value.hint
    with pytest.raises(WdsrError, match=r"differ in shape: \(40, 40, 3\) vs \(40, 40\)"):
        ssim(a, a[..., 0], 2)  # RGB vs gray
    with pytest.raises(WdsrError, match=r"differ in shape: .* vs \(40, 36, 3\)"):
        evaluate_pair(a, a[:, :36], 2)
    with pytest.raises(WdsrError, match=r"HxW, HxWx1 or HxWx3, got shape \(40, 40, 4\)"):
        psnr(np.zeros((40, 40, 4), np.uint8), np.zeros((40, 40, 4), np.uint8), 2)
    with pytest.raises(WdsrError, match="SR image is empty"):
        psnr(np.zeros((0, 40), np.uint8), np.zeros((0, 40), np.uint8), 2)


def test_crop_hr_to():
    hr = np.arange(50 * 43 * 3).reshape(50, 43, 3)
    out = crop_hr_to(hr, (16, 14, 3), 3)
    assert out.shape == (48, 42, 3)
    np.testing.assert_array_equal(out, hr[:48, :42])
    lr = np.zeros((25, 21))
    assert crop_hr_to(hr, lr, 2).shape == (50, 42, 3)
    assert crop_hr_to(hr, lr.shape, 2).shape == (50, 42, 3)
    with pytest.raises(WdsrError, match=r"smaller than 3 x LR \(17x14 -> 51x42\)"):
        crop_hr_to(hr, (17, 14), 3)  # needs 51 rows
    with pytest.raises(WdsrError, match="must be a positive integer, got 0"):
        crop_hr_to(hr, (16, 14), 0)


# ------------------------------------------------- edges found by mutation testing (issue 34)

def test_shave_refuses_bools_fractions_and_borders_that_eat_the_image():
    img = np.zeros((5, 5))
    assert shave(img, 2).shape == (1, 1)  # 5 > 2 x 2: one pixel left
    for bad in (True, 1.5, -1):
        with pytest.raises(WdsrError, match="non-negative integer"):
            shave(img, bad)
    for shape in ((4, 9), (9, 4)):
        with pytest.raises(WdsrError, match="too small"):
            shave(np.zeros(shape), 2)


def test_float_halves_round_away_from_zero_and_wide_ints_are_checked():
    from wdsr_cli.core.metrics import _to_8bit

    assert _to_8bit(np.array([[0.5, 2.5, 2.4, 254.5]]), "SR").tolist() == [[1, 3, 2, 255]]
    assert _to_8bit(np.array([[0, 255]], np.int16), "SR").tolist() == [[0, 255]]
    with pytest.raises(WdsrError, match="outside the 8-bit range"):
        _to_8bit(np.array([[0, 256]], np.int16), "SR")
    for dtype in (np.bool_, np.complex64):
        with pytest.raises(WdsrError, match="unsupported dtype"):
            _to_8bit(np.ones((2, 2), dtype), "SR")


def test_errors_name_the_image_at_fault():
    good = np.zeros((12, 12), np.uint8)
    with pytest.raises(WdsrError, match="^HR image"):
        psnr(good, np.zeros((12, 12, 4), np.uint8), 2)
    with pytest.raises(WdsrError, match="^SR image"):
        psnr(np.zeros((12, 12, 4), np.uint8), good, 2)


@pytest.mark.parametrize("shape", [(10, 20), (20, 10)])
def test_ssim_needs_the_window_in_both_directions(shape):
    big = (shape[0] + 2, shape[1] + 2)  # border 1 on each side
    with pytest.raises(WdsrError, match=f"got {shape[0]}x{shape[1]}"):
        ssim(np.zeros(big, np.uint8), np.zeros(big, np.uint8), 1, "y")
    assert ssim(np.zeros((13, 13), np.uint8), np.zeros((13, 13), np.uint8), 1, "y") == 1.0


def test_region_psnr_is_on_the_protocols_colour_space_without_a_border():
    from wdsr_cli.core.metrics import region_psnr

    hr = np.zeros((2, 2, 3), np.uint8)
    sr = hr.copy()
    sr[0, 0] = (10, 0, 0)  # one pixel, red only
    mse_rgb = 100 / 12
    assert region_psnr(sr, hr, "rgb") == pytest.approx(10 * math.log10(255**2 / mse_rgb))
    mse_y = (65.481 * 10 / 255) ** 2 / 4
    assert region_psnr(sr, hr) == pytest.approx(10 * math.log10(255**2 / mse_y))
    assert region_psnr(sr, hr, "y") == region_psnr(sr, hr)
    with pytest.raises(WdsrError, match="unknown evaluation protocol"):
        region_psnr(sr, hr, "Y")


def test_crop_hr_to_takes_gray_hr_and_an_exact_fit():
    assert crop_hr_to(np.zeros((8, 6)), (4, 3), 2).shape == (8, 6)
    assert crop_hr_to(np.zeros((9, 7, 3)), np.zeros((4, 3, 3)), 2).shape == (8, 6, 3)
    for hr in (np.zeros(8), np.zeros((7, 6)), np.zeros((8, 5))):
        with pytest.raises(WdsrError, match="smaller than 2 x LR"):
            crop_hr_to(hr, (4, 3), 2)
    with pytest.raises(WdsrError, match="lr_shape must start with"):
        crop_hr_to(np.zeros((8, 6)), (4,), 2)


def test_protocols_are_the_two_named_ones():
    from wdsr_cli.core import metrics

    assert metrics.PROTOCOLS == ("y", "rgb")

"""Tests for the MATLAB-compatible bicubic imresize.

The reference below is written straight from the definition, independently of the module's
index/weight tables: for each output sample it walks over *every* input position whose stretched
kernel is non-zero, mirrors that position into the image one step at a time, and normalises.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from wdsr_cli.core.data.resize import (
    bicubic_downscale,
    bicubic_upscale,
    contributions,
    cubic_kernel,
    imresize,
)
from wdsr_cli.core.errors import WdsrError

# ----------------------------------------------------------------------------- reference


def _keys_cubic(x: float) -> float:
    """Keys (1981) cubic convolution kernel, a = -0.5, evaluated one number at a time."""
    a = -0.5
    t = abs(x)
    if t <= 1.0:
        return (a + 2.0) * t**3 - (a + 3.0) * t**2 + 1.0
    if t < 2.0:
        return a * t**3 - 5.0 * a * t**2 + 8.0 * a * t - 4.0 * a
    return 0.0


def _mirror(j: int, n: int) -> int:
    """Reflect a 0-based index into [0, n) with edge repetition ("symmetric")."""
    while j < 0 or j >= n:
        if j < 0:
            j = -j - 1
        if j >= n:
            j = 2 * n - 1 - j
    return j


def _ref_weights_1d(n_in: int, n_out: int, scale: float) -> list[dict[int, float]]:
    """For each output sample: {input index: normalised weight}."""
    stretch = min(scale, 1.0)  # antialiasing when shrinking
    half = 2.0 / stretch  # half-width of the stretched kernel, in input pixels
    rows = []
    for i in range(n_out):
        centre = (i + 0.5) / scale - 0.5  # 0-based input coordinate of output pixel centre i
        contrib: dict[int, float] = {}
        total = 0.0
        for j in range(math.floor(centre - half) - 1, math.ceil(centre + half) + 2):
            w = stretch * _keys_cubic(stretch * (centre - j))
            if w == 0.0:
                continue
            total += w
            src = _mirror(j, n_in)
            contrib[src] = contrib.get(src, 0.0) + w
        rows.append({k: v / total for k, v in contrib.items()})
    return rows


def _ref_resize_1d(line: np.ndarray, table: list[dict[int, float]]) -> np.ndarray:
    out = np.zeros((len(table),) + line.shape[1:], dtype=np.float64)
    for i, contrib in enumerate(table):
        for j, w in contrib.items():
            out[i] += w * line[j]
    return out


def _ref_round(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    out = np.empty_like(x)
    for idx, v in np.ndenumerate(x):
        r = math.floor(abs(v) + 0.5) if abs(v) % 1 != 0.5 else math.floor(abs(v)) + 1
        out[idx] = min(max(math.copysign(r, v), lo), hi)
    return out


def reference_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Slow separable reference: rows first on equal factors; integers re-quantised per pass."""
    h, w = img.shape[:2]
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    x = img.astype(np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    integer = np.issubdtype(img.dtype, np.integer)
    info = np.iinfo(img.dtype) if integer else None
    # axis 0
    t0 = _ref_weights_1d(h, oh, scale)
    y = np.stack([_ref_resize_1d(x[:, c], t0) for c in range(x.shape[1])], axis=1)
    if integer:
        y = _ref_round(y, info.min, info.max)
    # axis 1
    t1 = _ref_weights_1d(w, ow, scale)
    z = np.stack([_ref_resize_1d(y[r], t1) for r in range(y.shape[0])], axis=0)
    if integer:
        z = _ref_round(z, info.min, info.max)
    if img.ndim == 2:
        z = z[:, :, 0]
    return z


def reference_imresize_2d(img: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Non-separable float reference: each output pixel sums over a 2-D neighbourhood at once."""
    h, w = img.shape
    oh, ow = out_shape
    tr = _ref_weights_1d(h, oh, oh / h)
    tc = _ref_weights_1d(w, ow, ow / w)
    out = np.zeros(out_shape)
    for i in range(oh):
        for j in range(ow):
            acc = 0.0
            for r, wr in tr[i].items():
                for c, wc in tc[j].items():
                    acc += wr * wc * float(img[r, c])
            out[i, j] = acc
    return out


# ----------------------------------------------------------------------------- kernel / tables


def test_kernel_values():
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, -0.5, -1.5])
    expected = [_keys_cubic(v) for v in x]
    np.testing.assert_allclose(cubic_kernel(x), expected, rtol=0, atol=1e-15)
    assert cubic_kernel(np.array([0.5]))[0] == 0.5625
    assert cubic_kernel(np.array([1.5]))[0] == -0.0625
    assert cubic_kernel(np.array([2.0]))[0] == 0.0


def test_contributions_halving_4_to_2_by_hand():
    """scale 1/2, n=4 -> 2. Output 1 sits at u = 1/0.5 + 0.5*(1-2) = 1.5 (1-based).

    Stretched kernel h(d) = 0.5*k(0.5 d), width 8: taps j = -2..5 at d = u - j = 3.5 .. -3.5.
    k(0.25)=0.8671875, k(0.75)=0.2265625, k(1.25)=-0.0703125, k(1.75)=-0.0234375; these sum to
    1 per side, so the normalised weights are 0.5*k: 0.43359375, 0.11328125, -0.03515625,
    -0.01171875. Mirroring j = -2,-1,0 -> 3,2,1 and j = 5 -> 4 folds them onto v1..v4:
    out1 = 0.546875 v1 + 0.3984375 v2 + 0.1015625 v3 - 0.046875 v4 (and out2 mirrored).
    """
    idx, w = contributions(4, 2, 0.5)
    folded = np.zeros((2, 4))
    for i in range(2):
        for j, wt in zip(idx[i], w[i], strict=True):
            folded[i, j] += wt
    np.testing.assert_allclose(
        folded[0], [0.546875, 0.3984375, 0.1015625, -0.046875], rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(folded[1], folded[0][::-1], rtol=0, atol=1e-15)


def test_downscale_4x4_ramp_known_values():
    """A linear 1-D ramp [0,1,2,3] halves to [0.4609375, 2.5390625] (weights above):
    0.3984375*1 + 0.1015625*2 - 0.046875*3 = 0.4609375, and 3 - that by symmetry.
    img[r, c] = 4r + c is separable-linear, so out[i, j] = 4 a_i + a_j.
    """
    img = np.arange(16, dtype=np.float64).reshape(4, 4)
    out = imresize(img, 0.5)
    a = np.array([0.4609375, 2.5390625])
    expected = 4 * a[:, None] + a[None, :]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        expected, [[2.3046875, 4.3828125], [10.6171875, 12.6953125]], rtol=0, atol=0
    )


def test_downscale_uint8_ramp_known_values():
    """Columns 0,40,80,120 -> 40*[0.4609375, 2.5390625] = [18.4375, 101.5625] -> [18, 102]."""
    img = np.tile(np.array([0, 40, 80, 120], dtype=np.uint8), (4, 1))
    out = imresize(img, 0.5)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[18, 102], [18, 102]])


# ----------------------------------------------------------------------------- vs reference

SCALES = [0.5, 1 / 3, 0.25, 2.0, 3.0, 4.0, 0.7, 1.5]


@pytest.mark.parametrize("scale", SCALES)
def test_float_matches_reference(scale):
    rng = np.random.default_rng(int(scale * 1000))
    img = rng.normal(100.0, 60.0, size=(13, 11, 3))
    out = imresize(img, scale)
    ref = reference_imresize(img, scale)
    assert out.shape == ref.shape
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-9)


# Scales whose weights are dyadic fractions: float sums are exact, so even exact .5 ties round
# the same way in any implementation and uint8 results must match bit for bit.
DYADIC = [0.5, 0.25, 2.0, 4.0]


@pytest.mark.parametrize("scale", SCALES)
def test_uint8_matches_reference(scale):
    rng = np.random.default_rng(7 + int(scale * 1000))
    img = rng.integers(0, 256, size=(12, 14, 3), dtype=np.uint8)
    out = imresize(img, scale)
    ref = reference_imresize(img, scale)
    assert out.dtype == np.uint8 and out.shape == ref.shape
    diff = np.abs(out.astype(int) - ref.astype(int))
    if scale in DYADIC:
        np.testing.assert_array_equal(out, ref.astype(np.uint8))
    else:
        # Non-dyadic weights: a value that is mathematically exactly k + 0.5 can land on either
        # side in floating point, and the rounded intermediate propagates to the second pass.
        assert diff.max() <= 1
        assert np.count_nonzero(diff) <= 0.01 * diff.size


@pytest.mark.parametrize("scale", SCALES)
def test_uint8_single_pass_differs_only_at_exact_ties(scale):
    """One axis only (the other at factor 1, an exact identity): every uint8 disagreement with
    the reference must sit on a value that is a half-integer up to float noise."""
    rng = np.random.default_rng(17 + int(scale * 1000))
    img = rng.integers(0, 256, size=(40, 9), dtype=np.uint8)
    oh = math.ceil(40 * scale)
    table = _ref_weights_1d(40, oh, oh / 40)
    exact = _ref_resize_1d(img.astype(np.float64), table)
    ref = _ref_round(exact, 0, 255)
    out = imresize(img, output_shape=(oh, 9))
    bad = out != ref
    frac = np.abs(exact - np.floor(exact) - 0.5)
    assert np.all(frac[bad] < 1e-9)
    assert np.all(np.abs(out.astype(int) - ref.astype(int)) <= 1)
    # and away from ties the float results agree too
    np.testing.assert_allclose(
        imresize(img.astype(np.float64), output_shape=(oh, 9)), exact, rtol=0, atol=1e-9
    )


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_grayscale_2d_and_uint16(scale):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 65536, size=(9, 10), dtype=np.uint16)
    out = imresize(img, scale)
    assert out.ndim == 2 and out.dtype == np.uint16
    np.testing.assert_array_equal(out, reference_imresize(img, scale).astype(np.uint16))


def test_float32_stays_float32_and_unclipped():
    img = np.zeros((8, 8), dtype=np.float32)
    img[:, 4:] = 1.0
    out = imresize(img, 2.0)
    assert out.dtype == np.float32
    assert out.max() > 1.0 and out.min() < 0.0  # cubic ringing is kept for floats
    np.testing.assert_allclose(out, reference_imresize(img.astype(np.float64), 2.0), atol=1e-6)


def test_tiny_images_mirror_repeatedly():
    img = np.array([[10.0, 200.0]])
    out = imresize(img, 4.0)
    np.testing.assert_allclose(out, reference_imresize(img, 4.0), rtol=0, atol=1e-9)
    one = imresize(np.array([[7.0]]), 0.25)
    assert one.shape == (1, 1) and abs(one[0, 0] - 7.0) < 1e-12


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize(
    "shape,scale,expected",
    [
        ((10, 10), 0.5, (5, 5)),
        ((11, 9), 0.5, (6, 5)),
        ((7, 7), 1 / 3, (3, 3)),
        ((9, 12), 1 / 3, (3, 4)),
        ((10, 13), 0.7, (7, 10)),
        ((5, 6), 3.0, (15, 18)),
        ((1356, 2040), 0.25, (339, 510)),
    ],
)
def test_output_size_is_ceil(shape, scale, expected):
    out = imresize(np.zeros(shape, dtype=np.uint8), scale)
    assert out.shape == expected


def test_output_shape_argument():
    img = np.random.default_rng(0).random((10, 12, 3))
    out = imresize(img, output_shape=(7, 20))
    assert out.shape == (7, 20, 3)
    ref = np.stack([reference_imresize_2d(img[:, :, c], (7, 20)) for c in range(3)], axis=2)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.7, 2.0, 4.0])
def test_constant_stays_constant(dtype, scale):
    img = np.full((9, 14, 3), 173, dtype=dtype)
    out = imresize(img, scale)
    if np.issubdtype(dtype, np.integer):
        assert np.all(out == 173)
    else:
        np.testing.assert_allclose(out, 173.0, rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_separable_equals_2d_and_axis_by_axis():
    rng = np.random.default_rng(11)
    img = rng.random((12, 10)) * 255
    both = imresize(img, output_shape=(5, 17))
    rows_then_cols = imresize(imresize(img, output_shape=(5, 10)), output_shape=(5, 17))
    cols_then_rows = imresize(imresize(img, output_shape=(12, 17)), output_shape=(5, 17))
    np.testing.assert_allclose(both, rows_then_cols, rtol=0, atol=1e-10)
    np.testing.assert_allclose(both, cols_then_rows, rtol=0, atol=1e-10)
    np.testing.assert_allclose(both, reference_imresize_2d(img, (5, 17)), rtol=0, atol=1e-10)


def test_uint8_order_smaller_factor_first():
    """Integers are re-quantised per pass, so the pass order is observable: MATLAB shrinks first."""
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(16, 16), dtype=np.uint8)
    out = imresize(img, output_shape=(8, 40))  # factors 0.5 (rows) and 2.5 (cols)
    rows_first = imresize(imresize(img, output_shape=(8, 16)), output_shape=(8, 40))
    cols_first = imresize(imresize(img, output_shape=(16, 40)), output_shape=(8, 40))
    np.testing.assert_array_equal(out, rows_first)
    assert np.any(rows_first != cols_first)  # the order matters for this input
    out2 = imresize(img, output_shape=(40, 8))  # now columns shrink: columns first
    np.testing.assert_array_equal(
        out2, imresize(imresize(img, output_shape=(16, 8)), output_shape=(40, 8))
    )


def test_down_up_on_smooth_image_is_close():
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float64)
    img = 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 11.0) + 30 * np.sin((xx + yy) / 15.0)
    back = imresize(imresize(img, 0.5), 2.0)
    assert back.shape == img.shape
    err = np.abs(back - img)[4:-4, 4:-4]
    assert err.max() < 3.0
    assert np.sqrt(np.mean(err**2)) < 1.0
    noise = np.random.default_rng(0).normal(0, 20, img.shape)
    bad = np.abs(imresize(imresize(img + noise, 0.5), 2.0) - img)[4:-4, 4:-4]
    assert np.sqrt(np.mean(bad**2)) > 3.0  # the bound above is not vacuous


def test_uint8_rounds_half_away_from_zero_and_clips():
    """Row 1x4 -> 1x8 (the row factor is 1: exact identity). Output 1 (1-based) sits at
    u = 1/2 + 0.5*(1 - 1/2) = 0.75: taps j = -1, 0, 1, 2 at d = 1.75, 0.75, -0.25, -1.25 with
    k = -3/128, 29/128, 111/128, -9/128 (sum 1). Mirroring j = -1 -> 2, j = 0 -> 1 gives
    out1 = (140 v1 - 12 v2) / 128; v = [10, 26, ...] makes it (1400 - 312) / 128 = 8.5 exactly.
    MATLAB rounds that to 9 (np.round would give 8).
    """
    img = np.array([[10, 26, 90, 0]], dtype=np.uint8)
    f = imresize(img.astype(np.float64), output_shape=(1, 8))
    assert f[0, 0] == 8.5
    u = imresize(img, output_shape=(1, 8))
    assert u[0, 0] == 9
    assert np.round(f[0, 0]) == 8  # the distinction being tested is real
    # saturation: a bright step overshoots above 255 and below 0 when enlarged
    step = np.zeros((4, 8), dtype=np.uint8)
    step[:, 4:] = 255
    fs = imresize(step.astype(np.float64), 2.0)
    assert fs.max() > 255.5 and fs.min() < -0.5
    us = imresize(step, 2.0)
    assert us.max() == 255 and us.min() == 0
    np.testing.assert_array_equal(us, np.clip(np.floor(fs + 0.5), 0, 255).astype(np.uint8))


def test_helpers():
    rng = np.random.default_rng(2)
    hr = rng.integers(0, 256, size=(24, 36, 3), dtype=np.uint8)
    lr = bicubic_downscale(hr, 3)
    assert lr.shape == (8, 12, 3) and lr.dtype == np.uint8
    np.testing.assert_array_equal(lr, imresize(hr, 1 / 3))
    up = bicubic_upscale(lr, 3)
    assert up.shape == hr.shape
    np.testing.assert_array_equal(up, imresize(lr, 3.0))
    with pytest.raises(WdsrError, match="must be a positive integer, got 0"):
        bicubic_downscale(hr, 0)
    with pytest.raises(WdsrError, match="must be a positive integer, got 2.5"):
        bicubic_upscale(lr, 2.5)
    with pytest.raises(WdsrError, match="must be a positive integer, got True"):
        bicubic_downscale(hr, True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"scale": 0.5, "output_shape": (2, 2)},
        {"scale": 0},
        {"scale": -2},
        {"scale": float("nan")},
        {"scale": float("inf")},
        {"scale": "2"},
        {"output_shape": (0, 4)},
        {"output_shape": (4,)},
        {"output_shape": (2.5, 4)},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(WdsrError) as exc:
        imresize(np.zeros((4, 4), dtype=np.uint8), **kwargs)
    assert exc.value.hint


@pytest.mark.parametrize(
    "img",
    [
        np.zeros((0, 4), dtype=np.uint8),
        np.zeros((4, 0, 3), dtype=np.uint8),
        np.zeros(5, dtype=np.uint8),
        np.zeros((1, 4, 4, 3), dtype=np.uint8),
        np.zeros((4, 4), dtype=bool),
        np.zeros((4, 4), dtype=complex),
    ],
)
def test_bad_images(img):
    with pytest.raises(WdsrError, match="cannot resize an empty image|expects an HxW or HxWxC "
                       "image|does not support images of dtype"):
        imresize(img, 0.5)


# ------------------------------------------------------------------------ banded resizing


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("out_shape", [(47, 31), (31, 47), (13, 9), (9, 13), (40, 40)])
def test_rows_are_those_rows_of_the_whole_result(dtype, out_shape):
    """Enlarging and shrinking, rows or columns first (MATLAB's order follows the smaller
    factor): every band equals the same rows of the whole resize, bit for bit, including the
    bands at the mirrored edges."""
    rng = np.random.default_rng(3)
    img = (rng.random((23, 21, 3)) * 255).astype(dtype)
    whole = imresize(img, output_shape=out_shape)
    for first, end in [(0, 1), (0, 5), (3, 8), (out_shape[0] - 2, out_shape[0])]:
        band = imresize(img, output_shape=out_shape, rows=(first, end))
        assert band.dtype == whole.dtype and band.shape == (end - first,) + whole.shape[1:]
        assert np.array_equal(band, whole[first:end])


@pytest.mark.parametrize("rows", [(0, 0), (-1, 3), (5, 3), (0, 48)])
def test_rows_outside_the_output_are_refused(rows):
    with pytest.raises(WdsrError, match="not inside the 47 output rows"):
        imresize(np.zeros((23, 21), dtype=np.uint8), output_shape=(47, 31), rows=rows)

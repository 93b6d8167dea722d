"""`--outscale F`: the network at its scale, then the MATLAB bicubic to F x the input size
(core/inference/outscale.py), on images through the real entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import one_line_error, run_wdsr, save_tiny_checkpoint

from wdsr_cli.core.data.images import Image, read_image, write_image
from wdsr_cli.core.data.resize import imresize
from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.inference import outscale as O

W, H = 30, 21  # odd on purpose: the rounding shows


def _picture(h: int = H, w: int = W) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.stack([(np.sin(x / 3 + k) * np.cos(y / 4 - k) + 1) / 2 for k in range(3)], 2)
    return np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ the rules


@pytest.mark.parametrize("f,scale,want", [(1.5, None, 2), (2, None, 2), (2.01, None, 3),
                                          (3, None, 3), (3, 4, 4), (0.5, None, 2),
                                          (4, None, 4), (6, None, 4), (1.5, 3, 3)])
def test_the_network_scale_is_the_smallest_bundled_one_at_least_f(f, scale, want):
    chosen, note = O.network_scale(f, scale)
    assert chosen == want
    assert (note is not None) == (f > 4 and scale is None)


@pytest.mark.parametrize("f,want,even", [(1.5, (45, 32), (46, 32)), (3, (90, 63), (90, 64)),
                                         (0.5, (15, 11), (16, 10)), (6, (180, 126), (180, 126)),
                                         (0.05, (2, 1), (2, 2))])
def test_output_sizes_round_to_whole_pixels(f, want, even):
    # 21 * 1.5 = 31.5 -> 32 (halves up); 21 * 0.5 = 10.5 -> 11; 30 * 0.05 = 1.5 -> 2
    assert O.output_size(W, H, f) == want
    assert O.output_size(W, H, f, even=True) == even


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "abc", "", "65", True])
def test_bad_outscale_values_are_refused(value):
    with pytest.raises(WdsrError):
        O.check_outscale(value)


def test_an_outscale_that_leaves_no_pixel_is_refused():
    with pytest.raises(WdsrError, match="smaller than one pixel"):
        O.output_size(10, 10, 0.01)


def test_resize_to_is_the_matlab_bicubic_and_skips_the_identity():
    img = _picture()
    assert O.resize_to(img, (W, H)) is img
    assert np.array_equal(O.resize_to(img, (45, 32)), imresize(img, output_shape=(32, 45)))


@pytest.mark.parametrize("size", [(45, 32), (15, 11), (31, 64)])
@pytest.mark.parametrize("band_rows", [1, 5, 7, 1000])
def test_resize_to_in_bands_is_the_whole_resize(size, band_rows):
    """The bands (any height, the last one short) put together are the whole-image resize
    exactly, for an 8-bit and a float result."""
    for img in (_picture(), _picture().astype(np.float32) / 3):
        got = O.resize_to(img, size, band_rows=band_rows)
        want = imresize(img, output_shape=(size[1], size[0]))
        assert got.dtype == want.dtype and np.array_equal(got, want)


# ------------------------------------------------------------------------ through the CLI


@pytest.fixture(scope="module")
def tiny(ms_cpu, tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    return {s: save_tiny_checkpoint(d / f"tiny_x{s}.ckpt", s) for s in (2, 4)}


def _run(tmp_path, *args):
    src = tmp_path / "in.png"
    if not src.exists():
        write_image(src, Image(pixels=_picture()))
    res = run_wdsr("upscale", str(src), "--precision", "fp32", "--json",
                   str(tmp_path / "s.json"), "--overwrite", *args)
    assert res.returncode == 0, res.stderr
    return json.loads((tmp_path / "s.json").read_text())["images"][0], res.stderr


def test_outscale_is_the_network_output_resized(tiny, tmp_path):
    """x1.5 from x2 weights: the x2 result (same run without --outscale) shrunk with the
    MATLAB bicubic to round(1.5 x) each side, bit for bit; named in_x1.5.png."""
    plain, _ = _run(tmp_path, "--checkpoint", str(tiny[2]))
    row, err = _run(tmp_path, "--checkpoint", str(tiny[2]), "--outscale", "1.5")
    assert row["output"].endswith("in_x1.5.png") and row["output_size"] == [45, 32]
    assert row["network_scale"] == 2 and row["outscale"] == 1.5
    x2 = read_image(plain["output"]).pixels
    want = imresize(x2, output_shape=(32, 45))
    assert np.array_equal(read_image(row["output"]).pixels, want)
    assert "--outscale 1.5: the x2 network's output shrunk" in err


def test_outscale_3_with_scale_4_uses_the_x4_weights(tiny, tmp_path):
    row, _ = _run(tmp_path, "--checkpoint", str(tiny[4]), "--outscale", "3")
    assert row["network_scale"] == 4 and row["output_size"] == [90, 63]
    assert row["output"].endswith("in_x3.png")


@pytest.mark.parametrize("f,scale,size", [(1.5, 2, [45, 32]), (0.5, 2, [15, 11]),
                                          (6, 4, [180, 126])])
def test_outscale_picks_the_bundled_scale(tmp_path, f, scale, size):
    row, err = _run(tmp_path, "--outscale", str(f))
    assert row["network_scale"] == scale and row["output_size"] == size
    assert read_image(row["output"]).pixels.shape == (size[1], size[0], 3)
    assert ("above the largest bundled scale" in err) == (f == 6)


def test_outscale_3_with_scale_4_bundled(tmp_path):
    row, _ = _run(tmp_path, "--outscale", "3", "--scale", "4")
    assert row["network_scale"] == 4 and row["output_size"] == [90, 63]


def test_alpha_follows_the_outscale(tiny, tmp_path):
    alpha = np.full((H, W), 255, np.uint8)
    alpha[:, :10] = 0
    write_image(tmp_path / "in.png", Image(pixels=_picture(), alpha=alpha))
    row, _ = _run(tmp_path, "--checkpoint", str(tiny[2]), "--outscale", "2.5")
    out = read_image(row["output"])
    assert out.pixels.shape == (53, 75, 3) and out.alpha.shape == (53, 75)
    want = np.clip(imresize(alpha.astype(np.float32), output_shape=(53, 75)), 0, 255)
    assert np.abs(out.alpha.astype(np.float64) - want).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("value,needle", [("0", "greater than 0"), ("-2", "greater than 0"),
                                          ("nan", "greater than 0"), ("inf", "greater than 0"),
                                          ("abc", "must be a number"),
                                          ("100", "more than 64")])
def test_bad_outscale_on_the_command_line(tiny, tmp_path, value, needle):
    write_image(tmp_path / "in.png", Image(pixels=_picture()))
    line = one_line_error(run_wdsr("upscale", str(tmp_path / "in.png"), "--outscale", value,
                                   "--checkpoint", str(tiny[2])))
    assert needle in line and "--outscale" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]

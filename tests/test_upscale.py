"""`wdsr upscale` through the real entry point: every kind of image, naming, batches, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, run_wdsr, save_tiny_checkpoint
from PIL import Image as PILImage
from PIL import ImageCms

from wdsr_cli.core.data.images import Image, read_image, write_image
from wdsr_cli.core.data.resize import bicubic_upscale
from wdsr_cli.core.inference.upscale import bleed_transparent

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def ckpt(ms_cpu, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    corrupt = d / "corrupt.ckpt"
    good = save_tiny_checkpoint(d / "tiny_x2.ckpt", 2)
    data = good.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    return {"x2": good, "x3": save_tiny_checkpoint(d / "tiny_x3.ckpt", 3), "corrupt": corrupt}


def _picture(h: int, w: int, c: int = 3, top: int = 255) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = [(np.sin(x / 4 + k) * np.cos(y / 6 - k) + 1) / 2 for k in range(c)]
    a = np.stack(chans, axis=2) * 0.85 * top + RNG.random((h, w, c)) * 0.15 * top
    return np.clip(np.rint(a), 0, top).astype(np.uint8 if top == 255 else np.uint16)


# ------------------------------------------------------------------------ a mixed batch


@pytest.fixture(scope="module")
def batch(ckpt, tmp_path_factory):
    """One run over a folder holding every kind of image and one corrupt file."""
    d = tmp_path_factory.mktemp("batch")
    src = d / "in"
    src.mkdir()
    rgb = _picture(21, 30)
    write_image(src / "rgb.png", Image(pixels=rgb))
    kinds = {"gray": _picture(17, 12, 1), "rgb16": _picture(13, 19, 3, 65535),
             "gray16": _picture(15, 11, 1, 65535)}
    write_image(src / "gray.png", Image(pixels=kinds["gray"]))
    alpha = np.zeros((20, 26), np.uint8)
    alpha[4:16, 6:20] = 255
    alpha[4:16, 5] = 128
    rgba_rgb = _picture(20, 26)
    rgba_rgb[alpha == 0] = 0  # transparent pixels are black, as many editors store them
    write_image(src / "rgba.png", Image(pixels=rgba_rgb, alpha=alpha))
    # a colour profile and EXIF ride along (test_metadata.py has the details)
    write_image(src / "rgb16.png", Image(pixels=kinds["rgb16"], bit_depth=16,
                                         icc_profile=PROFILE, exif=_camera_exif(1)))
    write_image(src / "gray16.png", Image(pixels=kinds["gray16"], bit_depth=16))
    palette = PILImage.fromarray(_picture(16, 18)).convert("P", palette=PILImage.ADAPTIVE,
                                                           colors=12)
    palette.save(src / "palette.png")
    kinds["palette"] = np.asarray(palette.convert("RGB"))
    PILImage.fromarray(_picture(24, 20)).save(src / "photo.jpg", quality=92,
                                              icc_profile=PROFILE,
                                              exif=b"Exif\x00\x00" + _camera_exif(6))
    good = (src / "rgb.png").read_bytes()
    (src / "broken.png").write_bytes(good[: len(good) // 2])
    (src / "notes.txt").write_text("not an image, not picked up from a folder")
    out = d / "out"
    # fp32: these tests compare with the fp32 Predictor (bf16 is checked in test_openvino.py)
    res = run_wdsr("upscale", str(src), "-o", str(out), "--checkpoint", str(ckpt["x2"]),
                   "--precision", "fp32", "--json", str(d / "summary.json"),
                   env={"COLUMNS": "250"})
    return {"res": res, "src": src, "out": out, "rgb": rgb, "alpha": alpha, "kinds": kinds,
            "summary": json.loads((d / "summary.json").read_text())}


def _camera_exif(orientation: int) -> bytes:
    ex = PILImage.Exif()
    ex[0x0112], ex[0x010F] = orientation, "wdsr test camera"
    return ex.tobytes()[6:]


PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_profile_and_exif_reach_the_output_with_the_orientation_applied_once(batch):
    meta = {Path(r["output"]).name: r["metadata"] for r in batch["summary"]["images"]}
    assert meta["photo_x2.png"] == meta["rgb16_x2.png"] == ["exif", "icc_profile"]
    assert meta["rgb_x2.png"] == []
    for name in ("photo_x2.png", "rgb16_x2.png"):  # the 8-bit and the float/16-bit paths
        with PILImage.open(batch["out"] / name) as im:
            exif = im.getexif()
            assert im.info["icc_profile"] == PROFILE
            assert exif[0x010F] == "wdsr test camera" and exif[0x0112] == 1
    with PILImage.open(batch["out"] / "rgb_x2.png") as im:
        assert "icc_profile" not in im.info and not im.getexif()


def test_strip_metadata_leaves_out_the_exif_and_keeps_the_colour_profile(ckpt, tmp_path):
    PILImage.fromarray(_picture(10, 12)).save(tmp_path / "p.jpg", icc_profile=PROFILE,
                                              exif=b"Exif\x00\x00" + _camera_exif(1))
    res = run_wdsr("upscale", str(tmp_path / "p.jpg"), "--checkpoint", str(ckpt["x2"]),
                   "--strip-metadata", "--json", str(tmp_path / "s.json"))
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "s.json").read_text())["images"][0]["metadata"] == \
        ["icc_profile"]
    with PILImage.open(tmp_path / "p_x2.png") as im:
        assert im.info["icc_profile"] == PROFILE and not im.getexif()
        assert "exif" not in im.info


LUMA = np.array([0.299, 0.587, 0.114])  # BT.601: docs/upscale.md "Every kind of image"


def _expected(checkpoint, pixels, *, sixteen=False, gray=False, self_ensemble=False):
    """The untiled Predictor on the source pixels, converted as
    docs/upscale.md "Every kind of image" says: 16-bit fed as x * 255/65535 (no 8-bit
    rounding), gray replicated in and merged back with BT.601 luma."""
    from wdsr_cli.core.inference import Predictor

    x = pixels.astype(np.float64) * (255 / 65535 if sixteen else 1)
    if gray:
        x = np.repeat(x, 3, axis=2)
    sr = Predictor.from_checkpoint(checkpoint, self_ensemble=self_ensemble).predict(
        x.astype(np.float32)).astype(np.float64)
    if gray:
        sr = (sr @ LUMA)[:, :, None]
    top = 65535 if sixteen else 255
    return np.clip(np.rint(sr * (top / 255)), 0, top)


def _assert_pixels(got, want):
    """Equal up to one step of the last bit where the float output sits on a rounding edge."""
    assert got.shape == want.shape
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99, (diff.max(), (diff == 0).mean())


def test_batch_continues_past_a_corrupt_file_and_reports_it(batch):
    res = batch["res"]
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "1 of 8 images failed" in res.stderr
    assert "broken.png" in res.stdout and "truncated" in res.stdout
    names = sorted(os.listdir(batch["out"]))
    assert names == sorted(f"{n}_x2.png" for n in
                           ("rgb", "gray", "rgba", "rgb16", "gray16", "palette", "photo"))
    summary = batch["summary"]
    assert [Path(f["input"]).name for f in summary["failures"]] == ["broken.png"]
    assert len(summary["images"]) == 7 and summary["scale"] == 2


def test_rgb_output_is_the_predictor_output(batch, ckpt):
    from wdsr_cli.core.inference import Predictor

    out = read_image(batch["out"] / "rgb_x2.png")
    assert out.pixels.shape == (42, 60, 3) and out.alpha is None and out.bit_depth == 8
    ref = Predictor.from_checkpoint(ckpt["x2"]).predict(batch["rgb"].astype(np.float32))
    want = np.clip(np.rint(ref), 0, 255)
    assert np.abs(out.pixels.astype(int) - want).max() <= 1
    assert (out.pixels == want).mean() > 0.999


def test_gray_stays_gray_and_sixteen_bit_stays_sixteen_bit(batch, ckpt):
    kinds = batch["kinds"]
    gray = read_image(batch["out"] / "gray_x2.png")
    assert gray.pixels.shape == (34, 24, 1) and gray.bit_depth == 8
    _assert_pixels(gray.pixels, _expected(ckpt["x2"], kinds["gray"], gray=True))
    g16 = read_image(batch["out"] / "gray16_x2.png")
    assert g16.pixels.shape == (30, 22, 1) and g16.bit_depth == 16
    _assert_pixels(g16.pixels, _expected(ckpt["x2"], kinds["gray16"], sixteen=True, gray=True))
    c16 = read_image(batch["out"] / "rgb16_x2.png")
    assert c16.pixels.shape == (26, 38, 3) and c16.bit_depth == 16
    _assert_pixels(c16.pixels, _expected(ckpt["x2"], kinds["rgb16"], sixteen=True))
    # real 16-bit precision, not 8-bit values scaled by 257
    assert np.mean(c16.pixels % 257 != 0) > 0.5


def test_palette_and_jpeg_become_rgb_png(batch, ckpt):
    pal = read_image(batch["out"] / "palette_x2.png")
    assert pal.pixels.shape == (32, 36, 3) and pal.alpha is None
    _assert_pixels(pal.pixels, _expected(ckpt["x2"], batch["kinds"]["palette"]))
    photo = batch["out"] / "photo_x2.png"
    assert photo.read_bytes().startswith(b"\x89PNG")
    assert read_image(photo).pixels.shape == (40, 48, 3)  # EXIF orientation 6: turned upright


def test_rgba_keeps_its_alpha_upscaled_with_the_matlab_bicubic(batch):
    out = read_image(batch["out"] / "rgba_x2.png")
    assert out.pixels.shape == (40, 52, 3) and out.alpha is not None
    want = np.rint(np.clip(bicubic_upscale(batch["alpha"].astype(np.float32), 2), 0, 255))
    np.testing.assert_array_equal(out.alpha, want.astype(np.uint8))
    assert (out.alpha[10:30, 14:38] == 255).all()  # inside the opaque block
    assert (out.alpha[:4] == 0).all()


def test_no_temporary_files_are_left(batch):
    assert not [n for n in os.listdir(batch["out"]) if n.startswith(".")]
    assert not [n for n in os.listdir(batch["src"]) if n.startswith(".")]


# ------------------------------------------------------------------------- alpha fringes


def test_transparent_colour_is_bled_from_the_visible_pixels():
    rgb = np.zeros((12, 12, 3), np.float32)
    rgb[4:8, 4:8] = (200, 50, 20)  # visible red block on transparent black
    alpha = np.zeros((12, 12), np.float32)
    alpha[4:8, 4:8] = 255
    rgb[0, 0] = (0, 0, 0)
    out = bleed_transparent(rgb, alpha, steps=2)
    np.testing.assert_array_equal(out[4:8, 4:8], rgb[4:8, 4:8])  # visible pixels untouched
    np.testing.assert_allclose(out[2:10, 2:10], np.broadcast_to((200, 50, 20), (8, 8, 3)))
    np.testing.assert_allclose(out[0, 0], (200, 50, 20))  # beyond the steps: mean colour


def test_no_dark_fringe_around_an_opaque_shape(ms_cpu, tmp_path):
    """With a bicubic stand-in for the network, edge pixels keep the shape's colour."""
    from wdsr_cli.core.inference import Predictor
    from wdsr_cli.core.inference.upscale import upscale_image

    class Bicubic:
        name = "bicubic"

        def __call__(self, x):
            y = bicubic_upscale(x[0].transpose(1, 2, 0).astype(np.float64), 2)
            return y.transpose(2, 0, 1)[None].astype(np.float32)

    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[5:11, 5:11] = (220, 40, 30)
    alpha = np.zeros((16, 16), np.uint8)
    alpha[5:11, 5:11] = 255
    write_image(tmp_path / "in.png", Image(pixels=rgb, alpha=alpha))
    upscale_image(Predictor(Bicubic(), 2, 2), tmp_path / "in.png", tmp_path / "out.png")
    out = read_image(tmp_path / "out.png")
    visible = out.alpha > 0
    assert visible.sum() > 100
    red = out.pixels[..., 0][visible].astype(int)
    assert red.min() >= 200, "transparent black bled into the visible edge"


# ----------------------------------------------------------------- naming and overwriting


def test_default_name_single_output_and_overwrite(ckpt, tmp_path):
    img = tmp_path / "shot.png"
    write_image(img, Image(pixels=_picture(9, 11)))
    res = run_wdsr("upscale", str(img), "--checkpoint", str(ckpt["x2"]), "--self-ensemble",
                   "--precision", "fp32")
    assert res.returncode == 0, res.stderr
    assert read_image(tmp_path / "shot_x2.png").pixels.shape == (18, 22, 3)

    line = one_line_error(run_wdsr("upscale", str(img), "--checkpoint", str(ckpt["x2"])))
    assert "shot_x2.png" in line and "already exists" in line and "--overwrite" in line

    target = tmp_path / "custom.tif"
    res = run_wdsr("upscale", str(img), "-o", str(target), "--checkpoint", str(ckpt["x3"]),
                   "--json", "-")
    assert res.returncode == 0, res.stderr
    assert read_image(target).pixels.shape == (27, 33, 3)  # scale taken from the checkpoint
    assert json.loads(res.stdout)["images"][0]["output"] == str(target)

    before = (tmp_path / "shot_x2.png").stat().st_mtime_ns
    res = run_wdsr("upscale", str(img), "--checkpoint", str(ckpt["x2"]), "--overwrite")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "shot_x2.png").stat().st_mtime_ns >= before


def test_self_ensemble_is_the_average_of_the_8_flips(ckpt, tmp_path):
    pixels = _picture(9, 11)
    img = tmp_path / "shot.png"
    write_image(img, Image(pixels=pixels))
    res = run_wdsr("upscale", str(img), "--checkpoint", str(ckpt["x2"]), "--self-ensemble",
                   "--precision", "fp32")
    assert res.returncode == 0, res.stderr
    got = read_image(tmp_path / "shot_x2.png").pixels
    want = _expected(ckpt["x2"], pixels, self_ensemble=True)
    _assert_pixels(got, want)
    # and it is not the plain output (random tiny weights are far from flip-invariant)
    assert np.abs(want - _expected(ckpt["x2"], pixels)).max() > 2


def test_two_inputs_that_would_write_the_same_output_are_refused(ckpt, tmp_path):
    for name in ("a.png", "a.jpg"):
        write_image(tmp_path / name, Image(pixels=_picture(6, 7)))
    line = one_line_error(run_wdsr("upscale", str(tmp_path / "a.png"), str(tmp_path / "a.jpg"),
                                   "-o", str(tmp_path / "out"), "--checkpoint", str(ckpt["x2"])))
    assert "a.png" in line and "a.jpg" in line and "a_x2.png" in line
    assert not (tmp_path / "out" / "a_x2.png").exists()


def test_globs_and_output_folder(ckpt, tmp_path):
    for name in ("a.png", "b.png", "c.jpg"):
        write_image(tmp_path / name, Image(pixels=_picture(6, 7)))
    res = run_wdsr("upscale", str(tmp_path / "*.png"), "-o", str(tmp_path / "new" / "sub"),
                   "--checkpoint", str(ckpt["x2"]))
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(tmp_path / "new" / "sub")) == ["a_x2.png", "b_x2.png"]


# ------------------------------------------------------------------------------ bad input


def test_missing_input(tmp_path):
    line = one_line_error(run_wdsr("upscale", str(tmp_path / "nope.png")))
    assert "nope.png" in line and "does not exist" in line


def test_missing_and_corrupt_checkpoint(ckpt, tmp_path):
    img = tmp_path / "x.png"
    write_image(img, Image(pixels=_picture(5, 5)))
    line = one_line_error(run_wdsr("upscale", str(img), "--checkpoint", str(tmp_path / "no.ckpt")))
    assert "no.ckpt" in line and "does not exist" in line
    line = one_line_error(run_wdsr("upscale", str(img), "--checkpoint", str(ckpt["corrupt"])))
    assert "corrupt.ckpt" in line and "corrupted" in line
    assert not (tmp_path / "x_x2.png").exists()


def test_scale_mismatch(ckpt, tmp_path):
    img = tmp_path / "x.png"
    write_image(img, Image(pixels=_picture(5, 5)))
    line = one_line_error(run_wdsr("upscale", str(img), "--scale", "3",
                                    "--checkpoint", str(ckpt["x2"])))
    assert "x2 model" in line and "x3" in line


def test_no_bundled_weights_is_a_clear_message(tmp_path):
    from wdsr_cli.core.checkpoints import bundled_checkpoint

    assert bundled_checkpoint(8) is None  # x2/x3/x4 are bundled, x8 is not
    img = tmp_path / "x.png"
    write_image(img, Image(pixels=_picture(5, 5)))
    line = one_line_error(run_wdsr("upscale", str(img), "--scale", "8"))
    assert "bundled x8 weights" in line and "--checkpoint" in line


def test_bundled_weights_work_out_of_the_box(ms_cpu, tmp_path):
    img = tmp_path / "x.png"
    pixels = _picture(21, 17)
    write_image(img, Image(pixels=pixels))
    res = run_wdsr("upscale", str(img), "--precision", "fp32")
    assert res.returncode == 0, res.stderr
    out = read_image(tmp_path / "x_x2.png")
    from wdsr_cli.core.checkpoints import bundled_checkpoint

    _assert_pixels(out.pixels, _expected(bundled_checkpoint(2), pixels))


def test_one_pixel_and_unreadable_single_images(ckpt, tmp_path):
    tiny = tmp_path / "dot.png"
    write_image(tiny, Image(pixels=np.zeros((1, 1, 3), np.uint8)))
    line = one_line_error(run_wdsr("upscale", str(tiny), "--checkpoint", str(ckpt["x2"])))
    assert "1x1 pixels" in line
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    line = one_line_error(run_wdsr("upscale", str(bad), "--checkpoint", str(ckpt["x2"])))
    assert "bad.jpg" in line
    assert not list(tmp_path.glob("*_x2.png"))


@pytest.mark.parametrize("args,needle", [(["--scale", "5"], "unsupported scale 5"),
                                         (["-o", "no-suffix"], "has no image suffix"),
                                         (["-o", "x.heic"], "no image suffix wdsr writes")])
def test_bad_options(tmp_path, args, needle):
    img = tmp_path / "x.png"
    write_image(img, Image(pixels=_picture(5, 5)))
    assert needle in one_line_error(run_wdsr("upscale", str(img), *args))


class _HalfUp:
    """x2 nearest plus exactly 0.5: how halves are rounded decides every byte."""

    def __call__(self, x):
        return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3) + np.float32(0.5)


def test_a_plain_8bit_photo_runs_as_uint8_and_writes_the_float_paths_bytes(tmp_path):
    """Plain 8-bit RGB (most photos) never becomes float: the Predictor rounds each window to
    uint8 (no float copy of a big result). Gray, alpha and 16-bit inputs take the float path;
    both round halves up, so the bytes cannot depend on the path (they used to differ:
    half-to-even there, half-up in the Predictor)."""
    from wdsr_cli.core.data.images import from_rgb_float
    from wdsr_cli.core.inference import Predictor
    from wdsr_cli.core.inference import upscale as U

    pix = RNG.integers(0, 255, (9, 11, 3), dtype=np.uint8)
    src = tmp_path / "in.png"
    write_image(src, Image(pixels=pix))
    p = Predictor(_HalfUp(), 2, 0)
    p.predict = lambda *a, **k: pytest.fail("a plain 8-bit photo took the float path")
    U.upscale_image(p, src, tmp_path / "out.png")
    want = np.repeat(np.repeat(pix, 2, axis=0), 2, axis=1).astype(np.uint8) + 1  # halves up
    assert np.array_equal(read_image(tmp_path / "out.png").pixels, want)
    as_float = Predictor(_HalfUp(), 2, 0).predict(pix)
    assert np.array_equal(from_rgb_float(as_float, Image(pixels=pix)).pixels, want)
    # an opaque RGBA photo takes the float path and rounds the same way
    alpha = np.full(pix.shape[:2], 255, np.uint8)
    write_image(tmp_path / "rgba.png", Image(pixels=pix, alpha=alpha))
    U.upscale_image(Predictor(_HalfUp(), 2, 0), tmp_path / "rgba.png", tmp_path / "a.png")
    assert np.array_equal(read_image(tmp_path / "a.png").pixels, want)


# ------------------------------------------------------------------------ two writers


def test_two_writers_of_one_output_name_never_replace_each_other(ckpt, tmp_path):
    """A holds just before writing out.png; B writes out.png meanwhile; A must not replace it
    (no --overwrite): the final create is exclusive, checked at the moment of writing."""
    import subprocess

    from conftest import WDSR, wait_for_marker

    src = tmp_path / "in.png"
    write_image(src, Image(pixels=_picture(20, 24)))
    out = tmp_path / "out.png"
    marker = tmp_path / "held"
    args = [WDSR, "upscale", str(src), "-o", str(out), "--checkpoint", str(ckpt["x2"])]
    a = subprocess.Popen(args, env={**os.environ,
                                    "WDSR_TEST_HOLD": f"upscale-write-in.png={marker}"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_marker(a, marker)
        b = run_wdsr(*args[1:])
        assert b.returncode == 0, b.stderr
        written = out.read_bytes()
        (tmp_path / "held.go").touch()  # A goes on and tries to write out.png
        _, err = a.communicate(timeout=600)
    finally:
        a.kill()
    assert a.returncode != 0 and "out.png' appeared while wdsr was working" in err, err
    assert out.read_bytes() == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["held", "held.go", "in.png",
                                                          "out.png"]


def test_an_output_under_a_file_says_so(ckpt, tmp_path):
    src = tmp_path / "in.png"
    write_image(src, Image(pixels=_picture(8, 8)))
    (tmp_path / "afile").write_text("notes")
    line = one_line_error(run_wdsr("upscale", str(src), "-o", str(tmp_path / "afile" / "o.png"),
                                   "--checkpoint", str(ckpt["x2"])))
    assert "afile' (the folder of output" in line and "is not a folder" in line
    assert (tmp_path / "afile").read_text() == "notes"


# ------------------------------------------------------------------- the table, 80 columns

def _row(name: str, mode: str = "RGB", **extra) -> dict:
    return {"input": f"/photos/trip/{name}.jpg", "output": f"/photos/out/{name}_x2.png",
            "mode": mode, "input_size": [1200, 1000], "output_size": [2400, 2000],
            "seconds": 5.5, **extra}


def _render(rows: list[dict], width: int = 80) -> str:
    from rich.console import Console

    from wdsr_cli import ui

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(ui.upscale_table(rows, "OpenVINO"))
    return console.export_text()


def test_the_upscale_table_fits_80_columns_with_whole_names():
    why = "auto: noisy JPEG q~98; noise ~0.0 colour, ~3.2 brightness"
    rows = [_row("harbour", weights="photo", weights_why=why),
            _row("market", weights="photo-low",
                 weights_why="auto: JPEG q~70; strongly compressed")]
    text = _render(rows)
    assert max(map(len, text.splitlines())) <= 80
    assert "from /photos/trip into /photos/out" in text  # the folders once, in the title
    assert "harbour.jpg" in text and "harbour_x2.png" in text  # names whole, not cut with …
    assert "…" not in text and "/photos/trip/harbour" not in text
    # the weights cell: the kind and the input's form; the noise figures stay in --json
    assert "brightness" not in text and "strongly" not in text
    from wdsr_cli import ui

    cells = {c.header: list(c.cells) for c in ui.upscale_table(rows).columns}
    assert cells["weights"] == ["photo (noisy JPEG q~98)", "photo-low (JPEG q~70)"]
    assert cells["input"] == ["harbour.jpg", "market.jpg"]
    assert "mode" not in text  # every image plain RGB: no column saying so


def test_the_upscale_table_shows_the_mode_when_an_image_differs_and_one_image_whole():
    text = _render([_row("a"), _row("b", mode="RGBA 16-bit")], width=120)
    assert "mode" in text and "RGBA 16-bit" in text
    one = _render([_row("a")], width=120)  # one image: its folders in the title too
    assert "from /photos/trip into /photos/out" in one and "/photos/trip/a.jpg" not in one
    assert "weights" not in one  # a checkpoint the user named: no weights column

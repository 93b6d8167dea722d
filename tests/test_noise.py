"""The noise reading (colour and brightness) that sends a noisy lossless or nearly lossless
input to the photo weights under --weights auto (wdsr_cli/core/inference/noise.py)."""

from __future__ import annotations

import io
from dataclasses import astuple
from importlib.resources import files

import numpy as np
import pytest
from PIL import Image as PILImage

from wdsr_cli.core.data.images import read_rgb_uint8
from wdsr_cli.core.inference import noise as N
from wdsr_cli.core.inference import weights as W

SAMPLE = files("wdsr_cli") / "assets" / "sample"
PHOTOS = sorted(p.name for p in SAMPLE.iterdir() if p.name.endswith(".png"))


def _noisy(img: np.ndarray, sigma: float, seed: int = 0, gray: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = img.shape[:2] + ((1,) if gray else (img.shape[2],))
    return np.clip(np.round(img + rng.standard_normal(shape) * sigma), 0, 255).astype(np.uint8)


def _colour(img: np.ndarray, peak: float = 255.0) -> float:
    return N.noise_reading(img, peak).colour


@pytest.mark.parametrize("name", PHOTOS)
def test_every_sample_photo_reads_clean_and_with_colour_noise_reads_noisy(name):
    img = read_rgb_uint8(SAMPLE / name)
    assert _colour(img) < 1.2  # the astronaut (a film scan) has grain of about 1
    assert _colour(_noisy(img, 1)) < N.NOISY_MIN_SIGMA  # clean weights win here
    assert _colour(_noisy(img, 3)) >= N.NOISY_MIN_SIGMA  # photo weights win here
    assert 3.4 <= _colour(_noisy(img, 4)) <= 4.6


@pytest.mark.parametrize("name", PHOTOS)
def test_every_sample_photo_reads_clean_and_with_gray_noise_reads_noisy(name):
    img = read_rgb_uint8(SAMPLE / name)
    clean = N.noise_reading(img)
    assert clean.brightness < 1.6 and not clean.noisy  # the stream's rocks read highest
    noisy = N.noise_reading(_noisy(img, 3, gray=True))
    assert noisy.noisy and noisy.colour < N.NOISY_MIN_SIGMA  # seen by brightness alone
    assert 3.6 <= N.noise_reading(_noisy(img, 4, gray=True)).brightness <= 5.0  # + texture


def test_the_estimate_tracks_the_noise_level():
    flat = np.broadcast_to(np.linspace(60, 190, 300)[None, :, None], (300, 300, 3))
    readings = [_colour(_noisy(flat, s)) for s in (0, 2, 4, 8)]
    assert readings[0] < 0.4
    for sigma, got in zip((2, 4, 8), readings[1:], strict=True):
        assert abs(got - sigma) < 0.08 * sigma, (sigma, got)
    gray = [N.noise_reading(_noisy(flat, s, gray=True)) for s in (0, 2, 4, 8)]
    assert gray[0].brightness < 0.4
    for sigma, got in zip((2, 4, 8), gray[1:], strict=True):
        assert abs(got.brightness - sigma) < 0.08 * sigma, (sigma, got)
        assert got.colour < 0.1  # the same in every channel: no colour noise
    # colour noise shows in the brightness too, at the weighted sum of the channels' noise
    assert N.noise_reading(_noisy(flat, 6)).brightness == pytest.approx(
        6 * np.sqrt((N.LUMA ** 2).sum()), rel=0.08)


def test_small_images_are_not_read_low():
    """Few patches bias the smallest eigenvalue low (Marchenko-Pastur); the correction keeps
    a 60 x 60 image's reading where a large one's is."""
    for side in (60, 120, 400):
        assert 3.7 < _colour(_noisy(np.full((side, side, 3), 128.0), 4)) < 4.3


def test_texture_in_brightness_is_not_colour_noise():
    """Fine texture everywhere (what fools a brightness-based estimate) is the same in every
    channel: it does not move the colour-noise reading. The price, by design: gray noise is
    not seen either."""
    rng = np.random.default_rng(1)
    texture = rng.uniform(-40, 40, (240, 240, 1))
    img = np.clip(np.array([150, 110, 80]) + texture, 0, 255).astype(np.uint8)
    assert _colour(img) < 0.4
    photo = read_rgb_uint8(SAMPLE / "stream.png")
    assert _colour(_noisy(photo, 5, gray=True)) < 0.7
    assert 4.5 < N.noise_reading(_noisy(photo, 5, gray=True)).brightness < 5.8


def test_dense_texture_in_brightness_is_not_taken_for_noise():
    """The stream's rocks at half size read like gray noise of sigma 3.5 in brightness, but
    read on the image halved again they rise, where noise would stay: texture, clean weights
    (on such photos the photo weights lose 0.3-0.8 dB)."""
    img = read_rgb_uint8(SAMPLE / "stream.png").astype(np.float64)
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    dense = np.round(img[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3)))
    r = N.noise_reading(dense.astype(np.uint8))
    assert r.brightness >= N.NOISY_MIN_BRIGHTNESS and r.halved > 3 * r.brightness
    assert r.texture and not r.noisy
    assert str(r).endswith("brightness (texture)")
    noisy = N.noise_reading(_noisy(np.full((240, 240, 3), 128.0), 3, gray=True))
    assert not noisy.texture and noisy.noisy and noisy.halved == pytest.approx(3, rel=0.1)
    assert N.NoiseReading(0.0, 3.0, 0.0).texture  # too small to read halved: not confirmed


def test_clipped_pixels_do_not_hide_the_noise():
    """Half the image blown out to white: its flat, noise-free patches must not be taken for
    the weakest texture (they would read the noise as 0)."""
    img = np.full((240, 240, 3), 128.0)
    noisy = _noisy(img, 4)
    noisy[:, :120] = 255
    assert 3.4 < _colour(noisy) < 4.6
    gray = _noisy(img, 4, gray=True)
    gray[:, :120] = 255
    assert 3.4 < N.noise_reading(gray).brightness < 4.6


def test_sixteen_bit_gray_and_tiny_inputs():
    img = read_rgb_uint8(SAMPLE / "dogs.png").astype(np.float64)
    noisy8 = _noisy(img, 4)
    as16 = (noisy8.astype(np.uint32) * 257).astype(np.uint16)
    assert astuple(N.noise_reading(as16, 65535.0)) == pytest.approx(
        astuple(N.noise_reading(noisy8)))
    one = N.noise_reading(noisy8[..., :1])  # gray: no colour to read, its brightness is read
    assert one.colour == 0.0 and 3.4 < one.brightness < 4.6
    assert N.noise_reading(noisy8[..., 0]) == one  # the same without a channel axis
    assert N.noise_reading(noisy8[:19, :19]) == N.NoiseReading(0.0, 0.0, 0.0)  # too few patches


def test_a_large_image_is_read_on_a_grid_of_tiles_inside_it():
    assert N._tiles(500, 700) == [(slice(0, 500), slice(0, 700))]
    tiles = N._tiles(3000, 2000)
    assert len(tiles) == N.GRID * N.GRID
    for rows, cols in tiles:
        assert 0 <= rows.start and rows.stop <= 3000 and rows.stop - rows.start == N.TILE
        assert 0 <= cols.start and cols.stop <= 2000 and cols.stop - cols.start == N.TILE
    assert len({t[0].start for t in tiles}) == N.GRID and len({t[1].start for t in tiles}) == N.GRID
    big = _noisy(np.full((1200, 1100, 3), 100.0), 4)
    assert 3.5 < _colour(big) < 4.5


def test_a_decoded_file_is_read_on_its_own_scale(tmp_path):
    from wdsr_cli.core.data.images import read_image

    img = _noisy(read_rgb_uint8(SAMPLE / "cat.png").astype(np.float64), 4)
    PILImage.fromarray(img).save(tmp_path / "n.png")
    assert N.noise_of(read_image(tmp_path / "n.png")) == N.noise_reading(img)
    deep = (img.astype(np.uint16) * 257)  # the same image in 16 bits reads the same
    PILImage.fromarray(deep[..., 0]).save(tmp_path / "g16.png")
    assert N.noise_of(read_image(tmp_path / "g16.png")).brightness == \
        pytest.approx(N.noise_reading(img[..., 0]).brightness, abs=1e-6)


def test_the_policy_for_lossless_and_nearly_lossless_inputs():
    t, b = N.NOISY_MIN_SIGMA, N.NOISY_MIN_BRIGHTNESS
    quiet = N.NoiseReading(0.31, 0.52, 0.6)
    assert W.bundled_kind("auto", None, 2, None) == ("clean", "auto: lossless input")
    assert W.bundled_kind("auto", None, 2, quiet) == (
        "clean", "auto: lossless input; noise ~0.3 colour, ~0.5 brightness")
    assert W.bundled_kind("auto", None, 2, N.NoiseReading(t - 0.01, b - 0.01, b))[0] == "clean"
    assert W.bundled_kind("auto", None, 2, N.NoiseReading(t, 0.0, 0.0)) == (
        "photo", f"auto: noisy lossless input; noise ~{t:.1f} colour, ~0.0 brightness")
    assert W.bundled_kind("auto", None, 2, N.NoiseReading(0.0, b, b))[0] == "photo"  # gray noise
    textured = N.NoiseReading(0.2, 3.0, 9.0)  # fine texture, not noise
    assert W.bundled_kind("auto", None, 2, textured) == (
        "clean", "auto: lossless input; noise ~0.2 colour, ~3.0 brightness (texture)")
    assert W.bundled_kind("auto", None, 4, N.NoiseReading(3.5, 2.3, 2.4))[0] == "photo"
    assert W.bundled_kind("auto", None, 8, N.NoiseReading(3.5, 2.3, 2.4)) == (
        "clean", "auto: noisy lossless input; no x8 photo weights are bundled")
    assert W.bundled_kind("clean", None, 2, N.NoiseReading(3.5, 2.3, 2.4)) == (
        "clean", "--weights clean")
    # a nearly lossless JPEG: clean unless noisy (and then the photo weights, never photo-low)
    q = W.PHOTO_MAX_QUALITY + 1  # the lowest quality read
    assert W.bundled_kind("auto", q, 2, quiet) == (
        "clean", f"auto: JPEG q~{q}; nearly lossless, noise ~0.3 colour, ~0.5 brightness")
    assert W.bundled_kind("auto", q, 2, N.NoiseReading(0.1, 2.6, 2.8)) == (
        "photo", f"auto: noisy JPEG q~{q}; noise ~0.1 colour, ~2.6 brightness")
    assert W.bundled_kind("auto", q, 2, None) == ("clean", f"auto: JPEG q~{q}; nearly lossless")
    # a JPEG whose brightness is read too low (quantisation) but halved as noise, and not
    # texture quartered: noisy; a lossless input is not judged by that
    h = N.JPEG_MIN_HALVED
    jpeg_noise = N.NoiseReading(0.0, 0.9, h, N.JPEG_MAX_QUARTERED_RATIO * h)
    assert W.bundled_kind("auto", q, 2, jpeg_noise) == (
        "photo", f"auto: noisy JPEG q~{q}; noise ~0.0 colour, ~0.9 brightness, ~{h:.1f} halved")
    assert W.bundled_kind("auto", None, 2, jpeg_noise) == (
        "clean", "auto: lossless input; noise ~0.0 colour, ~0.9 brightness")
    # a JPEG the photo weights serve anyway: its quality decides, noise or not
    assert W.bundled_kind("auto", 85, 2, N.NoiseReading(3.5, 2.3, 2.4))[0] == "photo"
    assert W.bundled_kind("auto", 60, 2, N.NoiseReading(0.0, 0.0, 0.0))[0] == "photo-low"


# --------------------------------------- the estimator the thresholds were calibrated on
# NOISY_MIN_SIGMA, NOISY_MIN_BRIGHTNESS, MAX_HALVED_RATIO and the JPEG rule's thresholds were
# measured with this exact estimator (114 LR images per noise level, docs/upscale.md). A change
# to it (patch grid and stride, tile grid, covariance, iterations, the 99% quantile) moves
# every reading a little and the calibration with it: these readings pin it, so such a change
# has to redo the calibration and update them on purpose.

def _golden_inputs() -> dict[str, np.ndarray]:
    photo = _noisy(read_rgb_uint8(SAMPLE / "dogs.png")[:240, :300].astype(np.float64), 3)
    ramp = np.linspace(0, 120, 1300)[:, None, None] + np.linspace(0, 40, 1100)[None, :, None]
    # large enough for the tile grid; its darkest rows clip at 0
    big = _noisy(np.broadcast_to(ramp, (1300, 1100, 3)), 2, seed=1, gray=True)
    # patches every 3 pixels full size, every 2 halved, every pixel quartered (each band just
    # above its lower bound, so an area off by a little changes the reading)
    mid = _noisy(read_rgb_uint8(SAMPLE / "leaves.png")[:168, :672].astype(np.float64), 2,
                 seed=5, gray=True)
    # ... every 3 pixels full size and halved, every 2 quartered
    wide = _noisy(np.broadcast_to(ramp[:600, :760], (600, 760, 3)), 2, seed=6, gray=True)
    return {"photo": photo, "big": big, "mid": mid, "wide": wide}


GOLDEN = {"photo": (3.0974407242257276, 2.122975737466144, 2.0829481070389795,
                    3.5253319072080913),
          "big": (0.0, 2.002665014541526, 2.0012397977193426, 1.9963524014047231),
          "mid": (0.10897290977404064, 2.1844415373949806, 2.6468223393241623,
                  2.621204062103381),
          "wide": (0.0, 2.0052697626872025, 2.0151477578862798, 2.00559931454041)}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_the_readings_the_thresholds_were_calibrated_on(name):
    got = astuple(N.noise_reading(_golden_inputs()[name]))
    # 1e-7: far above what BLAS and LAPACK builds differ by (~1e-13), far below any change
    assert got == pytest.approx(GOLDEN[name], rel=1e-7, abs=1e-12)


def test_the_99_percent_quantile_of_the_gradient_energy():
    # Gamma(24.5, 2) is chi-square with 49 degrees of freedom: its 99th percentile is 74.919
    # (statistical tables); Wilson-Hilferty is within 0.03% of it
    assert N._gamma_quantile_99(24.5, 2.0) == pytest.approx(74.919, rel=5e-4)
    assert N._gamma_quantile_99(24.5, 6.0) == pytest.approx(3 * 74.919, rel=5e-4)


def test_which_inputs_are_read():
    assert W.reads_noise(None)  # lossless
    assert W.reads_noise(93) and W.reads_noise(100)
    assert not W.reads_noise(92) and not W.reads_noise(50)
    assert W.reads_noise(None, "HEIC") and W.reads_noise(None, "AVIF")  # quality unread
    assert not W.reads_noise(None, "WebP")  # a lossy WebP whose quality is unread: photo
    assert W.reads_noise(None, "WebP", 86) and not W.reads_noise(None, "WebP", 85)
    assert W.reads_noise(None, "AVIF", 66) and not W.reads_noise(None, "AVIF", 65)
    # every JPEG the quality alone would give the clean weights (calibrated on q93-q100)
    assert W.bundled_kind("auto", 93, 2) == ("clean", "auto: JPEG q~93; nearly lossless")
    assert W.bundled_kind("auto", 92, 2)[0] == "photo"


def test_a_jpeg_is_noisy_when_its_halved_reading_is_noise_and_not_texture():
    h, ratio = N.JPEG_MIN_HALVED, N.JPEG_MAX_QUARTERED_RATIO
    assert (h, ratio) == (2.2, 1.25)  # as calibrated (docs/upscale.md)
    assert not N.NoiseReading(0.0, 0.5, 3.0, 6.0).noisy_at(True)  # twice as high quartered
    assert N.NoiseReading(0.0, 0.5, h, 0.5).noisy_at(True)  # lower quartered: not texture
    assert N.NoiseReading(0.0, 0.5, h, h).noisy_at(True)
    assert not N.NoiseReading(0.0, 0.5, h - 0.01, h).noisy_at(True)  # too little
    assert N.NoiseReading(0.0, 0.5, h, ratio * h).noisy_at(True)  # at the ratio: still noise
    assert not N.NoiseReading(0.0, 0.5, h, ratio * h + 0.01).noisy_at(True)  # texture
    assert not N.NoiseReading(0.0, 0.5, h, 0.0).noisy_at(True)  # too small to read quartered
    assert not N.NoiseReading(0.0, 0.5, h, h).noisy_at(False)  # lossless: the full-size rule
    assert not N.NoiseReading(0.0, 0.5, h, h).noisy
    loud = N.NoiseReading(3.0, 0.5, 0.0, 0.0)  # the full-size rule holds for a JPEG too
    assert loud.noisy_at(True) and loud.noisy_at(False)
    assert loud.describe(True) == str(loud) == "noise ~3.0 colour, ~0.5 brightness"
    assert N.NoiseReading(0.0, 0.5, 2.345, 2.4).describe(True) == \
        "noise ~0.0 colour, ~0.5 brightness, ~2.3 halved"
    assert N.NoiseReading(0.0, 0.5, 2.345, 2.4).describe(False) == \
        "noise ~0.0 colour, ~0.5 brightness"


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    PILImage.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(PILImage.open(buf).convert("RGB"))


def test_quantisation_hides_noise_from_the_full_size_reading_not_from_the_halved_one():
    # a sample photo with gray noise of sigma 3, saved at q93: the full-size reading is mostly
    # quantised away, the halved and quartered ones still see about 3; without the noise,
    # nothing is seen
    def read(img: np.ndarray) -> N.NoiseReading:
        return N.noise_reading(_jpeg(img, 93))

    clock = read_rgb_uint8(SAMPLE / "clock.png")
    r = read(_noisy(clock.astype(np.float64), 3, seed=4, gray=True))
    assert r.brightness < N.NOISY_MIN_BRIGHTNESS and not r.noisy
    assert 2.5 < r.halved < 3.5 and 2.5 < r.quartered < 4.0
    assert r.noisy_at(True)
    assert not read(clock).noisy_at(True)


def test_a_small_noisy_jpeg_is_read_on_patches_at_every_pixel():
    """A small image (a 4:2:0 JPEG of 288 x 216 px, what people upscale x4) has too few
    patches at STRIDE once quartered: the sample-size correction blew that reading up (the
    clean one read 8.5 quartered, the noisy one 9.5: taken for texture). Read at every pixel,
    both read what they hold (1.1; 3.7)."""
    from wdsr_cli.core.data.resize import imresize

    small = imresize(read_rgb_uint8(SAMPLE / "clock.png"), scale=0.5)
    clean = N.noise_reading(_jpeg(small, 93))
    noisy = N.noise_reading(_jpeg(_noisy(small.astype(np.float64), 3, seed=2, gray=True), 93))
    assert not clean.noisy_at(True) and clean.quartered < 2.2
    assert noisy.noisy_at(True) and not noisy.noisy  # seen by the halved rule alone
    assert 2.5 < noisy.halved < 3.5 and 2.5 < noisy.quartered < 4.0


def test_the_patch_stride_is_finer_only_where_patches_would_be_few():
    assert N.MIN_PATCHES == 7000  # as calibrated (docs/upscale.md)
    assert N._stride((N.GRID * N.TILE) ** 2 // 16) == N.STRIDE == 3  # a tiled image, quartered
    assert N._stride(9 * N.MIN_PATCHES) == 3 and N._stride(9 * N.MIN_PATCHES - 1) == 2
    assert N._stride(4 * N.MIN_PATCHES) == 2 and N._stride(4 * N.MIN_PATCHES - 1) == 1
    assert N._stride(100) == 1 and N._stride(10 ** 9) == 3


def test_the_covariance_is_summed_in_chunks_exactly():
    # more patches than a chunk, and a chosen subset crossing chunk boundaries: the smallest
    # variance is the one of the whole covariance at once
    rng = np.random.default_rng(6)
    d = N.PATCH * N.PATCH
    pixels = rng.standard_normal((2 * N.CHUNK + 123, d)) * np.linspace(1.0, 3.0, d) + 100.0
    rows = rng.random(len(pixels)) < 0.6

    def direct(x: np.ndarray) -> float:
        n = len(x)
        smallest = np.linalg.eigvalsh(np.cov(x, rowvar=False))[0]
        return smallest / (1.0 - np.sqrt(d / n)) ** 2

    assert N._smallest_variance(pixels) == pytest.approx(direct(pixels), rel=1e-9)
    assert N._smallest_variance(pixels, rows) == pytest.approx(direct(pixels[rows]), rel=1e-9)
    assert direct(pixels[rows]) != pytest.approx(direct(pixels), rel=1e-6)  # a real subset


def test_the_reading_gives_its_memory_back(monkeypatch):
    calls = []

    class Libc:
        def malloc_trim(self, pad):
            calls.append(pad)

    monkeypatch.setattr(N.ctypes, "CDLL", lambda name: Libc())
    N.noise_reading(np.full((40, 40, 3), 128, np.uint8))
    assert calls == [0]  # after every reading, all of it
    monkeypatch.setattr(N.ctypes, "CDLL", lambda name: object())  # a C library without it
    assert N.noise_reading(np.full((40, 40, 3), 128, np.uint8)).brightness == 0.0

    def missing(name):
        raise OSError("no C library")

    monkeypatch.setattr(N.ctypes, "CDLL", missing)
    assert N.noise_reading(np.full((40, 40, 3), 128, np.uint8)).colour == 0.0


def test_the_tile_grid_sits_in_the_middle_of_its_cells():
    side = N.GRID * N.TILE
    assert N._tiles(side, side) == [(slice(0, side), slice(0, side))]  # read whole
    h, w = 3001, 2203
    tiles = N._tiles(h, w)
    assert len(tiles) == N.GRID ** 2
    for k, (rows, cols) in enumerate(tiles):
        i, j = divmod(k, N.GRID)
        assert rows.stop - rows.start == N.TILE and cols.stop - cols.start == N.TILE
        # each tile centred on its cell of the GRID x GRID grid (to a pixel)
        assert abs((rows.start + rows.stop) / 2 - (i + 0.5) * h / N.GRID) <= 1
        assert abs((cols.start + cols.stop) / 2 - (j + 0.5) * w / N.GRID) <= 1
    # a wide strip: rows clamped inside it, the first tile at its top, the last at its bottom
    tiles = N._tiles(N.TILE + 4, 5000)
    assert {(t[0].start, t[0].stop) for t in tiles} == {(0, N.TILE), (4, N.TILE + 4)}
    assert tiles[0][1].start == 5000 // 8 - N.TILE // 2  # the first cell's middle


def test_halving_averages_2x2_pixels_and_drops_an_odd_edge():
    a = np.arange(35.0).reshape(5, 7)
    assert N._halve(a).tolist() == [[4.0, 6.0, 8.0], [18.0, 20.0, 22.0]]


def test_a_strip_one_patch_high_is_read():
    strip = _noisy(np.full((N.PATCH, 3000, 3), 120.0), 4, seed=2)
    assert 3.0 < _colour(strip) < 5.0
    assert _colour(strip[:, :N.PATCH]) == 0.0  # one patch: too few to tell


def test_a_fourth_channel_is_not_read():
    img = _golden_inputs()["photo"]
    opaque = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert N.noise_reading(opaque) == N.noise_reading(img)


def test_texture_and_its_reason_at_their_boundaries():
    ratio = N.MAX_HALVED_RATIO
    assert ratio == 2.0  # as calibrated (docs/upscale.md)
    assert not N.NoiseReading(0.0, 2.0, 2.0 * ratio).texture  # at the ratio: still noise
    assert N.NoiseReading(0.0, 2.0, 2.0 * ratio + 0.01).texture
    assert not N.NoiseReading(0.0, 0.3, 0.5).texture  # a low halved reading is not texture
    assert N.NoiseReading(0.0, 0.3, 0.0).texture  # 0.0: too small to read halved
    edge = N.NoiseReading(0.0, N.NOISY_MIN_BRIGHTNESS, 9.0)
    assert str(edge).endswith("brightness (texture)") and not edge.noisy
    with pytest.raises(AttributeError):  # readings are values: frozen, hashable
        edge.colour = 3.0  # type: ignore[misc]
    assert len({edge, N.NoiseReading(0.0, N.NOISY_MIN_BRIGHTNESS, 9.0)}) == 1


def test_tiles_without_a_patch_are_left_out():
    """A blown-out sky over four of the sixteen tiles: no patch there; the other twelve read
    the noise (a tile's empty patch set used to be where a stray value could slip in)."""
    big = _noisy(np.full((1100, 1100, 3), 120.0), 3, seed=4)
    big[:550, :550] = 255
    got = astuple(N.noise_reading(big))
    assert got == pytest.approx((3.0013791405792407, 2.002266174732902, 2.0105730439117178,
                                 2.008331648201967), rel=1e-7)


def test_the_fewest_patches_that_are_read():
    """4 x 49 patches (7x7; every pixel in an image this small) are needed: 20 x 20 pixels
    give 14 x 14 = 196, 20 x 19 give 14 x 13 = 182 and read as clean."""
    img = _noisy(np.full((20, 20, 3), 120.0), 4, seed=3)
    assert 3.0 < _colour(img) < 5.0
    assert _colour(img[:, :19]) == 0.0
    assert 3.0 < _colour(np.ascontiguousarray(img.transpose(1, 0, 2))) < 5.0
    strip = _noisy(np.full((3000, N.PATCH, 3), 120.0), 4, seed=2)  # one patch wide
    assert 3.0 < _colour(strip) < 5.0


def test_the_tile_grid_is_clamped_inside_a_narrow_image():
    for rows, _ in N._tiles(250, 5000):  # fewer rows than a tile: all of them
        assert (rows.start, rows.stop) == (0, N.TILE)
    for _, cols in N._tiles(5000, 250):  # and fewer columns
        assert (cols.start, cols.stop) == (0, N.TILE)
    cols = [c for _, c in N._tiles(5000, 1000)][:N.GRID]
    assert [(c.start, c.stop) for c in cols] == [(0, 256), (247, 503), (497, 753), (744, 1000)]


def test_the_reading_comes_from_the_weak_patches_alone():
    """The smallest number of weak (low-gradient) patches that is read, 4 x 49, among patches
    of stronger noise: the reading is that of the weak ones."""
    rng = np.random.default_rng(5)
    need = 4 * N.PATCH * N.PATCH
    pixels = np.concatenate([rng.standard_normal((need, N.PATCH ** 2)) * 2.0,
                             rng.standard_normal((104, N.PATCH ** 2)) * 10.0])
    var = N._smallest_variance(pixels)
    limit = N._gamma_quantile_99(N.GAMMA_SHAPE, 2.0 * var * N.GRAD_TRACE / N.PATCH ** 2)
    energy = np.r_[np.full(need, limit / 50), np.full(104, limit * 50)]
    assert N._channel_sigma(energy, pixels) == pytest.approx(
        np.sqrt(N._smallest_variance(pixels[:need])))
    # one weak patch fewer: too few to select, the first reading (of all patches) stays
    assert N._channel_sigma(energy[1:], pixels[1:]) == pytest.approx(
        np.sqrt(N._smallest_variance(pixels[1:])))


def test_evaluate_takes_the_median_of_every_reading(monkeypatch):
    # evaluate --weights auto makes one choice from its first LR images: the median of each
    # field, the quartered reading too (the JPEG rule needs it)
    from types import SimpleNamespace

    from wdsr_cli.core import evaluate as E

    readings = iter([N.NoiseReading(1.0, 0.5, 2.0, 9.0), N.NoiseReading(3.0, 0.7, 2.6, 2.8),
                     N.NoiseReading(2.0, 0.9, 2.4, 2.5)])
    monkeypatch.setattr(E, "load_pair", lambda item, scale, degrade: (None, item))
    monkeypatch.setattr(N, "noise_reading", lambda image: next(readings))
    dataset = SimpleNamespace(items=[1, 2, 3, 4], scale=2, degrade=None)
    assert E._lr_noise(dataset) == N.NoiseReading(2.0, 0.7, 2.4, 2.8)

"""Reading and writing images: every kind users have, round trips, and bad files."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageFile, ImageOps

from wdsr_cli.core.data import images, png
from wdsr_cli.core.data.images import (
    IMAGE_SUFFIXES,
    Image,
    alpha_to_float,
    from_rgb_float,
    is_image_file,
    read_image,
    read_rgb_uint8,
    to_rgb_float,
    write_image,
    write_rgb_uint8,
)
from wdsr_cli.core.errors import WdsrError

RNG = np.random.default_rng(1234)


def _smooth(h: int, w: int, c: int, dtype=np.uint8) -> np.ndarray:
    """A smooth-ish test picture with some noise (so PNG filters vary)."""
    top = 255 if dtype == np.uint8 else 65535
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = [(np.sin(x / 5 + k) * np.cos(y / 7 - k) + 1) / 2 for k in range(c)]
    a = np.stack(chans, axis=2) * top * 0.9 + RNG.random((h, w, c)) * top * 0.1
    return np.clip(np.rint(a), 0, top).astype(dtype)


def _leftovers(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


def _chunk(t: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))


def _insert_chunk(png: bytes, t: bytes, body: bytes) -> bytes:
    """Insert a chunk right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    return png[:33] + _chunk(t, body) + png[33:]


# ---------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize(
    "channels,alpha,depth,mode",
    [
        (1, False, 8, "L"),
        (1, False, 16, "I;16"),
        (3, False, 8, "RGB"),
        (3, False, 16, "RGB;16"),
        (3, True, 8, "RGBA"),
        (3, True, 16, "RGBA;16"),
        (1, True, 8, "LA"),
        (1, True, 16, "LA;16"),
    ],
)
def test_png_round_trip_is_exact(tmp_path, channels, alpha, depth, mode):
    dtype = np.uint8 if depth == 8 else np.uint16
    px = _smooth(13, 17, channels, dtype)
    al = _smooth(13, 17, 1, dtype)[:, :, 0] if alpha else None
    path = tmp_path / "x.png"
    write_image(path, Image(px, al, depth))
    got = read_image(path)
    assert got.bit_depth == depth
    assert got.pixels.dtype == dtype and got.pixels.shape == px.shape
    assert np.array_equal(got.pixels, px)
    if alpha:
        assert np.array_equal(got.alpha, al)
    else:
        assert got.alpha is None
    assert got.source_mode == mode
    assert got.gray == (channels == 1)
    assert _leftovers(tmp_path) == []


def test_16bit_png_values_really_16bit(tmp_path):
    # values that differ only in the low byte must survive (Pillow alone keeps the high byte)
    px = np.array([[[0x1201, 0x1202, 0x1203], [0xFFFF, 0, 0x00FF]]], dtype=np.uint16)
    write_image(tmp_path / "a.png", Image(px, None, 16))
    assert np.array_equal(read_image(tmp_path / "a.png").pixels, px)


def test_16bit_png_written_is_a_valid_png_for_pillow(tmp_path):
    px = _smooth(9, 11, 3, np.uint16)
    write_image(tmp_path / "a.png", Image(px, None, 16))
    with PILImage.open(tmp_path / "a.png") as im:  # Pillow decodes it (to 8 bits)
        eight = np.asarray(im.convert("RGB"))
    assert np.array_equal(eight, (px >> 8).astype(np.uint8))


def test_own_png_decoder_matches_pillow_on_all_filter_types():
    # Pillow picks Paeth/Sub/... per row: check the diagonal unfilter bit for bit
    for mode, c in (("RGB", 3), ("RGBA", 4), ("L", 1), ("LA", 2)):
        px = _smooth(41, 57, c)
        buf = io.BytesIO()
        PILImage.fromarray(px[:, :, 0] if c == 1 else px, mode).save(buf, "PNG")
        data = buf.getvalue()
        idat = b"".join(b for t, b in png.chunks(data) if t == b"IDAT")
        filters = set(np.frombuffer(zlib.decompress(idat), np.uint8).reshape(41, -1)[:, 0])
        out, _ = png.decode(data)
        assert np.array_equal(out, px), mode
    assert filters - {0, 1, 2}, "expected Average/Paeth rows in the test data"


def test_own_png_encoder_uses_and_decodes_every_filter():
    px = np.concatenate([_smooth(20, 30, 3, np.uint16), RNG.integers(0, 65536, (20, 30, 3))])
    px = px.astype(np.uint16)
    data = png.encode(px, 16)
    out, info = png.decode(data)
    assert np.array_equal(out, px)
    assert info["bit_depth"] == 16 and info["color_type"] == 2


def _adam7_png(px: np.ndarray, depth: int, ctype: int) -> bytes:
    """A minimal interlaced PNG writer (filter 0) for testing the decoder."""
    h, w = px.shape[:2]
    dt = ">u2" if depth == 16 else np.uint8
    raw = b""
    for x0, y0, dx, dy in png.ADAM7:
        sub = px[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.astype(dt).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1)
    return (
        png.SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def test_interlaced_16bit_png(tmp_path):
    px = RNG.integers(0, 65536, (11, 7, 4)).astype(np.uint16)
    (tmp_path / "i.png").write_bytes(_adam7_png(px, 16, 6))
    got = read_image(tmp_path / "i.png")
    assert np.array_equal(got.pixels, px[:, :, :3]) and np.array_equal(got.alpha, px[:, :, 3])


def test_16bit_rgb_png_with_transparent_colour(tmp_path):
    px = _smooth(6, 8, 3, np.uint16)
    px[2, 3] = (1, 2, 3)
    data = _insert_chunk(png.encode(px, 16), b"tRNS", struct.pack(">HHH", 1, 2, 3))
    (tmp_path / "t.png").write_bytes(data)
    got = read_image(tmp_path / "t.png")
    assert got.alpha is not None and got.alpha[2, 3] == 0
    assert int((got.alpha == 65535).sum()) == 6 * 8 - 1


def test_rgb8_png_with_transparent_colour(tmp_path):
    px = _smooth(6, 8, 3)
    px[1, 1] = (10, 20, 30)
    PILImage.fromarray(px).save(tmp_path / "t.png", transparency=(10, 20, 30))
    got = read_image(tmp_path / "t.png")
    assert got.alpha[1, 1] == 0 and int((got.alpha == 255).sum()) == 47
    assert np.array_equal(got.pixels, px)


def test_palette_without_transparency(tmp_path):
    px = _smooth(10, 12, 3)
    pal = PILImage.fromarray(px).quantize(16)
    pal.save(tmp_path / "p.png")
    got = read_image(tmp_path / "p.png")
    assert got.source_mode == "P" and not got.gray and got.alpha is None
    assert np.array_equal(got.pixels, np.asarray(pal.convert("RGB")))


def test_palette_with_transparency(tmp_path):
    px = _smooth(10, 12, 3)
    pal = PILImage.fromarray(px).quantize(16)
    idx = np.asarray(pal)[0, 0]
    pal.save(tmp_path / "p.png", transparency=int(idx))
    got = read_image(tmp_path / "p.png")
    assert got.alpha is not None and got.pixels.shape == (10, 12, 3)
    assert got.alpha[0, 0] == 0
    assert np.array_equal(got.alpha == 0, np.asarray(pal) == idx)
    # same through GIF
    pal.save(tmp_path / "p.gif", transparency=int(idx))
    assert read_image(tmp_path / "p.gif").alpha[0, 0] == 0


def test_gray_palette_becomes_gray(tmp_path):
    g = _smooth(8, 9, 1)[:, :, 0]
    PILImage.fromarray(g).convert("P").save(tmp_path / "g.png")
    with PILImage.open(tmp_path / "g.png") as im:
        assert im.mode == "P"
    got = read_image(tmp_path / "g.png")
    assert got.gray and np.array_equal(got.pixels[:, :, 0], g)


def test_gray_palette_with_transparency(tmp_path):
    g = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1))
    pal = PILImage.fromarray(g).convert("P")
    pal.save(tmp_path / "g.png", transparency=int(np.asarray(pal)[0, 0]))
    got = read_image(tmp_path / "g.png")
    assert got.gray and np.array_equal(got.pixels[:, :, 0], g)
    assert got.alpha[0, 0] == 0 and int((got.alpha == 255).sum()) == g.size - 4


def test_one_bit_image_is_gray_8bit(tmp_path):
    b = _smooth(8, 9, 1)[:, :, 0] > 128
    PILImage.fromarray(b).save(tmp_path / "b.png")
    got = read_image(tmp_path / "b.png")
    assert got.gray and got.bit_depth == 8 and got.source_mode == "1"
    assert set(np.unique(got.pixels)) <= {0, 255}
    assert np.array_equal(got.pixels[:, :, 0] == 255, b)


def test_32bit_int_image_becomes_16bit_gray(tmp_path):
    a = np.array([[-5, 0, 1000], [65535, 70000, 3]], dtype=np.int32)
    PILImage.fromarray(a, "I").save(tmp_path / "i.tif")
    got = read_image(tmp_path / "i.tif")
    assert got.bit_depth == 16 and got.gray
    assert got.pixels[:, :, 0].tolist() == [[0, 0, 1000], [65535, 65535, 3]]


def test_float_image_is_refused(tmp_path):
    PILImage.fromarray(np.zeros((4, 4), np.float32), "F").save(tmp_path / "f.tif")
    with pytest.raises(WdsrError, match="f.tif"):
        read_image(tmp_path / "f.tif")


def test_jpeg_round_trip_close(tmp_path):
    px = _smooth(32, 40, 3)
    write_image(tmp_path / "a.jpg", Image(px))
    got = read_image(tmp_path / "a.jpg")
    assert got.pixels.shape == px.shape and got.bit_depth == 8
    assert np.abs(got.pixels.astype(int) - px).mean() < 4
    write_image(tmp_path / "g.jpeg", Image(px[:, :, :1]))
    assert read_image(tmp_path / "g.jpeg").gray


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    PILImage.fromarray(_smooth(16, 16, 3)).convert("CMYK").save(tmp_path / "c.jpg")
    got = read_image(tmp_path / "c.jpg")
    assert got.source_mode == "CMYK" and got.pixels.shape == (16, 16, 3)


@pytest.mark.parametrize("suffix", [".bmp", ".tif", ".tiff", ".png"])
def test_lossless_formats_rgb_and_gray(tmp_path, suffix):
    for c in (1, 3):
        px = _smooth(7, 10, c)
        write_image(tmp_path / f"a{suffix}", Image(px))
        got = read_image(tmp_path / f"a{suffix}")
        assert np.array_equal(got.pixels, px)


def test_tiff_16bit(tmp_path):
    g = _smooth(5, 6, 1, np.uint16)
    write_image(tmp_path / "g.tif", Image(g, None, 16))
    got = read_image(tmp_path / "g.tif")
    assert got.bit_depth == 16 and np.array_equal(got.pixels, g)
    # Pillow can't write 16-bit colour TIFF: it is stored as 8-bit, rounded
    c = _smooth(5, 6, 3, np.uint16)
    write_image(tmp_path / "c.tif", Image(c, None, 16))
    got = read_image(tmp_path / "c.tif")
    assert got.bit_depth == 8 and np.array_equal(got.pixels, np.rint(c / 257).astype(np.uint8))


def test_rgba_tiff_keeps_alpha(tmp_path):
    px, al = _smooth(5, 6, 3), _smooth(5, 6, 1)[:, :, 0]
    write_image(tmp_path / "a.tif", Image(px, al))
    got = read_image(tmp_path / "a.tif")
    assert np.array_equal(got.pixels, px) and np.array_equal(got.alpha, al)


@pytest.mark.parametrize("fmt,suffix", [("AVIF", ".avif"), ("HEIF", ".heic"),
                                        ("HEIF", ".HEIF")])
def test_avif_and_heic_photos_are_read_upright_with_their_profile(tmp_path, fmt, suffix):
    """The web's AVIF (Pillow) and the iPhone's HEIC (pillow-heif, an extra `make install`
    brings): a photo turned by its EXIF orientation comes out upright, once, whichever of
    the decoder or the reader turns it."""
    import pillow_heif
    from PIL import ImageCms

    pillow_heif.register_heif_opener()  # to write one; wdsr reads without being told
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    px = _smooth(24, 40, 3)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to show
    path = tmp_path / f"photo{suffix}"
    PILImage.fromarray(px).save(path, fmt, quality=95, exif=exif.tobytes(),
                                icc_profile=profile)
    assert is_image_file(path) and suffix.lower() in IMAGE_SUFFIXES
    got = read_image(path)
    assert got.pixels.shape == (40, 24, 3) and got.icc_profile == profile
    err = [np.abs(got.pixels.astype(int) - np.rot90(px, k)).mean() for k in (-1, 1)]
    assert err[0] < 8 < 40 < err[1]  # lossy, but turned clockwise (not the other way)
    assert images.probe_image(path) == (40, 24)
    assert suffix.lower() not in images.OUTPUT_SUFFIXES
    with pytest.raises(WdsrError, match="unknown image format"):
        write_image(tmp_path / f"out{suffix}", got)


def test_a_camera_jpeg_with_a_preview_inside_is_its_photo(tmp_path):
    """Cameras and phones often write a JPEG with a preview or depth image after the photo
    (Multi-Picture Format; Pillow calls it MPO and counts 2 frames): it is one photo, read
    upright with its quality, not refused as an animation."""
    from wdsr_cli.core.data.compression import jpeg_quality_of

    px = _smooth(24, 40, 3)
    exif = PILImage.Exif()
    exif[0x0112] = 6
    path = tmp_path / "DSC_0001.JPG"
    PILImage.fromarray(px).save(path, "MPO", save_all=True, quality=85, exif=exif.tobytes(),
                                append_images=[PILImage.fromarray(px[::4, ::4].copy())])
    with PILImage.open(path) as im:
        assert im.format == "MPO" and im.n_frames == 2
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))  # frame 0
    got = read_image(path)
    assert got.pixels.shape == (40, 24, 3) and np.array_equal(got.pixels, want)
    assert images.probe_image(path) == (40, 24) and jpeg_quality_of(path) == 85


def test_a_heic_photo_without_pillow_heif_says_what_to_install(tmp_path, monkeypatch):
    fake = tmp_path / "IMG_0001.HEIC"
    fake.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    with pytest.raises(WdsrError, match="not an image file"):  # pillow-heif cannot read it
        read_image(fake)
    monkeypatch.setattr(images, "_HEIF", False)
    for read in (read_image, images.probe_image):
        with pytest.raises(WdsrError, match="need pillow-heif") as info:
            read(fake)
        assert "wdsr-cli[heif]" in info.value.hint


@pytest.mark.skipif(".webp" not in IMAGE_SUFFIXES, reason="Pillow built without WebP")
def test_webp(tmp_path):
    px, al = _smooth(16, 16, 3), _smooth(16, 16, 1)[:, :, 0]
    write_image(tmp_path / "a.webp", Image(px, al), quality=100)  # lossless
    got = read_image(tmp_path / "a.webp")
    assert np.array_equal(got.pixels, px) and np.array_equal(got.alpha, al)
    write_image(tmp_path / "b.webp", Image(px))
    assert read_image(tmp_path / "b.webp").pixels.shape == px.shape


def test_16bit_to_8bit_formats_rounds(tmp_path):
    px = np.array([[[0, 128, 129], [65535, 257 * 100 + 128, 257 * 100 + 129]]], np.uint16)
    write_image(tmp_path / "a.bmp", Image(px, None, 16))
    got = read_image(tmp_path / "a.bmp")
    assert got.pixels.tolist() == [[[0, 0, 1], [255, 100, 101]]]


def test_alpha_to_jpeg_or_bmp_is_an_error_not_silent(tmp_path):
    img = Image(_smooth(4, 4, 3), _smooth(4, 4, 1)[:, :, 0])
    for name in ("a.jpg", "a.bmp"):
        with pytest.raises(WdsrError, match="transparency") as e:
            write_image(tmp_path / name, img)
        assert name in str(e.value) and e.value.hint
    assert os.listdir(tmp_path) == []


def test_animated_gif_and_16bit_colour_tiff_are_refused_not_silently_reduced(tmp_path):
    frames = [PILImage.fromarray(np.full((4, 5, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(WdsrError, match="2 frames") as e:
        read_image(tmp_path / "a.gif")
    assert "a.gif" in e.value.message and e.value.hint
    frames[0].save(tmp_path / "still.gif")  # one frame: fine
    assert int(read_image(tmp_path / "still.gif").pixels.max()) == 10
    # a 48-bit RGB TIFF as other tools write it (uncompressed, BitsPerSample 16,16,16)
    h, w = 3, 4
    px = (np.arange(h * w * 3, dtype=np.uint16).reshape(h, w, 3) * 1000).astype(">u2")
    data = px.tobytes()
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, 8 + len(data)), (259, 3, 1, 1),
               (262, 3, 1, 2), (273, 4, 1, 8), (277, 3, 1, 3), (278, 3, 1, h),
               (279, 4, 1, len(data)), (284, 3, 1, 1)]
    ifd = struct.pack(">H", len(entries)) + b"".join(
        struct.pack(">HHI", tag, typ, n) + (struct.pack(">HH", val, 0) if typ == 3 and n == 1
                                             else struct.pack(">I", val))
        for tag, typ, n, val in entries) + struct.pack(">I", 0)
    ifd_at = 8 + len(data) + 6
    tif = b"MM\x00*" + struct.pack(">I", ifd_at) + data + struct.pack(">HHH", 16, 16, 16) + ifd
    (tmp_path / "c48.tif").write_bytes(tif)
    with pytest.raises(WdsrError, match="16-bit colour TIFF"):
        read_image(tmp_path / "c48.tif")


def test_tiny_images_are_read(tmp_path):
    write_image(tmp_path / "one.png", Image(np.array([[[1, 2, 3]]], np.uint8)))
    assert read_image(tmp_path / "one.png").pixels.shape == (1, 1, 3)


# ---------------------------------------------------------------------------
# EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    px = _smooth(5, 8, 3)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    PILImage.fromarray(px).save(tmp_path / "o.png", exif=exif.tobytes())
    with PILImage.open(tmp_path / "o.png") as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = read_image(tmp_path / "o.png")
    assert np.array_equal(got.pixels, want)


def test_exif_orientation_on_16bit_png(tmp_path):
    px = _smooth(5, 8, 3, np.uint16)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    data = png.encode(px, 16)
    (tmp_path / "o.png").write_bytes(_insert_chunk(data, b"eXIf", exif.tobytes()[6:]))
    got = read_image(tmp_path / "o.png")
    assert np.array_equal(got.pixels, np.rot90(px, -1))


# ---------------------------------------------------------------------------
# float conversion


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("depth", [8, 16])
def test_float_round_trip(channels, depth):
    dtype = np.uint8 if depth == 8 else np.uint16
    img = Image(_smooth(6, 7, channels, dtype), None, depth)
    f = to_rgb_float(img)
    assert f.dtype == np.float32 and f.shape == (6, 7, 3)
    assert 0 <= f.min() and f.max() <= 255
    back = from_rgb_float(f, like=img)
    assert back.bit_depth == depth and back.pixels.shape == img.pixels.shape
    assert np.array_equal(back.pixels, img.pixels)


def test_float_scaling_and_clipping():
    img16 = Image(np.array([[[0, 65535, 257]]], np.uint16), None, 16)
    assert np.allclose(to_rgb_float(img16), [[[0, 255, 1]]])
    out = from_rgb_float(np.array([[[-3.0, 300.0, 1.0]]], np.float32), like=img16)
    assert out.pixels.tolist() == [[[0, 65535, 257]]]
    img8 = Image(np.zeros((1, 1, 3), np.uint8))
    out = from_rgb_float(np.array([[[-3.0, 254.6, 1.49]]]), like=img8)
    assert out.pixels.tolist() == [[[0, 255, 1]]]


def test_gray_output_uses_bt601_luma():
    like = Image(np.zeros((1, 1, 1), np.uint8))
    out = from_rgb_float(np.array([[[100.0, 200.0, 50.0]]]), like=like)
    assert out.gray and int(out.pixels[0, 0, 0]) == round(0.299 * 100 + 0.587 * 200 + 0.114 * 50)


def test_alpha_is_carried_or_must_be_given():
    img = Image(_smooth(4, 4, 3), _smooth(4, 4, 1)[:, :, 0])
    same = from_rgb_float(to_rgb_float(img), like=img)
    assert np.array_equal(same.alpha, img.alpha)
    big = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="alpha"):
        from_rgb_float(big, like=img)
    a = np.repeat(np.repeat(alpha_to_float(img), 2, 0), 2, 1)
    up = from_rgb_float(big, like=img, alpha=a)
    assert np.array_equal(up.alpha[::2, ::2], img.alpha)
    img16 = Image(_smooth(4, 4, 1, np.uint16), _smooth(4, 4, 1, np.uint16)[:, :, 0], 16)
    back = from_rgb_float(to_rgb_float(img16), like=img16, alpha=alpha_to_float(img16))
    assert np.array_equal(back.alpha, img16.alpha) and np.array_equal(back.pixels, img16.pixels)


def test_image_validates_its_arrays():
    with pytest.raises(ValueError):
        Image(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        Image(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError):
        Image(np.zeros((2, 2, 3), np.uint16), None, 8)
    with pytest.raises(ValueError):
        Image(np.zeros((2, 2, 3), np.uint8), np.zeros((3, 3), np.uint8))


# ---------------------------------------------------------------------------
# dataset conveniences


def test_read_rgb_uint8_conversions(tmp_path):
    g16 = np.array([[[0], [128], [129], [65535]]], np.uint16)
    write_image(tmp_path / "g.png", Image(g16, None, 16))
    a = read_rgb_uint8(tmp_path / "g.png")
    assert a.shape == (1, 4, 3) and a.dtype == np.uint8
    assert a[0, :, 0].tolist() == [0, 0, 1, 255] and np.all(a == a[:, :, :1])
    rgba = Image(_smooth(3, 3, 3), np.zeros((3, 3), np.uint8))
    write_image(tmp_path / "a.png", rgba)
    assert np.array_equal(read_rgb_uint8(tmp_path / "a.png"), rgba.pixels)


def test_write_rgb_uint8(tmp_path):
    px = _smooth(5, 5, 3)
    write_rgb_uint8(tmp_path / "a.png", px)
    assert np.array_equal(read_rgb_uint8(tmp_path / "a.png"), px)
    with pytest.raises(ValueError):
        write_rgb_uint8(tmp_path / "b.png", px[:, :, :1])
    assert _leftovers(tmp_path) == []


def test_is_image_file():
    assert is_image_file("a/b/photo.PNG") and is_image_file("x.jpeg") and is_image_file("x.TIFF")
    assert not is_image_file("notes.txt") and not is_image_file("png")
    assert not is_image_file("._photo.png") and not is_image_file(".x.png.1234.tmp")
    assert set(IMAGE_SUFFIXES) >= {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


# ---------------------------------------------------------------------------
# bad files


def _png_bytes(px: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(px).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("keep", [0.3, 0.6, -20, -12, -8, -4, -1])
def test_truncated_png_is_detected(tmp_path, keep):
    data = _png_bytes(_smooth(30, 40, 3))
    cut = int(len(data) * keep) if keep > 0 else len(data) + keep
    path = tmp_path / "cut.png"
    path.write_bytes(data[:cut])
    with pytest.raises(WdsrError, match="truncated") as e:
        read_image(path)
    assert "cut.png" in str(e.value) and e.value.hint


@pytest.mark.parametrize("keep", [0.5, -13, -1])
def test_truncated_16bit_png_is_detected(tmp_path, keep):
    data = png.encode(_smooth(30, 40, 3, np.uint16), 16)
    cut = int(len(data) * keep) if keep > 0 else len(data) + keep
    (tmp_path / "c16.png").write_bytes(data[:cut])
    with pytest.raises(WdsrError, match="c16.png.*truncated"):
        read_image(tmp_path / "c16.png")


def test_truncated_png_detected_even_if_pillow_is_lenient(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = _png_bytes(_smooth(30, 40, 3))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(WdsrError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    # and a truncated JPEG too, with the global setting restored afterwards
    buf = io.BytesIO()
    PILImage.fromarray(_smooth(64, 64, 3)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(WdsrError, match="cut.jpg.*truncated"):
        read_image(tmp_path / "cut.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_concurrent_reads_stay_strict(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    good = tmp_path / "good.png"
    write_image(good, Image(_smooth(40, 40, 3)))
    data = good.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])

    def one(i: int) -> str:
        try:
            read_image(tmp_path / ("cut.png" if i % 3 == 0 else "good.png"))
            return "ok"
        except WdsrError:
            return "error"

    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(one, range(30)))
    assert got == ["error" if i % 3 == 0 else "ok" for i in range(30)]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    PILImage.fromarray(_smooth(64, 64, 3)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:-30])
    with pytest.raises(WdsrError, match="cut.jpg.*truncated"):
        read_image(tmp_path / "cut.jpg")


def test_corrupt_png_crc(tmp_path):
    data = bytearray(png.encode(_smooth(8, 8, 3, np.uint16), 16))
    data[40] ^= 0xFF  # inside IDAT
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(WdsrError, match="bad.png.*damaged"):
        read_image(tmp_path / "bad.png")


def test_text_file_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image\n")
    with pytest.raises(WdsrError, match="notes.png") as e:
        read_image(tmp_path / "notes.png")
    assert "not an image" in str(e.value)


def test_missing_empty_and_folder(tmp_path):
    with pytest.raises(WdsrError, match="nope.png.*no such file"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(WdsrError, match="empty.png.*empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(WdsrError, match="dir.png"):
        read_image(tmp_path / "dir.png")


# ---------------------------------------------------------------------------
# atomic writes


def test_unknown_suffix_fails_before_touching_anything(tmp_path):
    target = tmp_path / "keep.xyz"
    target.write_bytes(b"precious")
    with pytest.raises(WdsrError, match="keep.xyz") as e:
        write_image(target, Image(_smooth(4, 4, 3)))
    assert ".png" in e.value.hint
    assert target.read_bytes() == b"precious" and _leftovers(tmp_path) == []
    with pytest.raises(WdsrError, match=r"unknown image format '\(no suffix\)'"):
        write_image(tmp_path / "noext", Image(_smooth(4, 4, 3)))


def test_failed_write_keeps_existing_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    old = Image(_smooth(4, 4, 3))
    write_image(target, old)
    before = target.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(images, "_write_with_pillow", boom)
    with pytest.raises(WdsrError, match="out.png.*No space left"):
        write_image(target, Image(_smooth(6, 6, 3)))
    assert target.read_bytes() == before and _leftovers(tmp_path) == []


def test_write_replaces_and_leaves_no_temporary(tmp_path):
    # the mode under other umasks: test_safety.py::test_written_files_follow_the_umask
    target = tmp_path / "out.png"
    write_image(target, Image(_smooth(4, 4, 3)))
    new = _smooth(5, 5, 3)
    write_image(target, Image(new))
    assert np.array_equal(read_image(target).pixels, new)
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_write_into_missing_folder(tmp_path):
    with pytest.raises(WdsrError, match="does not exist"):
        write_image(tmp_path / "no" / "x.png", Image(_smooth(4, 4, 3)))


# ---------------------------------------------------------------------------
# the bundled sample photographs


def test_bundled_sample_is_consistent():
    import json
    from pathlib import Path

    import wdsr_cli

    folder = Path(wdsr_cli.__file__).parent / "assets" / "sample"
    meta = json.loads((folder / "sample.json").read_text(encoding="utf-8"))
    names = meta["train"] + meta["valid"]
    assert 12 <= len(names) <= 20 and 2 <= len(meta["valid"]) <= 4
    assert not set(meta["train"]) & set(meta["valid"])
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(names)
    assert set(meta["sources"]) == set(names)
    licences = (folder / "LICENSES.md").read_text(encoding="utf-8")
    allowed = {"CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-SA-3.0", "public domain"}
    total = 0
    for name in names:
        src = meta["sources"][name]
        assert src["licence"] in allowed and src["author"] and name in licences
        with PILImage.open(folder / name) as im:  # header only: fast
            w, h = im.size
            assert im.mode == "RGB" and im.format == "PNG"
        assert w % 12 == 0 and h % 12 == 0 and [w, h] == src["size"]
        assert 300 <= max(w, h) <= 720
        total += (folder / name).stat().st_size
    assert total <= 8 * 1024 * 1024

"""The colour profile and EXIF block go from an input file to the image written from it
(core/data/metadata.py, images.py): Pillow reads back what was written, so the judge is not
the code under test."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import ExifTags, ImageCms
from PIL import Image as PILImage

from wdsr_cli.core.data import png
from wdsr_cli.core.data.images import (
    IMAGE_SUFFIXES,
    Image,
    from_rgb_float,
    read_image,
    write_image,
)
from wdsr_cli.core.data.metadata import exif_for_output, icc_fits, split_exif

RGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _profile(space: bytes) -> bytes:
    """The sRGB profile with another colour space in its header (all that is checked)."""
    return RGB_PROFILE[:16] + space + RGB_PROFILE[20:]


GRAY_PROFILE, CMYK_PROFILE = _profile(b"GRAY"), _profile(b"CMYK")

ORIENTATION, MAKE, RES_UNIT, EXIF_IFD, GPS_IFD = 0x0112, 0x010F, 0x0128, 0x8769, 0x8825
ISO, DATE_TAKEN, PIXEL_X, PIXEL_Y, GPS_LAT_REF = 0x8827, 0x9003, 0xA002, 0xA003, 0x0001


def _tiff(order: str, *, orientation=6, pixel_type=3, size=(60, 40), thumbnail=True) -> bytes:
    """A hand-made EXIF TIFF block as cameras write one: IFD0 (Make, Orientation,
    ResolutionUnit, pointers to the Exif and GPS IFDs), the Exif IFD (ISO, DateTimeOriginal,
    PixelX/YDimension as ``pixel_type``), the GPS IFD (latitude N) and a thumbnail IFD1."""
    e = "<" if order == "II" else ">"
    date = b"2026:01:02 03:04:05\x00"

    def ifd(entries: list[bytes], next_ifd: int) -> bytes:
        return struct.pack(e + "H", len(entries)) + b"".join(entries) + \
            struct.pack(e + "I", next_ifd)

    def short(tag: int, value: int) -> bytes:
        return struct.pack(e + "HHIH2x", tag, 3, 1, value)

    def long(tag: int, value: int) -> bytes:
        return struct.pack(e + "HHII", tag, 4, 1, value)

    def text(tag: int, value: bytes) -> bytes:  # inline: at most 4 bytes
        return struct.pack(e + "HHI4s", tag, 2, len(value), value)

    size_of = {5: 2 + 5 * 12 + 4, 4: 2 + 4 * 12 + 4, 1: 2 + 12 + 4}
    ifd0, exif_ifd = 8, 8 + size_of[5]
    gps_ifd = exif_ifd + size_of[4]
    ifd1 = gps_ifd + size_of[1]
    data = ifd1 + size_of[1]
    pixel = short if pixel_type == 3 else long
    b = order.encode() + struct.pack(e + "HI", 42, ifd0)
    b += ifd([text(MAKE, b"Cam\x00"), short(ORIENTATION, orientation), short(RES_UNIT, 2),
              long(EXIF_IFD, exif_ifd), long(GPS_IFD, gps_ifd)], ifd1 if thumbnail else 0)
    b += ifd([short(ISO, 100), struct.pack(e + "HHII", DATE_TAKEN, 2, len(date), data),
              pixel(PIXEL_X, size[0]), pixel(PIXEL_Y, size[1])], 0)
    b += ifd([text(GPS_LAT_REF, b"N\x00")], 0)
    b += ifd([short(ORIENTATION, 6)], 0)
    assert len(b) == data
    return b + date


def _exif(block: bytes) -> PILImage.Exif:
    ex = PILImage.Exif()
    ex.load(b"Exif\x00\x00" + block)
    return ex


# ------------------------------------------------------------------------- the EXIF rewrite


@pytest.mark.parametrize("order", ["II", "MM"])
@pytest.mark.parametrize("pixel_type", [3, 4])
def test_exif_is_rewritten_for_the_upright_output(order, pixel_type):
    block = _tiff(order, pixel_type=pixel_type)
    assert _exif(block)[ORIENTATION] == 6 and _exif(block).get_ifd(EXIF_IFD)[PIXEL_X] == 60
    out = exif_for_output(block, 80, 120_000)  # taller than a SHORT can say
    assert len(out) == len(block)
    ex = _exif(out)
    assert ex[ORIENTATION] == 1 and ex[MAKE] == "Cam" and ex[RES_UNIT] == 2
    sub = ex.get_ifd(EXIF_IFD)
    assert (sub[PIXEL_X], sub[PIXEL_Y]) == (80, 120_000)
    assert sub[DATE_TAKEN] == "2026:01:02 03:04:05" and sub[ISO] == 100
    assert ex.get_ifd(GPS_IFD) == {GPS_LAT_REF: "N"}
    # no thumbnail IFD any more: it showed the input sideways
    assert ex.get_ifd(ExifTags.IFD.IFD1) == {}
    assert _exif(block).get_ifd(ExifTags.IFD.IFD1)  # (there was one)


def test_exif_without_the_rewritten_tags_comes_back_unchanged_but_the_thumbnail_link():
    ex = PILImage.Exif()
    ex[MAKE] = "Cam"
    block = split_exif(ex.tobytes())
    assert exif_for_output(block, 5, 5) == block


@pytest.mark.parametrize("bad", [
    b"", b"II", b"XX*\x00\x08\x00\x00\x00", b"II+\x00\x08\x00\x00\x00",  # no TIFF header
    b"II*\x00\xff\x00\x00\x00",  # IFD0 beyond the end
    b"II*\x00\x08\x00\x00\x00\x09\x00" + b"\x00" * 20,  # 9 entries announced, 1.7 present
])
def test_an_exif_block_that_cannot_be_walked_is_dropped(bad):
    assert exif_for_output(bad, 4, 4) is None


def test_an_exif_sub_ifd_beyond_the_end_drops_the_block():
    block = bytearray(_tiff("II"))
    struct.pack_into("<I", block, 8 + 2 + 3 * 12 + 8, 60_000)  # the Exif IFD pointer
    assert exif_for_output(bytes(block), 4, 4) is None


def test_split_exif_takes_the_tiff_block_with_or_without_the_jpeg_header():
    block = _tiff("MM")
    assert split_exif(b"Exif\x00\x00" + block) == block == split_exif(block)
    assert split_exif(None) is None and split_exif(b"Exif\x00\x00junk") is None


def test_icc_fits_reads_the_colour_space_from_the_header():
    assert icc_fits(RGB_PROFILE, gray=False) and not icc_fits(RGB_PROFILE, gray=True)
    assert icc_fits(GRAY_PROFILE, gray=True) and not icc_fits(GRAY_PROFILE, gray=False)
    assert not icc_fits(CMYK_PROFILE, gray=False) and not icc_fits(CMYK_PROFILE, gray=True)
    assert not icc_fits(RGB_PROFILE[:19], gray=False) and not icc_fits(None, gray=False)
    not_icc = RGB_PROFILE[:36] + b"xxxx" + RGB_PROFILE[40:]  # every profile says 'acsp' there
    assert not icc_fits(not_icc, gray=False)


def test_an_image_refuses_a_profile_that_does_not_describe_its_pixels():
    px = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="RGB profile"):
        Image(px, icc_profile=GRAY_PROFILE)
    with pytest.raises(ValueError, match="gray profile"):
        Image(px[:, :, :1], icc_profile=RGB_PROFILE)


# ------------------------------------------------------------------- read, then write back


def _photo(path, px=None, **save) -> np.ndarray:
    px = np.random.default_rng(1).integers(0, 256, (24, 20, 3), dtype=np.uint8) if px is None \
        else px
    PILImage.fromarray(px).save(path, **save)
    return px


def _written(path) -> tuple[bytes | None, PILImage.Exif, tuple[int, int]]:
    with PILImage.open(path) as im:
        return im.info.get("icc_profile"), im.getexif(), im.size


def _upscaled(src: Image) -> Image:
    """What upscale does with an image's metadata: the pixels change, the metadata comes along."""
    big = np.repeat(np.repeat(src.pixels.astype(np.float32), 2, 0), 2, 1)
    return from_rgb_float(np.repeat(big, 3, 2) if src.gray else big, src)


WRITABLE = [s for s in (".png", ".jpg", ".webp", ".tif", ".bmp") if s in IMAGE_SUFFIXES]
KEEPS = {".png": ["exif", "icc_profile"], ".jpg": ["exif", "icc_profile"],
         ".webp": ["exif", "icc_profile"], ".tif": ["icc_profile"], ".bmp": []}


@pytest.mark.parametrize("suffix", WRITABLE)
def test_a_phone_jpegs_profile_and_exif_reach_every_format_that_holds_them(tmp_path, suffix):
    block = _tiff("MM", size=(20, 24))
    _photo(tmp_path / "in.jpg", icc_profile=RGB_PROFILE, exif=b"Exif\x00\x00" + block)
    src = read_image(tmp_path / "in.jpg")
    assert src.icc_profile == RGB_PROFILE and src.exif == block
    assert src.pixels.shape == (20, 24, 3)  # orientation 6 applied on reading
    out = _upscaled(src)
    assert write_image(tmp_path / f"out{suffix}", out) == KEEPS[suffix]
    icc, ex, size = _written(tmp_path / f"out{suffix}")
    assert size == (48, 40)
    assert icc == (RGB_PROFILE if "icc_profile" in KEEPS[suffix] else None)
    if "exif" in KEEPS[suffix]:
        assert ex[ORIENTATION] == 1 and ex[MAKE] == "Cam"
        sub = ex.get_ifd(EXIF_IFD)
        assert (sub[PIXEL_X], sub[PIXEL_Y]) == (48, 40)
        assert sub[DATE_TAKEN] == "2026:01:02 03:04:05"
    # read back, the output is upright and not turned again
    assert read_image(tmp_path / f"out{suffix}").pixels.shape == (40, 48, 3)


def test_sixteen_bit_png_keeps_profile_and_exif_through_the_own_codec(tmp_path):
    px = np.random.default_rng(2).integers(0, 65536, (6, 8, 3), dtype=np.uint16)
    block = _tiff("II", orientation=1, size=(8, 6))
    write_image(tmp_path / "in.png", Image(px, bit_depth=16, icc_profile=RGB_PROFILE,
                                           exif=block))
    icc, ex, _ = _written(tmp_path / "in.png")  # Pillow reads the chunks the codec wrote
    assert icc == RGB_PROFILE and ex[MAKE] == "Cam"
    src = read_image(tmp_path / "in.png")  # the codec reads them back
    assert src.bit_depth == 16 and np.array_equal(src.pixels, px)
    assert src.icc_profile == RGB_PROFILE and _exif(src.exif)[MAKE] == "Cam"
    write_image(tmp_path / "out.png", _upscaled(src))
    icc, ex, size = _written(tmp_path / "out.png")
    assert icc == RGB_PROFILE and size == (16, 12)
    assert (ex.get_ifd(EXIF_IFD)[PIXEL_X], ex.get_ifd(EXIF_IFD)[PIXEL_Y]) == (16, 12)


def test_a_damaged_icc_chunk_costs_the_profile_not_the_image(tmp_path):
    px = np.ones((4, 4, 3), np.uint16) * 300
    good = png.encode(px, 16, icc_profile=RGB_PROFILE)
    start = good.index(b"iCCP") - 4
    (length,) = struct.unpack(">I", good[start:start + 4])
    body = b"ICC Profile\x00\x00" + b"not zlib at all"
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + body))
    (tmp_path / "d.png").write_bytes(good[:start] + chunk + good[start + 12 + length:])
    got = read_image(tmp_path / "d.png")
    assert got.icc_profile is None and np.array_equal(got.pixels, px)


def test_gray_keeps_a_gray_profile_and_drops_an_rgb_one(tmp_path):
    g = np.random.default_rng(3).integers(0, 256, (8, 8), dtype=np.uint8)
    PILImage.fromarray(g).save(tmp_path / "g.jpg", icc_profile=GRAY_PROFILE)
    PILImage.fromarray(g).save(tmp_path / "w.jpg", icc_profile=RGB_PROFILE)
    assert read_image(tmp_path / "g.jpg").icc_profile == GRAY_PROFILE
    assert read_image(tmp_path / "w.jpg").icc_profile is None
    write_image(tmp_path / "g.png", _upscaled(read_image(tmp_path / "g.jpg")))
    assert _written(tmp_path / "g.png")[0] == GRAY_PROFILE


def test_a_cmyk_profile_does_not_follow_the_pixels_into_rgb(tmp_path):
    PILImage.new("CMYK", (8, 8), (10, 20, 30, 40)).save(tmp_path / "c.jpg",
                                                         icc_profile=CMYK_PROFILE)
    src = read_image(tmp_path / "c.jpg")
    assert src.pixels.shape == (8, 8, 3) and src.icc_profile is None
    write_image(tmp_path / "c.png", _upscaled(src))
    assert _written(tmp_path / "c.png")[0] is None


def test_an_exif_block_too_big_for_a_jpeg_is_left_out_of_it_not_fatal(tmp_path):
    ex = PILImage.Exif()
    ex[MAKE] = "Cam"
    ex[0x010E] = "x" * 70_000  # ImageDescription: a PNG's eXIf has no size limit
    img = Image(np.zeros((4, 4, 3), np.uint8), exif=split_exif(ex.tobytes()),
                icc_profile=RGB_PROFILE)
    assert write_image(tmp_path / "o.jpg", img) == ["icc_profile"]
    icc, exif, _ = _written(tmp_path / "o.jpg")
    assert icc == RGB_PROFILE and MAKE not in exif
    assert write_image(tmp_path / "o.png", img) == ["exif", "icc_profile"]
    assert _written(tmp_path / "o.png")[1][MAKE] == "Cam"


def test_an_image_without_metadata_writes_none(tmp_path):
    img = Image(np.zeros((4, 4, 3), np.uint8))
    assert write_image(tmp_path / "o.png", img) == []
    data = (tmp_path / "o.png").read_bytes()
    assert b"iCCP" not in data and b"eXIf" not in data

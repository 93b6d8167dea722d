"""How hard a file was compressed, from its header (core/data/compression.py): a lossy WebP's
quality from its VP8 quantizer, against the libwebp installed and against frame headers written
here field by field (RFC 6386), so each optional section of the header is walked."""

from __future__ import annotations

import io
import struct
from importlib.resources import files

import numpy as np
import pytest
from PIL import Image as PILImage

from wdsr_cli.core.data import compression as C
from wdsr_cli.core.data.images import read_rgb_uint8

SAMPLE = files("wdsr_cli") / "assets" / "sample"


def _webp(px: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(px).save(buf, "WEBP", quality=quality)
    return buf.getvalue()


@pytest.mark.parametrize("photo", ["dogs.png", "valley.png"])
def test_a_webps_quality_is_read_from_its_quantizer(photo, tmp_path):
    """Every quality 0-100 of the libwebp installed: the quantizer is the table's to within
    one step, and the quality read is within 5 (exact where the table is steep: q76 and up,
    where the photo weights give way to the clean ones)."""
    px = np.ascontiguousarray(read_rgb_uint8(SAMPLE / photo)[:192, :256])
    off = []
    for quality in range(101):
        path = tmp_path / f"q{quality}.webp"
        path.write_bytes(_webp(px, quality))
        frame = C._webp_image_chunk(path)
        assert abs(C._vp8_quantizer(frame) - C._WEBP_QUANTIZER[quality]) <= 1, quality
        off.append(C.webp_quality_of(path) - quality)
    assert max(map(abs, off)) <= 5 and all(d in (-1, 0, 1) for d in off[76:]), off
    assert sum(d == 0 for d in off) >= 60


def test_the_quantizer_table_is_the_libwebp_installed(tmp_path):
    """Exactly, on the photo it was measured on: a libwebp that quantizes otherwise fails here
    (then measure the table again and check the crossover, weights.WEBP_PHOTO_MAX_QUALITY)."""
    px = np.ascontiguousarray(read_rgb_uint8(SAMPLE / "astronaut.png")[:256, :256])
    got = []
    for quality in range(101):
        data = _webp(px, quality)
        got.append(C._vp8_quantizer(data[data.index(b"VP8 ") + 8:]))
    assert tuple(got) == C._WEBP_QUANTIZER


def test_every_jpeg_quality_is_read_back(tmp_path):
    """Pillow writes libjpeg's tables: each quality's luma table sums to what the IJG table
    scaled says, and is read back as that quality."""
    px = np.ascontiguousarray(read_rgb_uint8(SAMPLE / "dogs.png")[:16, :16])
    for quality in range(1, 101):
        PILImage.fromarray(px).save(tmp_path / "a.jpg", quality=quality)
        with PILImage.open(tmp_path / "a.jpg") as im:
            assert sum(im.quantization[0]) == C._IJG_SUMS[quality], quality
        assert C.jpeg_quality_of(tmp_path / "a.jpg") == quality


def test_a_cameras_own_table_gets_the_nearest_quality_and_ties_go_up(tmp_path):
    px = np.zeros((16, 16, 3), np.uint8)
    sums = C._IJG_SUMS
    low = next(q for q in range(60, 99) if (sums[q] + sums[q + 1]) % 2 == 0)
    for total, want in (((sums[low] + sums[low + 1]) // 2, low + 1),  # midway: the higher
                        (sums[low] - 1, low), (sums[low + 1] + 1, low + 1)):
        table = [total // 64 + (k < total % 64) for k in range(64)]  # a flat table, that sum
        PILImage.fromarray(px).save(tmp_path / "cam.jpg", qtables=[table, table])
        assert C.jpeg_quality_of(tmp_path / "cam.jpg") == want, total


def _riff(*chunks: tuple[bytes, bytes]) -> bytes:
    body = b"WEBP"
    for fourcc, data in chunks:
        body += fourcc + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_a_webps_quality_ties_go_up_and_odd_chunks_are_padded(tmp_path):
    """Quantizer 64 is libwebp's at q34 and q35: 35; 33 lies between q76 (34) and q77 (32):
    77. An odd-sized chunk before the image (an ICC profile of 3 bytes) is padded to 4."""
    for index, quality in ((64, 35), (33, 77), (0, 100), (127, 0)):
        frame = _frame(index, segments=0, data=0, tree=0, deltas=0, update=0)
        path = tmp_path / f"i{index}.webp"
        path.write_bytes(_riff((b"VP8X", bytes(10)), (b"ICCP", b"abc"), (b"VP8 ", frame)))
        assert C.webp_quality_of(path) == quality, index
        assert C.lossy_format_of(path) == "WebP"
    (tmp_path / "wave.webp").write_bytes(_riff((b"VP8 ", frame)).replace(b"WEBP", b"WAVE"))
    assert C.webp_quality_of(tmp_path / "wave.webp") is None  # RIFF, but not a WebP
    assert C.lossy_format_of(tmp_path / "wave.webp") is None


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08meta"


@pytest.mark.parametrize("box,kind", [
    *((_ftyp(brand), "HEIC") for brand in (b"heic", b"heix", b"heim", b"heis", b"hevc",
                                           b"hevx", b"mif1", b"msf1")),
    # the box ends where its size says: a later box named avif is not one of its brands
    (_ftyp(b"heic", b"mif1") + b"\x00\x00\x00\x08avif", "HEIC"),
    (_ftyp(b"mif1", b"mif1", b"miaf", b"MA1B", b"avif"), "AVIF"),  # AVIF as the last brand
    (_ftyp(b"mif1", b"mif1", b"heic"), "HEIC"),
    (_ftyp(b"heic"), "HEIC"),
    (_ftyp(b"avis", b"msf1"), "AVIF"),
    (_ftyp(b"isom", b"mp41", b"avc1"), None),  # an MP4 video
    (_ftyp(b"mp42", b"isomavif"[:4]), None),
    (b"\x00\x00\x00\x0bftypheic", "HEIC"),  # a box that says it is shorter than its brand
])
def test_heic_and_avif_are_told_by_their_brands(box, kind, tmp_path):
    (tmp_path / "x").write_bytes(box)
    assert C.lossy_format_of(tmp_path / "x") == kind


def test_what_is_not_a_lossy_webp_has_no_webp_quality(tmp_path):
    px = np.zeros((16, 16, 3), np.uint8)
    PILImage.fromarray(px).save(tmp_path / "lossless.webp", lossless=True)
    PILImage.fromarray(px).save(tmp_path / "a.jpg")
    (tmp_path / "text.webp").write_text("RIFF")
    good = _webp(px, 80)
    (tmp_path / "cut.webp").write_bytes(good[:20 + 11])  # the VP8 frame header cut short
    for name in ("lossless.webp", "a.jpg", "text.webp", "cut.webp", "missing.webp"):
        assert C.webp_quality_of(tmp_path / name) is None, name


# --------------------------------------------------------------- frame headers written here


class _BoolEncoder:
    """VP8's boolean entropy encoder (RFC 6386, section 7.3), every bit at probability 1/2."""

    def __init__(self) -> None:
        self.out, self.range, self.bottom, self.count = bytearray(), 255, 0, 24

    def put(self, bit: int) -> None:
        split = 1 + ((self.range - 1) >> 1)
        if bit:
            self.bottom += split
            self.range -= split
        else:
            self.range = split
        while self.range < 128:
            self.range <<= 1
            if self.bottom & (1 << 31):  # carry into what is written already
                i = len(self.out) - 1
                while self.out[i] == 255:
                    self.out[i] = 0
                    i -= 1
                self.out[i] += 1
            self.bottom = (self.bottom << 1) & 0xFFFFFFFF
            self.count -= 1
            if not self.count:
                self.out.append(self.bottom >> 24)
                self.bottom &= (1 << 24) - 1
                self.count = 8

    def number(self, value: int, bits: int) -> None:
        for k in reversed(range(bits)):
            self.put((value >> k) & 1)

    def bytes(self) -> bytes:
        for _ in range(64):
            self.put(0)
        return bytes(self.out)


def _frame(quantizer: int, *, segments: bool, data: bool, tree: bool, deltas: bool,
           update: bool, key: bool = True, colour: int = 0) -> bytes:
    e = _BoolEncoder()
    e.number(colour, 1)
    e.number(1, 1)  # clamping type
    e.put(segments)
    if segments:
        e.put(tree)
        e.put(data)
        if data:
            e.put(1)  # absolute values
            for k in range(4):  # two segments say a quantizer (and a sign), two do not
                e.put(k % 2)
                if k % 2:
                    e.number(100 + k, 7)
                    e.put(1)
            for k in range(4):
                e.put(k < 2)
                if k < 2:
                    e.number(40 + k, 6)
                    e.put(0)
        if tree:
            for k in range(3):
                e.put(k != 1)
                if k != 1:
                    e.number(200 + k, 8)
    e.number(1, 1)  # filter type
    e.number(63, 6)  # level
    e.number(5, 3)  # sharpness
    e.put(deltas)
    if deltas:
        e.put(update)
        if update:
            for k in range(8):
                e.put(k % 3 == 0)
                if k % 3 == 0:
                    e.number(33, 6)
                    e.put(1)
    e.number(2, 2)  # 4 DCT partitions
    e.number(quantizer, 7)
    e.number(0b1111111, 7)  # what follows: the quantizer deltas' flags
    head = e.bytes()
    tag = (0 if key else 1) | (1 << 4) | (len(head) << 5)
    return struct.pack("<I", tag)[:3] + b"\x9d\x01\x2a" + struct.pack("<HH", 64, 48) + head


@pytest.mark.parametrize("segments,data,tree", [(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 0, 1),
                                                (1, 1, 1)])
@pytest.mark.parametrize("deltas,update", [(0, 0), (1, 0), (1, 1)])
def test_every_optional_section_of_the_frame_header_is_walked(segments, data, tree, deltas,
                                                              update):
    for quantizer in (0, 37, 127):
        frame = _frame(quantizer, segments=segments, data=data, tree=tree, deltas=deltas,
                       update=update)
        assert C._vp8_quantizer(frame) == quantizer


def test_an_inter_frame_or_a_cut_header_has_no_quantizer():
    frame = _frame(37, segments=1, data=1, tree=1, deltas=1, update=1)
    assert C._vp8_quantizer(_frame(37, segments=1, data=1, tree=1, deltas=1, update=1,
                                   key=False)) is None
    assert C._vp8_quantizer(frame[:3] + b"\x00\x00\x00" + frame[6:]) is None  # no start code
    assert C._vp8_quantizer(frame[:14]) is None
    assert C._vp8_quantizer(frame[:11]) is None
    assert C._vp8_quantizer(frame[:10]) is None
    # colour space 1 is reserved, and its header would not be read as plain bits
    assert C._vp8_quantizer(_frame(37, segments=0, data=0, tree=0, deltas=0, update=0,
                                   colour=1)) is None

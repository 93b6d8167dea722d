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


@pytest.mark.parametrize("photo", ["astronaut.png", "dogs.png", "valley.png"])
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
           update: bool, key: bool = True) -> bytes:
    e = _BoolEncoder()
    e.number(0b01, 2)  # colour space, clamping
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

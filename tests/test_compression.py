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


# ------------------------------------------------------------------------------------ AVIF


def _avif(px: np.ndarray, quality: int, **options) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(px).save(buf, "AVIF", quality=quality, **options)
    return buf.getvalue()


def _q_index(data: bytes, tmp_path) -> int | None:
    """base_q_idx of an AVIF file's primary image, through the module's own walk."""
    (tmp_path / "q.avif").write_bytes(data)
    sequence = None
    for kind, extension, payload in C._obus(C._avif_image_item(tmp_path / "q.avif")):
        if kind == 1:
            sequence = C._av1_sequence(C._Bits(payload))
        elif kind in (3, 6):
            return C._av1_base_q_idx(payload, sequence, extension)
    return None


def test_the_avif_quantizer_table_is_the_libavif_installed(tmp_path):
    """Every quality 0-100 of Pillow's libavif (libaom, a still image), on two photos: the
    key frame's base_q_idx is the table's exactly (libaom's quantizer steps: multiples of 4,
    then 249 and 255). A libavif that maps quality otherwise fails here: then measure the
    table again and check the crossover (weights.AVIF_PHOTO_MAX_QUALITY)."""
    for photo, size in (("astronaut.png", 64), ("dogs.png", 48)):
        px = np.ascontiguousarray(read_rgb_uint8(SAMPLE / photo)[:size, :size + 32])
        got = tuple(_q_index(_avif(px, quality), tmp_path) for quality in range(101))
        assert got == C._AVIF_Q_INDEX, photo


def test_an_avifs_quality_is_read_back_and_ties_go_up(tmp_path):
    """Qualities that share a quantizer read as the highest of them (0-2 all quantize at 255:
    2), as for JPEG and WebP; every quality reads back to one with its own quantizer."""
    px = np.ascontiguousarray(read_rgb_uint8(SAMPLE / "dogs.png")[:64, :64])
    read = {}
    for quality in range(101):
        (tmp_path / "a.avif").write_bytes(_avif(px, quality))
        read[quality] = C.avif_quality_of(tmp_path / "a.avif")
        assert C._AVIF_Q_INDEX[read[quality]] == C._AVIF_Q_INDEX[quality], quality
        assert read[quality] >= quality
    assert (read[0], read[1], read[2], read[50], read[60], read[100]) == (2, 2, 2, 51, 61, 100)


@pytest.mark.parametrize("shape,options", [
    ((256, 512), {"tile_cols_log2": 2, "tile_rows_log2": 1}),  # uniform tiles, both ways
    ((256, 256), {"tile_cols_log2": 1}),
    ((600, 700), {"autotiling": True}),
    ((16, 4200), {}),  # wider than one tile may be: at least 2 tile columns
    ((4400, 16), {}),
])
def test_an_avifs_tiles_are_walked(shape, options, tmp_path):
    px = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    (tmp_path / "t.avif").write_bytes(_avif(px, 60, **options))
    assert C.avif_quality_of(tmp_path / "t.avif") == 61


def test_a_full_sequence_header_is_walked(tmp_path):
    """An AVIF image sequence (what Pillow writes for frames): libaom's full sequence and
    frame headers, not the reduced ones of a still; its key frame is quantized as libavif
    says for video, ((100 - q) * 63 + 50) // 100 steps of libaom's table."""
    rng = np.random.default_rng(1)
    frames = [PILImage.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
              for _ in range(2)]
    aom = (*range(0, 248, 4), 249, 255)  # libaom's base_q_idx for its quantizer 0..63
    for quality in (0, 2, 30, 50, 60, 75, 100):
        buf = io.BytesIO()
        frames[0].save(buf, "AVIF", save_all=True, append_images=frames[1:], quality=quality)
        assert _q_index(buf.getvalue(), tmp_path) == aom[((100 - quality) * 63 + 50) // 100], \
            quality


# ---------------------------------------------------------- AV1 headers written here


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, bits: int) -> _BitWriter:
        self.bits += [(int(value) >> k) & 1 for k in reversed(range(bits))]
        return self

    def uvlc(self, value: int) -> None:
        """32 leading zeros or more stand for 2**32 - 1, with no value bits after them."""
        zeros = (value + 1).bit_length() - 1
        self.put(0, zeros).put(1, 1)
        if zeros < 32:
            self.put(value + 1 - (1 << zeros), zeros)

    def ns(self, value: int, n: int) -> None:
        w = n.bit_length()
        m = (1 << w) - n
        if value < m:
            self.put(value, w - 1)
        else:
            self.put((value + m) >> 1, w - 1).put((value + m) & 1, 1)

    def bytes(self) -> bytes:
        bits = self.bits + [1] + [0] * (-(len(self.bits) + 1) % 8)  # trailing bits
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


# Operating points: (idc, decoder model present, initial display delay present)
_POINTS = ((0, True, True), (0x103, False, False), (0x201, True, False), (0x302, True, False))


def _av1_headers(q: int, seed: int = 0, *, reduced=False, timing=False, equal=False,
                 model=False, delay=False, frame_ids=False, big=False, order_hint=False,
                 screen=2, integer_mv=2, superres=False, override=False, render=False,
                 use_superres=False, removal=False, tiles="uniform", width=200, height=120,
                 layer=(0, 0), ticks=None, largest=(8192, 8192), coded=None
                 ) -> tuple[bytes, bytes]:
    """(sequence header, frame header) OBU payloads of a shown key frame, field by field as
    the AV1 spec (5.5, 5.9) orders them. The keywords choose the optional sections; what the
    reader skips (times, ids, levels, flags, lengths, the tiles' layout) is drawn from
    ``seed``, so a reader that skips the wrong number of bits does not land right by chance.
    ``tiles``: "uniform" (spacing), or "sizes" (each tile's width and height drawn);
    ``largest``: the sequence's largest frame, the frame's size without ``override``."""
    rng = np.random.default_rng(seed)

    def val(bits: int) -> int:
        return int(rng.integers(1 << bits)) if bits else 0

    def between(low: int, high: int) -> int:
        return int(rng.integers(low, high + 1))

    s = _BitWriter().put(val(3), 3).put(val(1), 1).put(reduced, 1)
    delay_bits, removal_bits, time_bits = between(1, 32), between(1, 32), between(1, 32)
    if reduced:
        s.put(val(5), 5)
    else:
        s.put(timing, 1)
        if timing:
            s.put(val(32), 32).put(val(32), 32).put(equal, 1)
            if equal:
                s.uvlc(between(0, 5000) if ticks is None else ticks)
            s.put(model, 1)
            if model:
                s.put(delay_bits - 1, 5).put(val(32), 32)
                s.put(removal_bits - 1, 5).put(time_bits - 1, 5)
        s.put(delay, 1).put(len(_POINTS) - 1, 5)
        for idc, present, initial in _POINTS:
            level = between(0, 31)
            s.put(idc, 12).put(level, 5)
            if level > 7:
                s.put(val(1), 1)
            if timing and model:
                s.put(present, 1)
                if present:
                    s.put(val(delay_bits), delay_bits).put(val(delay_bits), delay_bits)
                    s.put(val(1), 1)
            if delay:
                s.put(initial, 1)
                if initial:
                    s.put(val(4), 4)
    s.put(15, 4).put(15, 4).put(largest[0] - 1, 16).put(largest[1] - 1, 16)  # 16-bit sizes
    id_delta, id_extra = between(0, 15), between(0, 7)
    if not reduced:
        s.put(frame_ids, 1)
        if frame_ids:
            s.put(id_delta, 4).put(id_extra, 3)
    s.put(big, 1).put(val(2), 2)
    hint_bits = between(1, 8)
    if not reduced:
        s.put(val(4), 4).put(order_hint, 1)
        if order_hint:
            s.put(val(2), 2)
        s.put(screen == 2, 1)
        if screen != 2:
            s.put(screen, 1)
        if screen:
            s.put(integer_mv == 2, 1)
            if integer_mv != 2:
                s.put(integer_mv, 1)
        if order_hint:
            s.put(hint_bits - 1, 3)
    s.put(superres, 1).put(val(16), 16)  # cdef, restoration, colour config...: not read

    f = _BitWriter()
    if not reduced:
        f.put(0, 1).put(0, 2).put(1, 1)  # not an existing frame, key, shown
        if timing and model and not equal:
            f.put(val(time_bits), time_bits)
    cdf = val(1)
    f.put(cdf, 1)
    allowed = val(1) if screen == 2 else screen
    if screen == 2:
        f.put(allowed, 1)
    if allowed and integer_mv == 2:
        f.put(val(1), 1)
    if frame_ids and not reduced:
        bits = id_delta + id_extra + 3
        f.put(val(bits), bits)
    if not reduced:
        f.put(override, 1)
    if order_hint and not reduced:
        f.put(val(hint_bits), hint_bits)
    if timing and model and not reduced:
        f.put(removal, 1)
        if removal:
            temporal, spatial = layer
            for idc, present, _ in _POINTS:
                if present and (idc == 0 or (idc >> temporal & 1 and idc >> (spatial + 8) & 1)):
                    f.put(val(removal_bits), removal_bits)
    w, h = (width, height) if override and not reduced else largest
    if override and not reduced:
        f.put(width - 1, 16).put(height - 1, 16)
    upscaled = w
    if superres:
        f.put(use_superres, 1)
        if use_superres:
            coded = val(3) if coded is None else coded
            f.put(coded, 3)
            w = (upscaled * 8 + (coded + 9) // 2) // (coded + 9)
    f.put(render, 1)
    if render:
        f.put(val(16), 16).put(val(16), 16)
    if allowed and upscaled == w:
        f.put(val(1), 1)
    if not (reduced or cdf):
        f.put(val(1), 1)
    _tile_info(f, rng, tiles, big, w, h)
    f.put(q, 8).put(val(7), 7)  # base_q_idx, then the delta flags
    return s.bytes(), f.bytes()


def _tile_info(f: _BitWriter, rng, tiles: str, big: bool, w: int, h: int) -> None:
    """tile_info() of a frame ``w`` x ``h`` (AV1 spec, 5.9.15), its layout drawn."""
    shift = 5 if big else 4
    sb_cols = (2 * ((w + 7) >> 3) + (1 << shift) - 1) >> shift
    sb_rows = (2 * ((h + 7) >> 3) + (1 << shift) - 1) >> shift
    max_width_sb, max_area_sb = 4096 >> (shift + 2), (4096 * 2304) >> (2 * (shift + 2))

    def log2(size: int, target: int) -> int:
        k = 0
        while size << k < target:
            k += 1
        return k

    min_cols = log2(max_width_sb, sb_cols)
    min_tiles = max(min_cols, log2(max_area_sb, sb_rows * sb_cols))
    if tiles == "uniform":
        f.put(1, 1)
        cols_log2 = min_cols
        for _ in range(int(rng.integers(0, log2(1, min(sb_cols, 64)) - min_cols + 1))):
            f.put(1, 1)
            cols_log2 += 1
        if cols_log2 < log2(1, min(sb_cols, 64)):
            f.put(0, 1)
        rows_log2 = max(min_tiles - cols_log2, 0)
        for _ in range(int(rng.integers(0, max(log2(1, min(sb_rows, 64)) - rows_log2, 0) + 1))):
            f.put(1, 1)
            rows_log2 += 1
        if rows_log2 < log2(1, min(sb_rows, 64)):
            f.put(0, 1)
    else:
        f.put(0, 1)
        start, widths = 0, []
        while start < sb_cols:
            most = min(sb_cols - start, max_width_sb)
            widths.append(int(rng.integers(1, most + 1)))
            f.ns(widths[-1] - 1, most)
            start += widths[-1]
        area = (sb_rows * sb_cols) >> (min_tiles + 1) if min_tiles else sb_rows * sb_cols
        start, rows = 0, 0
        while start < sb_rows:
            most = min(sb_rows - start, max(area // max(widths), 1))
            size = int(rng.integers(1, most + 1))
            f.ns(size - 1, most)
            start, rows = start + size, rows + 1
        cols_log2, rows_log2 = log2(1, len(widths)), log2(1, rows)
    if cols_log2 or rows_log2:
        f.put(int(rng.integers(1 << (cols_log2 + rows_log2))), cols_log2 + rows_log2)
        f.put(int(rng.integers(4)), 2)


_FIELDS = [
    {"reduced": True},
    {"reduced": True, "big": True, "superres": True, "use_superres": True},
    {"reduced": True, "render": True},
    {},
    {"timing": True},
    {"timing": True, "equal": True, "model": True, "removal": True},
    {"timing": True, "equal": True, "ticks": 0}, {"timing": True, "equal": True, "ticks": 20},
    {"timing": True, "equal": True, "ticks": (1 << 32) - 1},  # 32 zeros and more: the most
    {"timing": True, "model": True, "removal": True, "delay": True},
    {"timing": True, "model": True, "removal": False},
    {"delay": True, "frame_ids": True, "order_hint": True},
    {"screen": 0}, {"screen": 1, "integer_mv": 0}, {"screen": 1, "integer_mv": 1},
    {"screen": 1, "integer_mv": 2},
    {"override": True, "superres": True, "use_superres": True},
    {"override": True, "superres": True, "use_superres": False, "render": True},
    {"override": True, "width": 5000, "height": 3000},  # wider than a tile: 2 columns
    {"override": True, "width": 4000, "height": 3000},
    {"override": True, "width": 65, "height": 65},  # a 64-pixel superblock and one pixel
    {"override": True, "width": 129, "height": 1025, "big": True},
    {"override": True, "width": 800, "height": 640, "tiles": "sizes"},
    {"override": True, "width": 800, "height": 640, "big": True, "tiles": "sizes"},
    {"override": True, "width": 4100, "height": 700, "tiles": "sizes"},
    {"tiles": "sizes"},  # 8192 x 8192: 8 tiles at least
    {"largest": (65, 65), "tiles": "sizes"},  # the sequence's size: 2 superblocks each way
    {"override": True, "width": 64, "height": 64, "tiles": "sizes"},  # 1 superblock
    # superres at 8/16: 129 pixels are coded in 65 (2 superblocks)
    {"override": True, "width": 129, "height": 64, "superres": True, "use_superres": True,
     "coded": 7, "tiles": "sizes"},
    # 5 x 461 superblocks, one more than a tile's 2304 at most: 2 tiles at least
    {"override": True, "width": 320, "height": 29504, "tiles": "sizes"},
    {"override": True, "width": 320, "height": 29504},
    # 100 x 2 superblocks in tiles of 51 or more: a tile's height still 1 at least
    {"override": True, "width": 6400, "height": 128, "tiles": "sizes"},
    {"largest": (3000, 129), "big": True, "tiles": "sizes"},
    {"tiles": "sizes", "big": True},
]


@pytest.mark.parametrize("fields", _FIELDS)
def test_every_optional_field_before_the_quantizer_is_walked(fields):
    for seed in range(6):
        q = (0, 91, 255, 1, 128, 254)[seed]
        sequence, frame = _av1_headers(q, seed, **fields)
        assert C._av1_base_q_idx(frame, C._av1_sequence(C._Bits(sequence)), 0) == q, seed


def test_random_frame_sizes_and_tiles_are_walked():
    """Frames of random sizes, their own or the sequence's largest (with and without 128-pixel
    superblocks and superres), and their tiles, uniform or sized one by one."""
    rng = np.random.default_rng(3)
    for seed in range(200):
        size = int(rng.integers(1, 9000)), int(rng.integers(1, 9000))
        fields = {"override": seed % 4 < 2, "width": size[0], "height": size[1],
                  "largest": size[::-1] if seed % 4 else size, "big": bool(seed % 2),
                  "tiles": ("uniform", "sizes")[seed // 2 % 2],
                  "superres": seed % 3 == 0, "use_superres": seed % 6 == 0}
        sequence, frame = _av1_headers(seed % 256, seed, **fields)
        assert C._av1_base_q_idx(frame, C._av1_sequence(C._Bits(sequence)), 0) == seed % 256, \
            fields


@pytest.mark.parametrize("temporal,spatial,times", [(0, 0, 1), (0, 1, 2), (1, 1, 2),
                                                    (1, 0, 2), (2, 0, 1)])
def test_buffer_removal_times_follow_the_frames_layer(temporal, spatial, times):
    """An operating point with a decoder model has a removal time in the frame header when it
    holds the frame's layer (temporal and spatial, from the OBU's extension byte) or every
    layer (idc 0): point 0 always, point 2 (idc 0x201: temporal 0, spatial 1) at (0, 1), point
    3 (0x302: temporal 1, spatial 0 and 1) at (1, 0) and (1, 1)."""
    for seed in range(4):
        sequence, frame = _av1_headers(77, seed, timing=True, model=True, removal=True,
                                       layer=(temporal, spatial))
        s = C._av1_sequence(C._Bits(sequence))
        assert s.decoder_models == [(0, True), (0x103, False), (0x201, True), (0x302, True)]
        assert sum(present and (idc == 0 or (idc >> temporal & 1 and idc >> spatial + 8 & 1))
                   for idc, present in s.decoder_models) == times
        assert C._av1_base_q_idx(frame, s, temporal << 5 | spatial << 3 | 0b111) == 77


@pytest.mark.parametrize("change", ["existing", "inter", "intra only", "hidden"])
def test_only_a_shown_key_frame_is_read(change):
    sequence, frame = _av1_headers(77)
    s = C._av1_sequence(C._Bits(sequence))
    bits = "".join(f"{byte:08b}" for byte in frame)
    bits = {"existing": "1" + bits[1:], "inter": bits[:1] + "01" + bits[3:],
            "intra only": bits[:1] + "10" + bits[3:], "hidden": bits[:3] + "0" + bits[4:]}[change]
    data = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    assert C._av1_base_q_idx(data, s, 0) is None


def test_obus_are_split_by_their_headers():
    """Each OBU's type, extension byte and payload: sizes in one or more leb128 bytes (at most
    8), an extension byte, and a last OBU without a size that runs to the end."""
    long = bytes(range(200))
    data = (bytes([1 << 3 | 2, 3]) + b"abc"  # sequence header, size 3
            + bytes([6 << 3 | 4 | 2, 0b01001000, 200 | 128, 1]) + long  # frame, extension
            + bytes([2 << 3 | 2, 0])  # temporal delimiter, empty
            + bytes([3 << 3]) + b"rest")  # frame header without a size
    assert list(C._obus(data)) == [(1, 0, b"abc"), (6, 0b01001000, long), (2, 0, b""),
                                   (3, 0, b"rest")]
    eight = bytes([128] * 7 + [0])  # 8 bytes of size: 0
    assert list(C._obus(bytes([1 << 3 | 2]) + eight + bytes([2 << 3 | 2, 0]))) == \
        [(1, 0, b""), (2, 0, b"")]
    nine = bytes([128] * 8 + [5])  # a ninth size byte is not read: it is the next OBU's header
    assert list(C._obus(bytes([1 << 3 | 2]) + nine)) == [(1, 0, b""), (0, 0, b"")]
    # the reserved bit set: neither an extension nor a size
    assert list(C._obus(bytes([3 << 3 | 1]) + b"rest")) == [(3, 0, b"rest")]
    assert list(C._obus(bytes([1 << 3 | 2, 128]))) == []  # the size cut short
    assert list(C._obus(bytes([6 << 3 | 4]))) == [(6, 0, b"")]  # the extension cut short


# ---------------------------------------------------------- HEIF boxes written here


def _box(kind: bytes, payload: bytes, *, large: bool = False) -> bytes:
    if large:  # a 64-bit size
        return struct.pack(">I", 1) + kind + struct.pack(">Q", 16 + len(payload)) + payload
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, version: int, payload: bytes, flags: int = 0) -> bytes:
    return _box(kind, bytes([version]) + flags.to_bytes(3, "big") + payload)


def _avif_file(obus: bytes, decoy: bytes, *, grid: bool = False, idat: bool = False,
               split: bool = False, wide: bool = False, iloc_version: int = 0,
               method: int | None = None, primary: bytes = b"av01", lead: bytes = b"",
               tail: bytes = b"", before: bytes = b"", flags: int = 0,
               junk: bool = False, after: bytes = b"") -> bytes:
    """An AVIF's boxes around ``obus`` (the primary image's, or its first tile's) with
    ``decoy`` OBUs (another quality) in the items beside it: an alpha plane listed first, a
    second tile. ``wide``: 32-bit item ids everywhere, and the meta box after a 64-bit mdat.
    ``lead`` and ``tail``: bytes first and last in the meta box (after ``idat``), ``before``:
    at the top, between ``ftyp`` and ``meta`` (``after``: after it). ``flags``: of the pitm,
    iinf and iref boxes; ``junk``: a box in iinf after the entries that is not one, laid out
    as an entry naming the primary item something else."""
    n = 4 if wide else 2
    items = [(5, b"av01", decoy)]
    items += [(1, b"grid", bytes(8)), (2, b"av01", obus), (3, b"av01", decoy)] if grid else \
        [(1, primary, obus)]
    target = 2 if grid else 1
    v = 1 if wide else 0
    pitm = _full(b"pitm", v, (1).to_bytes(n, "big"), flags)
    infe = b"".join(_full(b"infe", 3 if wide else 2, i.to_bytes(n, "big") + b"\0\0" + t + b"\0")
                    for i, t, _ in items)
    if junk:
        infe += _box(b"free", bytes([3 if wide else 2, 0, 0, 0]) + target.to_bytes(n, "big")
                     + b"\0\0hvc1\0")
    iinf = _full(b"iinf", v, len(items).to_bytes(n, "big") + infe, flags)
    ref = (5).to_bytes(n, "big") + b"\0\1" + (1).to_bytes(n, "big")
    iref = _full(b"iref", v, _box(b"auxl", ref)
                 + _box(b"dimg", (1).to_bytes(n, "big") + b"\0\2" + (2).to_bytes(n, "big")
                        + (3).to_bytes(n, "big")), flags)
    # the data, laid out: the target item's second half before its first when split
    pieces, layout = [], {}
    for i, _, data in items:
        parts = [data[:10], data[10:]] if split and i == target else [data]
        layout[i] = []
        for part in (reversed(parts) if split and i == target else parts):
            layout[i].append((sum(map(len, pieces)), len(part)))
            pieces.append(part)
        if split and i == target:
            layout[i].reverse()
    blob = b"".join(pieces)

    def iloc(base: int) -> bytes:
        index = 4 if iloc_version else 0  # each extent's index, which is not read
        body = bytes([iloc_version, 0, 0, 0, 0x44, (4 if iloc_version else 0) << 4 | index])
        w = 4 if iloc_version == 2 else 2
        body += len(items).to_bytes(w, "big")
        for i, _, _ in items:
            body += i.to_bytes(w, "big")
            if iloc_version:
                m = method if method is not None and i == target else (1 if idat else 0)
                body += m.to_bytes(2, "big")
            body += b"\0\0"
            if iloc_version:
                body += (0 if idat else base).to_bytes(4, "big")
            body += len(layout[i]).to_bytes(2, "big")
            for offset, length in layout[i]:
                body += bytes(index) + (offset + (0 if idat or iloc_version else base)
                                        ).to_bytes(4, "big") + length.to_bytes(4, "big")
        return _box(b"iloc", body)

    ftyp = _box(b"ftyp", b"avif\0\0\0\0mif1miafavif")

    def meta(base: int) -> bytes:
        boxes = lead + _full(b"hdlr", 0, bytes(4) + b"pict" + bytes(13)) + pitm + iloc(base)
        boxes += iinf + (iref if grid else b"") + (_box(b"idat", blob) if idat else b"") + tail
        return _full(b"meta", 0, boxes)

    ftyp += before
    if wide:  # mdat (64-bit size) first, then meta
        mdat = _box(b"mdat", b"" if idat else blob, large=True)
        return ftyp + mdat + meta(len(ftyp) + 16)
    head = len(ftyp) + len(meta(0)) + len(after) + 8
    return ftyp + meta(head) + after + _box(b"mdat", b"" if idat else blob)


@pytest.fixture(scope="module")
def av1_items(tmp_path_factory):
    """The OBUs of a small photo as libavif writes them at q50 (read back as 51: q51 shares
    its quantizer) and at q90 (read back as 90)."""
    px = np.ascontiguousarray(read_rgb_uint8(SAMPLE / "dogs.png")[:48, :48])
    folder = tmp_path_factory.mktemp("av1")
    out = []
    for quality in (50, 90):
        (folder / f"{quality}.avif").write_bytes(_avif(px, quality))
        out.append(C._avif_image_item(folder / f"{quality}.avif"))
        assert len(out[-1]) < C._ITEM_HEAD  # the whole item
    return out


@pytest.mark.parametrize("layout", [
    {}, {"grid": True}, {"idat": True, "iloc_version": 1}, {"split": True},
    {"split": True, "iloc_version": 1}, {"wide": True, "iloc_version": 2},
    {"wide": True, "grid": True, "split": True, "iloc_version": 2},
    {"grid": True, "idat": True, "iloc_version": 1},
    {"idat": True, "iloc_version": 1, "split": True},
    # a box with a 64-bit size first in meta, an empty box before meta, a box to the end
    {"lead": _box(b"free", bytes(20), large=True)},
    {"before": _box(b"free", b"")},
    {"tail": b"\0\0\0\0free" + bytes(30)},
    {"flags": 1, "grid": True}, {"wide": True, "flags": 1, "grid": True, "iloc_version": 2},
    {"junk": True}, {"junk": True, "grid": True, "wide": True, "iloc_version": 1},
    {"after": _box(b"pitm", b"")},  # a box after meta is not one of its boxes
])
def test_the_primary_images_quantizer_is_found_among_the_boxes(layout, av1_items, tmp_path):
    obus, decoy = av1_items
    (tmp_path / "a.avif").write_bytes(_avif_file(obus, decoy, **layout))
    assert C.avif_quality_of(tmp_path / "a.avif") == 51
    (tmp_path / "b.avif").write_bytes(_avif_file(decoy, obus, **layout))
    assert C.avif_quality_of(tmp_path / "b.avif") == 90


@pytest.mark.parametrize("change", ["hvc1", "method 2", "no pitm", "no meta", "cut meta",
                                    "cut item", "no sequence", "not a file", "png"])
def test_an_avif_whose_quantizer_cannot_be_found_has_no_quality(change, av1_items, tmp_path):
    obus, decoy = av1_items
    data = {"hvc1": lambda: _avif_file(obus, decoy, primary=b"hvc1"),
            "method 2": lambda: _avif_file(obus, decoy, iloc_version=1, method=2),
            "no pitm": lambda: _avif_file(obus, decoy).replace(b"pitm", b"pit_"),
            "no meta": lambda: _avif_file(obus, decoy).replace(b"meta", b"meta"[::-1]),
            "cut meta": lambda: _avif_file(obus, decoy)[:100],
            "cut item": lambda: _avif_file(obus[:12], decoy),
            "no sequence": lambda: _avif_file(obus[obus.index(b"\x32"):], decoy),
            "not a file": lambda: None,
            "png": lambda: (SAMPLE / "dogs.png").read_bytes()}[change]()
    path = tmp_path / "x.avif"
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    assert C.avif_quality_of(path) is None


def test_a_meta_box_is_read_up_to_its_limit(av1_items, tmp_path):
    """A meta box of _META_LIMIT bytes (after its header) is read, one byte more is not."""
    obus, decoy = av1_items
    size = len(_avif_file(obus, decoy).split(b"meta", 1)[1].split(b"mdat")[0]) - 4
    for extra, quality in ((0, 51), (1, None)):
        pad = C._META_LIMIT - size - 8 + extra  # a free box's payload
        (tmp_path / "a.avif").write_bytes(_avif_file(obus, decoy, lead=_box(b"free", bytes(pad))))
        assert C.avif_quality_of(tmp_path / "a.avif") == quality, extra
    assert C._META_LIMIT == 1 << 22


@pytest.mark.parametrize("split", [False, True])
def test_an_items_first_bytes_are_read_and_no_more(split, av1_items, tmp_path):
    obus, decoy = av1_items
    big = obus + bytes(3 * C._ITEM_HEAD)
    (tmp_path / "a.avif").write_bytes(_avif_file(big, decoy, split=split))
    assert C._avif_image_item(tmp_path / "a.avif") == big[:C._ITEM_HEAD]
    assert C._ITEM_HEAD == 4096


@pytest.mark.parametrize("cut", [1, 3])
def test_a_location_box_cut_short_is_not_read(cut, av1_items, tmp_path):
    """The location box ends inside the last extent's length (the primary item's): a length
    read from fewer bytes is not a length (from 1 byte it would be 0: to the end)."""
    obus, decoy = av1_items
    data = _avif_file(obus, decoy, idat=True, iloc_version=1)  # offsets inside meta
    at, meta = data.index(b"iloc") - 4, data.index(b"meta") - 4
    size = int.from_bytes(data[at:at + 4], "big")
    shorter = (size - cut).to_bytes(4, "big") + data[at + 4:at + size - cut]
    data = data[:at] + shorter + data[at + size:]
    data = data[:meta] + (int.from_bytes(data[meta:meta + 4], "big") - cut).to_bytes(4, "big") \
        + data[meta + 4:]
    (tmp_path / "a.avif").write_bytes(data)
    assert C.avif_quality_of(tmp_path / "a.avif") is None


def _meta_edit(data: bytes, kind: bytes, edit) -> bytes:
    """``data`` with the first box ``kind`` inside meta replaced by ``edit(box)``, and meta's
    size made to match (files whose items sit in idat: no offset moves)."""
    at, meta = data.index(kind) - 4, data.index(b"meta") - 4
    size = int.from_bytes(data[at:at + 4], "big")
    new = edit(data[at:at + size])
    data = data[:at] + new + data[at + size:]
    grown = int.from_bytes(data[meta:meta + 4], "big") + len(new) - size
    return data[:meta] + grown.to_bytes(4, "big") + data[meta + 4:]


def _wide_box(box: bytes) -> bytes:
    return b"\0\0\0\1" + box[4:8] + (len(box) + 8).to_bytes(8, "big") + box[8:]


@pytest.mark.parametrize("edit,quality", [
    ((b"pitm", _wide_box), 51),  # a 64-bit size
    ((b"iinf", _wide_box), 51),
    ((b"idat", lambda box: b"\0\0\0\0" + box[4:]), 51),  # the last box: to the end of meta
    ((b"idat", lambda box: box[:3] + bytes([box[3] + 1]) + box[4:]), None),  # past the end
    ((b"pitm", lambda box: _box(b"free", b"") + box), 51),  # an empty box before it
    ((b"pitm", lambda box: b"\0\0\0\7free" + box), None),  # a box shorter than its header
])
def test_the_boxes_in_meta_are_walked_by_their_sizes(edit, quality, av1_items, tmp_path):
    obus, decoy = av1_items
    data = _meta_edit(_avif_file(obus, decoy, idat=True, iloc_version=1), *edit)
    (tmp_path / "a.avif").write_bytes(data)
    assert C.avif_quality_of(tmp_path / "a.avif") == quality


def _obu(kind: int, payload: bytes) -> bytes:
    size, leb = len(payload), b""
    while True:
        leb += bytes([size & 127 | (128 if size > 127 else 0)])
        size >>= 7
        if not size:
            return bytes([kind << 3 | 2]) + leb + payload


def test_the_first_frame_header_is_read_whichever_obu_holds_it(av1_items, tmp_path):
    """A frame header OBU (3) as well as a frame OBU (6), after a temporal delimiter (2) or
    metadata (5); a later frame's header (its tile group, 4, between) is not read."""
    sequence, frame = _av1_headers(148, 1, reduced=True)  # base_q_idx 148: q51
    _, later = _av1_headers(20, 1, reduced=True)
    for obus in (_obu(2, b"") + _obu(1, sequence) + _obu(3, frame) + _obu(4, bytes(300))
                 + _obu(6, later),
                 _obu(1, sequence) + _obu(5, b"meta") + _obu(6, frame) + _obu(3, later)):
        (tmp_path / "a.avif").write_bytes(_avif_file(obus, av1_items[1]))
        assert C.avif_quality_of(tmp_path / "a.avif") == 51
    (tmp_path / "a.avif").write_bytes(_avif_file(_obu(3, frame) + _obu(1, sequence),
                                                 av1_items[1]))
    assert C.avif_quality_of(tmp_path / "a.avif") is None  # a frame before its sequence

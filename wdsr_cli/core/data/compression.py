"""How hard an input file was compressed, read from the file itself: what ``--weights auto``
decides on (:func:`inference.upscale.choose_weights`).

* **JPEG**: the IJG quality its luminance quantization table matches (:func:`jpeg_quality_of`).
* **WebP**: lossy (VP8) or lossless (VP8L), and a lossy one's quality from the quantizer in
  its VP8 frame header (:func:`webp_quality_of`).
* **HEIC** and **AVIF**: lossy, by their ``ftyp`` brands (:func:`lossy_format_of`); an
  AVIF's quality from the ``base_q_idx`` of its AV1 key frame (:func:`avif_quality_of`). A
  HEIC's (HEVC's) quantizer is not read.

Headers only: nothing is decoded, so this costs a few hundred bytes of reading per file (an
AVIF: its ``meta`` box and the first 4 KB of its image). Each
function returns None for a file it does not recognise (reading the image says why).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["avif_quality_of", "jpeg_quality_of", "lossy_format_of", "webp_quality_of"]

# ------------------------------------------------------------------------------------ JPEG

# The IJG (libjpeg) standard luminance quantization table, natural order: what quality Q
# scales (Q < 50: by 5000 / Q percent, else by 200 - 2 Q percent).
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.int64)


def _ijg_luma_sum(quality: int) -> int:
    pct = 5000 // quality if quality < 50 else 200 - 2 * quality
    return int(np.clip((_IJG_LUMA * pct + 50) // 100, 1, 255).sum())


_IJG_SUMS = {q: _ijg_luma_sum(q) for q in range(1, 101)}


def jpeg_quality_of(path: Any) -> int | None:
    """The IJG quality (1..100) a JPEG file's luminance table matches best, or None when the
    file is not a JPEG (or has no tables). Compares table sums, so the table's storage order
    does not matter; a camera's own tables get the IJG quality of the same strength. A camera
    JPEG that carries a preview (Pillow's MPO) is a JPEG."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            if im.format not in ("JPEG", "MPO"):
                return None
            tables = getattr(im, "quantization", None) or {}
    except (OSError, ValueError, SyntaxError):
        return None
    luma = tables.get(0)
    if not luma:
        return None
    return _nearest_quality(_IJG_SUMS, int(sum(luma)))


def _nearest_quality(table: dict[int, int], value: int) -> int:
    """The quality whose ``table`` value (quality -> table sum or quantizer) is nearest
    ``value``; a tie goes to the higher quality, the file's own quality when two share it."""
    return min(table, key=lambda q: (abs(table[q] - value), -q))


# ------------------------------------------------------------------------------ HEIC, AVIF

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def lossy_format_of(path: Any) -> str | None:
    """``"WebP"``, ``"HEIC"`` or ``"AVIF"`` when the file is a lossy image of that format,
    else None (a JPEG too: :func:`jpeg_quality_of` says more of it). A WebP is lossy when its
    image chunk is ``VP8 `` (``VP8L`` is lossless); HEIC (HEIF) and AVIF, the codecs of phones
    and of the web, are taken as lossy (their lossless modes are rare), told apart by the
    brands of their ``ftyp`` box (AVIF where any brand says so)."""
    try:
        if _webp_image_chunk(path) is not None:
            return "WebP"
        with open(path, "rb") as f:
            head = f.read(12)
            if head[4:8] != b"ftyp":
                return None
            box = int.from_bytes(head[:4], "big")
            brands = head[8:12] + f.read(max(0, min(box, 256) - 12))[4:]  # minor version skipped
    except OSError:
        return None
    names = {brands[i:i + 4] for i in range(0, len(brands) - 3, 4)}
    return "AVIF" if names & _AVIF_BRANDS else "HEIC" if names & _HEIF_BRANDS else None


# ------------------------------------------------------------------------------------ WebP


def _webp_image_chunk(path: Any) -> bytes | None:
    """The start of a lossy WebP's VP8 chunk (its frame header: 64 bytes hold it), or None when
    the file is not a lossy WebP. The chunks before it (VP8X, ICCP, ANIM, ALPH) are skipped; a
    lossless WebP's VP8L chunk is skipped too, and the file ends without a VP8 one."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
            return None
        while len(chunk := f.read(8)) == 8:
            if chunk[:4] == b"VP8 ":
                return f.read(64)
            length = int.from_bytes(chunk[4:], "little")
            f.seek(length + (length & 1), os.SEEK_CUR)  # chunks are padded to even sizes
    return None


class _Bits:
    """The bits of a VP8 or AV1 frame header, most significant first.

    AV1 writes its sequence and frame headers as plain bits. VP8 codes its header with a
    boolean arithmetic coder (RFC 6386, section 7), every field up to the quantizers at
    probability 1/2. At that probability the coder's range, once the first bit is a 0, stays at
    128 and each later bit moves its window by one: the coded bytes are the fields' bits
    themselves. The first field is the colour space, whose only defined value is 0; a header
    that says otherwise is not read (:func:`_vp8_quantizer`)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def number(self, bits: int) -> int:
        value = 0
        for _ in range(bits):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise EOFError("VP8 header cut short")
            value = (value << 1) | (self.data[byte] >> (7 - (self.pos & 7))) & 1
            self.pos += 1
        return value

    def optional(self, bits: int, signed: bool = True) -> None:
        """A flag, and if it is set a value of ``bits`` bits (and a sign): skipped."""
        if self.number(1):
            self.number(bits + signed)


def _vp8_quantizer(frame: bytes) -> int | None:
    """The luma AC quantizer index (0..127) of a VP8 key frame: the first field of its
    quantizer section, after the colour, segmentation, loop-filter and partition fields (RFC
    6386, sections 9.2-9.6 and 19.2). None when the frame is not a key frame, its colour space
    is not 0, or it is cut short."""
    if frame[3:6] != b"\x9d\x01\x2a" or frame[0] & 1:
        return None
    d = _Bits(frame[10:])
    try:
        if d.number(1):  # colour space (see _Bits)
            return None
        d.number(1)  # clamping type
        if d.number(1):  # segmentation enabled
            update_map, update_data = d.number(1), d.number(1)
            if update_data:
                d.number(1)  # absolute values or deltas
                for _ in range(4):
                    d.optional(7)  # each segment's quantizer
                for _ in range(4):
                    d.optional(6)  # and its loop-filter level
            if update_map:
                for _ in range(3):
                    d.optional(8, signed=False)  # the segment tree's probabilities
        d.number(1 + 6 + 3)  # filter type, level, sharpness
        if d.number(1) and d.number(1):  # loop-filter deltas enabled, and updated
            for _ in range(8):
                d.optional(6)
        d.number(2)  # log2 of the number of DCT partitions
        return d.number(7)
    except EOFError:
        return None


# The luma quantizer index libwebp writes for a photo at each quality 0..100 (its default
# sns_strength 50 and 4 segments; measured with Pillow's libwebp 1.6 on the bundled sample
# photos, which agree to within one index; tests/test_compression.py checks it against the
# libwebp installed). The index is the segment with the most texture's: the others' are lower.
_WEBP_QUANTIZER = (
    127, 115, 111, 107, 104, 102, 100, 98, 96, 94, 92, 90, 89, 87, 86, 85, 83, 82, 81, 80,
    78, 77, 76, 75, 74, 73, 72, 71, 70, 69, 68, 67, 66, 65, 64, 64, 63, 62, 61, 60,
    59, 59, 58, 57, 56, 55, 55, 54, 53, 52, 52, 51, 50, 50, 49, 48, 48, 47, 46, 46,
    45, 44, 44, 43, 42, 42, 41, 40, 40, 39, 39, 38, 37, 37, 36, 36, 34, 32, 30, 29,
    27, 26, 24, 23, 21, 20, 18, 17, 15, 14, 12, 11, 10, 8, 7, 6, 5, 3, 2, 1, 0)


def webp_quality_of(path: Any) -> int | None:
    """The libwebp quality (0..100) whose quantizer a lossy WebP's matches best, or None when
    the file is not a lossy WebP (or its header cannot be read). Ties go to the higher
    quality, as for JPEG."""
    try:
        frame = _webp_image_chunk(path)
    except OSError:
        return None
    index = None if frame is None else _vp8_quantizer(frame)
    if index is None:
        return None
    return _nearest_quality(dict(enumerate(_WEBP_QUANTIZER)), index)


# ------------------------------------------------------------------------------------ AVIF

_META_LIMIT = 1 << 22  # the bytes of a meta box read at most (an ICC profile may sit in it)
_ITEM_HEAD = 4096  # the bytes of an image item read: its sequence and frame headers fit


class _Bytes:
    """Big-endian fields of an ISOBMFF box, read in order."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int(self, size: int) -> int:
        if self.pos + size > len(self.data):
            raise EOFError("box cut short")
        self.pos += size
        return int.from_bytes(self.data[self.pos - size:self.pos], "big")

    def full_box(self) -> int:
        """Read a full box's version and flags; return the bytes of its item ids and counts
        (pitm, iinf, iref: 2 in version 0, else 4)."""
        return 2 if self.int(4) >> 24 == 0 else 4


def _boxes(data: bytes, start: int = 0) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each ISOBMFF box in ``data[start:]``, up to one that runs past the
    end."""
    while start + 8 <= len(data):
        size, head = int.from_bytes(data[start:start + 4], "big"), 8
        kind = data[start + 4:start + 8]
        if size == 1:  # a 64-bit size follows
            size, head = int.from_bytes(data[start + 8:start + 16], "big"), 16
        elif size == 0:  # to the end
            size = len(data) - start
        if size < head or start + size > len(data):
            return
        yield kind, data[start + head:start + size]
        start += size


def _meta_box(f: Any) -> bytes | None:
    """The payload of a HEIF file's top-level ``meta`` box, after its version and flags; the
    boxes before it (``ftyp``, perhaps ``mdat``) are skipped, not read."""
    while len(head := f.read(8)) == 8:
        size, kind = int.from_bytes(head[:4], "big"), head[4:]
        if size == 1:
            size = int.from_bytes(f.read(8), "big") - 8
        if size < 8:  # 0 (to the end) is never a meta box's; below 8 is not a box
            return None
        if kind == b"meta":
            return f.read(size - 8)[4:] if size - 8 <= _META_LIMIT else None
        f.seek(size - 8, os.SEEK_CUR)
    return None


def _avif_image_item(path: Any) -> bytes | None:
    """The first bytes of an AVIF file's primary image item (of its first tile when the image
    is a grid of tiles): AV1 OBUs. None when the file has no such item (or is not HEIF).

    HEIF (ISO/IEC 23008-12) names the primary item (``pitm``), gives each item's type
    (``iinf``), a grid's tiles (``iref`` ``dimg``) and where each item's bytes are
    (``iloc``: in the file, or in the ``idat`` box)."""
    with open(path, "rb") as f:
        if (meta := _meta_box(f)) is None:
            return None
        boxes = dict(_boxes(meta))
        try:
            item = _primary_av1_item(boxes)
            extents = [] if item is None else _item_extents(boxes[b"iloc"], item)
            data = bytearray()
            for in_idat, offset, length in extents:
                want = min(length or _ITEM_HEAD, _ITEM_HEAD - len(data))
                if in_idat:
                    data += boxes[b"idat"][offset:offset + want]
                else:
                    f.seek(offset)
                    data += f.read(want)
        except (EOFError, KeyError):  # a box cut short, or missing
            return None
    return bytes(data) or None


def _primary_av1_item(boxes: dict[bytes, bytes]) -> int | None:
    """The id of the AV1 item that holds the primary image: the primary item, or a grid's
    first tile."""
    pitm = _Bytes(boxes[b"pitm"])
    item = pitm.int(pitm.full_box())
    iinf = _Bytes(boxes[b"iinf"])
    iinf.int(iinf.full_box())  # entry count
    types = {}
    for kind, infe in _boxes(iinf.data, iinf.pos):
        entry = _Bytes(infe)
        version = entry.int(4) >> 24
        if kind == b"infe" and version >= 2:
            item_id = entry.int(2 if version == 2 else 4)
            entry.int(2)  # protection index
            types[item_id] = entry.data[entry.pos:entry.pos + 4]
    if types.get(item) == b"grid":
        iref = _Bytes(boxes[b"iref"])
        wide = iref.full_box()
        tiles = [_Bytes(ref) for kind, ref in _boxes(iref.data, iref.pos) if kind == b"dimg"]
        tile = next((t for t in tiles if t.int(wide) == item), None)
        if tile is None or not tile.int(2):
            return None
        item = tile.int(wide)
    return item if types.get(item) == b"av01" else None


def _item_extents(iloc: bytes, item: int) -> list[tuple[bool, int, int]]:
    """(in the ``idat`` box?, offset, length) of each extent of ``item`` (ISO/IEC 14496-12,
    ItemLocationBox); a length of 0 runs to the end of the file."""
    box = _Bytes(iloc)
    version = box.int(4) >> 24
    sizes = box.int(2)
    offset_size, length_size, base_size = sizes >> 12, sizes >> 8 & 15, sizes >> 4 & 15
    index_size = sizes & 15 if version in (1, 2) else 0
    wide = 4 if version == 2 else 2
    for _ in range(box.int(wide)):
        item_id = box.int(wide)
        method = box.int(2) & 15 if version in (1, 2) else 0
        box.int(2)  # data reference index
        base = box.int(base_size)
        extents = []
        for _ in range(box.int(2)):
            box.int(index_size)
            extents.append((method == 1, base + box.int(offset_size), box.int(length_size)))
        if item_id == item:
            return extents if method in (0, 1) else []
    return []


def _obus(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, extension byte or 0, payload) of each AV1 OBU in ``data`` (AV1 spec, 5.3); one
    without a size runs to the end."""
    pos = 0
    while pos < len(data):
        header, pos = data[pos], pos + 1
        extension = 0
        if header & 4:
            extension, pos = data[pos] if pos < len(data) else 0, pos + 1
        size = len(data) - pos
        if header & 2:  # leb128
            size = 0
            for k in range(8):
                if pos >= len(data):
                    return
                size |= (data[pos] & 127) << (7 * k)
                pos += 1
                if data[pos - 1] < 128:
                    break
        yield header >> 3 & 15, extension, data[pos:pos + size]
        pos += size


@dataclass
class _Av1Sequence:
    """What an AV1 frame header's fields up to ``base_q_idx`` depend on, from the sequence
    header (AV1 spec, 5.5)."""

    reduced: bool  # reduced_still_picture_header
    presentation_bits: int  # of a frame's presentation time (0: none in its header)
    removal_bits: int  # of a buffer removal time (0: no decoder model)
    decoder_models: list[tuple[int, bool]]  # per operating point: (idc, decoder model)
    width_bits: int
    height_bits: int
    max_width: int
    max_height: int
    frame_id_bits: int  # 0: frame ids not present
    big_superblock: bool
    screen_content: int  # seq_force_screen_content_tools (2: chosen per frame)
    integer_mv: int  # seq_force_integer_mv (2: chosen per frame)
    order_hint_bits: int
    superres: bool


def _skip_uvlc(d: _Bits) -> None:
    """Skip an unsigned value of variable length (AV1 spec, 4.10.3): leading zeros, a one, as
    many value bits as zeros (none after 32 zeros or more)."""
    zeros = 0
    while not d.number(1):
        zeros += 1
    if zeros < 32:
        d.number(zeros)


def _av1_sequence(d: _Bits) -> _Av1Sequence:
    """The fields of a sequence header OBU that its frame headers depend on."""
    d.number(3 + 1)  # profile, still picture
    reduced = bool(d.number(1))
    presentation = removal = 0
    models = []
    if reduced:
        d.number(5)  # level
    else:
        timing = d.number(1)
        if timing:
            d.number(32 + 32)
            equal = d.number(1)  # equal picture intervals: no presentation times
            if equal:
                _skip_uvlc(d)
        model = timing and d.number(1)  # a decoder model (only with timing info)
        if model:
            delay = d.number(5) + 1
            d.number(32)
            removal, presentation = d.number(5) + 1, d.number(5) + 1
            if equal:
                presentation = 0
        initial_delay = d.number(1)
        for _ in range(d.number(5) + 1):  # operating points
            idc, level = d.number(12), d.number(5)
            if level > 7:
                d.number(1)  # tier
            present = bool(model and d.number(1))
            if present:
                d.number(2 * delay + 1)
            if initial_delay and d.number(1):
                d.number(4)
            models.append((idc, present))
    width_bits, height_bits = d.number(4) + 1, d.number(4) + 1
    max_width, max_height = d.number(width_bits) + 1, d.number(height_bits) + 1
    frame_id_bits = d.number(4) + d.number(3) + 3 if not reduced and d.number(1) else 0
    big_superblock = bool(d.number(1))
    d.number(2)  # filter intra, intra edge filter
    screen_content, integer_mv, order_hint_bits = 2, 2, 0
    if not reduced:
        d.number(4)  # inter-intra, masked compound, warped motion, dual filter
        order_hint = d.number(1)
        if order_hint:
            d.number(2)  # joint compound, reference frame motion vectors
        screen_content = 2 if d.number(1) else d.number(1)
        if screen_content:
            integer_mv = 2 if d.number(1) else d.number(1)
        if order_hint:
            order_hint_bits = d.number(3) + 1
    return _Av1Sequence(reduced, presentation, removal, models, width_bits, height_bits,
                        max_width, max_height, frame_id_bits, big_superblock, screen_content,
                        integer_mv, order_hint_bits, superres=bool(d.number(1)))


def _tile_log2(size: int, target: int) -> int:
    k = 0
    while size << k < target:
        k += 1
    return k


def _skip_tile_info(d: _Bits, s: _Av1Sequence, width: int, height: int) -> None:
    """The tile_info() fields of a frame ``width`` x ``height`` (AV1 spec, 5.9.15)."""
    shift = 5 if s.big_superblock else 4
    mi_cols, mi_rows = 2 * ((width + 7) >> 3), 2 * ((height + 7) >> 3)
    sb_cols, sb_rows = (mi_cols + (1 << shift) - 1) >> shift, (mi_rows + (1 << shift) - 1) >> shift
    max_width_sb, max_area_sb = 4096 >> (shift + 2), (4096 * 2304) >> (2 * (shift + 2))
    min_log2_cols = _tile_log2(max_width_sb, sb_cols)
    min_log2_tiles = max(min_log2_cols, _tile_log2(max_area_sb, sb_rows * sb_cols))
    if d.number(1):  # uniform spacing
        cols_log2 = min_log2_cols
        while cols_log2 < _tile_log2(1, min(sb_cols, 64)) and d.number(1):
            cols_log2 += 1
        rows_log2 = max(min_log2_tiles - cols_log2, 0)
        while rows_log2 < _tile_log2(1, min(sb_rows, 64)) and d.number(1):
            rows_log2 += 1
    else:
        widths: list[int] = []
        while sum(widths) < sb_cols:
            widths.append(_ns(d, min(sb_cols - sum(widths), max_width_sb)) + 1)
        area = (sb_rows * sb_cols) >> (min_log2_tiles + 1) if min_log2_tiles else sb_rows * sb_cols
        start, rows = 0, 0
        while start < sb_rows:
            start += _ns(d, min(sb_rows - start, max(area // max(widths), 1))) + 1
            rows += 1
        cols_log2, rows_log2 = _tile_log2(1, len(widths)), _tile_log2(1, rows)
    if cols_log2 or rows_log2:
        d.number(cols_log2 + rows_log2 + 2)  # context_update_tile_id, tile_size_bytes_minus_1


def _ns(d: _Bits, n: int) -> int:
    """A value below ``n`` in the fewest bits (AV1 spec, 4.10.7)."""
    w = n.bit_length()
    m = (1 << w) - n
    v = d.number(w - 1)
    return v if v < m else (v << 1) - m + d.number(1)


def _av1_base_q_idx(frame: bytes, s: _Av1Sequence, extension: int) -> int | None:
    """``base_q_idx`` (0..255) of a shown key frame's header, after walking the fields before
    it (AV1 spec, 5.9.2 to 5.9.12); None for any other frame. ``extension``: the OBU's
    extension byte (its temporal and spatial layer)."""
    d = _Bits(frame)
    if not s.reduced:
        if d.number(1) or d.number(2) or not d.number(1):  # shown existing, not key, not shown
            return None
        d.number(s.presentation_bits)  # temporal point info
    cdf_fixed = d.number(1)  # disable_cdf_update
    screen_content = d.number(1) if s.screen_content == 2 else s.screen_content
    if screen_content and s.integer_mv == 2:
        d.number(1)  # force_integer_mv
    d.number(s.frame_id_bits)  # current_frame_id
    size_override = not s.reduced and d.number(1)
    d.number(s.order_hint_bits)
    if s.removal_bits and d.number(1):  # buffer removal times
        temporal, spatial = extension >> 5, extension >> 3 & 3
        for idc, present in s.decoder_models:
            if present and (idc == 0 or (idc >> temporal & 1 and idc >> (spatial + 8) & 1)):
                d.number(s.removal_bits)
    width, height = s.max_width, s.max_height
    if size_override:
        width, height = d.number(s.width_bits) + 1, d.number(s.height_bits) + 1
    upscaled = width
    if s.superres and d.number(1):
        denom = d.number(3) + 9
        width = (upscaled * 8 + denom // 2) // denom
    if d.number(1):  # render size
        d.number(32)
    if screen_content and upscaled == width:
        d.number(1)  # allow_intrabc
    if not (s.reduced or cdf_fixed):
        d.number(1)  # disable_frame_end_update_cdf
    _skip_tile_info(d, s, width, height)
    return d.number(8)


# The base_q_idx libavif (1.4, libaom) gives a still image at each quality 0..100 (measured
# through Pillow; the same for every photo, chroma subsampling and speed tried, as it is
# libavif's own mapping; tests/test_compression.py checks it against the libavif installed).
# An image sequence is quantized otherwise: ((100 - q) * 63 + 50) // 100 steps of libaom's
# quantizer table (tests/test_compression.py).
_AVIF_Q_INDEX = (
    255, 255, 255, 249, 249, 249, 244, 244, 240, 240, 236, 236, 232, 232, 228, 228, 224, 224,
    220, 220, 216, 216, 212, 212, 208, 208, 204, 204, 200, 200, 196, 196, 192, 192, 188, 184,
    184, 180, 180, 176, 172, 172, 168, 168, 164, 160, 160, 156, 156, 152, 148, 148, 144, 144,
    140, 136, 132, 132, 128, 124, 120, 120, 116, 112, 108, 108, 104, 100, 96, 96, 92, 88, 84,
    84, 80, 76, 72, 72, 68, 64, 60, 60, 56, 52, 48, 48, 44, 40, 36, 36, 32, 28, 24, 24, 20,
    16, 12, 12, 8, 4, 0)


def avif_quality_of(path: Any) -> int | None:
    """The libavif quality (0..100) whose quantizer an AVIF's primary image has (its AV1 key
    frame's ``base_q_idx``), nearest, ties to the higher quality; None when the file is not
    an AVIF or its headers cannot be read."""
    try:
        item = _avif_image_item(path)
    except OSError:
        return None
    if item is None:
        return None
    sequence, index = None, None
    try:
        for kind, extension, payload in _obus(item):
            if kind == 1:  # sequence header
                sequence = _av1_sequence(_Bits(payload))
            elif kind in (3, 6) and sequence is not None:  # frame header, frame
                index = _av1_base_q_idx(payload, sequence, extension)
                break
    except EOFError:
        return None
    if index is None:
        return None
    return _nearest_quality(dict(enumerate(_AVIF_Q_INDEX)), index)

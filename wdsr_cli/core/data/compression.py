"""How hard an input file was compressed, read from the file itself: what ``--weights auto``
decides on (:func:`inference.upscale.choose_weights`).

* **JPEG**: the IJG quality its luminance quantization table matches (:func:`jpeg_quality_of`).
* **WebP**: lossy (VP8) or lossless (VP8L), and a lossy one's quality from the quantizer in
  its VP8 frame header (:func:`webp_quality_of`).
* **HEIC** and **AVIF**: lossy, by their ``ftyp`` brands (:func:`lossy_format_of`); their
  quantizers sit deep in HEVC and AV1 headers and are not read.

Headers only: nothing is decoded, so this costs a few hundred bytes of reading per file. Each
function returns None for a file it does not recognise (reading the image says why).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["jpeg_quality_of", "lossy_format_of", "webp_quality_of"]

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
    total = int(sum(luma))
    return min(_IJG_SUMS, key=lambda q: (abs(_IJG_SUMS[q] - total), -q))


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
    """The bits of a VP8 frame header, most significant first.

    VP8 codes its header with a boolean arithmetic coder (RFC 6386, section 7), every field up
    to the quantizers at probability 1/2. At that probability the coder's range, once the
    first bit is a 0, stays at 128 and each later bit moves its window by one: the coded bytes
    are the fields' bits themselves. The first field is the colour space, whose only defined
    value is 0; a header that says otherwise is not read (:func:`_vp8_quantizer`)."""

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
    return min(range(101), key=lambda q: (abs(_WEBP_QUANTIZER[q] - index), -q))

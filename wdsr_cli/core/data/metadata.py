"""What an image file says about its pixels besides the pixels: its ICC colour profile and
its EXIF block, carried from an input to the image written from it.

Why: phones and cameras tag their photos. An iPhone JPEG is in Display P3 and says so in its
ICC profile; an output without the profile is shown as sRGB, visibly duller. The EXIF block
holds the capture date, the camera and the exposure, which photo libraries sort by.

* **ICC profile**: kept when it describes the pixels that are written: an RGB profile for
  colour pixels, a gray one for gray pixels. A CMYK file's profile is dropped, since its pixels
  become RGB on reading (:func:`icc_fits`).
* **EXIF**: kept as the file's own bytes (a TIFF block, the JPEG ``Exif\\0\\0`` header
  removed), with three values rewritten for the image written (:func:`exif_for_output`):
  Orientation becomes 1 (the reader already turned the pixels upright; keeping the old value
  would make viewers turn them again), the pixel dimensions become the output's, and the
  thumbnail (the second IFD) is unlinked, since it shows the input in its stored orientation.
  A block this module cannot walk is dropped rather than written half-understood.

Only the TIFF structure (byte order, IFD entries, the Exif sub-IFD pointer) is read, following
the public EXIF 2.3 / TIFF 6.0 layout.
"""

from __future__ import annotations

import struct

__all__ = ["EXIF_HEADER", "exif_for_output", "icc_fits", "split_exif"]

#: What precedes the TIFF block in a JPEG APP1 segment (and in what Pillow reports).
EXIF_HEADER = b"Exif\x00\x00"

_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769  # pointer to the Exif sub-IFD
_PIXEL_X = 0xA002  # PixelXDimension (in the Exif sub-IFD)
_PIXEL_Y = 0xA003  # PixelYDimension
_SHORT, _LONG = 3, 4


def split_exif(raw: bytes | None) -> bytes | None:
    """The TIFF block of an EXIF payload as Pillow reports it (with or without the JPEG
    header), or None when there is none."""
    if not raw:
        return None
    block = raw[len(EXIF_HEADER):] if raw.startswith(EXIF_HEADER) else raw
    return bytes(block) if block[:2] in (b"II", b"MM") else None


def icc_fits(profile: bytes | None, gray: bool) -> bool:
    """True when ``profile`` is an ICC profile (``acsp`` at bytes 36-39 of its header) for
    gray (``gray``) or RGB pixels (the colour space at bytes 16-19: ``GRAY`` or ``RGB``)."""
    return bool(profile) and profile[36:40] == b"acsp" and \
        profile[16:20] == (b"GRAY" if gray else b"RGB ")


def _entries(block: bytes, order: str, offset: int) -> list[tuple[int, int, int, int]]:
    """(position, tag, type, count) of each entry of the IFD at ``offset`` (struct.error when
    it runs past the block's end)."""
    (n,) = struct.unpack_from(order + "H", block, offset)
    out = []
    for i in range(n):
        pos = offset + 2 + 12 * i
        tag, typ, count = struct.unpack_from(order + "HHI", block, pos)
        out.append((pos, tag, typ, count))
    return out


def exif_for_output(block: bytes | None, width: int, height: int) -> bytes | None:
    """``block`` (a TIFF block from :func:`split_exif`) rewritten for an upright image of
    ``width`` x ``height`` pixels (see the module docstring), or None when there is no block
    or it cannot be walked."""
    if not block:
        return None
    b = bytearray(block)
    order = {b"II": "<", b"MM": ">"}.get(bytes(b[:2]))
    try:
        if order is None or struct.unpack_from(order + "H", b, 2)[0] != 42:
            return None
        (ifd0,) = struct.unpack_from(order + "I", b, 4)
        entries = _entries(b, order, ifd0)
        exif_ifd = None
        for pos, tag, typ, count in entries:
            if tag == _ORIENTATION and typ == _SHORT and count == 1:
                struct.pack_into(order + "H", b, pos + 8, 1)
            elif tag == _EXIF_IFD and count == 1:
                (exif_ifd,) = struct.unpack_from(order + "I", b, pos + 8)
        # no next IFD: the thumbnail's IFD is no longer reachable
        struct.pack_into(order + "I", b, ifd0 + 2 + 12 * len(entries), 0)
        if exif_ifd is not None:
            for pos, tag, typ, count in _entries(b, order, exif_ifd):
                if tag in (_PIXEL_X, _PIXEL_Y) and typ in (_SHORT, _LONG) and count == 1:
                    # written as LONG: both fit the 4-byte value field, and SHORT stops at 65535
                    struct.pack_into(order + "HII", b, pos + 2, _LONG, 1,
                                     width if tag == _PIXEL_X else height)
    except struct.error:
        return None
    return bytes(b)

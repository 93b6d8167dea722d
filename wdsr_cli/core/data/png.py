"""A small PNG codec for what Pillow cannot do: 16-bit colour (RGB, RGBA, gray+alpha).

Pillow reads those as 8-bit (it keeps only the high byte) and cannot write them, so
:mod:`.images` decodes and encodes them here: zlib + numpy, following the public PNG
specification (all five row filters, Adam7 interlacing, CRCs). :func:`is_complete` is the one
check for a PNG cut short (a truncated download), used by the reader and the header probe.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def is_complete(path: str | os.PathLike) -> bool:
    """False when the file ends before its IEND chunk. Fast path: the last 12 bytes are the
    IEND chunk; otherwise walk the chunk headers (trailing bytes after IEND are allowed)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size >= 20:
            f.seek(size - 12)
            if f.read(12) == _IEND:
                return True
        pos = 8
        while True:
            f.seek(pos)
            head = f.read(8)
            if len(head) < 8:
                return False
            length, ctype = struct.unpack(">I4s", head)
            pos += 12 + length
            if pos > size:
                return False
            if ctype == b"IEND":
                return True


class PngError(Exception):
    """Bad or cut-short PNG data (``truncated``: the file ends too early)."""

    def __init__(self, message: str, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def chunks(data: bytes):
    """(type, body) of each chunk up to IEND; CRCs checked (a bad ancillary chunk is skipped)."""
    if not data.startswith(SIGNATURE):
        raise PngError("not a PNG file")
    pos = 8
    n = len(data)
    while True:
        if pos + 8 > n:
            raise PngError("missing IEND", truncated=True)
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > n:
            raise PngError(f"chunk {ctype!r} cut short", truncated=True)
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : end])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            # ancillary chunks (lower-case first letter) with a bad CRC are skipped
            if ctype[0] & 0x20:
                pos = end
                continue
            raise PngError(f"CRC error in chunk {ctype.decode('latin-1')}")
        yield ctype, body
        if ctype == b"IEND":
            return
        pos = end


def decode(data: bytes) -> tuple[np.ndarray, dict]:
    """Decode an 8- or 16-bit gray/RGB/gray+alpha/RGBA PNG to HxWxC (uint8/uint16)."""
    info: dict = {}
    idat = []
    header = None
    for ctype, body in chunks(data):
        if ctype == b"IHDR":
            if len(body) != 13:
                raise PngError("bad IHDR")
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"tRNS":
            info["trns"] = body
        elif ctype == b"eXIf":
            info["exif"] = body
        elif ctype == b"iCCP":
            profile = _icc_from_iccp(body)
            if profile is not None:
                info["icc_profile"] = profile
    if header is None:
        raise PngError("no IHDR chunk")
    w, h, depth, ctype_, comp, filt, interlace = header
    if depth not in (8, 16) or ctype_ not in _CHANNELS or comp or filt or interlace > 1:
        raise PngError(f"unsupported PNG layout (depth {depth}, colour type {ctype_})")
    if w == 0 or h == 0:
        raise PngError("image has no pixels")
    info.update(width=w, height=h, bit_depth=depth, color_type=ctype_, interlace=interlace)
    channels = _CHANNELS[ctype_]
    bpp = channels * depth // 8
    d = zlib.decompressobj()
    try:
        raw = d.decompress(b"".join(idat))
    except zlib.error as e:
        raise PngError(f"bad compressed data: {e}") from None
    if not d.eof:
        raise PngError("compressed data ends early", truncated=True)

    passes = [(0, 0, 1, 1)] if interlace == 0 else list(ADAM7)
    need = 0
    dims = []
    for x0, y0, dx, dy in passes:
        pw = (w - x0 + dx - 1) // dx if w > x0 else 0
        ph = (h - y0 + dy - 1) // dy if h > y0 else 0
        dims.append((pw, ph))
        if pw and ph:
            need += ph * (pw * bpp + 1)
    if len(raw) < need:
        raise PngError("image data ends early", truncated=True)
    buf = np.frombuffer(raw, dtype=np.uint8)
    dtype = np.dtype(">u2") if depth == 16 else np.dtype(np.uint8)
    out = np.empty((h, w, channels), dtype=np.uint16 if depth == 16 else np.uint8)
    off = 0
    for (x0, y0, dx, dy), (pw, ph) in zip(passes, dims, strict=True):
        if not (pw and ph):
            continue
        size = ph * (pw * bpp + 1)
        rows = _unfilter(buf[off : off + size].reshape(ph, pw * bpp + 1), pw, bpp)
        off += size
        px = rows.reshape(ph, -1).view(dtype).reshape(ph, pw, channels)
        out[y0::dy, x0::dx] = px
    return out, info


def _unfilter(raw: np.ndarray, w: int, bpp: int) -> np.ndarray:
    """Undo PNG row filters. ``raw`` is rows x (1 + w*bpp); returns rows x w x bpp uint8."""
    h = raw.shape[0]
    ft = raw[:, 0]
    f = raw[:, 1:].reshape(h, w, bpp)
    if ft.size and int(ft.max()) > 4:
        raise PngError(f"bad filter type {int(ft.max())}")
    if not np.any(ft >= 3):
        # None / Sub / Up only: one vectorised step per row.
        out = np.empty((h, w, bpp), dtype=np.uint8)
        prev = np.zeros((w, bpp), dtype=np.uint8)
        for y in range(h):
            t = ft[y]
            if t == 0:
                cur = f[y]
            elif t == 1:
                cur = np.cumsum(f[y], axis=0, dtype=np.uint8)
            else:
                cur = f[y] + prev
            out[y] = cur
            prev = out[y]
        return out
    # Average / Paeth make each pixel depend on its left, upper and upper-left
    # neighbours: sweep anti-diagonals (all pixels on one are independent).
    r = np.zeros((h + 1, w + 1, bpp), dtype=np.uint8)
    fti = ft.astype(np.int8)
    ys_all = np.arange(h)
    for dg in range(h + w - 1):
        y0 = max(0, dg - w + 1)
        y1 = min(h - 1, dg)
        ys = ys_all[y0 : y1 + 1]
        xs = dg - ys
        a = r[ys + 1, xs].astype(np.int16)
        b = r[ys, xs + 1].astype(np.int16)
        c = r[ys, xs].astype(np.int16)
        t = fti[ys][:, None]
        pa = np.abs(b - c)
        pb = np.abs(a - c)
        pc = np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.where(
            t == 4,
            paeth,
            np.where(t == 3, (a + b) >> 1, np.where(t == 2, b, np.where(t == 1, a, 0))),
        )
        r[ys + 1, xs + 1] = (f[ys, xs] + pred).astype(np.uint8)
    return r[1:, 1:]


def _filter_rows(x: np.ndarray, bpp: int) -> bytes:
    """Filter rows (h x stride uint8) choosing per row the filter with the smallest
    sum of absolute signed differences (the usual heuristic); returns filtered bytes."""
    h, stride = x.shape
    out = bytearray()
    block = max(1, (8 << 20) // max(stride, 1))
    prev_row = np.zeros((1, stride), dtype=np.uint8)
    for s in range(0, h, block):
        cur = x[s : s + block]
        up = np.concatenate([prev_row, cur[:-1]], axis=0)
        left = np.zeros_like(cur)
        left[:, bpp:] = cur[:, :-bpp]
        upleft = np.zeros_like(cur)
        upleft[:, bpp:] = up[:, :-bpp]
        ai, bi, ci = (v.astype(np.int16) for v in (left, up, upleft))
        pa = np.abs(bi - ci)
        pb = np.abs(ai - ci)
        pc = np.abs(ai + bi - 2 * ci)
        paeth = np.where((pa <= pb) & (pa <= pc), ai, np.where(pb <= pc, bi, ci))
        cands = np.stack(
            [
                cur,
                cur - left,
                cur - up,
                (cur.astype(np.int16) - ((ai + bi) >> 1)).astype(np.uint8),
                (cur.astype(np.int16) - paeth).astype(np.uint8),
            ]
        )
        score = np.minimum(cands, 256 - cands.astype(np.int16)).sum(axis=2, dtype=np.int64)
        best = np.argmin(score, axis=0)
        chosen = cands[best, np.arange(cur.shape[0])]
        rows = np.concatenate([best.astype(np.uint8)[:, None], chosen], axis=1)
        out += rows.tobytes()
        prev_row = cur[-1:]
    return bytes(out)


def _icc_from_iccp(body: bytes) -> bytes | None:
    """The profile in an iCCP chunk (name, NUL, method 0, zlib data), or None if damaged:
    a broken ancillary chunk costs the profile, not the image."""
    name_end = body.find(b"\x00")
    if not 0 < name_end < 80 or body[name_end + 1 : name_end + 2] != b"\x00":
        return None
    try:
        return zlib.decompress(body[name_end + 2 :])
    except zlib.error:
        return None


def encode(arr: np.ndarray, bit_depth: int, level: int = 6, icc_profile: bytes | None = None,
           exif: bytes | None = None) -> bytes:
    """Encode HxW or HxWxC (C 1-4) uint8/uint16 as a non-interlaced PNG, with an iCCP chunk
    for ``icc_profile`` and an eXIf chunk for ``exif`` (a JPEG ``Exif\\0\\0`` header is
    dropped: eXIf holds the TIFF block alone)."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, c = arr.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    if bit_depth == 16:
        data = np.ascontiguousarray(arr.astype(">u2")).view(np.uint8)
    else:
        data = np.ascontiguousarray(arr.astype(np.uint8))
    bpp = c * bit_depth // 8
    filtered = _filter_rows(data.reshape(h, w * bpp), bpp)

    def chunk(t: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, ctype, 0, 0, 0)
    # the PNG specification puts iCCP before IDAT; eXIf may go anywhere before IEND
    extra = b""
    if icc_profile:
        extra += chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile, level))
    if exif:
        extra += chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    return (
        SIGNATURE
        + chunk(b"IHDR", ihdr)
        + extra
        + chunk(b"IDAT", zlib.compress(filtered, level))
        + chunk(b"IEND", b"")
    )

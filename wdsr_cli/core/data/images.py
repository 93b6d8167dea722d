"""Reading and writing the images users have.

Everything goes through imageio's v3 API with its Pillow plugin, except 16-bit
colour PNGs (RGB, RGBA and gray+alpha at 16 bits per sample): Pillow reads those
as 8-bit (it keeps only the high byte) and cannot write them, so this module has
a small PNG codec of its own (:mod:`.png`: zlib + numpy, following the public PNG
specification) for exactly those cases.

What :func:`read_image` does with each kind of file:

* gray ``L`` and ``1`` (1-bit) -> gray 8-bit; ``I;16`` -> gray 16-bit;
  32-bit integer ``I`` -> gray 16-bit (clipped to 0..65535).
* ``LA`` -> gray + alpha; ``RGBA`` -> RGB + alpha; ``PA``/``RGBa``/``La`` likewise.
* palette ``P`` -> RGB, or RGB + alpha when it has transparency; a palette made
  only of grays becomes gray.
* a single transparent colour (PNG ``tRNS`` on gray or RGB) -> an alpha channel.
* ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``RGBX`` -> RGB (Pillow's conversion).
* 16-bit colour PNGs keep all 16 bits (own decoder, interlaced files too).
* 32-bit float images (``F``) are refused with a hint.
* Multi-frame files (animated GIF/WebP/PNG, multi-page TIFF) are refused: which frame to
  take is the user's choice, not ours (:func:`check_still_image`).
* 16-bit colour TIFFs are refused: Pillow would keep only their top 8 bits (16-bit gray TIFF
  and 16-bit colour PNG keep all 16).
* The EXIF orientation tag (JPEG, PNG ``eXIf``, TIFF, WebP) is applied, so the
  pixels come out upright as image viewers show them.
* The ICC colour profile and the EXIF block are kept on the :class:`Image` and written
  back with it (PNG, JPEG, WebP; TIFF the profile only), EXIF with Orientation 1 and the
  new pixel size (:mod:`.metadata`).
* A truncated or damaged file raises :class:`WdsrError` naming the file. Pillow's
  ``ImageFile.LOAD_TRUNCATED_IMAGES`` is forced off while decoding, and PNGs are
  additionally checked for their closing ``IEND`` chunk (Pillow accepts a PNG
  whose last bytes are missing).

What :func:`write_image` does: the format comes from the suffix; the file is
written to a temporary file in the same folder and moved over the target with
``os.replace``, so a reader never sees a half-written file and an existing file
survives a failed write. Formats that cannot hold 16 bits (JPEG, BMP, WebP, and
TIFF for colour) get 8-bit data (``round(x / 257)``); formats that cannot hold
transparency (JPEG, BMP) raise :class:`WdsrError` instead of silently dropping it.
JPEG is written at quality 95 with 4:4:4 chroma, WebP lossy at quality 95 unless
``quality=100`` (lossless), PNG at zlib level 6.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import struct
import threading
from dataclasses import dataclass

import numpy as np

from wdsr_cli.core.errors import WdsrError

from . import png
from .metadata import EXIF_HEADER, exif_for_output, icc_fits, split_exif

__all__ = [
    "IMAGE_SUFFIXES",
    "OUTPUT_SUFFIXES",
    "Image",
    "from_rgb_float",
    "is_image_file",
    "probe_image",
    "read_image",
    "read_rgb_uint8",
    "to_rgb_float",
    "write_image",
    "write_rgb_uint8",
]


def _pillow_reads(feature: str) -> bool:
    try:
        from PIL import features

        return bool(features.check(feature))
    except Exception:  # pragma: no cover - a broken Pillow build
        return False


_WEBP = _pillow_reads("webp")
# HEIC/HEIF (what iPhones save) needs pillow-heif, an optional extra (`pip install
# 'wdsr-cli[heif]'`), imported on the first read of an image, not here (--help stays fast)
_HEIF = importlib.util.find_spec("pillow_heif") is not None

#: Suffixes (lower case) that :func:`write_image` writes.
OUTPUT_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff") + (
    (".webp",) if _WEBP else ()
)
#: Suffixes (lower case) that :func:`read_image` reads: the output ones, AVIF where Pillow
#: has it, HEIC/HEIF with pillow-heif.
IMAGE_SUFFIXES: tuple[str, ...] = OUTPUT_SUFFIXES + ((".avif",) if _pillow_reads("avif") else ()) \
    + ((".heic", ".heif") if _HEIF else ())


@functools.cache
def _open_heif_too() -> None:
    """Let Pillow open HEIC/HEIF files (once, when pillow-heif is installed). The decoder
    applies the file's rotation and mirroring and resets the EXIF orientation to 1, so the
    pixels come upright as from any other format."""
    if _HEIF:
        import pillow_heif

        pillow_heif.register_heif_opener()

_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}

# BT.601 luma weights, used to turn a 3-channel network output back into gray.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass
class Image:
    """An image as read from disk.

    ``pixels`` is HxWxC with C 1 (gray) or 3 (RGB), uint8 or uint16; the alpha
    channel, if any, is kept apart in ``alpha`` (HxW, same dtype). ``bit_depth``
    is 8 or 16 and matches the dtype. ``source_mode`` is what the file held
    (Pillow's mode name, or e.g. ``"RGB;16"`` for a 16-bit colour PNG), for messages.
    ``icc_profile`` (an RGB or gray profile, as the pixels are) and ``exif`` (the source's
    TIFF block, orientation as in the file) are what the file said about its pixels; they
    are written back with them (:mod:`.metadata`).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    source_mode: str = ""
    icc_profile: bytes | None = None
    exif: bytes | None = None

    def __post_init__(self) -> None:
        p = self.pixels
        if not isinstance(p, np.ndarray) or p.ndim != 3 or p.shape[2] not in (1, 3):
            shape = getattr(p, "shape", None)
            raise ValueError(f"Image.pixels must be HxWx1 or HxWx3, got shape {shape}")
        if p.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"Image.pixels must be uint8 or uint16, got {p.dtype}")
        expected = 8 if p.dtype == np.uint8 else 16
        if self.bit_depth != expected:
            raise ValueError(f"Image.bit_depth {self.bit_depth} does not match dtype {p.dtype}")
        if self.alpha is not None:
            a = self.alpha
            if not isinstance(a, np.ndarray) or a.shape != p.shape[:2] or a.dtype != p.dtype:
                raise ValueError(
                    f"Image.alpha must be {p.shape[:2]} {p.dtype}, got "
                    f"{getattr(a, 'shape', None)} {getattr(a, 'dtype', None)}"
                )
        if self.icc_profile is not None and not icc_fits(self.icc_profile, self.gray):
            raise ValueError("Image.icc_profile must be a " + ("gray" if self.gray else "RGB")
                             + " profile, as the pixels are")
        if not self.source_mode:
            self.source_mode = _describe(self)

    @property
    def metadata(self) -> dict[str, bytes | None]:
        """The ``icc_profile`` and ``exif`` to hand on to an image made from this one."""
        return {"icc_profile": self.icc_profile, "exif": self.exif}

    @property
    def gray(self) -> bool:
        return self.pixels.shape[2] == 1

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def _describe(img: Image) -> str:
    base = ("L" if img.gray else "RGB") + ("A" if img.alpha is not None else "")
    return base if img.bit_depth == 8 else base + ";16"


# ---------------------------------------------------------------------------
# helpers


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the name has one of :data:`IMAGE_SUFFIXES` (any case) and is not
    hidden (names starting with ``.``, e.g. macOS ``._x.png`` files or this
    module's temporary files, are skipped). The file is not opened."""
    name = os.path.basename(os.fspath(path))
    if not name or name.startswith("."):
        return False
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _to8(a: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit as round(x / 257) (exact inverse of x * 257)."""
    if a.dtype == np.uint8:
        return a
    return ((a.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)


_ORIENT = {
    # EXIF orientation -> how to make the stored pixels upright (numpy, HxW[xC]).
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _apply_orientation(a: np.ndarray, orientation: object) -> np.ndarray:
    try:
        fn = _ORIENT.get(int(orientation))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return a
    return a if fn is None else np.ascontiguousarray(fn(a))


# ---------------------------------------------------------------------------
# reading

_TRUNC_LOCK = threading.Lock()
_TRUNC_STATE = {"active": 0, "saved": False}


class _NoTruncatedLoading:
    """Keep Pillow's global LOAD_TRUNCATED_IMAGES off while any read is decoding
    (another library or the user may have turned it on). Reads are counted so
    that concurrent reads don't serialise; the old value comes back after the
    last one."""

    def __enter__(self) -> None:
        from PIL import ImageFile

        with _TRUNC_LOCK:
            if _TRUNC_STATE["active"] == 0:
                _TRUNC_STATE["saved"] = ImageFile.LOAD_TRUNCATED_IMAGES
            _TRUNC_STATE["active"] += 1
            ImageFile.LOAD_TRUNCATED_IMAGES = False

    def __exit__(self, *exc: object) -> None:
        from PIL import ImageFile

        with _TRUNC_LOCK:
            _TRUNC_STATE["active"] -= 1
            if _TRUNC_STATE["active"] == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _TRUNC_STATE["saved"]


def _cannot_read(path: str | os.PathLike, reason: str, hint: str | None = None) -> WdsrError:
    return WdsrError(f"cannot read image '{os.fspath(path)}': {reason}", hint)


def _unknown_format(path: str | os.PathLike) -> WdsrError:
    if os.path.splitext(os.fspath(path))[1].lower() in (".heic", ".heif") and not _HEIF:
        return _cannot_read(path, "HEIC/HEIF photos need pillow-heif, which is not installed",
                            "pip install 'wdsr-cli[heif]' (or convert the photo to JPEG or PNG)")
    return _cannot_read(path, "not an image file, or a format Pillow cannot read",
                        "supported: " + ", ".join(IMAGE_SUFFIXES))


def read_image(path: str | os.PathLike) -> Image:
    """Read an image file fully; raise :class:`WdsrError` naming it if it can't be read."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            head = f.read(33)
    except FileNotFoundError:
        raise _cannot_read(p, "no such file", "check the path") from None
    except IsADirectoryError:
        raise _cannot_read(p, "it is a folder", "pass an image file") from None
    except PermissionError:
        raise _cannot_read(p, "permission denied",
                           "make it readable (chmod u+r) or copy it elsewhere") from None
    except OSError as e:
        raise _cannot_read(p, e.strerror or str(e), "check the file and the disk") from None
    if not head:
        raise _cannot_read(p, "the file is empty", "copy or export it again, or remove it")

    is_png = head.startswith(png.SIGNATURE)
    if is_png:
        if not png.is_complete(p):
            raise _cannot_read(
                p, "file is truncated", "the file is incomplete: copy or export it again"
            )
        if len(head) >= 33 and head[12:16] == b"IHDR":
            depth, ctype = head[24], head[25]
            if depth == 16 and ctype in (2, 4, 6):
                with open(p, "rb") as f:
                    data = f.read()
                return _read_png16(p, data)
    return _read_with_pillow(p)


_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def check_still_image(im, path: str | os.PathLike) -> None:
    """Refuse what :func:`read_image` would silently get wrong, from an open Pillow image
    (header only): several frames (only one would be used) and 16-bit colour TIFF (Pillow
    keeps only the top 8 bits). A camera JPEG that carries a preview or a depth map beside
    its photo (Pillow's MPO: CIPA's Multi-Picture Format) is one photo: the first image, the
    one every viewer shows."""
    frames = getattr(im, "n_frames", 1)
    if frames > 1 and im.format != "MPO":
        raise _cannot_read(path, f"it has {frames} frames (animated or multi-page)",
                           "save the frame you want as a PNG and pass that")
    if im.format == "TIFF" and im.mode not in ("I;16", "I;16B", "I;16L", "I"):
        bits = im.tag_v2.get(258)  # BitsPerSample
        bits = bits if isinstance(bits, tuple) else (bits,)
        if any(b == 16 for b in bits if isinstance(b, int)):
            raise _cannot_read(path, "16-bit colour TIFF would be read as 8-bit",
                               "convert it to a 16-bit PNG (wdsr keeps all 16 bits of those)")


def has_alpha(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds transparency (alpha channel or a transparent colour), from its
    header; False when it cannot be opened (reading it will say why)."""
    from PIL import Image as PILImage

    try:
        _open_heif_too()
        with PILImage.open(path) as im:
            return im.mode in _ALPHA_MODES or "transparency" in im.info
    except Exception:  # noqa: BLE001 - the reader reports unreadable files
        return False


def probe_image(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) as :func:`read_image` will return them, from the header only.

    Raises WdsrError naming the file when it is not an image or is visibly truncated.
    """
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            sig = f.read(8)
        if not sig:
            raise WdsrError(f"cannot read image '{path}': the file is empty",
                            "copy or export it again, or remove it")
        if sig == png.SIGNATURE and not png.is_complete(path):
            raise WdsrError(f"cannot read image '{path}': file is truncated",
                            "the file is incomplete: copy or download it again")
        _open_heif_too()
        with PILImage.open(path) as im:
            check_still_image(im, path)
            width, height = im.size
            orientation = 1
            if im.format in ("JPEG", "TIFF", "WEBP", "MPO", "AVIF", "HEIF"):
                try:
                    orientation = int(im.getexif().get(0x0112, 1))
                except Exception:  # noqa: BLE001 - a broken EXIF block means no orientation
                    orientation = 1
    except WdsrError:
        raise
    except UnidentifiedImageError:
        raise _unknown_format(path) from None
    except OSError as exc:
        raise WdsrError(f"cannot read image '{path}': {exc.strerror or exc}",
                        "check that the file is readable (permissions)") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        raise WdsrError(f"cannot read image '{path}': {type(exc).__name__}: {exc}",
                        "the file is damaged: copy or export it again") from None
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return height, width


def _read_with_pillow(p: str) -> Image:
    import imageio.v3 as iio
    from PIL import Image as PILImage

    try:
        _open_heif_too()
        with PILImage.open(p) as im:
            check_still_image(im, p)
        with _NoTruncatedLoading(), iio.imopen(p, "r", plugin="pillow") as f:
            meta = f.metadata(index=0, exclude_applied=False)
            mode = meta.get("mode", "")
            return _convert_pillow(f, meta, mode, p)
    except WdsrError:
        raise
    except PILImage.DecompressionBombError as e:
        raise _cannot_read(p, f"image is too large ({e})",
                           "wdsr refuses such images as possible decompression bombs; "
                           "downscale or crop it first") from None
    except MemoryError:
        raise _cannot_read(p, "not enough memory to decode it",
                           "close other programs or downscale the image") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
        raise _classify(p, e) from None


def _classify(p: str, e: Exception) -> WdsrError:
    text = str(e)
    low = text.lower()
    name = type(e).__name__
    if name == "InitializationError" or any(
        s in low for s in ("cannot identify", "can not read", "can not handle")
    ):
        return _unknown_format(p)
    if "truncated" in low or isinstance(e, EOFError):
        return _cannot_read(
            p, "file is truncated", "the file is incomplete: copy or export it again"
        )
    return _cannot_read(
        p, f"file is damaged ({name}: {text})" if text else f"file is damaged ({name})"
    )


def _convert_pillow(f, meta: dict, mode: str, p: str) -> Image:
    """Turn what Pillow decodes into an :class:`Image` (see the module docstring)."""
    orientation = meta.get("Orientation")
    transparency = meta.get("transparency")
    src = mode
    alpha = None

    def read(m: str | None) -> np.ndarray:
        return np.asarray(f.read(index=0, mode=m, rotate=False))

    if mode == "F":
        raise _cannot_read(
            p,
            "32-bit floating-point images are not supported",
            "convert it to a 16-bit or 8-bit PNG first",
        )
    if mode in ("P", "PA"):
        palette = meta.get("palette")
        has_alpha = mode == "PA" or transparency is not None
        gray = False
        if palette is not None:
            pal = np.asarray(palette)
            if pal.ndim == 2 and pal.shape[1] >= 3 and pal.shape[0] > 0:
                gray = bool(np.all(pal[:, 0] == pal[:, 1]) and np.all(pal[:, 1] == pal[:, 2]))
                if pal.shape[1] == 4:
                    has_alpha = has_alpha or bool(np.any(pal[:, 3] != 255))
        a = read(("LA" if gray else "RGBA") if has_alpha else ("L" if gray else "RGB"))
        if has_alpha:
            a, alpha = a[..., :-1], a[..., -1]
    elif mode in ("1", "L"):
        a = read("L")
    elif mode in ("LA", "La"):
        a = read("LA")
        a, alpha = a[..., :1], a[..., 1]
    elif mode in ("RGBA", "RGBa"):
        a = read("RGBA")
        a, alpha = a[..., :3], a[..., 3]
    elif mode == "RGB":
        a = read(None)
    elif mode.startswith("I;16"):
        a = read(None).astype(np.uint16)
    elif mode == "I":
        a = np.clip(read(None), 0, 65535).astype(np.uint16)
    else:  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        a = read("RGB")

    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype not in (np.uint8, np.uint16):  # pragma: no cover - unexpected decoder output
        raise _cannot_read(p, f"unsupported pixel format ({mode}, {a.dtype})")
    a = np.ascontiguousarray(a)

    # A single transparent colour (tRNS on gray/RGB) becomes an alpha channel.
    if alpha is None and transparency is not None and mode in ("L", "RGB", "I;16", "I"):
        key = np.asarray(transparency).reshape(-1)
        if key.size == a.shape[2]:
            hit = np.all(a == key.astype(a.dtype), axis=2)
            alpha = np.where(hit, 0, 255 if a.dtype == np.uint8 else 65535).astype(a.dtype)
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha).astype(a.dtype)

    a = _apply_orientation(a, orientation)
    if alpha is not None:
        alpha = _apply_orientation(alpha, orientation)
    depth = 8 if a.dtype == np.uint8 else 16
    return Image(pixels=a, alpha=alpha, bit_depth=depth, source_mode=src,
                 **_metadata(meta.get("icc_profile"), meta.get("exif"), a.shape[2] == 1))


def _metadata(icc: object, exif: object, gray: bool) -> dict[str, bytes | None]:
    """What a file reported, as :class:`Image` keeps it: a profile only when it describes
    the pixels as read (a CMYK file's does not), EXIF as its TIFF block."""
    icc = bytes(icc) if isinstance(icc, (bytes, bytearray)) else None
    exif = split_exif(bytes(exif)) if isinstance(exif, (bytes, bytearray)) else None
    return {"icc_profile": icc if icc_fits(icc, gray) else None, "exif": exif}


def _read_png16(p: str, data: bytes) -> Image:
    from PIL import Image as PILImage

    w, h = struct.unpack(">II", data[16:24])
    limit = PILImage.MAX_IMAGE_PIXELS
    if limit and w * h > 2 * limit:  # the same guard Pillow applies to other files
        raise _cannot_read(p, f"image is too large ({w}x{h} pixels)",
                           "wdsr refuses such images as possible decompression bombs; "
                           "downscale or crop it first")
    try:
        arr, info = png.decode(data)
    except png.PngError as e:
        if e.truncated:
            raise _cannot_read(
                p, "file is truncated", "the file is incomplete: copy or export it again"
            ) from None
        raise _cannot_read(p, f"file is damaged ({e})") from None
    except MemoryError:
        raise _cannot_read(p, "not enough memory to decode it",
                           "close other programs or downscale the image") from None
    except Exception as e:  # noqa: BLE001 - malformed data in ways the checks didn't catch
        raise _cannot_read(p, f"file is damaged ({type(e).__name__}: {e})") from None
    ctype = info["color_type"]
    alpha = None
    if ctype in (4, 6):
        arr, alpha = arr[..., :-1], arr[..., -1]
    elif ctype == 2 and "trns" in info:
        key = np.frombuffer(info["trns"][:6], ">u2").astype(np.uint16)
        alpha = np.where(np.all(arr == key, axis=2), 0, 65535).astype(np.uint16)
    arr = np.ascontiguousarray(arr)
    orientation = None
    if "exif" in info:
        try:
            ex = PILImage.Exif()
            ex.load(info["exif"])
            orientation = ex.get(0x0112)
        except Exception:  # noqa: BLE001 - a broken EXIF block just means no orientation
            orientation = None
    arr = _apply_orientation(arr, orientation)
    if alpha is not None:
        alpha = _apply_orientation(np.ascontiguousarray(alpha), orientation)
    mode = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}[ctype]
    return Image(pixels=arr, alpha=alpha, bit_depth=16, source_mode=mode,
                 **_metadata(info.get("icc_profile"), info.get("exif"), arr.shape[2] == 1))


# ---------------------------------------------------------------------------
# float conversion for the network


def to_rgb_float(img: Image) -> np.ndarray:
    """HxWx3 float32 on the 0..255 scale (gray replicated, 16-bit scaled by 255/65535).

    The alpha channel is not included (see :func:`alpha_to_float`)."""
    a = img.pixels.astype(np.float32)
    if img.bit_depth == 16:
        a *= np.float32(255.0 / 65535.0)
    if img.gray:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def alpha_to_float(img: Image) -> np.ndarray | None:
    """The alpha channel as HxW float32 on the 0..255 scale, or None."""
    if img.alpha is None:
        return None
    a = img.alpha.astype(np.float32)
    if img.bit_depth == 16:
        a *= np.float32(255.0 / 65535.0)
    return a


def _quantise(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """Clip, then round halves up (away from zero), as ``inference.to_uint8`` and the
    metrics do: an 8-bit image written from float equals the Predictor's uint8 output."""
    x = np.asarray(x, dtype=np.float64)
    if bit_depth == 16:
        return np.floor(np.clip(x * (65535.0 / 255.0), 0, 65535) + 0.5).astype(np.uint16)
    return np.floor(np.clip(x, 0, 255) + 0.5).astype(np.uint8)


def from_rgb_float(rgb: np.ndarray, like: Image, alpha: np.ndarray | None = None) -> Image:
    """Network output (HxWx3 float, 0..255 scale) -> an :class:`Image` shaped like ``like``.

    Values are clipped and rounded to ``like``'s bit depth (16-bit: scaled to
    0..65535). For a gray ``like`` the three channels are merged with BT.601 luma
    weights (0.299, 0.587, 0.114); they sum to 1, so a gray input replicated by
    :func:`to_rgb_float` comes back exactly.

    ``like``'s colour profile and EXIF come along (:attr:`Image.metadata`).

    Alpha: pass ``alpha`` (HxW float on the 0..255 scale, e.g. the upscaled
    :func:`alpha_to_float`). Without it, ``like.alpha`` is kept when it has the
    same size as ``rgb``; when ``like`` has alpha of another size a ValueError is
    raised, so transparency is never dropped by accident.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 array, got shape {rgb.shape}")
    x = rgb.astype(np.float64)
    if like.gray:
        w = np.asarray(LUMA_WEIGHTS, dtype=np.float64)
        x = (x @ w)[:, :, None]
    pixels = _quantise(x, like.bit_depth)
    out_alpha = None
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
        out_alpha = _quantise(alpha, like.bit_depth)
    elif like.alpha is not None:
        if like.alpha.shape != rgb.shape[:2]:
            raise ValueError(
                f"the source image has an alpha channel of size {like.alpha.shape}; "
                f"pass alpha= resized to {rgb.shape[:2]}"
            )
        out_alpha = like.alpha.copy()
    return Image(pixels=pixels, alpha=out_alpha, bit_depth=like.bit_depth, **like.metadata)


# ---------------------------------------------------------------------------
# writing


def _format_for(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    fmt = _FORMATS.get(suffix)
    if fmt is None or (fmt == "WEBP" and not _WEBP):
        raise WdsrError(
            f"cannot write image '{path}': unknown image format '{suffix or '(no suffix)'}'",
            "use one of " + ", ".join(OUTPUT_SUFFIXES),
        )
    return fmt


def _prepare(img: Image, fmt: str, path: str) -> tuple[np.ndarray, bool]:
    """The array to hand to the writer and whether it is a 16-bit colour PNG."""
    if img.alpha is not None and fmt in ("JPEG", "BMP"):
        raise WdsrError(
            f"cannot write image '{path}': {fmt} cannot store transparency",
            "write a .png, .tif or .webp file to keep the alpha channel",
        )
    pixels, alpha = img.pixels, img.alpha
    sixteen = img.bit_depth == 16
    if sixteen and not (fmt == "PNG" or (fmt == "TIFF" and img.gray and alpha is None)):
        pixels = _to8(pixels)
        alpha = None if alpha is None else _to8(alpha)
        sixteen = False
    arr = pixels if alpha is None else np.concatenate([pixels, alpha[:, :, None]], axis=2)
    own_png = sixteen and fmt == "PNG" and arr.shape[2] != 1
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return np.ascontiguousarray(arr), own_png


def _save_kwargs(fmt: str, quality: int | None) -> dict:
    if fmt == "JPEG":
        q = 95 if quality is None else int(quality)
        return {"quality": q, "subsampling": 0 if q >= 90 else 2}
    if fmt == "WEBP":
        q = 95 if quality is None else int(quality)
        return {"lossless": True} if q >= 100 else {"quality": q}
    if fmt == "PNG":
        return {"compress_level": 6}
    if fmt == "TIFF":
        return {"compression": "tiff_deflate"}
    return {}


def write_image(path: str | os.PathLike, img: Image, quality: int | None = None,
                exclusive: bool = False) -> list[str]:
    """Write ``img`` to ``path`` atomically (temporary file in the same folder, then
    ``os.replace``; ``exclusive``: never over a file that appeared meanwhile, see
    ``fileio.commit``). The format comes from the suffix; see the module docstring for
    how 16-bit and alpha are treated. Returns what of ``img``'s metadata the format held:
    ``"exif"``, ``"icc_profile"``, both or neither. Raises :class:`WdsrError` on any failure,
    before touching ``path`` when the suffix or the image can't be written."""
    p = os.fspath(path)
    fmt = _format_for(p)
    arr, own_png = _prepare(img, fmt, p)
    meta = _metadata_kwargs(img, fmt)
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(folder):
        raise WdsrError(f"cannot write image '{p}': folder '{folder}' does not exist")
    from ..fileio import replacing

    try:
        with replacing(p, exclusive=exclusive) as tmp, open(tmp, "xb") as fh:
            if own_png:
                fh.write(png.encode(arr, 16, icc_profile=meta.get("icc_profile"),
                                    exif=meta.get("exif")))
            else:
                _write_with_pillow(fh, arr, fmt, {**_save_kwargs(fmt, quality), **meta})
    except WdsrError:
        raise
    except OSError as e:
        raise WdsrError(f"cannot write image '{p}': {e.strerror or e}",
                        "check free disk space and the folder's permissions") from None
    except Exception as e:  # noqa: BLE001 - encoder failures become one clear line
        raise WdsrError(f"cannot write image '{p}': {type(e).__name__}: {e}") from None
    return sorted(meta)


def _metadata_kwargs(img: Image, fmt: str) -> dict[str, bytes]:
    """The colour profile and EXIF block for ``fmt`` (see :mod:`.metadata`): BMP holds
    neither; TIFF keeps the profile (its own tags are where EXIF would go); a JPEG segment holds
    at most 65,533 bytes, so a larger EXIF block (possible in a PNG) is left out of a JPEG."""
    out: dict[str, bytes] = {}
    if img.icc_profile and fmt != "BMP":
        out["icc_profile"] = img.icc_profile
    if fmt in ("PNG", "JPEG", "WEBP"):
        exif = exif_for_output(img.exif, img.width, img.height)
        if exif and not (fmt == "JPEG" and len(EXIF_HEADER + exif) > 65533):
            out["exif"] = EXIF_HEADER + exif
    return out


def _write_with_pillow(fh, arr: np.ndarray, fmt: str, kwargs: dict) -> None:
    import imageio.v3 as iio

    ext = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}[fmt]
    # imageio infers the Pillow mode: L, LA, RGB, RGBA (uint8) or I;16 (2-D uint16)
    iio.imwrite(fh, arr, plugin="pillow", extension=ext, **kwargs)


# ---------------------------------------------------------------------------
# dataset conveniences


def read_rgb_uint8(path: str | os.PathLike) -> np.ndarray:
    """HxWx3 uint8: gray replicated, 16-bit -> 8 by round(x/257), alpha dropped."""
    img = read_image(path)
    a = _to8(img.pixels)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def write_rgb_uint8(path: str | os.PathLike, arr: np.ndarray, exclusive: bool = False
                    ) -> None:
    """Write an HxWx3 uint8 array atomically (format from the suffix; ``exclusive``: see
    :func:`write_image`)."""
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected HxWx3 uint8, got {arr.shape} {arr.dtype}")
    write_image(path, Image(pixels=np.ascontiguousarray(arr), bit_depth=8), exclusive=exclusive)

"""Degradations: what turns a clean HR photo into the LR image a user actually has.

A benchmark LR image is the MATLAB bicubic of the HR image and nothing else; a user's photo has
been blurred by its lens, carries sensor noise and was saved as a JPEG (often twice). A model
trained only on the first collapses on the second
(wdsr_cli/assets/weights/MODEL_CARD.md "Photo weights"). This module holds one description of
such a chain, a :class:`Chain`, applied in this order:

1. **blur** of the HR image: a Gaussian, isotropic or anisotropic (two sigmas and an angle), in
   HR pixels;
2. **downscale** by the scale with one of MATLAB's kernels (:data:`resize.KERNELS`), then
   rounding to 8 bits as a camera or an image file does;
3. **noise**: additive Gaussian, in colour (each channel its own) or gray (one value per pixel),
   on the 0..255 scale, rounded to 8 bits;
4. **JPEG**, once or more, at a quality with 4:2:0 chroma (how cameras and Pillow write it),
   each on an 8x8 grid shifted by ``(dy, dx)`` pixels: a recompressed image's second grid rarely
   sits on its first (FBCNN, Jiang et al. 2021, showed that a one-pixel shift breaks models
   trained on single JPEGs).

Two ways to get a chain, both deterministic:

* **training** (:func:`draw`): a recipe's ``degrade`` section (:class:`config.DegradeConfig`:
  ranges and probabilities) and a numpy ``Generator``. The pipeline seeds the generator with
  ``(seed, step, slot)``, so a draw depends on nothing else: resume is exact and ranks, which
  own disjoint slots, draw disjointly. Every draw consumes the same random numbers whatever the
  probabilities say, so changing one probability does not reshuffle the others.
* **measuring** (:func:`parse_spec`): ``wdsr evaluate --degrade noise:5,jpeg:50`` names a chain
  in words; its noise is seeded from the spec and the image name, so every run and every
  machine scores the same input.

numpy and Pillow only (Pillow's libjpeg does the JPEG round trip).
"""

from __future__ import annotations

import io
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import WdsrError
from .resize import KERNELS, imresize

__all__ = ["Blur", "Chain", "Jpeg", "Noise", "apply_chain", "degrade_lr", "draw",
           "jpeg_roundtrip", "parse_spec"]

JPEG_GRID = 8


@dataclass(frozen=True)
class Blur:
    sigma_x: float  # HR pixels, along the blur's own axis
    sigma_y: float
    angle: float = 0.0  # degrees, counter-clockwise; irrelevant when the sigmas are equal

    def spec(self) -> str:
        if self.sigma_x == self.sigma_y:
            return f"blur:{_num(self.sigma_x)}"
        return f"blur:{_num(self.sigma_x)}x{_num(self.sigma_y)}@{_num(self.angle)}"


@dataclass(frozen=True)
class Noise:
    sigma: float  # 0..255 scale
    gray: bool = False
    seed: int = 0  # the generator of the noise field

    def spec(self) -> str:
        return f"{'graynoise' if self.gray else 'noise'}:{_num(self.sigma)}"


@dataclass(frozen=True)
class Jpeg:
    quality: int  # 1..100, Pillow/libjpeg's scale
    shift_y: int = 0  # grid offset in pixels, 0..7
    shift_x: int = 0

    def spec(self) -> str:
        shift = "" if (self.shift_y, self.shift_x) == (0, 0) else \
            f"@{self.shift_y}" if self.shift_y == self.shift_x else \
            f"@{self.shift_y}x{self.shift_x}"
        return f"jpeg:{self.quality}{shift}"


@dataclass(frozen=True)
class Chain:
    """One degradation: HR uint8 -> LR uint8 (see the module doc for the order)."""

    blur: Blur | None = None
    kernel: str = "bicubic"
    noise: Noise | None = None
    jpegs: tuple[Jpeg, ...] = field(default_factory=tuple)

    @property
    def clean(self) -> bool:
        """True for the benchmark LR (MATLAB bicubic only)."""
        return self.blur is None and self.kernel == "bicubic" and self.noise is None \
            and not self.jpegs

    def spec(self) -> str:
        """The chain in the words :func:`parse_spec` reads (``"bicubic"`` when clean)."""
        parts = [self.blur.spec()] if self.blur else []
        if self.kernel != "bicubic":
            parts.append(f"down:{self.kernel}")
        if self.noise:
            parts.append(self.noise.spec())
        parts += [j.spec() for j in self.jpegs]
        return ",".join(parts) or "bicubic"


def _num(v: float) -> str:
    return f"{v:g}"


# ------------------------------------------------------------------------------- applying


def gaussian_kernel(blur: Blur) -> np.ndarray:
    """A normalised 2-D Gaussian (odd side, 3 sigma each way), float64."""
    sx, sy = max(blur.sigma_x, 1e-3), max(blur.sigma_y, 1e-3)
    radius = max(1, int(math.ceil(3.0 * max(sx, sy))))
    t = math.radians(blur.angle)
    c, s = math.cos(t), math.sin(t)
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float64)
    u = c * xx + s * yy  # coordinates along the blur's axes
    v = -s * xx + c * yy
    k = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return k / k.sum()


def _fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: numpy's FFT is several times faster on such lengths
    (a 202-pixel side took 38 ms, 216 took 5 ms)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def blur_image(img: np.ndarray, blur: Blur) -> np.ndarray:
    """Convolve an HxWxC image with the Gaussian (mirrored borders); float64 HxWxC result.

    Through the FFT, channels first, on a fast length: a few milliseconds on a training region,
    where a direct 13x13 sum took ~40 ms.
    """
    k = gaussian_kernel(blur)
    r = k.shape[0] // 2
    h, w = img.shape[:2]
    x = np.pad(img.astype(np.float64).transpose(2, 0, 1), ((0, 0), (r, r), (r, r)),
               mode="symmetric")
    size = (_fast_length(h + 2 * r), _fast_length(w + 2 * r))
    spectrum = np.fft.rfft2(x, s=size) * np.fft.rfft2(k, s=size)
    out = np.fft.irfft2(spectrum, s=size)
    # circular convolution: output (i, j) is centred on padded input (i - r, j - r); no output
    # kept here reaches the wrapped-around zeros
    return np.ascontiguousarray(out[:, 2 * r:2 * r + h, 2 * r:2 * r + w].transpose(1, 2, 0))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def jpeg_roundtrip(img: np.ndarray, quality: int, shift_y: int = 0, shift_x: int = 0
                   ) -> np.ndarray:
    """Encode an HxWx3 uint8 image as a 4:2:0 JPEG at ``quality`` and decode it again.

    The 8x8 grid is shifted by ``(shift_y, shift_x)``: the image is padded by that many
    repeated edge pixels at the top and left before encoding and the padding is cut after.
    """
    from PIL import Image as PILImage

    if shift_y or shift_x:
        img = np.pad(img, ((shift_y, 0), (shift_x, 0), (0, 0)), mode="edge")
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(img), "RGB").save(
        buf, format="JPEG", quality=int(quality), subsampling=2)  # 2 = 4:2:0
    buf.seek(0)
    with PILImage.open(buf) as im:
        out = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(out[shift_y:, shift_x:])


def apply_chain(chain: Chain, hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image (uint8, ``ceil(H/scale) x ceil(W/scale) x 3``) of an HxWx3 uint8 HR image.

    A clean chain gives exactly :func:`resize.bicubic_downscale` (MATLAB-exact, rounded after
    each axis); with a blur the downscale runs in float and rounds once.
    """
    if chain.blur is None:
        lr = imresize(hr, scale=1.0 / scale, kernel=chain.kernel)
    else:
        lr = _to_uint8(imresize(blur_image(hr, chain.blur), scale=1.0 / scale,
                                kernel=chain.kernel))
    return degrade_lr(chain, lr)


def degrade_lr(chain: Chain, lr: np.ndarray) -> np.ndarray:
    """The LR side of a chain (noise, then each JPEG) on an already downscaled uint8 image.

    The training pipeline calls it directly on the prepared bicubic LR when the chain has no
    blur and the bicubic kernel (the same pixels :func:`apply_chain` would compute, without
    recomputing the downscale)."""
    if chain.noise is not None and chain.noise.sigma > 0:
        rng = np.random.default_rng(chain.noise.seed)
        shape = lr.shape[:2] + ((1,) if chain.noise.gray else (lr.shape[2],))
        noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(chain.noise.sigma)
        lr = _to_uint8(lr.astype(np.float32) + noise)
    for j in chain.jpegs:
        lr = jpeg_roundtrip(lr, j.quality, j.shift_y, j.shift_x)
    return lr


def jpeg_quality_in(chain: Chain) -> int | None:
    """The quality of a chain's last JPEG (what a file made by it would say), or None."""
    return chain.jpegs[-1].quality if chain.jpegs else None


# ------------------------------------------------------------------------------- training draws


def draw(cfg: Any, rng: np.random.Generator) -> Chain:
    """One random chain from a recipe's ``degrade`` section (:class:`config.DegradeConfig`).

    Always consumes the same random numbers from ``rng``, in a fixed order, whatever is
    switched on.
    """
    u = rng.random(12)
    kernel_i = int(rng.integers(0, len(cfg.kernels)))
    noise_seed = int(rng.integers(0, 2**63 - 1))
    shifts = rng.integers(0, JPEG_GRID, size=2)
    shift2 = rng.integers(1, JPEG_GRID * JPEG_GRID)  # the second grid never sits on the first

    def within(lo_hi, t: float) -> float:
        lo, hi = lo_hi
        return lo + (hi - lo) * t

    blur = None
    if u[0] < cfg.blur_prob:
        s1 = within(cfg.blur_sigma, u[1])
        s2 = within(cfg.blur_sigma, u[2]) if u[3] < cfg.blur_aniso_prob else s1
        blur = Blur(round(s1, 4), round(s2, 4), round(180.0 * u[4], 2))
    noise = None
    if u[5] < cfg.noise_prob:
        noise = Noise(round(within(cfg.noise_sigma, u[6]), 4), bool(u[7] < cfg.noise_gray_prob),
                      noise_seed)
    jpegs: list[Jpeg] = []
    if u[8] < cfg.jpeg_prob:
        q_lo, q_hi = cfg.jpeg_quality
        q1 = int(min(q_hi, q_lo + math.floor(u[9] * (q_hi - q_lo + 1))))
        sy, sx = int(shifts[0]), int(shifts[1])
        jpegs.append(Jpeg(q1, sy, sx))
        if u[10] < cfg.jpeg2_prob:
            q_lo, q_hi = cfg.jpeg2_quality
            q2 = int(min(q_hi, q_lo + math.floor(u[11] * (q_hi - q_lo + 1))))
            d = int(shift2)
            jpegs.append(Jpeg(q2, (sy + d // JPEG_GRID) % JPEG_GRID, (sx + d % JPEG_GRID)
                              % JPEG_GRID))
    return Chain(blur, cfg.kernels[kernel_i], noise, tuple(jpegs))


def active(cfg: Any) -> bool:
    """Does a ``degrade`` section change anything (else training reads the prepared LR)?"""
    return (cfg.blur_prob > 0 or cfg.noise_prob > 0 or cfg.jpeg_prob > 0
            or any(k != "bicubic" for k in cfg.kernels))


def validate_section(cfg: Any) -> None:
    """Range and probability checks of a ``degrade`` section, each naming its key."""
    def bad(key: str, what: str) -> WdsrError:
        return WdsrError(f"'degrade.{key}' {what}",
                         "fix it in the recipe, or override it with --set degrade.KEY=VALUE")

    for key in ("blur_prob", "blur_aniso_prob", "noise_prob", "noise_gray_prob", "jpeg_prob",
                "jpeg2_prob"):
        if not 0.0 <= getattr(cfg, key) <= 1.0:
            raise bad(key, "must be a probability in [0, 1]")
    for key, lo, hi in (("blur_sigma", 0.0, 10.0), ("noise_sigma", 0.0, 100.0),
                        ("jpeg_quality", 1, 100), ("jpeg2_quality", 1, 100)):
        a, b = getattr(cfg, key)
        if not lo <= a <= b <= hi:
            raise bad(key, f"must be [low, high] with {lo} <= low <= high <= {hi}")
    if not cfg.kernels or any(k not in KERNELS for k in cfg.kernels):
        raise bad("kernels", "must list downscaling kernels from: " + ", ".join(KERNELS))
    if cfg.val_spec:
        parse_spec(cfg.val_spec, what="degrade.val_spec")


# ------------------------------------------------------------------------------- specs

_SPEC_HINT = ("a comma-separated chain, e.g. --degrade jpeg:75, noise:5,jpeg:50 or "
              "blur:1.2,jpeg:90,jpeg:75@4 (blur:S[xS2@DEG], down:KERNEL, noise:S, graynoise:S, "
              "jpeg:Q[@SHIFT])")
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"


def parse_spec(text: str, what: str = "--degrade") -> Chain:
    """The chain a spec names; the noise seed is 0 here (see :func:`for_image`)."""
    text = text.strip()
    if not text:
        raise WdsrError(f"{what} is empty", _SPEC_HINT)
    if text == "bicubic":
        return Chain()
    blur, kernel, noise, jpegs = None, None, None, []
    for raw in text.split(","):
        part = raw.strip()
        name, _, value = part.partition(":")
        name = name.strip().lower()

        def bad(why: str, part: str = part) -> WdsrError:
            return WdsrError(f"{what} '{text}': '{part}' {why}", _SPEC_HINT)

        if name == "blur":
            m = re.fullmatch(rf"{_NUM}(?:x{_NUM}@(-?{_NUM}))?", value.strip())
            if not m:
                raise bad("is not blur:SIGMA or blur:SIGMAxSIGMA2@ANGLE")
            if blur:
                raise bad("comes twice: name one blur")
            if kernel or noise or jpegs:
                raise bad("must come first (the blur acts on the HR image, before the "
                          "downscale)")
            s1 = float(m.group(1))
            s2 = float(m.group(2)) if m.group(2) else s1
            if not (0 < s1 <= 10 and 0 < s2 <= 10):
                raise bad("needs sigmas in (0, 10] HR pixels")
            blur = Blur(s1, s2, float(m.group(3)) if m.group(3) else 0.0)
        elif name == "down":
            if value.strip() not in KERNELS:
                raise bad("names no kernel; choose one of: " + ", ".join(KERNELS))
            if kernel:
                raise bad("comes twice: name one kernel")
            if noise or jpegs:
                raise bad("must come before noise and JPEG")
            kernel = value.strip()
        elif name in ("noise", "graynoise"):
            m = re.fullmatch(_NUM, value.strip())
            if not m or not 0 < float(m.group(1)) <= 100:
                raise bad("needs a sigma in (0, 100] on the 0..255 scale, e.g. noise:5")
            if noise:
                raise bad("comes twice: name one noise")
            if jpegs:
                raise bad("must come before JPEG (noise is the sensor's, JPEG the file's)")
            noise = Noise(float(m.group(1)), gray=name == "graynoise")
        elif name == "jpeg":
            m = re.fullmatch(r"(\d+)(?:@(\d)(?:x(\d))?)?", value.strip())
            if not m or not 1 <= int(m.group(1)) <= 100:
                raise bad("needs a quality from 1 to 100, e.g. jpeg:75 (or jpeg:75@4 for a "
                          "grid shifted by 4 pixels)")
            sy = int(m.group(2) or 0)
            sx = int(m.group(3)) if m.group(3) else sy
            if sy >= JPEG_GRID or sx >= JPEG_GRID:
                raise bad("shifts the grid by 8 or more pixels (0..7)")
            jpegs.append(Jpeg(int(m.group(1)), sy, sx))
        else:
            raise bad("is not a degradation")
    return Chain(blur, kernel or "bicubic", noise, tuple(jpegs))


def for_image(chain: Chain, name: str) -> Chain:
    """The chain with its noise seeded from the spec and the image name: the same input for
    every run, machine and image order, and another noise field for each image."""
    if chain.noise is None:
        return chain
    seed = zlib.crc32(f"{chain.spec()}|{name}".encode())
    return Chain(chain.blur, chain.kernel, Noise(chain.noise.sigma, chain.noise.gray, seed),
                 chain.jpegs)

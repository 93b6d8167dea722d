"""``--outscale F``: any output size, from a network that only makes x2, x3 or x4.

The network runs at the scale of the weights used; then the MATLAB-style bicubic of
:mod:`..data.resize` (antialiased when shrinking) brings the result to ``F`` times the input
size, each side rounded to the nearest whole pixel (halves up), at least 1. Which weights run
when no ``--scale`` is given: the smallest bundled scale at least ``F`` (x1.5 -> x2 then
shrunk, x3 -> x3 exactly, x0.5 -> x2 then shrunk to a quarter), or for ``F`` above the largest
bundled scale, the largest (x6 -> x4 then enlarged by 1.5, with a note saying so). With
``--scale`` (or a checkpoint/model, whose scale is fixed) that scale runs and the resize
covers the rest (``--scale 4 --outscale 3``: sharper x4 weights, then shrunk).

A resize that is exactly the identity (``F`` equal to the network scale, so the output size
is already right) is skipped: ``--outscale 2`` on x2 weights writes the same bytes as no
``--outscale``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import WdsrError

__all__ = ["BUNDLED_SCALES", "check_outscale", "describe", "label", "network_scale",
           "output_size", "plan", "resize_to"]

BUNDLED_SCALES = (2, 3, 4)
MAX_OUTSCALE = 64.0  # beyond this an output side is pointlessly huge; refused, not guessed
BAND_ROWS = 256  # output rows resized at a time (see resize_to)
_HINT = "for example --outscale 1.5 (720p -> 1080p) or --outscale 0.5"


def check_outscale(value: object) -> float:
    """``--outscale`` as a float: a finite number > 0 and at most :data:`MAX_OUTSCALE`
    (WdsrError otherwise)."""
    if isinstance(value, bool):
        value = str(value)
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise WdsrError(f"--outscale must be a number, got {value!r}", _HINT) from None
    if not math.isfinite(f) or f <= 0:
        raise WdsrError(f"--outscale must be a number greater than 0, got {value}", _HINT)
    if f > MAX_OUTSCALE:
        raise WdsrError(f"--outscale {value} is more than {MAX_OUTSCALE:g}",
                        "upscale in two steps if you really need it")
    return f


def network_scale(outscale: float, scale: int | None,
                  bundled: Sequence[int] = BUNDLED_SCALES) -> tuple[int, str | None]:
    """(scale of the weights to run, a note or None) for ``--outscale`` when ``--scale`` is
    ``scale`` (None: not given). See the module docstring."""
    if scale is not None:
        return int(scale), None
    fitting = [s for s in sorted(bundled) if s >= outscale]
    if fitting:
        return fitting[0], None
    top = max(bundled)
    return top, (f"--outscale {outscale:g} is above the largest bundled scale: the x{top} "
                 f"weights run, then a bicubic resize by {outscale / top:.3g}")


def output_size(width: int, height: int, outscale: float, even: bool = False
                ) -> tuple[int, int]:
    """(width, height) of the output: each side ``round(side * outscale)`` (halves up), at
    least 1; ``even``: rounded to the nearest even number instead, at least 2 (video encoders
    with 4:2:0 chroma need even sides). WdsrError if a side would be empty."""
    step = 2 if even else 1
    sides = []
    for side in (width, height):
        exact = side * outscale
        n = int(math.floor(exact / step + 0.5)) * step
        if exact < 0.5:
            raise WdsrError(f"--outscale {outscale:g} makes a {width}x{height} input smaller "
                            "than one pixel", "use a larger --outscale")
        sides.append(max(n, step))
    return sides[0], sides[1]


def label(outscale: float | None, scale: int) -> str:
    """What names the outputs: ``2`` (``photo_x2.png``) or ``1.5`` (``photo_x1.5.png``)."""
    return str(scale) if outscale is None else f"{outscale:g}"


def resize_to(image: np.ndarray, size: tuple[int, int], band_rows: int = BAND_ROWS
              ) -> np.ndarray:
    """``image`` (HxW or HxWxC, uint8/uint16/float) resized to ``size`` = (width, height) with
    the MATLAB bicubic (antialiased when shrinking); returned as is when already that size.
    Integer images are rounded and saturated (as MATLAB does); float ones are not clipped.
    Made ``band_rows`` output rows at a time: the same values as one whole-image resize, but
    only one band is ever held in float64 (a 22 MP result: 773 MiB peak instead of 3.4 GiB)."""
    from ..data.resize import imresize

    width, height = size
    if image.shape[1] == width and image.shape[0] == height:
        return image
    out = np.empty((height, width) + image.shape[2:], dtype=image.dtype)
    for first in range(0, height, band_rows):
        end = min(first + band_rows, height)
        out[first:end] = imresize(image, output_shape=(height, width), rows=(first, end))
    return out


def plan(outscale: object | None, scale: int | None, bundled_weights: bool
         ) -> tuple[float | None, int | None, str | None]:
    """(outscale checked or None, the ``--scale`` to resolve weights with, a note or None)
    for what the user said. ``bundled_weights``: the bundled weights run (no checkpoint file
    or model, whose scale is fixed: then the scale stays as given)."""
    if outscale is None:
        return None, scale, None
    f = check_outscale(outscale)
    if not bundled_weights:
        return f, scale, None
    chosen, note = network_scale(f, scale)
    return f, chosen, note


def describe(outscale: float, network: int) -> str:
    """The line the command prints about the resize."""
    if outscale == network:
        return f"--outscale {outscale:g}: the x{network} network's output as it is"
    how = "shrunk" if outscale < network else "enlarged"
    return (f"--outscale {outscale:g}: the x{network} network's output {how} to {outscale:g}x "
            "the input size (MATLAB bicubic" + (", antialiased" if outscale < network else "")
            + "; sides rounded to whole pixels)")

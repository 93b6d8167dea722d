"""The scales wdsr builds models for, and the one check of a scale. A leaf module (it imports
nothing of wdsr but errors), so config, data and metrics can all use it."""

from __future__ import annotations

from numbers import Integral

from .errors import WdsrError

SCALES = (2, 3, 4, 8)


def check_scale(scale: object, supported: bool = True) -> int:
    """``scale`` as an int, else a one-line WdsrError: the one scale check of wdsr.

    ``supported``: one of :data:`SCALES`, the factors a WDSR model is built for (prepare-data,
    evaluate, export, upscale); else any whole number from 1 up, enough for measuring and
    bicubic resizing (metrics, data.resize), which work at any integer factor."""
    whole = not isinstance(scale, bool) and isinstance(scale, Integral) and scale >= 1
    if supported and not (whole and scale in SCALES):
        raise WdsrError(f"unsupported scale {scale!r}",
                        "choose one of " + ", ".join(map(str, SCALES)))
    if not whole:
        raise WdsrError(f"the super-resolution scale must be a positive integer, got {scale!r}",
                        "use 2, 3 or 4")
    return int(scale)

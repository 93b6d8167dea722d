"""Reduced precision is a stated, checked choice: a bf16 run must stay within :data:`TOLERANCE`
of the same engine's fp32 run on the check photos, or it does not run.

The check (:func:`compare`) upscales the held-out bundled photos (:data:`CHECK_PHOTOS`, their
centres cut to :data:`CHECK_LR` LR pixels and made LR with the MATLAB bicubic) at fp32 and at
the reduced precision, with the same engine and the same windows, and asks:

* every 8-bit output value within :data:`TOLERANCE` ``uint8_levels`` (2) of the fp32 one;
* PSNR-Y (the ``y`` protocol against the HR crop) moved by at most ``psnr_db`` (0.01 dB) on
  every photo.

It runs once per (model file content, engine and version, precision, CPU model): bf16 rounds
differently on AMX, AVX512-BF16 and emulation. The verdict is cached as
``<cache>/checks/<key>.json`` (:func:`ensure_checked`), passed or failed; a failed form is
refused with a one-line error every time, without running it again.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WdsrError, WdsrNote
from .predictor import NonFiniteOutput

__all__ = ["CHECK_PHOTOS", "TOLERANCE", "PrecisionError", "compare", "ensure_checked"]

TOLERANCE = {"uint8_levels": 2, "psnr_db": 0.01}
CHECK_PHOTOS = ("brushes.png", "dogs.png", "mountains.png")  # the sample's held-out photos
CHECK_LR = 128  # LR side of each check crop (x2: a 256x256 HR crop)
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "assets" / "sample"
CHECK_VERSION = 1


class PrecisionError(WdsrError):
    """A reduced-precision form failed its check; ``result`` holds the numbers."""

    def __init__(self, message: str, hint: str | None, result: dict[str, Any]) -> None:
        super().__init__(message, hint)
        self.result = result


def check_pairs(scale: int, photos: tuple[str, ...] = CHECK_PHOTOS, side: int = CHECK_LR
                ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, LR uint8, HR uint8) per check photo: the centre ``side * scale`` HR crop and its
    MATLAB-bicubic LR image."""
    from ..data.images import read_rgb_uint8
    from ..data.resize import bicubic_downscale

    pairs = []
    for name in photos:
        photo = read_rgb_uint8(SAMPLE_DIR / name)
        hs = min(side * scale, photo.shape[0] // scale * scale, photo.shape[1] // scale * scale)
        y0, x0 = (photo.shape[0] - hs) // 2, (photo.shape[1] - hs) // 2
        hr = np.ascontiguousarray(photo[y0:y0 + hs, x0:x0 + hs])
        pairs.append((name, bicubic_downscale(hr, scale), hr))
    return pairs


def compare(reference, candidate, scale: int, tolerance: dict[str, float] | None = None,
            pairs: list[tuple[str, np.ndarray, np.ndarray]] | None = None) -> dict[str, Any]:
    """Run both Predictors (fp32 ``reference``, reduced ``candidate``) on the check photos and
    judge the candidate against ``tolerance`` (default :data:`TOLERANCE`)."""
    from ..metrics import psnr

    tol = dict(TOLERANCE if tolerance is None else tolerance)
    rows = []
    for name, lr, hr in pairs if pairs is not None else check_pairs(scale):
        want = reference.predict_uint8(lr)
        try:
            got = candidate.predict_uint8(lr)
        except NonFiniteOutput:  # an overflow at the reduced precision: the form fails
            got = np.where(want > 127, 0, 255).astype(np.uint8)
        levels = int(np.abs(want.astype(np.int16) - got.astype(np.int16)).max())
        p_want, p_got = psnr(want, hr, scale, "y"), psnr(got, hr, scale, "y")
        change = p_got - p_want if np.isfinite(p_want) and np.isfinite(p_got) else 0.0
        rows.append({"photo": name, "lr_size": list(lr.shape[:2]), "uint8_max_diff": levels,
                     "uint8_differ_share": float((want != got).mean()),
                     "psnr_fp32": p_want, "psnr": p_got, "psnr_change_db": change,
                     "passed": levels <= tol["uint8_levels"]
                     and abs(change) <= tol["psnr_db"]})
    return {"tolerance": tol, "images": rows,
            "uint8_max_diff": max(r["uint8_max_diff"] for r in rows),
            "psnr_change_db": max((r["psnr_change_db"] for r in rows), key=abs),
            "passed": all(r["passed"] for r in rows)}


def _key(sha256: str, engine: str, precision: str, cpu: str, tolerance: dict) -> str:
    import hashlib

    text = json.dumps([CHECK_VERSION, engine, precision, cpu, sorted(tolerance.items())])
    return f"{sha256}-{precision}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _invalid(result: Any, sha256: str, engine: str, precision: str, cpu: str,
             tolerance: dict) -> str | None:
    """Why a cached verdict cannot be trusted for this form, engine, precision and CPU (None:
    it can): it must be the very verdict :func:`ensure_checked` writes."""
    if not isinstance(result, dict):
        return "not a verdict"
    want = {"model_sha256": sha256, "engine": engine, "precision": precision, "cpu": cpu}
    wrong = [k for k, v in want.items() if result.get(k) != v]
    if wrong:
        return f"made for another {', '.join(wrong)}"
    if result.get("tolerance") != tolerance:
        return "made with another tolerance"
    levels, change, images = (result.get("uint8_max_diff"), result.get("psnr_change_db"),
                              result.get("images"))
    if not isinstance(result.get("passed"), bool) or isinstance(levels, bool) \
            or not isinstance(levels, int) or isinstance(change, bool) \
            or not isinstance(change, int | float) or not isinstance(images, list) \
            or not images:
        return "fields missing or of the wrong type"
    judged = levels <= tolerance["uint8_levels"] and abs(change) <= tolerance["psnr_db"]
    if result["passed"] and not judged:
        return "its numbers do not pass, yet it says passed"
    return None


def ensure_checked(cache: Path | None, sha256: str, engine: str, precision: str, cpu: str,
                   scale: int, make: Callable[[], tuple[Any, Any]],
                   tolerance: dict[str, float] | None = None) -> dict[str, Any]:
    """The verdict for this form on this engine, precision and CPU: read from the cache, or
    computed with ``make() -> (fp32 Predictor, reduced Predictor)`` and cached. Raises
    :class:`PrecisionError` when the form failed (now or before)."""
    from .. import fileio

    tol = dict(TOLERANCE if tolerance is None else tolerance)
    path = None if cache is None else \
        Path(cache) / "checks" / f"{_key(sha256, engine, precision, cpu, tol)}.json"
    result, from_cache = None, False
    if path is not None and path.is_file():
        why = None
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            why = f"unreadable: {getattr(exc, 'strerror', None) or exc}"
        else:
            why = _invalid(result, sha256, engine, precision, cpu, tol)
        if why is None:
            from_cache = True
        else:
            result = None
            warnings.warn(f"the cached precision check '{path}' failed its check ({why}): it "
                          "is made again", WdsrNote, stacklevel=2)
    if result is None:
        reference, candidate = make()
        result = {**compare(reference, candidate, scale, tol), "engine": engine,
                  "precision": precision, "cpu": cpu, "model_sha256": sha256}
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fileio.atomic_write(path, json.dumps(result, indent=1) + "\n")
            except (OSError, WdsrError) as exc:  # only costs the check next time
                what = getattr(exc, "strerror", None) or getattr(exc, "message", None) or exc
                warnings.warn(f"the precision check could not be cached in '{path.parent}' "
                              f"({what}); set WDSR_CACHE_DIR to a writable folder to keep it",
                              WdsrNote, stacklevel=2)
    result["from_cache"] = from_cache
    if not result["passed"]:
        raise PrecisionError(
            f"{precision} on {engine} is outside its tolerance for this model (8-bit values "
            f"up to {result['uint8_max_diff']} levels off, PSNR-Y change "
            f"{result['psnr_change_db']:+.4f} dB; allowed {tol['uint8_levels']} levels, "
            f"{tol['psnr_db']} dB)", "run it with --precision fp32", result)
    return result

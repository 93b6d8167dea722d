"""The one forward path: training validation, ``wdsr evaluate`` and ``wdsr upscale`` all run
images through :class:`Predictor`.

A Predictor wraps a *backend* (anything that maps an NCHW float32 batch to the upscaled NCHW
float32 batch, see :class:`.backends.Backend`) and adds what every caller needs:

* **A fixed window grid, exact by construction.** The network only ever sees windows of one
  shape, ``window`` x ``window`` LR pixels (:data:`WINDOW`, grown for models with a wide
  receptive field, see :func:`window_side`), or the whole image along an axis no longer than
  that. :func:`plan_windows` places them from the image size, the window and the halo alone:
  the first and last window of a row/column flush with the image borders (so the network's
  zero padding falls on true borders only), the others evenly spaced, neighbours overlapping
  by at least ``2 * receptive_radius`` and split in the middle of the overlap. Each kept pixel
  is at least the receptive radius away from every window edge that is not an image border,
  so it is computed from exactly the input pixels it would see untiled.
  No user setting changes which call computes a pixel, on what input shape or at what
  position in it, so the output cannot depend on one: this holds on any CPU, whatever
  oneDNN kernel it picks for that shape. (Batching several windows per call is not done:
  another batch size can pick other kernels.) Windows are streamed: one is on the device at a
  time, the output is assembled on the host, so memory is bounded by the window, not the image.
* **Self-ensemble (x8).** The eight dihedral transforms (flips and transpose) of each window
  are run, transformed back and averaged in float64, window by window: a transform keeps the
  window's halo on every side, so this is the whole-image ensemble with memory bounded by the
  window. (A fixed-shape model, whose windows have one shape, transforms the whole image.)
* **Errors are never swallowed.** An exception inside a window propagates to the caller.

The grid equals the whole-image result *mathematically* (the tests check it bit for bit with a
position-exact numpy backend, and that one pixel less of halo gives seams); with real kernels
a window and the whole image may differ in the last float bits, which is why the whole image
is never run as an alternative to the grid. See docs/upscale.md "Tiling: a fixed window grid".

Exported models (``wdsr export``) run through the same Predictor: :meth:`Predictor.from_model`
reads the I/O contract written next to the file (:mod:`.contract`) and runs the file with
:func:`.backends.load_exported` (MINDIR with MindSpore, ONNX with ONNX Runtime). A model exported
with a fixed input size is run by :class:`FixedSizeWindows`: that size is its window.

The output of :meth:`Predictor.predict` is float32 on the 0..255 scale and **not** clipped;
:meth:`Predictor.predict_uint8` clips and rounds (halves away from zero, as
:mod:`wdsr_cli.core.metrics` does).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WdsrError
from .backends import Backend, MindSporeBackend, load_exported

__all__ = [
    "FixedSizeWindows",
    "Predictor",
    "Tile",
    "WINDOW",
    "dihedral_transforms",
    "plan_windows",
    "to_uint8",
    "window_side",
]

TileCallback = Callable[[int, int], None]


# ------------------------------------------------------------------- fixed-size models


class NonFiniteOutput(WdsrError):
    """The backend returned NaN or infinity (broken weights, or an overflow at low precision)."""


class FixedSizeWindows:
    """Runs a backend that accepts only one input size ``(height, width)`` (a model exported
    with ``--input-size``) on any input at least that large, with the untiled result.

    The input is covered by the same window grid as the Predictor's (:func:`plan_windows`)
    with that size as the window, so every kept output pixel sees exactly the input it would
    see untiled. (A Predictor over this backend uses the size as its window, so each call
    passes straight through.) An input smaller than the fixed size (in either direction) cannot
    be computed exactly and is refused, as is tiling with a fixed side of at most twice the
    radius (no pixel would be kept).
    """

    def __init__(self, backend: Backend, size: tuple[int, int], scale: int,
                 receptive_radius: int) -> None:
        self.backend = backend
        self.size = (int(size[0]), int(size[1]))
        self.scale = int(scale)
        self.receptive_radius = int(receptive_radius)
        self.precision = getattr(backend, "precision", "fp32")
        self.name = f"{getattr(backend, 'name', type(backend).__name__)}, fixed " \
                    f"{self.size[0]}x{self.size[1]} input"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        fh, fw = self.size
        if (h, w) == (fh, fw):
            return np.asarray(self.backend(x))
        if h < fh or w < fw:
            raise WdsrError(
                f"this model was exported for a fixed {fh}x{fw} (HxW) input and cannot run a "
                f"smaller {h}x{w} one exactly",
                "inputs (and, with self-ensemble, their transposes) must be at least that "
                "large; export without --input-size for a model that takes any size")
        r = self.receptive_radius
        if (h > fh and fh <= 2 * r) or (w > fw and fw <= 2 * r):
            raise WdsrError(
                f"this model's fixed input size {fh}x{fw} (HxW) is too small to tile larger "
                f"images exactly (each side must be more than twice its receptive radius, {r})",
                "export again with a larger --input-size, or without it (dynamic shape)")
        s = self.scale
        out = np.empty((n, c, h * s, w * s), dtype=np.float32)
        for t in plan_windows(h, w, self.size, r, exact=True):
            y = np.asarray(self.backend(np.ascontiguousarray(x[:, :, t.cy0:t.cy1, t.cx0:t.cx1])))
            rows, cols, yr, yc = _kept(t, s)
            out[:, :, rows, cols] = y[:, :, yr, yc]
        return out


# ------------------------------------------------------------------------------ the window grid

# LR side of the network's input window, chosen by measurement:
# docs/upscale.md "The window side and the AVX2 cap"
WINDOW = 448


def window_side(receptive_radius: int, window: int = WINDOW) -> int:
    """The window side for a model: ``window``, grown for a wide receptive field so that at
    least half of each side is kept (a function of the model alone, never of a user setting)."""
    return max(int(window), 4 * int(receptive_radius))


@dataclass(frozen=True)
class Tile:
    """One window ``[cy0, cy1) x [cx0, cx1)`` sent to the network and the part of it that is
    kept, ``[y0, y1) x [x0, x1)`` (at least the halo away from every window edge that is not an
    image border)."""

    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


def _axis_windows(n: int, window: int, halo: int, exact: bool
                  ) -> list[tuple[int, int, int, int]]:
    """(keep start, keep end, window start, window end) along one axis of length ``n``.

    An axis no longer than the window is one window. Otherwise the fewest windows of at most
    ``window`` pixels (exactly ``window`` if ``exact``) whose kept parts cover the axis, all of
    one length, evenly spaced, the first and last flush with the image ends (so the network's
    zero padding falls on true borders only); neighbours split in the middle of their overlap.
    Shrinking the windows to the fewest that are needed keeps the halo overhead near
    ``2 * halo`` per window whatever ``n`` is (``n = window + 1`` would otherwise cost 2x).
    """
    if n <= window:
        return [(0, n, 0, n)]
    if window - 2 * halo < 1:
        raise WdsrError(f"a window of {window} px cannot be cut with a halo of {halo} px")
    k = 1 + -(-(n - window) // (window - 2 * halo))  # first/last keep side - halo, others - 2 halo
    side = window if exact else -(-(n + 2 * halo * (k - 1)) // k)
    starts = [i * (n - side) // (k - 1) for i in range(k)]
    bounds = [0] + [(starts[i] + starts[i + 1] + side) // 2 for i in range(k - 1)] + [n]
    return [(bounds[i], bounds[i + 1], starts[i], starts[i] + side) for i in range(k)]


def plan_windows(height: int, width: int, window: int | tuple[int, int], halo: int,
                 exact: bool = False) -> list[Tile]:
    """The windows (row-major) covering a ``height x width`` LR image.

    All windows of an image have one shape, at most ``window`` per side (exactly, if ``exact``
    and the image is at least that large); where they sit and how large they are depends on the
    image size, the window and the halo only.
    """
    wh, ww = (window, window) if _is_int(window) else window
    if height < 1 or width < 1:
        raise WdsrError(f"cannot tile an empty image ({height}x{width})")
    if wh < 1 or ww < 1 or halo < 0:
        raise WdsrError(f"window ({wh}x{ww}) must be >= 1 and halo ({halo}) >= 0")
    ys = _axis_windows(height, int(wh), halo, exact)
    xs = _axis_windows(width, int(ww), halo, exact)
    return [Tile(y0, y1, x0, x1, cy0, cy1, cx0, cx1)
            for (y0, y1, cy0, cy1) in ys for (x0, x1, cx0, cx1) in xs]


# --------------------------------------------------------------------------- self-ensemble


@dataclass(frozen=True)
class Dihedral:
    """One of the 8 symmetries of the square: optional transpose, then optional flips."""

    transpose: bool
    flip_rows: bool
    flip_cols: bool

    def apply(self, img: np.ndarray) -> np.ndarray:
        """HxWxC image -> transformed image (a view where possible)."""
        out = img.transpose(1, 0, 2) if self.transpose else img
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return out

    def invert(self, img: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`apply` (flips undo themselves, then the transpose)."""
        out = img
        if self.flip_cols:
            out = out[:, ::-1]
        if self.flip_rows:
            out = out[::-1]
        return out.transpose(1, 0, 2) if self.transpose else out


def dihedral_transforms() -> list[Dihedral]:
    """The identity first, then the other 7 transforms."""
    return [Dihedral(t, r, c) for t in (False, True) for r in (False, True) for c in (False, True)]


# ------------------------------------------------------------------------------- predictor


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Clip to 0..255 and round halves away from zero (as the metrics and MATLAB do)."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


def _kept(t: Tile, scale: int) -> tuple[slice, slice, slice, slice]:
    """(output rows, output columns, rows, columns of the window's result) of the kept part."""
    s = scale
    oy, ox = (t.y0 - t.cy0) * s, (t.x0 - t.cx0) * s
    th, tw = (t.y1 - t.y0) * s, (t.x1 - t.x0) * s
    return (slice(t.y0 * s, t.y1 * s), slice(t.x0 * s, t.x1 * s),
            slice(oy, oy + th), slice(ox, ox + tw))


class Predictor:
    """Super-resolves RGB images of any size with one backend (see the module docstring).

    ``scale``: the backend's upscaling factor. ``receptive_radius``: LR pixels an output pixel
    depends on, on each side (``model_info.receptive_radius``); it is the windows' halo.
    ``window``: the LR window side (or ``(rows, cols)``), default :func:`window_side`; it is
    a property of the engine, not a user setting. ``self_ensemble``: x8 averaging.
    ``meta`` holds the checkpoint metadata when built by :meth:`from_checkpoint`.
    """

    def __init__(self, backend: Backend, scale: int, receptive_radius: int, *,
                 self_ensemble: bool = False,
                 window: int | tuple[int, int] | None = None) -> None:
        if not callable(backend):
            raise TypeError("backend must be callable (NCHW float32 -> NCHW float32)")
        # a fixed-shape model gets windows of exactly its size; see FixedSizeWindows
        self.exact_window = isinstance(backend, FixedSizeWindows)
        if self.exact_window:
            window = backend.size
        elif window is None:  # the engine's own window (OnnxBackend: larger), else WINDOW
            window = window_side(receptive_radius if _is_int(receptive_radius) else 0,
                                 getattr(backend, "window", WINDOW))
        sides = (window, window) if _is_int(window) else tuple(window)
        for name, value, low in (("scale", scale, 1), ("receptive_radius", receptive_radius, 0),
                                 *(("window", v, 1) for v in sides)):
            if not _is_int(value) or value < low:
                raise WdsrError(f"{name} must be an integer >= {low}, got {value!r}")
        self.backend = backend
        self.scale = int(scale)
        self.receptive_radius = int(receptive_radius)
        self.window = (int(sides[0]), int(sides[1]))
        self.self_ensemble = bool(self_ensemble)
        self.meta: dict[str, Any] | None = None
        self.source: str = getattr(backend, "name", type(backend).__name__)
        self.precision: str = getattr(backend, "precision", "fp32")
        self.precision_check: dict[str, Any] | None = None  # set by weights.load_predictor
        self.precision_why: str | None = None  # set by weights.load_predictor when it differs

    # -- construction
    @classmethod
    def from_network(cls, net: Any, self_ensemble: bool = False) -> Predictor:
        """A Predictor over a live WDSR cell (e.g. the network being trained)."""
        from ..model_info import receptive_radius

        cfg = net.cfg
        return cls(MindSporeBackend(net), cfg.scale, receptive_radius(cfg),
                   self_ensemble=self_ensemble)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, self_ensemble: bool = False) -> Predictor:
        """Rebuild the network a checkpoint describes (weight norm folded: faster)."""
        from ..checkpoints import load_network

        net, meta = load_network(path, weight_norm=False)
        predictor = cls.from_network(net, self_ensemble=self_ensemble)
        predictor.meta = meta
        predictor.source = str(Path(path))
        return predictor

    @classmethod
    def from_model(cls, path: str | os.PathLike, self_ensemble: bool = False,
                   contract: dict[str, Any] | None = None, engine: str | None = None,
                   precision: str = "fp32") -> Predictor:
        """A Predictor over a model written by ``wdsr export`` (``.mindir``: MindSpore,
        ``.onnx``: ONNX Runtime, or ``engine="openvino"``, at ``precision`` fp32 or bf16).
        Scale and receptive radius come from the contract file ``<path>.json`` (or
        ``contract``). A fixed-shape model's input size is the window (see
        :class:`FixedSizeWindows`). ``meta`` is the contract.
        """
        backend, contract = load_exported(path, contract, engine, precision)
        if contract.get("input_size"):
            backend = FixedSizeWindows(backend, tuple(contract["input_size"]), contract["scale"],
                                       contract["receptive_radius"])
        predictor = cls(backend, contract["scale"], contract["receptive_radius"],
                        self_ensemble=self_ensemble)
        predictor.meta = contract
        predictor.source = str(Path(path))
        return predictor

    # -- planning
    def windows_for(self, height: int, width: int) -> int:
        """How many backend calls :meth:`predict` makes for an image of this size."""
        n = len(self._plan(height, width))
        if not self.self_ensemble:
            return n
        if self.exact_window:  # fixed-shape model: the whole image is transformed
            return 4 * n + 4 * len(self._plan(width, height))
        return 8 * n

    def _plan(self, height: int, width: int) -> list[Tile]:
        return plan_windows(height, width, self.window, self.receptive_radius, self.exact_window)

    # -- running
    def predict(self, rgb: np.ndarray, on_tile: TileCallback | None = None) -> np.ndarray:
        """HxWx3 RGB on 0..255 (any real dtype) -> (H*s)x(W*s)x3 float32, not clipped.

        ``on_tile(done, total)`` is called after every backend call (window).
        """
        x = _check_rgb(rgb)
        counter = _Counter(self.windows_for(*x.shape[:2]), on_tile)
        if self.self_ensemble and self.exact_window:
            return self._ensemble_whole_image(x, counter)
        return self._forward(x, counter, np.float32, None)

    def predict_uint8(self, rgb_uint8: np.ndarray, on_tile: TileCallback | None = None
                      ) -> np.ndarray:
        """HxWx3 uint8 -> (H*s)x(W*s)x3 uint8 (clipped, rounded halves away from zero).
        Each window is rounded as it arrives (no float image is held)."""
        if self.self_ensemble and self.exact_window:
            return to_uint8(self.predict(rgb_uint8, on_tile=on_tile))
        x = _check_rgb(rgb_uint8)
        counter = _Counter(self.windows_for(*x.shape[:2]), on_tile)
        return self._forward(x, counter, np.uint8, to_uint8)

    def _forward(self, x: np.ndarray, counter: _Counter, dtype: Any,
                 convert: Callable[[np.ndarray], np.ndarray] | None,
                 ensemble: bool | None = None) -> np.ndarray:
        """The window grid: each window's result (self-ensembled window by window: the 8
        transforms of a window keep its halo on every side, so this is the whole-image
        ensemble, with memory bounded by the window) is cut to its kept part and stored.
        ``ensemble``: False for one pass of :meth:`_ensemble_whole_image` (already a
        transform of the whole image); None follows ``self_ensemble``."""
        s = self.scale
        h, w = x.shape[:2]
        out = np.empty((h * s, w * s, 3), dtype=dtype)
        if ensemble is None:
            ensemble = self.self_ensemble
        for t in self._plan(h, w):
            crop = x[t.cy0:t.cy1, t.cx0:t.cx1]
            y = self._ensemble_window(crop, counter) if ensemble else self._call(crop, counter)
            rows, cols, yr, yc = _kept(t, s)
            out[rows, cols] = y[yr, yc] if convert is None else convert(y[yr, yc])
        return out

    def _ensemble_window(self, crop: np.ndarray, counter: _Counter) -> np.ndarray:
        """The mean of the 8 dihedral passes over one window (float64 sum, float32 out)."""
        acc = np.zeros((crop.shape[0] * self.scale, crop.shape[1] * self.scale, 3), np.float64)
        for t in dihedral_transforms():
            acc += t.invert(self._call(t.apply(crop), counter))
        acc /= 8.0
        return acc.astype(np.float32)

    def _ensemble_whole_image(self, x: np.ndarray, counter: _Counter) -> np.ndarray:
        """Self-ensemble for a fixed-shape model: its windows have one shape, so each
        transform of the whole image is windowed (a transposed window would not fit it)."""
        acc = np.zeros((x.shape[0] * self.scale, x.shape[1] * self.scale, 3), np.float64)
        for t in dihedral_transforms():
            acc += t.invert(self._forward(t.apply(x), counter, np.float32, None, False))
        acc /= 8.0
        return acc.astype(np.float32)

    def _call(self, crop: np.ndarray, counter: _Counter) -> np.ndarray:
        """One backend call: an HxWx3 crop -> its (H*s)x(W*s)x3 float32 result."""
        s = self.scale
        batch = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32)
        y = np.asarray(self.backend(batch))
        ch, cw = crop.shape[:2]
        if y.shape != (1, 3, ch * s, cw * s):
            raise WdsrError(
                f"the model returned shape {tuple(y.shape)} for an input of "
                f"{tuple(batch.shape)}; expected {(1, 3, ch * s, cw * s)}",
                f"the model does not upscale by x{s}: use a model made for this scale")
        if not np.isfinite(y).all():  # broken weights give NaN: never a black image, exit 0
            raise NonFiniteOutput(
                "the model gave NaN or infinite values: its weights are broken",
                "use another checkpoint or model (a diverged training writes such weights); "
                "at --precision bf16 or fp16, try --precision fp32")
        counter.step()
        return y[0].transpose(1, 2, 0)


class _Counter:
    def __init__(self, total: int, callback: TileCallback | None) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    """The image as an array, checked; each window is cast to float32 on its own, so a big
    uint8 image is never held as float."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise WdsrError(f"expected an HxWx3 RGB image, got an array of shape {arr.shape}",
                        "convert gray images to RGB and drop the alpha channel first")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise WdsrError(f"cannot upscale an empty image ({arr.shape[0]}x{arr.shape[1]})")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) \
            or arr.dtype == np.bool_:
        raise WdsrError(f"unsupported image dtype {arr.dtype}", "pass uint8 or float 0..255")
    return arr

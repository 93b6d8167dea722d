"""The one forward path: training validation, ``wdsr evaluate`` and ``wdsr upscale`` all run
images through :class:`Predictor`.

A Predictor wraps a *backend* (anything that maps an NCHW float32 batch to the upscaled NCHW
float32 batch, see :class:`.backends.Backend`) and adds what every caller needs:

* **Tiling with an exact halo.** ``tile`` is the side of an LR tile (0 = the whole image in one
  call; an image within the tile's memory budget is not cut, see :func:`tile_sides`). Each
  tile is sent with a halo of ``receptive_radius`` LR pixels on every side that is not a true
  image border, so every output pixel is computed from exactly the input pixels it
  would see untiled (zero padding happens only at the real borders, inside the network).
  Tiles are streamed: one tile plus halo is on the device at a time; the output is assembled on
  the host. Every crop of one image has the same shape (the crops of the last row/column are
  moved inwards instead of being cut short), so a tiled run uses a single input shape.
* **Self-ensemble (x8).** The eight dihedral transforms of the input (flips and transpose)
  are each run, transformed back and averaged in float64.
* **Errors are never swallowed.** An exception inside a tile propagates to the caller.

Numerics of tiling (measured, MindSpore 2.10 CPU): the halo makes tiled and untiled output
*mathematically* identical, and the tiling arithmetic here is exact (the tests check it bit for
bit with a position-independent numpy backend). For the real kernels two more things are needed,
because oneDNN computes a pixel differently in different input shapes: (1) inference processes
cap oneDNN at AVX (``runtime.prepare_environment``): with AVX2 the vectorised main loop uses FMA
and the remainder loop does not, which made ~6 values per million differ by one 8-bit level;
(2) :func:`tile_sides` never makes a crop smaller than the memory budget requires, since very
small crops select other gemm blockings. With both, tiled output equalled untiled output bit
for bit in every measured case (``tests/test_tiling_exact.py``). ``tile`` is a budget: crops
hold about ``(tile + 2 * halo) ** 2`` pixels. See README.md ("upscale", "Tiling").

Exported models (``wdsr export``) run through the same Predictor: :meth:`Predictor.from_model`
reads the I/O contract written next to the file (:mod:`.contract`) and runs the file with
:func:`.backends.load_exported` (MINDIR with MindSpore, ONNX with ONNX Runtime). A model exported
with a fixed input size is run by :class:`FixedSizeWindows`: windows of exactly that size with
the same exact-halo arithmetic, so any image at least that large gives the untiled result.

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

from .backends import Backend, MindSporeBackend, load_exported
from .errors import WdsrError

__all__ = [
    "FixedSizeWindows",
    "Predictor",
    "Tile",
    "dihedral_transforms",
    "plan_tiles",
    "to_uint8",
]

TileCallback = Callable[[int, int], None]


# ------------------------------------------------------------------- fixed-size models


class FixedSizeWindows:
    """Runs a backend that accepts only one input size ``(height, width)`` (a model exported
    with ``--input-size``) on any input at least that large, with the untiled result.

    The input is covered with windows of exactly that size, placed by the Predictor's own
    tiling arithmetic (:func:`_axis_plan`): each window keeps only the pixels at least
    ``receptive_radius`` LR pixels away from its edges that are not edges of the input, so
    every kept output pixel sees exactly the input it would see untiled. An input smaller than
    the fixed size (in either direction) cannot be computed exactly and is refused, as is
    tiling with a fixed side of at most twice the radius (no pixel would be kept).
    """

    def __init__(self, backend: Backend, size: tuple[int, int], scale: int,
                 receptive_radius: int) -> None:
        self.backend = backend
        self.size = (int(size[0]), int(size[1]))
        self.scale = int(scale)
        self.receptive_radius = int(receptive_radius)
        self.name = f"{getattr(backend, 'name', type(backend).__name__)}, fixed " \
                    f"{self.size[0]}x{self.size[1]} input"

    def _axis(self, n: int, fixed: int) -> list[tuple[int, int, int, int]]:
        if n == fixed:
            return [(0, n, 0, n)]
        r = self.receptive_radius
        if fixed <= 2 * r:
            fh, fw = self.size
            raise WdsrError(
                f"this model's fixed input size {fh}x{fw} (HxW) is too small to tile larger "
                f"images exactly (each side must be more than twice its receptive radius, {r})",
                "export again with a larger --input-size, or without it (dynamic shape)")
        return _axis_plan(n, fixed - 2 * r, r)

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
        s = self.scale
        out = np.empty((n, c, h * s, w * s), dtype=np.float32)
        for y0, y1, cy0, cy1 in self._axis(h, fh):
            for x0, x1, cx0, cx1 in self._axis(w, fw):
                y = np.asarray(self.backend(np.ascontiguousarray(x[:, :, cy0:cy1, cx0:cx1])))
                oy, ox = (y0 - cy0) * s, (x0 - cx0) * s
                th, tw = (y1 - y0) * s, (x1 - x0) * s
                out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = y[:, :, oy:oy + th, ox:ox + tw]
        return out



# --------------------------------------------------------------------------------- tiling


@dataclass(frozen=True)
class Tile:
    """One LR tile ``[y0, y1) x [x0, x1)`` and the crop ``[cy0, cy1) x [cx0, cx1)`` sent to the
    network to compute it (the tile plus its halo, clipped to the image)."""

    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


def _axis_plan(n: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """(start, end, crop start, crop end) along one axis of length ``n``.

    All crops have the same length ``min(tile + 2 * halo, n)``; a crop that would stick out of
    the image is moved inwards, so it still contains ``[start - halo, end + halo)`` clipped to
    the image and the true borders stay at the crop edges.
    """
    if tile <= 0 or tile >= n:
        return [(0, n, 0, n)]
    crop = min(tile + 2 * halo, n)
    plan = []
    for start in range(0, n, tile):
        end = min(start + tile, n)
        c0 = min(max(start - halo, 0), n - crop)
        plan.append((start, end, c0, c0 + crop))
    return plan


def tile_sides(height: int, width: int, tile: int, halo: int) -> tuple[int, int]:
    """The (rows, cols) of a tile's core for a ``height x width`` image; 0 = that axis is not cut.

    ``tile`` is a memory budget: a crop holds at most about ``(tile + 2 * halo) ** 2`` pixels.
    An image within the budget is not cut at all, and an axis that fits inside one crop is not
    cut while the other axis gets the whole budget: no crop is thinner than it must be. That
    keeps every crop, like the untiled image, in the size range where oneDNN's convolutions
    compute each pixel the same way (small crops select other gemm blockings; see the module
    docstring).
    """
    if tile <= 0:
        return 0, 0
    window = tile + 2 * halo
    budget = window * window
    if height * width <= budget:
        return 0, 0
    if height <= window:
        return 0, max(tile, budget // height - 2 * halo)
    if width <= window:
        return max(tile, budget // width - 2 * halo), 0
    return tile, tile


def plan_tiles(height: int, width: int, tile: int, halo: int) -> list[Tile]:
    """The tiles (row-major) covering a ``height x width`` LR image; ``tile`` 0 = one tile."""
    if height < 1 or width < 1:
        raise WdsrError(f"cannot tile an empty image ({height}x{width})")
    if tile < 0 or halo < 0:
        raise WdsrError(f"tile ({tile}) and halo ({halo}) must be >= 0")
    rows, cols = tile_sides(height, width, tile, halo)
    ys = _axis_plan(height, rows, halo)
    xs = _axis_plan(width, cols, halo)
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


class Predictor:
    """Super-resolves RGB images of any size with one backend (see the module docstring).

    ``scale``: the backend's upscaling factor. ``receptive_radius``: LR pixels an output pixel
    depends on, on each side (``model_info.receptive_radius``); it is the tile halo.
    ``tile``: LR tile side, 0 = the whole image in one call. ``self_ensemble``: x8 averaging.
    ``meta`` holds the checkpoint metadata when built by :meth:`from_checkpoint`.
    """

    def __init__(self, backend: Backend, scale: int, receptive_radius: int, tile: int = 0,
                 self_ensemble: bool = False) -> None:
        if not callable(backend):
            raise TypeError("backend must be callable (NCHW float32 -> NCHW float32)")
        for name, value, low in (("scale", scale, 1), ("receptive_radius", receptive_radius, 0),
                                 ("tile", tile, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise WdsrError(f"{name} must be an integer >= {low}, got {value!r}")
        self.backend = backend
        self.scale = int(scale)
        self.receptive_radius = int(receptive_radius)
        self.tile = int(tile)
        self.self_ensemble = bool(self_ensemble)
        self.meta: dict[str, Any] | None = None
        self.source: str = getattr(backend, "name", type(backend).__name__)

    # -- construction
    @classmethod
    def from_network(cls, net: Any, tile: int = 0, self_ensemble: bool = False) -> Predictor:
        """A Predictor over a live WDSR cell (e.g. the network being trained)."""
        from .model_info import receptive_radius

        cfg = net.cfg
        return cls(MindSporeBackend(net), cfg.scale, receptive_radius(cfg), tile, self_ensemble)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, tile: int = 0,
                        self_ensemble: bool = False) -> Predictor:
        """Rebuild the network a checkpoint describes (weight norm folded: faster)."""
        from .checkpoints import load_network

        net, meta = load_network(path, weight_norm=False)
        predictor = cls.from_network(net, tile=tile, self_ensemble=self_ensemble)
        predictor.meta = meta
        predictor.source = str(Path(path))
        return predictor

    @classmethod
    def from_model(cls, path: str | os.PathLike, tile: int = 0, self_ensemble: bool = False,
                   contract: dict[str, Any] | None = None) -> Predictor:
        """A Predictor over a model written by ``wdsr export`` (``.mindir``: MindSpore,
        ``.onnx``: ONNX Runtime). Scale and receptive radius come from the contract file
        ``<path>.json`` (or ``contract``). A fixed-shape model always runs in windows of its
        own size (see :class:`FixedSizeWindows`), so ``tile`` is ignored (set to 0) for it.
        ``meta`` is the contract.
        """
        backend, contract = load_exported(path, contract)
        if contract.get("input_size"):
            backend = FixedSizeWindows(backend, tuple(contract["input_size"]), contract["scale"],
                                       contract["receptive_radius"])
            tile = 0
        predictor = cls(backend, contract["scale"], contract["receptive_radius"], tile,
                        self_ensemble)
        predictor.meta = contract
        predictor.source = str(Path(path))
        return predictor

    # -- planning
    def tiles_for(self, height: int, width: int) -> int:
        """How many backend calls :meth:`predict` makes for an image of this size."""
        n = len(plan_tiles(height, width, self.tile, self.receptive_radius))
        if not self.self_ensemble:
            return n
        m = len(plan_tiles(width, height, self.tile, self.receptive_radius))
        return 4 * n + 4 * m

    # -- running
    def predict(self, rgb: np.ndarray, on_tile: TileCallback | None = None) -> np.ndarray:
        """HxWx3 RGB on 0..255 (any real dtype) -> (H*s)x(W*s)x3 float32, not clipped.

        ``on_tile(done, total)`` is called after every backend call.
        """
        x = _check_rgb(rgb)
        h, w = x.shape[:2]
        total = self.tiles_for(h, w)
        counter = _Counter(total, on_tile)
        if not self.self_ensemble:
            return self._forward(x, counter)
        acc = np.zeros((h * self.scale, w * self.scale, 3), dtype=np.float64)
        for t in dihedral_transforms():
            acc += t.invert(self._forward(np.ascontiguousarray(t.apply(x)), counter))
        acc /= 8.0
        return acc.astype(np.float32)

    def predict_uint8(self, rgb_uint8: np.ndarray, on_tile: TileCallback | None = None
                      ) -> np.ndarray:
        """HxWx3 uint8 -> (H*s)x(W*s)x3 uint8 (clipped, rounded halves away from zero)."""
        return to_uint8(self.predict(rgb_uint8, on_tile=on_tile))

    def _forward(self, x: np.ndarray, counter: _Counter) -> np.ndarray:
        s = self.scale
        h, w = x.shape[:2]
        out = np.empty((h * s, w * s, 3), dtype=np.float32)
        for t in plan_tiles(h, w, self.tile, self.receptive_radius):
            crop = x[t.cy0:t.cy1, t.cx0:t.cx1]
            batch = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32)
            y = np.asarray(self.backend(batch))
            ch, cw = t.cy1 - t.cy0, t.cx1 - t.cx0
            if y.shape != (1, 3, ch * s, cw * s):
                raise WdsrError(
                    f"the model returned shape {tuple(y.shape)} for an input of "
                    f"{tuple(batch.shape)}; expected {(1, 3, ch * s, cw * s)}",
                    f"the model does not upscale by x{s}: use a model made for this scale")
            oy, ox = (t.y0 - t.cy0) * s, (t.x0 - t.cx0) * s
            th, tw = (t.y1 - t.y0) * s, (t.x1 - t.x0) * s
            out[t.y0 * s:t.y1 * s, t.x0 * s:t.x1 * s] = \
                y[0, :, oy:oy + th, ox:ox + tw].transpose(1, 2, 0)
            counter.step()
        return out


class _Counter:
    def __init__(self, total: int, callback: TileCallback | None) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise WdsrError(f"expected an HxWx3 RGB image, got an array of shape {arr.shape}",
                        "convert gray images to RGB and drop the alpha channel first")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise WdsrError(f"cannot upscale an empty image ({arr.shape[0]}x{arr.shape[1]})")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) \
            or arr.dtype == np.bool_:
        raise WdsrError(f"unsupported image dtype {arr.dtype}", "pass uint8 or float 0..255")
    return arr.astype(np.float32, copy=False)

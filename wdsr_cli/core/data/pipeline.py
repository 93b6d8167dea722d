"""The training data reader: random aligned LR/HR patches from prepare-data's shards.

numpy only (no MindSpore): the trainer turns the float32 NCHW arrays into tensors itself.

Every batch is a pure function of ``(seed, step, rank, world_size)``:

* global batch ``G = batch_size * world_size``; ``steps_per_epoch = num_subimages // G``
  (at least 1; the remainder of an epoch is dropped);
* epoch ``e = step // steps_per_epoch`` visits the sub-images in the order of
  ``np.random.default_rng([seed, e]).permutation(num_subimages)``;
* global slot ``k`` (0..G-1) of a step uses sub-image ``perm[(step % spe) * G + k]`` and draws its
  LR crop corner ``(y, x)`` and its dihedral transform ``t`` (0..7: bit 0 horizontal flip, bit 1
  vertical flip, bit 2 transpose, in that order) from ``np.random.default_rng([seed, step, k])``;
* rank ``r`` takes slots ``r*B .. r*B+B-1``.

So training can resume at any step exactly, and one process with batch ``G`` sees the union of
what ``world_size`` ranks with batch ``B`` see, in the same order.

With a ``degrade`` section that changes anything (:func:`degrade.active`), the LR patch is not
read from the prepared LR shard as it is: slot ``k`` draws its chain from
``np.random.default_rng([seed, step, k, 1])`` (:func:`degrade.draw`), applies it to the region
around the patch (8 LR pixels of context each side where the sub-image has them, so blur,
resize and JPEG see real neighbours) and cuts the LR patch out of the result. A chain with a
blur or another kernel starts from the HR region; one without starts from the prepared
(MATLAB-bicubic) LR region, which is that downscale already. Shards are memory-mapped;
a patch is two small slice copies, far above 1,000 patch pairs per second on one core.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WdsrError
from .degrade import Chain, active, apply_chain, degrade_lr, draw, for_image, parse_spec

__all__ = ["Slot", "TrainPatches", "dihedral", "load_validation", "read_manifest",
           "validation_entries"]

_HINT = "run wdsr prepare-data first (see wdsr prepare-data --help)"
_CONTEXT = 8  # LR pixels of HR context around a patch that is degraded on the fly


def read_manifest(prepared_dir: str | Path) -> dict[str, Any]:
    """The manifest of a prepared folder; WdsrError with a hint when missing or corrupt."""
    d = Path(prepared_dir)
    if not d.is_dir():
        raise WdsrError(f"prepared data folder '{d}' does not exist", _HINT)
    path = d / "manifest.json"
    if not path.is_file():
        raise WdsrError(f"'{d}' has no manifest.json (preparation not finished or never run)",
                        _HINT)
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(m, dict) or m.get("format") != "wdsr-prepared":
            raise ValueError("not a wdsr-prepared manifest")
        for key in ("dataset_id", "options", "train", "valid"):
            if key not in m:
                raise ValueError(f"no '{key}'")
    except (OSError, ValueError) as exc:
        raise WdsrError(f"'{path}' is damaged ({exc})",
                        "rerun wdsr prepare-data with --force") from None
    return m


def _check_prepared_for(m: dict[str, Any], scale: int, d: Path) -> None:
    scales = m["options"].get("scales", [])
    if scale not in scales:
        have = ", ".join(f"x{s}" for s in scales) or "no scale"
        raise WdsrError(f"'{d}' is prepared for {have}, not x{scale}",
                        f"run wdsr prepare-data --scales {scale} (into another --out)")


def _open(d: Path, entry: dict[str, Any]) -> np.ndarray:
    path = d / entry["file"]
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise WdsrError(f"cannot read shard '{path}': {exc}",
                        "run wdsr prepare-data --verify (or rerun it with --force)") from None
    if list(arr.shape) != list(entry["shape"]) or arr.dtype != np.uint8:
        raise WdsrError(f"shard '{path}' is {arr.shape} {arr.dtype}, the manifest says "
                        f"{tuple(entry['shape'])} uint8", "run wdsr prepare-data --verify")
    return arr.view(np.ndarray)  # plain ndarray over the same mapping: cheaper slicing


def dihedral(a: np.ndarray, t: int) -> np.ndarray:
    """One of the 8 symmetries of the square on an HxWxC array (a view)."""
    if t & 1:
        a = a[:, ::-1]
    if t & 2:
        a = a[::-1]
    if t & 4:
        a = a.transpose(1, 0, 2)
    return a


@dataclass(frozen=True)
class Slot:
    """What global slot ``k`` of a step uses: sub-image, LR corner, transform."""

    subimage: int
    y: int
    x: int
    transform: int


class TrainPatches:
    """Random aligned (LR, HR) training patches from a prepared folder (see module doc)."""

    def __init__(self, prepared_dir, scale: int, patch_size: int, batch_size: int, seed: int,
                 augment: bool = True, rank: int = 0, world_size: int = 1,
                 degrade: Any = None) -> None:
        d = Path(prepared_dir)
        m = read_manifest(d)
        _check_prepared_for(m, scale, d)
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise WdsrError(f"bad batch layout: batch {batch_size}, rank {rank} of {world_size}")
        crop = int(m["options"]["crop_size"])
        if patch_size < 1 or patch_size * scale > crop:
            raise WdsrError(f"an LR patch of {patch_size} at x{scale} needs {patch_size * scale} "
                            f"HR pixels, larger than the prepared sub-images ({crop})",
                            f"use data.patch_size <= {crop // scale} or prepare with a larger "
                            "--crop-size")
        self.scale, self.patch_size = scale, patch_size
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.rank, self.world_size = rank, world_size
        self.degrade = degrade if degrade is not None and active(degrade) else None
        self.dataset_id: str = m["dataset_id"]
        self.lr_size = crop // scale
        self._hr, self._lr, index = [], [], []
        for entry in m["train"]:
            n = int(entry["subimages"])
            if n < 1:
                continue
            self._hr.append(_open(d, entry["outputs"]["hr"]))
            self._lr.append(_open(d, entry["outputs"][f"x{scale}"]))
            f = len(self._hr) - 1
            index += [(f, j) for j in range(n)]
        self._index = np.asarray(index, dtype=np.int64).reshape(-1, 2)
        self.num_subimages: int = len(index)
        g = batch_size * world_size
        if g > self.num_subimages:
            raise WdsrError(f"a global batch of {g} ({batch_size} x {world_size} devices) is "
                            f"larger than the {self.num_subimages} prepared sub-images",
                            "lower data.batch_size or prepare more data (smaller --crop-step)")
        self.steps_per_epoch: int = max(1, self.num_subimages // g)
        self._perm_cache: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()

    # -------------------------------------------------------------------------- sampling

    def _perm(self, epoch: int) -> np.ndarray:
        with self._lock:
            cached = self._perm_cache
            if cached is None or cached[0] != epoch:
                perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_subimages)
                self._perm_cache = cached = (epoch, perm)
        return cached[1]

    def slots(self, step: int) -> list[Slot]:
        """The slots of this rank at ``step`` (global slots rank*B .. rank*B+B-1)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        g = self.batch_size * self.world_size
        perm = self._perm(step // self.steps_per_epoch)
        base = (step % self.steps_per_epoch) * g
        hi = self.lr_size - self.patch_size + 1
        out = []
        for k in range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size):
            rng = np.random.default_rng([self.seed, step, k])
            y, x = (int(v) for v in rng.integers(0, hi, size=2))
            t = int(rng.integers(0, 8)) if self.augment else 0
            out.append(Slot(int(perm[base + k]), y, x, t))
        return out

    def chain(self, step: int, k: int) -> Chain | None:
        """The degradation global slot ``k`` of ``step`` draws (None: the prepared clean LR)."""
        if self.degrade is None:
            return None
        return draw(self.degrade, np.random.default_rng([self.seed, step, k, 1]))

    def _degraded_lr(self, f: int, j: int, y: int, x: int, chain: Chain) -> np.ndarray:
        p, s, n = self.patch_size, self.scale, self.lr_size
        y0, x0 = max(0, y - _CONTEXT), max(0, x - _CONTEXT)
        y1, x1 = min(n, y + p + _CONTEXT), min(n, x + p + _CONTEXT)
        if chain.blur is None and chain.kernel == "bicubic":  # the prepared LR is that downscale
            lr = degrade_lr(chain, np.ascontiguousarray(self._lr[f][j, y0:y1, x0:x1]))
        else:
            region = self._hr[f][j, y0 * s:y1 * s, x0 * s:x1 * s]
            lr = apply_chain(chain, np.ascontiguousarray(region), s)
        return lr[y - y0:y - y0 + p, x - x0:x - x0 + p]

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(LR, HR) float32 NCHW on the 0..255 scale: (B,3,p,p) and (B,3,p*s,p*s)."""
        p, s = self.patch_size, self.scale
        lr = np.empty((self.batch_size, p, p, 3), dtype=np.uint8)
        hr = np.empty((self.batch_size, p * s, p * s, 3), dtype=np.uint8)
        for i, slot in enumerate(self.slots(step)):
            f, j = self._index[slot.subimage]
            y, x = slot.y, slot.x
            chain = self.chain(step, self.rank * self.batch_size + i)
            patch = self._lr[f][j, y:y + p, x:x + p] if chain is None else \
                self._degraded_lr(f, j, y, x, chain)
            lr[i] = dihedral(patch, slot.transform)
            hr[i] = dihedral(self._hr[f][j, y * s:(y + p) * s, x * s:(x + p) * s],
                             slot.transform)
        return (np.ascontiguousarray(lr.transpose(0, 3, 1, 2), dtype=np.float32),
                np.ascontiguousarray(hr.transpose(0, 3, 1, 2), dtype=np.float32))

    def iterate(self, start_step: int, end_step: int, prefetch: int = 4):
        """Yield ``(step, lr, hr, wait_seconds)`` for steps in [start, end), made ahead of time
        by a background thread; ``wait_seconds`` is how long the consumer waited. Closing the
        generator (``close()``, garbage collection, an exception in the loop) stops the thread.
        """
        q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()

        def produce() -> None:
            try:
                for step in range(start_step, end_step):
                    item = (step, *self.batch(step))
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.05)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                _put_until(q, stop, exc)

        thread = threading.Thread(target=produce, name="wdsr-prefetch", daemon=True)
        thread.start()
        try:
            for _ in range(start_step, end_step):
                t0 = time.perf_counter()
                item = q.get()
                waited = time.perf_counter() - t0
                if isinstance(item, BaseException):
                    raise item
                step, lr, hr = item
                yield step, lr, hr, waited
        finally:
            stop.set()
            while True:  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
            thread.join(timeout=5)


def _put_until(q: queue.Queue, stop: threading.Event, item) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return
        except queue.Full:
            continue


def validation_entries(prepared_dir, scale: int, limit: int = 0) -> list[dict[str, Any]]:
    """The manifest entries of the validation images (sorted by name, the first ``limit``;
    0 = all); WdsrError when there are none (checked before a run folder is made)."""
    d = Path(prepared_dir)
    m = read_manifest(d)
    _check_prepared_for(m, scale, d)
    entries = sorted(m["valid"], key=lambda e: e["name"])
    if limit:
        entries = entries[:limit]
    if not entries:
        raise WdsrError(f"'{d}' has no validation images",
                        "prepare DIV2K with DIV2K_valid_HR, or a folder with --valid-count N")
    return entries


def load_validation(prepared_dir, scale: int, limit: int = 0, degrade_spec: str = ""
                    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(name, lr uint8 HxWx3, hr uint8 (H*s)x(W*s)x3)] sorted by name; limit 0 = all.

    ``degrade_spec`` (``wdsr evaluate --degrade``'s words): the LR is made from the HR image by
    that chain instead of read from the prepared clean LR."""
    chain = parse_spec(degrade_spec, "degrade.val_spec") if degrade_spec else None
    d = Path(prepared_dir)
    entries = validation_entries(d, scale, limit)
    out = []
    for e in entries:
        hr = np.array(_open(d, e["outputs"]["hr"]))
        if chain is None:
            lr = np.array(_open(d, e["outputs"][f"x{scale}"]))
        else:
            lr = apply_chain(for_image(chain, e["name"]), hr, scale)
        out.append((e["name"], lr, hr))
    return out

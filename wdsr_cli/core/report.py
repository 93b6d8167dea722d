"""The visual report of an evaluation: one HTML page plus its PNGs in a folder.

``wdsr evaluate --report DIR`` and every validation of ``wdsr train`` (``runs/<name>/report``)
write it. For each image it shows the two crops where the model gains most and least over the
MATLAB bicubic, chosen from a per-pixel error map (never hand-picked), as HR | bicubic | model
at the same nearest-neighbour zoom, each with its local PSNR.

How a crop is chosen (:func:`choose_crops`), exact by construction (integers only, so every CPU
picks the same crop):

* per-pixel squared error of bicubic and of the model against HR: on the integer luma
  ``66 R + 129 G + 25 B`` (BT.601 weights scaled to integers) for protocol ``y``, summed over
  R, G, B for ``rgb``; the map is ``bicubic error - model error`` (int64);
* summed over every ``size x size`` window that lies inside the protocol's border shave
  (a summed-area table, exact in int64);
* "most": the largest window sum; "least": the smallest among windows that do not overlap the
  first one (any window if none is left). Ties go to the smallest row, then column.

The local PSNRs shown are :func:`metrics.region_psnr` of each crop under the protocol.

Nothing is written until :func:`write_report`: it builds the folder as a hidden sibling and
moves it into place, so an interrupted run leaves no half report (and an old report survives
until the new one is complete).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WdsrError
from .testpoint import hold_if_asked

__all__ = ["Crop", "ImageEntry", "ReportCollector", "check_report_dest", "choose_crops",
           "describe_weights", "gain_map", "is_own_report", "write_report"]

CROP = 48      # crop side in HR pixels (smaller when the shaved image is smaller)
MIN_CROP = 8   # below this there is nothing worth showing
VIEW = 192     # displayed crop side in CSS pixels: zoom = VIEW // crop side
THUMB = 250    # overview width in pixels
_LUMA = (66, 129, 25)  # BT.601 luma weights x 256 / 255, rounded


# ------------------------------------------------------------------------------ crops


@dataclass(frozen=True)
class Crop:
    kind: str           # "most" or "least"
    y: int              # top-left corner in HR pixels
    x: int
    size: int
    psnr: float         # local PSNR of the model crop (dB, protocol colour space)
    bicubic_psnr: float

    @property
    def gain(self) -> float:
        return self.psnr - self.bicubic_psnr


def _squared_error(img: np.ndarray, hr: np.ndarray, protocol: str) -> np.ndarray:
    d = img.astype(np.int32) - hr  # int32 keeps a 2K image's temporaries small
    if protocol == "y":
        r, g, b = _LUMA
        luma = d[..., 0] * r + d[..., 1] * g + d[..., 2] * b  # |luma| <= 220 * 255
        return luma.astype(np.int64) ** 2
    return (d * d).sum(axis=2, dtype=np.int64)


def gain_map(sr: np.ndarray, bicubic: np.ndarray, hr: np.ndarray, protocol: str) -> np.ndarray:
    """Per pixel: bicubic squared error minus model squared error (int64; > 0 where the model
    is closer to HR)."""
    return _squared_error(bicubic, hr, protocol) - _squared_error(sr, hr, protocol)


def _window_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sum of every size x size window (top-left indexed), via an int64 summed-area table."""
    sat = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(values, axis=0, dtype=np.int64), axis=1, out=sat[1:, 1:])
    return sat[size:, size:] - sat[:-size, size:] - sat[size:, :-size] + sat[:-size, :-size]


def crop_size(height: int, width: int, border: int) -> int:
    """The crop side for an HR image of this size (0: too small for crops)."""
    side = min(CROP, height - 2 * border, width - 2 * border)
    return side if side >= MIN_CROP else 0


def choose_crops(sr: np.ndarray, bicubic: np.ndarray, hr: np.ndarray, protocol: str,
                 border: int, size: int | None = None) -> list[Crop]:
    """[most, least] gain crops (see the module docstring); [] if the image is too small."""
    from .metrics import region_psnr

    h, w = hr.shape[:2]
    size = crop_size(h, w, border) if size is None else size
    if size < 1 or size > min(h, w) - 2 * border:
        return []
    inner = gain_map(sr, bicubic, hr, protocol)[border:h - border, border:w - border]
    sums = _window_sums(inner, size)
    most = np.unravel_index(int(np.argmax(sums)), sums.shape)  # first max in row-major order
    rows, cols = np.ogrid[:sums.shape[0], :sums.shape[1]]
    overlaps = (np.abs(rows - most[0]) < size) & (np.abs(cols - most[1]) < size)
    if not overlaps.all():
        sums = np.where(overlaps, np.iinfo(np.int64).max, sums)
    least = np.unravel_index(int(np.argmin(sums)), sums.shape)
    crops = []
    for kind, (cy, cx) in (("most", most), ("least", least)):
        y, x = int(cy) + border, int(cx) + border
        box = (slice(y, y + size), slice(x, x + size))
        crops.append(Crop(kind, y, x, size, region_psnr(sr[box], hr[box], protocol),
                          region_psnr(bicubic[box], hr[box], protocol)))
    return crops


def zoom(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement (each pixel becomes factor x factor)."""
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def thumbnail(img: np.ndarray, width: int = THUMB) -> np.ndarray:
    """Box-filter reduction by an integer factor to at most ``width`` pixels wide."""
    f = -(-img.shape[1] // width)
    if f <= 1:
        return img
    h, w = img.shape[0] // f, img.shape[1] // f
    blocks = img[:h * f, :w * f].astype(np.uint32).reshape(h, f, w, f, -1).sum(axis=(1, 3))
    return ((blocks + f * f // 2) // (f * f)).astype(np.uint8)


# ------------------------------------------------------------------------------ collecting


@dataclass
class ImageEntry:
    """What the page shows of one image (small arrays only: the full images are not kept)."""

    name: str
    hr_size: tuple[int, int]                  # (width, height)
    thumb: np.ndarray
    crops: list[Crop] = field(default_factory=list)
    panels: dict[str, np.ndarray] = field(default_factory=dict)  # "most-hr" -> the crop
    zoom: int = 1  # the page shows the crops enlarged this many times


class ReportCollector:
    """Fed image by image (``evaluate_pairs(..., on_arrays=collector.add)``); keeps only crops
    and a thumbnail per image, so a 100-image evaluation stays small in memory."""

    def __init__(self, scale: int, protocol: str) -> None:
        from .metrics import border_for

        self.scale, self.protocol = scale, protocol
        self.border = border_for(protocol, scale)
        self.entries: list[ImageEntry] = []

    def add(self, name: str, lr: np.ndarray, hr: np.ndarray, sr: np.ndarray,
            bicubic: np.ndarray | None = None) -> None:
        if bicubic is None:
            from .data.resize import bicubic_upscale

            bicubic = bicubic_upscale(lr, self.scale)
        entry = ImageEntry(name, (int(hr.shape[1]), int(hr.shape[0])), thumbnail(hr))
        entry.crops = choose_crops(sr, bicubic, hr, self.protocol, self.border)
        for crop in entry.crops:
            entry.zoom = max(1, VIEW // crop.size)
            box = (slice(crop.y, crop.y + crop.size), slice(crop.x, crop.x + crop.size))
            for what, img in (("hr", hr), ("bicubic", bicubic), ("model", sr)):
                entry.panels[f"{crop.kind}-{what}"] = img[box].copy()
        self.entries.append(entry)


# ------------------------------------------------------------------------------ the folder


def _not_writable(folder: Path, exc: OSError) -> WdsrError:
    return WdsrError(f"cannot write a report under '{folder}': {exc.strerror or exc}",
                     "pass a --report folder in a writable place")


def is_own_report(folder: Path) -> bool:
    """Whether ``folder`` holds a wdsr report and nothing else (index.html, results.json
    carrying the summary mark, img/ of PNGs: what :func:`write_report` writes), or nothing."""
    import json

    from .fileio import SUMMARY_MARK

    try:
        names = {p.name for p in folder.iterdir()}
        if not names:
            return True  # an empty folder: nothing to lose
        if not names <= {"index.html", "results.json", "img"} or "results.json" not in names:
            return False
        if (folder / "img").exists():
            img = folder / "img"
            if img.is_symlink() or not img.is_dir() or any(
                    p.suffix != ".png" or p.is_symlink() or not p.is_file()
                    for p in img.iterdir()):
                return False
        results = folder / "results.json"
        if results.is_symlink() or results.stat().st_size > 64 << 20:
            return False
        data = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and SUMMARY_MARK in data


def check_report_dest(dest: str | os.PathLike, overwrite: bool,
                      reads: tuple[tuple[str | os.PathLike | None, str], ...] = ()) -> Path:
    """Refuse an existing report folder (unless ``overwrite`` and it is an earlier wdsr report,
    nothing else), a missing or unwritable parent, a file in the way, or a folder that is or
    holds one of ``reads`` ((path, what) the command reads: --hr, the checkpoint...); called
    before any work starts. Returns the absolute path."""
    dest = Path(dest).expanduser().absolute()
    here = os.path.realpath(dest)
    for path, what in reads:
        if path is not None and Path(os.path.realpath(path)).is_relative_to(here):
            raise WdsrError(f"--report '{dest}' would hold {what} '{path}', which this command "
                            "reads", "pass a new folder for the report, e.g. --report report/")
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir() or dest.is_symlink():
            raise WdsrError(f"'{dest}' exists and is not a folder",
                            "pass another --report folder (a report is a folder)")
        if not overwrite:
            raise WdsrError(f"report folder '{dest}' already exists",
                            "pass --overwrite to replace it, or another --report folder")
        if not is_own_report(dest):
            raise WdsrError(f"'{dest}' is not a wdsr report folder (it holds other files)",
                            "--overwrite replaces only an earlier wdsr report: pass a new "
                            "--report folder")
    parent = dest.parent
    if not parent.is_dir():
        problem = "is not a folder" if parent.exists() else "does not exist"
        raise WdsrError(f"'{parent}' (where the report folder would go) {problem}",
                        "create that folder first, or pass another --report folder")
    try:  # the real test: make (and remove) the kind of folder write_report builds in
        os.rmdir(_new_hidden_folder(dest, ".check"))
    except OSError as exc:
        raise _not_writable(parent, exc) from None
    return dest


def _new_hidden_folder(dest: Path, suffix: str) -> Path:
    """A new folder beside ``dest`` under a temporary name that carries this process's id, so
    the next run removes it if this one is killed (fileio.remove_stale_temps)."""
    from .fileio import file_mode, temp_path

    folder = temp_path(dest, suffix)
    folder.mkdir(0o700)
    os.chmod(folder, file_mode() | 0o111)  # a report is for reading
    return folder


def _commit(staging: Path, dest: Path, overwrite: bool) -> None:
    """Move the finished report into place; an old one is moved aside first, then removed."""
    old = None
    if overwrite and dest.is_dir() and not dest.is_symlink():
        old = _new_hidden_folder(dest, ".old")
        os.replace(dest, old / dest.name)
    try:
        os.rename(staging, dest)
    except OSError as exc:
        if old is not None:  # put the old report back
            os.replace(old / dest.name, dest)
            shutil.rmtree(old, ignore_errors=True)
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise WdsrError(f"'{dest}' appeared while wdsr was working (another process "
                            "wrote it)", "it was left as it is: pass another --report "
                            "folder") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:40] or "image"


def write_report(dest: str | os.PathLike, collector: ReportCollector, result: dict[str, Any],
                 facts: list[tuple[str, str]], *, title: str = "wdsr evaluation report",
                 curve_svg: str | None = None, overwrite: bool = False) -> Path:
    """Write ``dest/index.html``, ``dest/img/*.png`` and ``dest/results.json`` (the same JSON
    as ``wdsr evaluate --json``). ``result``: what :func:`evaluate.evaluate_pairs` returned
    (with ``bicubic=True``); ``facts``: (label, value) lines for the summary (weights, data);
    ``curve_svg``: a training curve to embed. Returns the index.html path."""
    from .data.images import write_rgb_uint8
    from .fileio import SUMMARY_MARK, remove_stale_temps
    from .jsonout import finite
    from .report_html import render_page

    dest = check_report_dest(dest, overwrite)
    remove_stale_temps(dest.parent)  # what a killed earlier report left
    try:
        staging = _new_hidden_folder(dest, ".d")
    except OSError as exc:
        raise _not_writable(dest.parent, exc) from None
    try:
        (staging / "img").mkdir()
        files: dict[tuple[str, str], str] = {}  # (image name, panel) -> relative path
        for i, entry in enumerate(collector.entries, start=1):
            stem = f"img/{i:03d}-{_safe(entry.name)}"
            panels = {k: zoom(v, entry.zoom) for k, v in entry.panels.items()}
            for key, img in [("thumb", entry.thumb), *panels.items()]:
                files[entry.name, key] = f"{stem}-{key}.png"
                write_rgb_uint8(staging / files[entry.name, key], img)
        page = render_page(title, facts, result, collector, files, curve_svg)
        (staging / "index.html").write_text(page, encoding="utf-8")
        (staging / "results.json").write_text(
            json.dumps({SUMMARY_MARK: "evaluate", **finite(result)}, indent=1,
                       sort_keys=True, allow_nan=False) + "\n",
            encoding="utf-8")
        hold_if_asked(f"report-commit-{dest.name}")  # tests only (testpoint.py)
        _commit(staging, dest, overwrite)
    except OSError as exc:
        raise _not_writable(dest.parent, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful commit
    return dest / "index.html"


def describe_weights(path: str | os.PathLike, meta: dict[str, Any] | None,
                     source: str) -> list[tuple[str, str]]:
    """Summary lines for the weights: file, why they were chosen, step, run, dataset id.
    ``meta``: checkpoint metadata, or an export contract (its ``checkpoint`` record)."""
    meta = meta or {}
    record = meta.get("checkpoint") if isinstance(meta.get("checkpoint"), dict) else meta
    facts = [("weights", f"{path} ({source})")]
    for key, label in (("step", "step"), ("run", "run"), ("dataset_id", "dataset id")):
        value = record.get(key, meta.get(key))  # a contract keeps dataset_id at its top level
        if value not in (None, ""):
            facts.append((label, str(value)))
    return facts

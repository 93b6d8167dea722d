"""Upscaling image files: inputs and outputs, every kind of image users have, batches.

What happens to each kind of input (see :func:`upscale_image`):

* **RGB** goes through the network. **Grayscale** is replicated to RGB for the network and
  the result is turned back into gray (BT.601 luma weights), so gray stays gray.
* **Alpha** (RGBA, gray+alpha, palette or tRNS transparency): the colour goes through the
  network; the alpha channel is upscaled on its own with the MATLAB bicubic, clipped to the
  valid range and reattached. Fully transparent pixels often hold garbage colour (commonly
  black); left as they are, the network and the bicubic would blend it into the visible
  pixels next to them as a dark fringe. So before upscaling, the colour of every fully
  transparent pixel within reach of a visible one (the network's receptive radius plus the
  bicubic's 2 pixels) is replaced by the average of its visible (or already filled)
  neighbours, growing outwards one pixel per step; transparent pixels further away get the
  mean visible colour. The colour of fully transparent *output* pixels is therefore this
  filled colour, not the source's (it is invisible either way); partly transparent pixels
  keep their own colour.
* **16-bit** images are fed as x/257 in float (no 8-bit rounding on the way in) and the result
  is rounded to 16 bits, so the output is a 16-bit PNG.
* **Palette** images are expanded to RGB (or gray for a gray palette) and written as such.
* **JPEG** and other formats are read like the rest (EXIF orientation applied); the default
  output is PNG.
* Images smaller than 2x2 pixels are refused; an unreadable file is reported, not fatal.

Outputs are written atomically (temporary file, then ``os.replace``): an interrupted run
never leaves a half-written image. This module draws nothing; progress goes to callbacks.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WdsrError

__all__ = [
    "MIN_SIDE",
    "Job",
    "bleed_transparent",
    "collect_inputs",
    "default_upscale_checkpoint",
    "plan_jobs",
    "preflight",
    "upscale_batch",
    "upscale_image",
]

MIN_SIDE = 2  # pixels; smaller images are refused
_GLOB_CHARS = set("*?[")
_BAND_ROWS = 512  # output rows converted to the output dtype at a time (bounds memory)


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


# --------------------------------------------------------------------------- inputs/outputs


def collect_inputs(inputs: Sequence[str]) -> tuple[list[Path], bool]:
    """Expand files, folders (their images, not recursive) and globs (``*``, ``?``, ``[]``,
    expanded here so quoting them is fine) into a list of files, in order, without
    duplicates. Returns ``(files, single_file)``, ``single_file`` when exactly one argument
    naming one existing file was given (then ``-o`` names a file, not a folder).

    Anything that names nothing raises WdsrError before any work is done.
    """
    from .data.images import is_image_file

    if not inputs:
        raise WdsrError("no input images given", "example: wdsr upscale photo.png")
    files: list[Path] = []
    for arg in inputs:
        path = Path(arg).expanduser()
        if path.is_dir():
            found = sorted((p for p in path.iterdir() if p.is_file() and is_image_file(p)),
                           key=lambda p: p.name)
            if not found:
                raise WdsrError(f"no images in folder '{arg}'",
                                "pass image files, folders of images or a glob like '*.png'")
            files.extend(found)
        elif path.exists():
            files.append(path)
        elif _GLOB_CHARS & set(arg):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(arg)))]
            found = [m for m in matches if m.is_file() and is_image_file(m)]
            if not found:
                raise WdsrError(f"no images match '{arg}'", "check the pattern")
            files.extend(found)
        else:
            raise WdsrError(f"input '{arg}' does not exist", "check the path")
    unique, seen = [], set()
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    single = len(inputs) == 1 and Path(inputs[0]).expanduser().is_file()
    return unique, single


def default_name(source: Path, scale: int) -> str:
    return f"{source.stem}_x{scale}.png"


def plan_jobs(sources: Sequence[Path], output: str | None, scale: int, single_file: bool,
              overwrite: bool) -> list[Job]:
    """Where each result goes; all checks happen here, before any image is processed.

    No ``output``: ``NAME_x{scale}.png`` next to each input. ``output`` with one input file:
    that file (unless it is an existing folder or ends with '/'). Otherwise ``output`` is a
    folder (created if missing) holding ``NAME_x{scale}.png`` files.
    """
    from .data.images import IMAGE_SUFFIXES

    jobs: list[Job] = []
    if output is None:
        jobs = [Job(s, s.with_name(default_name(s, scale))) for s in sources]
    else:
        out = Path(output).expanduser()
        as_folder = (not single_file or out.is_dir() or output.endswith(("/", os.sep)))
        if as_folder:
            if out.exists() and not out.is_dir():
                raise WdsrError(f"output '{output}' is a file, but {len(sources)} images need "
                                "an output folder", "pass a folder with -o")
            jobs = [Job(s, out / default_name(s, scale)) for s in sources]
        else:
            if out.suffix.lower() not in IMAGE_SUFFIXES:
                raise WdsrError(f"output '{output}' has no image suffix",
                                "name a file ending in " + ", ".join(IMAGE_SUFFIXES)
                                + ", or end the name with '/' for a folder")
            if not out.parent.is_dir() and str(out.parent) not in ("", "."):
                raise WdsrError(f"folder '{out.parent}' for output '{output}' does not exist",
                                "create it first")
            jobs = [Job(sources[0], out)]
    by_target: dict[str, Path] = {}
    for job in jobs:
        key = os.path.realpath(job.target)
        if key in by_target:
            raise WdsrError(f"'{by_target[key]}' and '{job.source}' would both be written to "
                            f"'{job.target}'", "rename one of them or upscale them separately")
        by_target[key] = job.source
    if not overwrite:
        existing = [j.target for j in jobs if j.target.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise WdsrError(f"output '{existing[0]}' already exists{more}",
                            "pass --overwrite to replace it, or choose another -o")
    return jobs


def default_upscale_checkpoint(scale: int) -> Path:
    from .checkpoints import bundled_checkpoint

    path = bundled_checkpoint(scale)
    if path is None:
        raise WdsrError(f"this version of wdsr has no bundled x{scale} weights yet",
                        "pass --checkpoint runs/<name>/best.ckpt (train one with 'wdsr train')")
    return path


# ----------------------------------------------------------------------------------- alpha


def bleed_transparent(rgb: np.ndarray, alpha: np.ndarray, steps: int) -> np.ndarray:
    """``rgb`` (HxWx3 float) with the colour of fully transparent pixels (``alpha == 0``)
    replaced: up to ``steps`` pixels away from a visible pixel by the mean of the visible or
    already filled 8-neighbours (one ring per step), further away by the mean visible colour.
    Visible and partly transparent pixels are unchanged. Returns a new array."""
    known = np.asarray(alpha) > 0
    if known.all() or not known.any():
        return rgb.copy()
    out = rgb.astype(np.float32, copy=True)
    h, w = known.shape
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    for _ in range(max(int(steps), 0)):
        pad_k = np.pad(known, 1)
        pad_c = np.pad(out * known[:, :, None], ((1, 1), (1, 1), (0, 0)))
        count = np.zeros((h, w), np.float32)
        total = np.zeros_like(out)
        for dy, dx in shifts:
            count += pad_k[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            total += pad_c[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        grow = ~known & (count > 0)
        if not grow.any():
            break
        out[grow] = total[grow] / count[grow][:, None]
        known = known | grow
    if not known.all():
        visible = np.asarray(alpha) > 0
        out[~known] = rgb[visible].astype(np.float64).mean(axis=0).astype(np.float32)
    return out


# ------------------------------------------------------------------------------- one image


def upscale_image(predictor, source: str | os.PathLike, target: str | os.PathLike,
                  on_tile: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Read ``source``, super-resolve it, write ``target`` atomically; returns a summary."""
    from .data.images import Image, alpha_to_float, from_rgb_float, read_image, to_rgb_float
    from .data.resize import bicubic_upscale

    start = time.perf_counter()
    src = read_image(source)
    if src.height < MIN_SIDE or src.width < MIN_SIDE:
        raise WdsrError(f"'{source}' is only {src.width}x{src.height} pixels",
                        f"wdsr needs at least {MIN_SIDE}x{MIN_SIDE} pixels to upscale")
    s = predictor.scale
    rgb = to_rgb_float(src)
    alpha = alpha_to_float(src)
    if alpha is not None:
        rgb = bleed_transparent(rgb, alpha, predictor.receptive_radius + 2)
    sr = predictor.predict(rgb, on_tile=on_tile)
    del rgb
    up_alpha = None
    if alpha is not None:
        up_alpha = np.clip(bicubic_upscale(alpha, s), 0.0, 255.0)
    pixels, alphas = [], []
    for a in range(0, sr.shape[0], _BAND_ROWS):
        band = from_rgb_float(sr[a:a + _BAND_ROWS], src,
                              alpha=None if up_alpha is None else up_alpha[a:a + _BAND_ROWS])
        pixels.append(band.pixels)
        if band.alpha is not None:
            alphas.append(band.alpha)
    del sr
    out = Image(pixels=np.concatenate(pixels, axis=0),
                alpha=np.concatenate(alphas, axis=0) if alphas else None,
                bit_depth=src.bit_depth)
    from .data.images import write_image

    write_image(target, out)
    seconds = time.perf_counter() - start
    return {"input": str(source), "output": str(target), "mode": src.source_mode,
            "input_size": [src.width, src.height], "output_size": [out.width, out.height],
            "bit_depth": src.bit_depth, "alpha": src.alpha is not None,
            "seconds": seconds, "output_megapixels": out.width * out.height / 1e6}


# ---------------------------------------------------------------------------------- batches


def preflight(jobs: Sequence[Job]) -> tuple[list[Job], list[dict[str, str]]]:
    """Split jobs into those worth trying and failures found from the file headers alone
    (not an image, truncated PNG, smaller than 2x2), before any model is loaded."""
    from .data.div2k import probe_image

    ok: list[Job] = []
    failures: list[dict[str, str]] = []
    for job in jobs:
        try:
            h, w = probe_image(job.source)
        except WdsrError as exc:
            failures.append({"input": str(job.source),
                             "error": exc.message + (f" - {exc.hint}" if exc.hint else "")})
            continue
        if h < MIN_SIDE or w < MIN_SIDE:
            failures.append({"input": str(job.source),
                             "error": f"'{job.source}' is only {w}x{h} pixels - wdsr needs at "
                                      f"least {MIN_SIDE}x{MIN_SIDE} pixels to upscale"})
            continue
        ok.append(job)
    return ok, failures



def upscale_batch(predictor, jobs: Sequence[Job],
                  on_start: Callable[[int, int, Job], None] | None = None,
                  on_tile: Callable[[int, int], None] | None = None,
                  on_done: Callable[[int, int, Job, dict[str, Any] | None, str | None], None]
                  | None = None) -> dict[str, Any]:
    """Upscale every job; a file that cannot be done is recorded and the batch goes on.

    ``on_start(index, total, job)`` before an image, ``on_tile(done, total)`` per backend call
    (tile) of that image, ``on_done(index, total, job, result, error)`` after it. Returns
    ``{"images": [...], "failures": [{"input", "error"}]}``. Only problems with an input
    (``WdsrError``) or memory (``MemoryError``) are per-image failures; anything else is a bug
    and propagates.
    """
    images: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    total = len(jobs)
    for index, job in enumerate(jobs):
        if on_start is not None:
            on_start(index, total, job)
        result, error = None, None
        try:
            job.target.parent.mkdir(parents=True, exist_ok=True)
            result = upscale_image(predictor, job.source, job.target, on_tile=on_tile)
        except WdsrError as exc:
            error = exc.message + (f" - {exc.hint}" if exc.hint else "")
        except OSError as exc:  # the output folder cannot be created
            error = f"cannot write '{job.target}': {exc.strerror or exc}"
        except MemoryError:
            error = f"not enough memory to upscale '{job.source}' - use a smaller --tile"
        if result is not None:
            images.append(result)
        else:
            failures.append({"input": str(job.source), "error": str(error)})
        if on_done is not None:
            on_done(index, total, job, result, error)
    return {"images": images, "failures": failures}

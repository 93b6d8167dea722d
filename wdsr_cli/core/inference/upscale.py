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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WdsrError
from ..testpoint import hold_if_asked

__all__ = [
    "MIN_SIDE",
    "Inputs",
    "Job",
    "JobPlan",
    "bleed_transparent",
    "collect_inputs",
    "default_folder",
    "plan_jobs",
    "preflight",
    "upscale_batch",
    "upscale_image",
    "upscale_video",
    "video_job",
]

MIN_SIDE = 2  # pixels; smaller images are refused
_GLOB_CHARS = set("*?[")
_BAND_ROWS = 512  # output rows converted to the output dtype at a time (bounds memory)


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    overwrite: bool = False  # False: a target that appears while working is never replaced
    outscale: float | None = None  # --outscale: the output is this times the input size
    keep_exif: bool = True  # False: --strip-metadata (the colour profile is kept regardless)


# --------------------------------------------------------------------------- inputs/outputs


@dataclass
class Inputs:
    """What the INPUT arguments name: ``files`` in order without duplicates; ``single_file``
    when exactly one argument named one existing file (then ``-o`` names a file);
    ``folder_of`` maps each file found by listing a folder argument to that folder."""

    files: list[Path]
    single_file: bool
    folder_of: dict[Path, Path]


def collect_inputs(inputs: Sequence[str]) -> Inputs:
    """Expand files, folders (their images, not recursive) and globs (``*``, ``?``, ``[]``,
    expanded here so quoting them is fine) into files. Anything that names nothing raises
    WdsrError before any work is done."""
    from ..data.images import is_image_file

    if not inputs:
        raise WdsrError("no input images given", "example: wdsr upscale photo.png")
    files: list[Path] = []
    folder_of: dict[Path, Path] = {}
    for arg in inputs:
        path = Path(arg).expanduser()
        if path.is_dir():
            found = sorted((p for p in path.iterdir() if p.is_file() and is_image_file(p)),
                           key=lambda p: p.name)
            if not found:
                raise WdsrError(f"no images in folder '{arg}'",
                                "pass image files, folders of images or a glob like '*.png'")
            files.extend(found)
            folder_of.update((f, path) for f in found)
        elif path.exists():
            if not path.is_file():  # reading a FIFO or a device would block or never end
                raise WdsrError(f"input '{arg}' is not a regular file (a FIFO, socket or "
                                "device)", "pass image files, folders of images or a glob")
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
    return Inputs(unique, single, folder_of)


def default_name(source: Path, scale: int | str, video: bool = False) -> str:
    """``NAME_x{scale}.png`` (``scale``: the factor's label, e.g. 2 or "1.5"); a ``video``
    keeps its suffix (an animation becomes .mp4)."""
    from .video import output_suffix

    return f"{source.stem}_x{scale}{output_suffix(source) if video else '.png'}"


def default_folder(folder: Path, scale: int | str) -> Path:
    """Where a folder's results go without ``-o``: a sibling folder ``NAME_x{scale}``, so a
    rerun never finds its own outputs among the inputs."""
    folder = Path(os.path.abspath(folder))
    return folder.with_name(f"{folder.name}_x{scale}")


@dataclass
class JobPlan:
    jobs: list[Job]
    skipped: list[tuple[Path, Path]]  # (input left out, the input whose earlier output it is)


def plan_jobs(inputs: Inputs, output: str | None, scale: int, overwrite: bool,
              outscale: float | None = None, keep_exif: bool = True) -> JobPlan:
    """Where each result goes; every check on names and folders happens here, before any
    image is read or anything is created.

    No ``output``: a folder argument's images go to the sibling folder ``NAME_x{scale}/``
    (:func:`default_folder`), other files to ``NAME_x{scale}.png`` next to them. ``output``
    with one input file: that file (unless it is an existing folder or ends with '/').
    Otherwise ``output`` is a folder (created if missing) of ``NAME_x{scale}.png`` files.

    An input is never written over: an output that is its own input is refused, and an input
    that is another input's output (``a_x2.png`` next to ``a.png``, left by an earlier run)
    is left out of the inputs.

    ``outscale`` (``--outscale``): names say that factor (``NAME_x1.5.png``) and each job
    carries it, as it carries ``keep_exif``. A video input (:func:`.video.is_video_file`) is
    named ``NAME_x2.mp4`` (its own suffix), must be the only input, and its ``-o`` must be a
    video name (an image input's an image name).
    """
    from .outscale import label
    from .video import is_video_file

    sources = inputs.files
    # files named as arguments may be videos; a folder's images are images (an animated one
    # among them is refused as before)
    videos = [s for s in sources if s not in inputs.folder_of and is_video_file(s)]
    if videos and len(sources) > 1:
        raise WdsrError(f"'{videos[0]}' is a video: upscale a video on its own",
                        f"run wdsr upscale '{videos[0]}' by itself, then the other inputs")
    jobs = _targets(inputs, output, label(outscale, scale), bool(videos))
    real = {os.path.realpath(s): s for s in sources}
    by_target: dict[str, Path] = {}
    for job in jobs:
        key = os.path.realpath(job.target)
        if key == os.path.realpath(job.source):
            raise WdsrError(f"output '{job.target}' is the input itself",
                            "wdsr never writes over an input: choose another -o")
        if key in by_target:
            raise WdsrError(f"'{by_target[key]}' and '{job.source}' would both be written to "
                            f"'{job.target}'", "rename one of them or upscale them separately")
        by_target[key] = job.source
    skipped = [(real[k], by_target[k]) for k in by_target if k in real]
    left_out = {os.path.realpath(s) for s, _ in skipped}
    jobs = [j for j in jobs if os.path.realpath(j.source) not in left_out]
    if not jobs:
        raise WdsrError("every input is the output of another input", "check the inputs")
    if not overwrite:
        existing = [j.target for j in jobs if j.target.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise WdsrError(f"output '{existing[0]}' already exists{more}",
                            "pass --overwrite to replace it, or choose another -o")
    from ..fileio import check_writable_folder

    for folder in sorted({j.target.parent for j in jobs}):
        check_writable_folder(folder, "choose a writable -o folder")
    return JobPlan([replace(j, overwrite=overwrite, outscale=outscale, keep_exif=keep_exif)
                    for j in jobs], skipped)


def _targets(inputs: Inputs, output: str | None, scale: int | str, video: bool) -> list[Job]:
    """The output of each input (see :func:`plan_jobs`), its name and folder checked."""
    from ..data.images import OUTPUT_SUFFIXES
    from .video import VIDEO_SUFFIXES

    sources = inputs.files
    if output is None:
        return [Job(s, (default_folder(inputs.folder_of[s], scale) / default_name(s, scale))
                    if s in inputs.folder_of else s.with_name(default_name(s, scale, video)))
                for s in sources]
    out = Path(output).expanduser()
    if not inputs.single_file or out.is_dir() or output.endswith(("/", os.sep)):
        if out.exists() and not out.is_dir():
            raise WdsrError(f"output '{output}' is a file, but {len(sources)} images need "
                            "an output folder", "pass a folder with -o")
        return [Job(s, out / default_name(s, scale, video)) for s in sources]
    if video and out.suffix.lower() not in VIDEO_SUFFIXES:
        raise WdsrError(f"'{sources[0]}' is a video, but output '{output}' is not a video "
                        "name", "name a file ending in " + ", ".join(VIDEO_SUFFIXES))
    if not video and out.suffix.lower() in VIDEO_SUFFIXES:
        raise WdsrError(f"'{sources[0]}' is an image, but output '{output}' is a video name",
                        "name a file ending in " + ", ".join(OUTPUT_SUFFIXES))
    if not video and out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise WdsrError(f"output '{output}' has no image suffix wdsr writes",
                        "name a file ending in " + ", ".join(OUTPUT_SUFFIXES)
                        + ", or end the name with '/' for a folder")
    if not out.parent.is_dir() and str(out.parent) not in ("", "."):
        problem = "is not a folder" if out.parent.exists() else "does not exist"
        raise WdsrError(f"'{out.parent}' (the folder of output '{output}') {problem}",
                        "create that folder first, or choose another -o")
    return [Job(sources[0], out)]


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


@dataclass
class _Read:
    """An input read and made ready for the network (see the module docstring)."""

    src: Any  # data.images.Image
    rgb: np.ndarray
    alpha: np.ndarray | None
    seconds: float


def _decode(source: Path) -> tuple[Any, float]:
    """(the decoded image, seconds): needs no model."""
    from ..data.images import read_image

    start = time.perf_counter()
    src = read_image(source)
    if src.height < MIN_SIDE or src.width < MIN_SIDE:
        raise WdsrError(f"'{source}' is only {src.width}x{src.height} pixels",
                        f"wdsr needs at least {MIN_SIDE}x{MIN_SIDE} pixels to upscale")
    return src, time.perf_counter() - start


def _prepare(predictor, src: Any, seconds: float = 0.0) -> _Read:
    """The decoded image as the network takes it; ``seconds`` spent so far on it."""
    from ..data.images import alpha_to_float, to_rgb_float

    start = time.perf_counter()
    alpha = alpha_to_float(src)
    if src.bit_depth == 8 and not src.gray and alpha is None:
        # a plain 8-bit RGB photo stays uint8 and comes back as uint8, window by window:
        # no float copy of the image or of the result (see _network)
        return _Read(src, src.pixels, None, seconds)
    rgb = to_rgb_float(src)
    if alpha is not None:
        rgb = bleed_transparent(rgb, alpha, predictor.receptive_radius + 2)
    return _Read(src, rgb, alpha, seconds + time.perf_counter() - start)


def _read(predictor, source: Path) -> _Read:
    return _prepare(predictor, *_decode(source))


def _network(predictor, read: _Read, on_tile: Callable[[int, int], None] | None
             ) -> tuple[np.ndarray, float]:
    """(result, seconds of the network pass): uint8 for a plain 8-bit RGB input (rounded as
    the float path would round it: the bytes are the same), else float on 0..255."""
    start = time.perf_counter()
    if read.rgb.dtype == np.uint8:
        sr = predictor.predict_uint8(read.rgb, on_tile=on_tile)
    else:
        sr = predictor.predict(read.rgb, on_tile=on_tile)
    return sr, time.perf_counter() - start


def _write(job: Job, read: _Read, sr: np.ndarray, predictor, network_seconds: float
           ) -> dict[str, Any]:
    """Alpha upscaled, converted to the output depth band by band, written atomically.
    ``network_seconds``: the network pass alone (the record's ``seconds`` adds read and
    write)."""
    from ..data.images import Image, from_rgb_float, write_image
    from ..data.resize import bicubic_upscale

    start = time.perf_counter()
    src = read.src
    meta = src.metadata if job.keep_exif else {**src.metadata, "exif": None}
    size = None
    if job.outscale is not None:  # --outscale: the network's result resized (outscale.py)
        from .outscale import output_size, resize_to

        size = output_size(src.width, src.height, job.outscale)
        sr = resize_to(sr, size)
    up_alpha = None
    if read.alpha is not None:
        up_alpha = np.clip(bicubic_upscale(read.alpha, predictor.scale) if size is None
                           else resize_to(read.alpha, size), 0.0, 255.0)
    if sr.dtype == np.uint8:  # already the 8-bit RGB image (see _network)
        out = Image(pixels=sr, bit_depth=8, **meta)
    else:
        pixels, alphas = [], []
        for a in range(0, sr.shape[0], _BAND_ROWS):
            band = from_rgb_float(sr[a:a + _BAND_ROWS], src, alpha=None if up_alpha is None
                                  else up_alpha[a:a + _BAND_ROWS])
            pixels.append(band.pixels)
            if band.alpha is not None:
                alphas.append(band.alpha)
        out = Image(pixels=np.concatenate(pixels, axis=0),
                    alpha=np.concatenate(alphas, axis=0) if alphas else None,
                    bit_depth=src.bit_depth, **meta)
    job.target.parent.mkdir(parents=True, exist_ok=True)
    hold_if_asked(f"upscale-write-{job.source.name}")  # tests only (testpoint.py)
    kept = write_image(job.target, out, exclusive=not job.overwrite)
    return {"input": str(job.source), "output": str(job.target), "mode": src.source_mode,
            "input_size": [src.width, src.height], "output_size": [out.width, out.height],
            "bit_depth": src.bit_depth, "alpha": src.alpha is not None,
            "metadata": kept,
            "network_calls": predictor.windows_for(src.height, src.width),
            "seconds": read.seconds + network_seconds + time.perf_counter() - start,
            "network_seconds": network_seconds,
            "output_megapixels": out.width * out.height / 1e6,
            **({} if job.outscale is None else {"outscale": job.outscale,
                                                "network_scale": predictor.scale})}


def upscale_image(predictor, source: str | os.PathLike, target: str | os.PathLike,
                  on_tile: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Read ``source``, super-resolve it, write ``target`` atomically (replacing it);
    returns a summary."""
    job = Job(Path(source), Path(target), overwrite=True)
    read = _read(predictor, job.source)
    sr, network = _network(predictor, read, on_tile)
    return _write(job, read, sr, predictor, network)


# ---------------------------------------------------------------------------------- batches


_NO_ALPHA_SUFFIXES = (".jpg", ".jpeg", ".bmp")


def preflight(jobs: Sequence[Job]) -> tuple[list[Job], list[dict[str, str]]]:
    """Split jobs into those worth trying and failures found from the file headers alone
    (not an image, truncated PNG, animated, smaller than 2x2, transparency into a JPEG/BMP
    output), before any model is loaded."""
    from ..data.images import has_alpha, probe_image

    ok: list[Job] = []
    failures: list[dict[str, str]] = []
    for job in jobs:
        try:
            h, w = probe_image(job.source)
        except WdsrError as exc:
            failures.append({"input": str(job.source), "error": _one_line(exc)})
            continue
        if h < MIN_SIDE or w < MIN_SIDE:
            failures.append({"input": str(job.source),
                             "error": f"'{job.source}' is only {w}x{h} pixels - wdsr needs at "
                                      f"least {MIN_SIDE}x{MIN_SIDE} pixels to upscale"})
            continue
        if job.target.suffix.lower() in _NO_ALPHA_SUFFIXES and has_alpha(job.source):
            failures.append({"input": str(job.source),
                             "error": f"'{job.source}' has transparency, which "
                                      f"'{job.target.name}' cannot store - write a .png, .tif "
                                      "or .webp to keep it"})
            continue
        ok.append(job)
    return ok, failures


def _one_line(exc: WdsrError) -> str:
    return exc.message + (f" - {exc.hint}" if exc.hint else "")


def _failure(job: Job, exc: BaseException) -> str:
    """A per-image problem as one line: the input's (WdsrError), the disk's (OSError) or
    memory's. Anything else is a bug and propagates."""
    if isinstance(exc, WdsrError):
        return _one_line(exc)
    if isinstance(exc, OSError):  # the output folder cannot be created
        return f"cannot write '{job.target}': {exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return (f"not enough memory to upscale '{job.source}' - free memory or upscale it "
                "in parts")
    raise exc


@dataclass(frozen=True)
class ByNoise:
    """A choice of weights its noise makes, once the image is read (under ``--weights auto``,
    an input its compression alone would give the clean weights: :func:`.weights.reads_noise`)."""

    jpeg_quality: int | None  # None: not a JPEG
    lossy: str | None = None  # "WebP", "HEIC" or "AVIF" (data.compression.lossy_format_of)
    lossy_quality: int | None = None  # a WebP's or an AVIF's, if read

    def decide(self, image: Any, scale: int) -> tuple[str, str]:
        from .noise import noise_of

        return self._kind(scale, noise_of(image))

    def kinds(self, scale: int) -> list[str]:
        """What :meth:`decide` may give: [for a quiet image, for a noisy one]."""
        from .noise import NoiseReading

        quiet, noisy = NoiseReading(0.0, 0.0, 0.0), NoiseReading(99.0, 99.0, 99.0, 99.0)
        return [self._kind(scale, n)[0] for n in (quiet, noisy)]

    def _kind(self, scale: int, noise: Any) -> tuple[str, str]:
        from .weights import bundled_kind

        return bundled_kind("auto", self.jpeg_quality, scale, noise, self.lossy,
                            self.lossy_quality)


Choice = tuple[str | None, str]  # (kind of bundled weights, None: the file the user named; why)


def choose_weights(jobs: Sequence[Job], requested: str, scale: int) -> list[Choice | ByNoise]:
    """(kind, why) of the bundled weights for each job (:func:`weights.bundled_kind`) as far
    as the file's header decides it: the photo weights (photo-low for a strongly compressed
    one) for a JPEG, a lossy WebP or an AVIF input up to a quality, unless ``requested``
    says; any other (lossless or lightly compressed, or a HEIC) is left :class:`ByNoise`,
    decided when the image is read. A video gets the photo weights: its frames are
    compressed, by how much no table says."""
    from ..checkpoints import bundled_checkpoint
    from ..data.compression import (
        avif_quality_of,
        jpeg_quality_of,
        lossy_format_of,
        webp_quality_of,
    )
    from .video import is_video_file
    from .weights import bundled_kind, reads_noise

    def one(job: Job) -> Choice | ByNoise:
        if requested != "auto":
            return bundled_kind(requested, None, scale)
        if is_video_file(job.source) and bundled_checkpoint(scale, "photo") is not None:
            return "photo", "auto: video; compressed frames"
        lossy = lossy_format_of(job.source)
        quality = None if lossy else jpeg_quality_of(job.source)
        lossy_quality = webp_quality_of(job.source) if lossy == "WebP" else \
            avif_quality_of(job.source) if lossy == "AVIF" else None
        if reads_noise(quality, lossy, lossy_quality):
            return ByNoise(quality, lossy, lossy_quality)
        return bundled_kind(requested, quality, scale, lossy=lossy, lossy_quality=lossy_quality)

    return [one(job) for job in jobs]


class PerImage:
    """Which weights each image of a batch runs: job ``i``'s choice (``choices[i]``, filled in
    as images are read when it is :class:`ByNoise`), and one predictor per kind, made by
    ``load(kind)`` the first time an image needs it (on the calling thread: it may load a
    model and say so). A kind that cannot load is tried once: its images fail with that
    error, the others go on."""

    def __init__(self, choices: Sequence[Choice | ByNoise], scale: int,
                 load: Callable[[str | None], Any]) -> None:
        self.choices, self.scale, self.load = list(choices), scale, load
        self.loaded: dict[str | None, Any] = {}  # kind -> predictor, in order of first use
        self.unloadable: dict[str | None, WdsrError] = {}  # kind -> why it did not load

    def read(self, index: int, source: Path
             ) -> tuple[str | None, Any, float, _Read | None]:
        """(job ``index``'s kind, its decoded image, the seconds that took, the image made
        ready for the network if that kind's model is loaded yet, else None). Runs on the
        reader thread: the noise of a :class:`ByNoise` choice is read from the decoded image
        here."""
        src, seconds = _decode(source)
        choice = self.choices[index]
        if isinstance(choice, ByNoise):
            choice = self.choices[index] = choice.decide(src, self.scale)
        model = self.loaded.get(choice[0])
        return choice[0], src, seconds, None if model is None else _prepare(model, src, seconds)

    def predictor(self, kind: str | None) -> Any:
        if kind in self.unloadable:
            raise self.unloadable[kind]
        if kind not in self.loaded:
            try:
                self.loaded[kind] = self.load(kind)
            except WdsrError as exc:
                self.unloadable[kind] = exc
                raise
        return self.loaded[kind]


def upscale_batch(predictor, jobs: Sequence[Job],
                  on_start: Callable[[int, int, Job], None] | None = None,
                  on_tile: Callable[[int, int], None] | None = None,
                  on_done: Callable[[int, int, Job, dict[str, Any] | None, str | None], None]
                  | None = None, per_image: PerImage | None = None) -> dict[str, Any]:
    """Upscale every job with one model (with ``per_image``: the weights each image chooses,
    each model loaded when first needed); a file that cannot be done, or whose model cannot
    load, is recorded and the batch goes on. Reading the next image (decode, noise
    reading, alpha bleed) and writing finished ones run in two background threads while the
    network computes. Callbacks, and ``per_image``'s loads, run on the calling thread:
    ``on_start(index, total, job)`` before an image's network pass, ``on_tile(done, total)``
    per backend call, ``on_done(index, total, job, result, error)`` once its file is written
    (in input order). Returns ``{"images", "failures": [{"input", "error"}], "interrupted",
    "seconds"}``. Ctrl-C (KeyboardInterrupt) stops the batch: the image being computed is
    dropped, the files being written are finished (each complete or absent)."""
    from concurrent.futures import ThreadPoolExecutor

    total = len(jobs)
    if per_image is None:
        per_image = PerImage([(None, "")] * total, 0, lambda kind: predictor)
    start = time.perf_counter()
    done = _InOrder(jobs, on_done)
    outcomes, report = done.outcomes, done.report
    interrupted = False

    def write(index: int, job: Job, read: _Read, sr: np.ndarray, model, network: float
              ) -> None:
        try:
            outcomes[index] = (_write(job, read, sr, model, network), None)
        except (WdsrError, OSError, MemoryError) as exc:
            outcomes[index] = (None, _failure(job, exc))

    pool = ThreadPoolExecutor(2, thread_name_prefix="wdsr-io")
    writes: list[Any] = []
    reads: list[Any] = []
    try:
        reads.append(pool.submit(per_image.read, 0, jobs[0].source) if total else None)
        for index, job in enumerate(jobs):
            if index + 1 < total:  # read the next image while this one computes
                reads.append(pool.submit(per_image.read, index + 1, jobs[index + 1].source))
            try:
                kind, src, seconds, ready = reads[index].result()
                reads[index] = None  # free it once written
            except (WdsrError, OSError, MemoryError) as exc:
                outcomes[index] = (None, _failure(job, exc))
            else:
                try:
                    model = per_image.predictor(kind)
                    if ready is None:  # its model was loaded just now
                        ready = _prepare(model, src, seconds)
                    if on_start is not None:
                        on_start(index, total, job)
                    sr, network = _network(model, ready, on_tile)
                except (WdsrError, OSError, MemoryError) as exc:
                    outcomes[index] = (None, _failure(job, exc))
                else:
                    writes.append(pool.submit(write, index, job, ready, sr, model, network))
                    del sr
                del src, ready
            if len(writes) > 1:  # at most one write behind: bounded memory
                writes.pop(0).result()
            report(index + 1)
        for future in writes:
            future.result()
        report(total)
    except KeyboardInterrupt:
        interrupted = True
        for future in reads:
            if future is not None:
                future.cancel()
    finally:
        # Every submitted write is finished, even one no thread has picked up yet (cancelling
        # queued futures here lost a computed image when Ctrl-C came first); the reads still
        # queued were cancelled above.
        pool.shutdown(wait=True)
    if interrupted:
        report(total)  # whatever was written, in order
    return {"images": done.images, "failures": done.failures, "interrupted": interrupted,
            "seconds": time.perf_counter() - start}


# ------------------------------------------------------------------------------------ video


def video_job(jobs: Sequence[Job]) -> Job | None:
    """The job when the command upscales a video (:func:`plan_jobs` makes it the only one),
    else None."""
    from .video import VIDEO_SUFFIXES

    if len(jobs) == 1 and jobs[0].target.suffix.lower() in VIDEO_SUFFIXES:
        return jobs[0]
    return None


def upscale_video(predictor, job: Job, *, codec: str | None = None, crf: int | None = None,
                  on_frame: Callable[[int, int | None], None] | None = None
                  ) -> dict[str, Any]:
    """Super-resolve every frame of the clip ``job.source`` into ``job.target`` (see
    :mod:`.video`: timing, audio, subtitles and metadata kept; written atomically; Ctrl-C or
    SIGTERM leave nothing). Each frame is a plain 8-bit RGB image through ``predictor``, then
    resized to ``job.outscale`` times the input if given (video sides rounded to even
    numbers for 4:2:0). ``on_frame(done, total)`` after each frame's network pass. Returns a
    summary (frames, sizes, fps, codec, streams copied, seconds, frames per second)."""
    from . import video as V
    from .outscale import output_size, resize_to

    info = V.probe(job.source)
    codec, crf = V.check_output(job.source, job.target, codec, crf)
    size = None
    if job.outscale is not None:
        even = V.even_sides(V.out_pix_fmt(codec, info.pix_fmt))
        w, h = output_size(info.width, info.height, job.outscale)
        ew, eh = output_size(info.width, info.height, job.outscale, even=True)
        size = (ew if even[0] else w, eh if even[1] else h)

    def finish(sr: np.ndarray) -> np.ndarray:
        return sr if size is None else resize_to(sr, size)

    result = V.transcode(job.source, job.target, predictor.predict_uint8, finish, codec=codec,
                         crf=crf, overwrite=job.overwrite, total=info.frames,
                         on_frame=on_frame)
    seconds = result["seconds"]
    return {"input": str(job.source), "output": str(job.target), "video": True,
            "frames": result["frames"], "fps": info.fps, "duration": info.duration,
            "input_size": [info.width, info.height], "output_size": result["output_size"],
            "network_scale": predictor.scale, "outscale": job.outscale,
            "codec": codec, "crf": crf, "copied": info.copied, "left_out": info.left_out,
            "network_calls_per_frame": predictor.windows_for(info.height, info.width),
            "seconds": seconds,
            "frames_per_second": result["frames"] / seconds if seconds > 0 else None,
            "output_megapixels": result["frames"] * result["output_size"][0]
            * result["output_size"][1] / 1e6}


class _InOrder:
    """Finished images passed on (to ``on_done`` and the summary) in input order.

    ``outcomes`` (index -> (result, error)) is filled by whichever thread finishes the image:
    a Ctrl-C on the calling thread cannot lose an image that was written."""

    def __init__(self, jobs: Sequence[Job], on_done: Callable[..., None] | None) -> None:
        self.jobs, self.on_done = jobs, on_done
        self.outcomes: dict[int, tuple[dict[str, Any] | None, str | None]] = {}
        self.reported = 0  # images 0..reported-1 were passed on
        self.images: list[dict[str, Any]] = []
        self.failures: list[dict[str, str]] = []

    def report(self, until: int) -> None:
        """Pass on every finished image before ``until`` (in order)."""
        while self.reported < until and self.reported in self.outcomes:
            index = self.reported
            self.reported += 1
            result, error = self.outcomes[index]
            job = self.jobs[index]
            if result is not None:
                self.images.append(result)
            else:
                self.failures.append({"input": str(job.source), "error": str(error)})
            if self.on_done is not None:
                self.on_done(index, len(self.jobs), job, result, error)


# -------------------------------------------------------------------- the upscale command


@dataclass
class UpscaleRequest:
    """What ``wdsr upscale`` was asked (flags as given)."""

    inputs: list[str]
    output: str | None = None
    scale: int | None = None
    checkpoint: Path | None = None
    model: Path | None = None
    weights: str = "auto"
    backend: str = "auto"
    precision: str = "auto"
    self_ensemble: bool = False
    overwrite: bool = False
    json_out: str | None = None
    outscale: str | None = None  # any factor > 0: the network's output resized to it
    crf: int | None = None  # video only
    codec: str | None = None  # video only
    strip_metadata: bool = False  # images only: write no EXIF


@dataclass
class UpscalePlan:
    """Everything checked, nothing loaded: the jobs worth trying (``todo``), the failures the
    file headers already show, and which weights each job runs (``choices``: (kind, why),
    kind None = the one file the user named; or :class:`ByNoise`, decided as the image is
    read). ``weights``: kind -> resolved weights, every kind a job may run, each loaded when
    first needed."""

    request: UpscaleRequest
    scale: int
    jobs: list[Job]
    skipped: list[tuple[Path, Path]]
    todo: list[Job]
    failures: list[dict[str, str]]
    choices: list[Choice | ByNoise]
    weights: dict[str | None, Any]
    requested: Any  # the weights resolved for the request itself (named in --json)
    bundled: bool  # choosing among the bundled weights per input (--weights)
    notes: list[str]  # what the user should know before the work (e.g. --outscale's resize)
    video: Any = None  # video.VideoInfo when the one input is a video (its only job)


def plan_upscale(request: UpscaleRequest, runtime_cfg: Any) -> UpscalePlan:
    """Check every input, output, flag and weights choice before anything is loaded."""
    from .. import jsonout
    from . import outscale as O
    from .engines import bundled_choice
    from .weights import named_checkpoint, resolve

    r = request
    jsonout.check(r.json_out)
    named_checkpoint(r.checkpoint, r.scale)  # a wrong path is reported before anything else
    bundled = bundled_choice(r.weights, r.checkpoint, r.model)
    factor, scale, note = O.plan(r.outscale, r.scale, bundled)
    found = collect_inputs(r.inputs)

    def resolved(kind: str) -> Any:
        return resolve(r.checkpoint, r.model, scale, r.backend, default="bundled",
                       device_target=runtime_cfg.device_target,
                       device_id=runtime_cfg.device_id, precision=r.precision, bundled=kind)

    first = resolved("clean" if r.weights == "auto" else r.weights)
    planned = plan_jobs(found, r.output, first.scale, r.overwrite, factor,
                        keep_exif=not r.strip_metadata)
    jsonout.apart(r.json_out, [job.target for job in planned.jobs])
    notes = [line for line in (note, factor and O.describe(factor, first.scale)) if line]
    todo, failures, video = _preflight_request(r, planned.jobs)
    choices = choose_weights(todo, r.weights, first.scale) if bundled else \
        [(None, first.why)] * len(todo)
    weights: dict[str | None, Any] = {}
    for kind in (k for choice in choices for k in _kinds(choice, first.scale)):
        if kind not in weights:
            weights[kind] = first if kind in (None, first.bundled) else resolved(kind)
    return UpscalePlan(r, first.scale, planned.jobs, planned.skipped, todo, failures, choices,
                       weights, first, bundled, notes, video)


def _kinds(choice: Choice | ByNoise, scale: int) -> list[str | None]:
    """The kinds of weights a choice may run."""
    return choice.kinds(scale) if isinstance(choice, ByNoise) else [choice[0]]


def _preflight_request(r: UpscaleRequest, jobs: list[Job]) -> tuple[list[Job], list, Any]:
    """(jobs worth trying, failures seen in the headers, the video's info or None). A bad
    video, codec or CRF, and a single bad image, are the command's one-line error."""
    from . import video as V

    job = video_job(jobs)
    if job is not None:  # a bad clip or codec is one line before any model loads
        if r.strip_metadata:
            raise WdsrError("--strip-metadata is for images", "drop it for a video")
        info = V.probe(job.source)
        V.check_output(job.source, job.target, r.codec, r.crf)
        return [job], [], info
    if r.codec is not None or r.crf is not None:
        raise WdsrError("--codec and --crf are for video inputs", "drop them for images")
    todo, failures = preflight(jobs)
    if len(jobs) == 1 and failures:
        raise WdsrError(failures[0]["error"])
    return todo, failures, None


@dataclass
class UpscaleSummary:
    """What ``wdsr upscale`` did: written images, failures (in input order), the engine that
    ran; :meth:`to_json` for --json, :meth:`check` for the exit status."""

    plan: UpscalePlan
    images: list[dict[str, Any]]
    failures: list[dict[str, str]]
    interrupted: bool
    seconds: float
    engine: dict[str, Any]  # engine_facts of the first weights that ran ({} if none ran)
    window: tuple[int, int] | None

    @property
    def megapixels(self) -> float:
        return sum(r["output_megapixels"] for r in self.images)

    def to_json(self) -> dict[str, Any]:
        p, mp = self.plan, self.megapixels
        # "checkpoint": the one that ran (None when a mixed folder ran several); when nothing
        # ran, the one the request resolved to
        ran = {r["checkpoint"] for r in self.images} if self.images else \
            {p.requested.checkpoint_file}
        return {
            "scale": p.scale, "checkpoint": ran.pop() if len(ran) == 1 else None,
            "model": None if p.request.model is None else str(p.request.model),
            "backend": self.engine.get("backend"),
            "weights": sorted({r["weights"] for r in self.images if "weights" in r}) or None,
            **{k: v for k, v in self.engine.items() if k != "backend"},
            "window": None if self.window is None else list(self.window),
            "self_ensemble": p.request.self_ensemble, "images": self.images,
            "failures": self.failures, "interrupted": self.interrupted,
            "seconds": self.seconds,
            "output_megapixels_per_second": mp / self.seconds if self.seconds > 0 else None}

    def check(self) -> None:
        """Interrupted or any failure: the error the command ends with (exit 130 / 2)."""
        from ..errors import Interrupted
        from ..runtime import interruption

        total = len(self.plan.jobs)
        if self.interrupted:  # "interrupted" (Ctrl-C) or "interrupted by SIGTERM"
            raise Interrupted(f"{interruption()[0]}: {len(self.images)} of {total} images "
                              "were written (each complete, listed above); nothing else was "
                              "left behind",
                              "rerun with --overwrite to redo them all, or pass only the rest")
        if self.failures:
            raise WdsrError(f"{len(self.failures)} of {total} images failed (listed above)",
                            "the others were written")


def run_upscale(plan: UpscalePlan, load: Callable[[str | None], Any],
                on_start: Callable[[int, int, str], None] | None = None,
                on_tile: Callable[[int, int], None] | None = None,
                on_done: Callable[[int, int], None] | None = None) -> UpscaleSummary:
    """Upscale the plan's jobs, each with the predictor of its weights: ``load(kind)`` gives
    it (a loaded Predictor for ``plan.weights[kind]``), called once per kind, when the first
    image needing it is read."""
    from .engines import engine_facts

    if not plan.todo:
        return UpscaleSummary(plan, [], plan.failures, False, 0.0, {}, None)
    per_image = PerImage(plan.choices, plan.scale, load)
    if plan.video is not None:
        row = _run_video(plan, per_image.predictor(plan.choices[0][0]), on_done)
        result = {"images": [row], "failures": [], "interrupted": False,
                  "seconds": row["seconds"]}
    else:
        start = on_start and (lambda i, n, job: on_start(i, n, job.source.name))
        done = on_done and (lambda i, n, job, result, error: on_done(i, n))
        result = upscale_batch(None, plan.todo, on_start=start, on_tile=on_tile,
                               on_done=done, per_image=per_image)
    choice_of = {str(job.source): c for job, c in zip(plan.todo, per_image.choices,
                                                      strict=True)}
    for row in result["images"]:  # say which weights ran and why
        kind, why = choice_of[row["input"]]
        row["checkpoint"] = plan.weights[kind].checkpoint_file
        if plan.bundled:
            row["weights"], row["weights_why"] = kind, why
    order = {str(j.source): k for k, j in enumerate(plan.jobs)}
    failures = sorted(plan.failures + result["failures"], key=lambda f: order[f["input"]])
    if len(plan.jobs) == 1 and failures:
        raise WdsrError(failures[0]["error"])
    first = next(iter(per_image.loaded.items()), None)  # the first weights that ran
    facts, window = ({}, None) if first is None else \
        (engine_facts(plan.weights[first[0]], first[1]), tuple(first[1].window))
    return UpscaleSummary(plan, result["images"], failures, result["interrupted"],
                          result["seconds"], facts, window)


def _run_video(plan: UpscalePlan, predictor: Any,
               on_done: Callable[[int, int | None], None] | None) -> dict[str, Any]:
    """The plan's one video, frame by frame; its row for the table and --json."""
    r = plan.request
    on_frame = on_done and (lambda done, total: on_done(done - 1, total))
    row = upscale_video(predictor, plan.todo[0], codec=r.codec, crf=r.crf, on_frame=on_frame)
    row["mode"] = f"video, {row['frames']} frames, {row['codec']}"
    return row

"""Evaluation: PSNR/SSIM of a checkpoint on DIV2K validation or any folder of images.

Three sources of image pairs:

* **DIV2K validation** (default): ``DIV2K_valid_HR`` (0801-0900) and
  ``DIV2K_valid_LR_bicubic/X{s}`` under the configured data root (found by
  :func:`wdsr_cli.core.data.div2k.find_dataset`, so the model-zoo layout with 0801-0900 inside
  ``DIV2K_train_HR`` works too). A missing LR folder is replaced by the MATLAB bicubic, which
  is how DIV2K's own LR images were made.
* **An HR folder** (``--hr DIR``): each HR image is cropped to a multiple of the scale and its
  LR image is made with the MATLAB-exact bicubic (:func:`data.resize.bicubic_downscale`).
* **HR and LR folders** (``--hr DIR --lr DIR``): pairs matched by name (``0801.png`` with
  ``0801x2.png`` or ``0801.png``); each LR image must be HR/scale (floor) per side, and the HR
  image is cropped to scale x LR.

**Degraded input** (``--degrade jpeg:75``, :meth:`EvalDataset.degraded`): every LR image is made
from its HR image by the named chain (:mod:`.data.degrade`: blur, downscale, noise, JPEG), its
noise seeded from the spec and the image name, so anyone scores a model on the same
real-photo-like input; the bicubic baseline then upscales that same degraded LR.

Images are read as 8-bit RGB (gray replicated, 16-bit rounded to 8 bits, alpha dropped).
The model output is clipped and rounded to 8 bits before scoring (:mod:`.metrics` protocols
``y`` and ``rgb``). The optional bicubic baseline is the MATLAB bicubic upscale of the same
LR image, scored the same way, as SR papers report it.

This module draws nothing: :func:`evaluate_pairs` reports progress through a callback.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import WdsrError
from .testpoint import hold_if_asked

if TYPE_CHECKING:
    from .inference.noise import NoiseReading

__all__ = [
    "EvalDataset",
    "EvalItem",
    "check_save_dir",
    "dataset_from_div2k",
    "dataset_from_folders",
    "evaluate_pairs",
]

ImageCallback = Callable[[int, int | None, dict[str, Any]], None]
# (name, lr, hr, sr, bicubic upscale or None): e.g. report.ReportCollector.add
ArraysCallback = Callable[[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], None]


# ------------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class EvalItem:
    name: str
    hr: Path
    lr: Path | None  # None: made from HR with the MATLAB bicubic


@dataclass
class EvalDataset:
    """A lazily loaded list of ``(name, lr_uint8, hr_uint8)`` pairs (one in memory at a time).

    ``hr_uint8`` is already cropped to ``scale x`` the LR size.
    """

    description: str
    scale: int
    items: list[EvalItem] = field(default_factory=list)
    degrade: Any = None  # a data.degrade.Chain that makes every LR from its HR, or None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        for item in self.items:
            yield load_pair(item, self.scale, self.degrade)

    def limited(self, limit: int) -> EvalDataset:
        if limit <= 0 or limit >= len(self.items):
            return self
        return EvalDataset(f"{self.description}, first {limit}", self.scale, self.items[:limit],
                           self.degrade)

    def degraded(self, spec: str) -> EvalDataset:
        """The same HR images with each LR made by the ``--degrade`` chain ``spec`` (given LR
        images, such as DIV2K's bicubic ones, are not read)."""
        from .data.degrade import parse_spec

        chain = parse_spec(spec)
        items = [EvalItem(i.name, i.hr, None) for i in self.items]
        return EvalDataset(f"{self.description}; LR degraded: {chain.spec()}", self.scale,
                           items, chain)


def load_pair(item: EvalItem, scale: int, degrade: Any = None
              ) -> tuple[str, np.ndarray, np.ndarray]:
    from .data.degrade import apply_chain, for_image
    from .data.images import read_rgb_uint8
    from .data.resize import bicubic_downscale

    hr = read_rgb_uint8(item.hr)
    if item.lr is None:
        h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
        if h == 0 or w == 0:
            raise WdsrError(f"HR image '{item.hr}' ({hr.shape[1]}x{hr.shape[0]}) is smaller "
                            f"than the scale x{scale}")
        hr = np.ascontiguousarray(hr[:h, :w])
        if degrade is not None:
            return item.name, apply_chain(for_image(degrade, item.name), hr, scale), hr
        return item.name, bicubic_downscale(hr, scale), hr
    lr = read_rgb_uint8(item.lr)
    _check_lr_size(item, hr.shape[:2], lr.shape[:2], scale)
    lh, lw = lr.shape[:2]
    return item.name, lr, np.ascontiguousarray(hr[:lh * scale, :lw * scale])


def _check_lr_size(item: EvalItem, hr_hw, lr_hw, scale: int) -> None:
    want = (hr_hw[0] // scale, hr_hw[1] // scale)
    if tuple(lr_hw) != want:
        raise WdsrError(
            f"LR image '{item.lr}' is {lr_hw[1]}x{lr_hw[0]} but HR '{item.hr}' "
            f"({hr_hw[1]}x{hr_hw[0]}) at x{scale} needs {want[1]}x{want[0]}",
            "check that --lr holds the LR images of --hr at this --scale")


def _image_files(folder: Path, what: str) -> list[Path]:
    from .data.images import is_image_file

    if not folder.exists():
        raise WdsrError(f"{what} folder '{folder}' does not exist", "check the path")
    if not folder.is_dir():
        raise WdsrError(f"{what} path '{folder}' is not a folder", "pass a folder of images")
    files = sorted((p for p in folder.iterdir() if p.is_file() and is_image_file(p)),
                   key=lambda p: p.name)
    if not files:
        raise WdsrError(f"no images in {what} folder '{folder}'",
                        "pass a folder of .png/.jpg images")
    return files


def dataset_from_folders(hr_dir: str | os.PathLike, lr_dir: str | os.PathLike | None,
                         scale: int) -> EvalDataset:
    """``--hr DIR`` (LR made with the MATLAB bicubic) or ``--hr DIR --lr DIR`` (matched by
    name). Sizes are checked from the file headers before anything is decoded."""
    from .data.images import probe_image

    hr_dir = Path(hr_dir).expanduser()
    hr_files = _image_files(hr_dir, "HR")
    seen: dict[str, Path] = {}
    for p in hr_files:
        if p.stem in seen:
            raise WdsrError(f"HR images '{seen[p.stem]}' and '{p}' have the same name",
                            "keep one of them (pairs are matched by name)")
        seen[p.stem] = p
    if lr_dir is None:
        for p in hr_files:  # a broken or tiny image stops here, before any model is loaded
            h, w = probe_image(p)
            if h < 2 * scale or w < 2 * scale:
                raise WdsrError(f"HR image '{p}' is only {w}x{h} pixels: at x{scale} its LR "
                                f"image would be smaller than 2x2",
                                "remove it from the folder (or evaluate at a lower --scale)")
        items = [EvalItem(p.stem, p, None) for p in hr_files]
        desc = f"HR folder '{hr_dir}' ({len(items)} images, LR made with the MATLAB bicubic)"
        return EvalDataset(desc, scale, items)

    lr_dir = Path(lr_dir).expanduser()
    index: dict[str, Path] = {}
    for p in _image_files(lr_dir, "LR"):
        index.setdefault(p.stem.lower(), p)
    items = []
    for p in hr_files:
        stem = p.stem.lower()
        lr = index.get(f"{stem}x{scale}") or index.get(stem)
        if lr is None:
            raise WdsrError(f"HR image '{p}' has no LR image in '{lr_dir}'",
                            f"expected '{p.stem}x{scale}.png' or '{p.stem}.png' there")
        item = EvalItem(p.stem, p, lr)
        _check_lr_size(item, probe_image(p), probe_image(lr), scale)
        items.append(item)
    desc = f"HR folder '{hr_dir}' with LR folder '{lr_dir}' ({len(items)} pairs)"
    return EvalDataset(desc, scale, items)


def dataset_from_div2k(root: str | os.PathLike, scale: int) -> EvalDataset:
    """DIV2K validation (0801-0900) under ``root`` (the config's ``data.root``)."""
    from .data.div2k import find_dataset

    root = Path(root).expanduser()
    if not root.is_dir():
        raise WdsrError(f"no DIV2K data at '{root}' (data.root)",
                        "pass --hr DIR (and --lr DIR) to evaluate on your own images, or "
                        "--data PATH to your DIV2K folder")
    inv = find_dataset(root, scales=(scale,))
    if inv.layout == "folder":
        raise WdsrError(f"'{root}' is not a DIV2K folder (no DIV2K_valid_HR)",
                        "pass --hr DIR (and --lr DIR) to evaluate on a plain folder of images")
    problems = [p for p in inv.problems if p.split == "valid"]
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise WdsrError(f"DIV2K validation data: {problems[0].message}{more}",
                        "fix or re-download the files, or evaluate with --hr/--lr")
    pairs = inv.split_pairs("valid")
    if not pairs:
        raise WdsrError(f"no DIV2K validation images under '{root}'",
                        "extract DIV2K_valid_HR.zip (and DIV2K_valid_LR_bicubic_X*.zip) there")
    items = []
    for pair in pairs:
        lr = pair.lr.get(scale)
        items.append(EvalItem(pair.name, pair.hr.path, None if lr is None else lr.path))
    given = sum(1 for i in items if i.lr is not None)
    source = (f"x{scale} LR from DIV2K_valid_LR_bicubic/X{scale}" if given == len(items) else
              f"x{scale} LR made with the MATLAB bicubic" if given == 0 else
              f"x{scale} LR: {given} given, {len(items) - given} made with the MATLAB bicubic")
    return EvalDataset(f"DIV2K validation '{root}' ({len(items)} images, {source})", scale, items)


def check_save_dir(save_dir: str | os.PathLike, dataset: EvalDataset, overwrite: bool) -> Path:
    """``--save-images DIR``, checked before any model is loaded: a folder (or a new one) that
    takes files, not a folder the evaluation reads (its results would become inputs of the
    next evaluation), and, without ``overwrite``, holding none of the ``NAME_x{scale}.png``
    it will write."""
    from .fileio import check_writable_folder

    out = Path(save_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise WdsrError(f"--save-images '{save_dir}' is a file, not a folder",
                        "pass a folder for the results, e.g. --save-images results/")
    check_writable_folder(out, "pass a writable --save-images folder")
    here = os.path.realpath(out)
    for item in dataset.items:
        for path, what in ((item.hr, "--hr"), (item.lr, "--lr")):
            if path is not None and os.path.realpath(path.parent) == here:
                raise WdsrError(f"--save-images '{save_dir}' is the folder of the {what} images "
                                "this evaluation reads",
                                "save the results in another folder, e.g. --save-images "
                                "results/")
    if not overwrite:
        existing = [t for t in saved_names(out, dataset) if t.exists() or t.is_symlink()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise WdsrError(f"'{existing[0]}' already exists{more}",
                            "pass --overwrite to replace the saved images, or another "
                            "--save-images folder")
    return out


def saved_names(save_dir: Path, dataset: EvalDataset) -> list[Path]:
    return [save_dir / f"{item.name}_x{dataset.scale}.png" for item in dataset.items]


# ------------------------------------------------------------------------------ the engine


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def evaluate_pairs(predictor, pairs: Iterable[tuple[str, np.ndarray, np.ndarray]], scale: int,
                   protocol: str, bicubic: bool = False, on_image: ImageCallback | None = None,
                   save_dir: str | os.PathLike | None = None,
                   on_arrays: ArraysCallback | None = None,
                   overwrite: bool = False) -> dict[str, Any]:
    """Score ``predictor`` on ``pairs`` = [(name, lr uint8 HxWx3, hr uint8)], any iterable.

    HR is cropped to scale x LR. Returns a dict: ``images`` (name, psnr, ssim, seconds, LR size
    and, with ``bicubic``, bicubic_psnr / bicubic_ssim per image), ``mean`` (same keys),
    ``count``, ``scale``, ``protocol``, ``border``, ``self_ensemble``, ``window``. PSNR of two
    identical images is ``inf``. ``on_image(done, total, row)`` is called after each image
    (``total`` is None for an iterable without a length). ``save_dir``: write each 8-bit
    result as ``NAME_x{scale}.png`` there (replacing one that appears meanwhile only with
    ``overwrite``; see :func:`check_save_dir` for the checks before).
    ``on_arrays(name, lr, hr, sr, bicubic)`` gets each image's arrays (HR cropped, 8-bit
    result, bicubic upscale when ``bicubic`` else None).
    """
    from .data.images import write_rgb_uint8
    from .data.resize import bicubic_upscale
    from .metrics import border_for, crop_hr_to, evaluate_pair

    border = border_for(protocol, scale)
    if predictor.scale != scale:
        raise WdsrError(f"the model is x{predictor.scale} but the evaluation is at x{scale}")
    total = len(pairs) if hasattr(pairs, "__len__") else None
    out_dir = None
    if save_dir is not None:
        out_dir = Path(save_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for done, (name, lr, hr) in enumerate(pairs, start=1):
        lr = _rgb_uint8(lr, name, "LR")
        hr = crop_hr_to(_rgb_uint8(hr, name, "HR"), lr.shape, scale)
        start = time.perf_counter()
        sr = predictor.predict_uint8(lr)
        seconds = time.perf_counter() - start
        p, s = _scored(evaluate_pair, sr, hr, scale, protocol, name)
        row: dict[str, Any] = {"name": name, "psnr": p, "ssim": s, "seconds": seconds,
                               "lr_size": [int(lr.shape[1]), int(lr.shape[0])]}
        bic = bicubic_upscale(lr, scale) if bicubic else None
        if bic is not None:
            bp, bs = _scored(evaluate_pair, bic, hr, scale, protocol, name)
            row["bicubic_psnr"], row["bicubic_ssim"] = bp, bs
        hold_if_asked(f"evaluate-image-{name}")  # tests only (testpoint.py)
        if out_dir is not None:
            write_rgb_uint8(out_dir / f"{name}_x{scale}.png", sr, exclusive=not overwrite)
        if on_arrays is not None:
            on_arrays(name, lr, hr, sr, bic)
        rows.append(row)
        if on_image is not None:
            on_image(done, total, row)
    keys = ["psnr", "ssim"] + (["bicubic_psnr", "bicubic_ssim"] if bicubic else []) + ["seconds"]
    mean = {k: _mean([r[k] for r in rows]) for k in keys}
    return {"scale": scale, "protocol": protocol, "border": border,
            "self_ensemble": bool(getattr(predictor, "self_ensemble", False)),
            "window": list(getattr(predictor, "window", ())), "count": len(rows),
            "images": rows, "mean": mean}


def _scored(fn, sr, hr, scale: int, protocol: str, name: str) -> tuple[float, float]:
    try:
        return fn(sr, hr, scale, protocol)
    except WdsrError as exc:
        raise WdsrError(f"image '{name}': {exc.message}", exc.hint) from None


def result_to_json(result: dict[str, Any]) -> dict[str, Any]:
    """A copy that ``json.dumps(..., allow_nan=False)`` accepts: inf/nan become None
    (PSNR of identical images is infinite)."""
    from .jsonout import finite

    return finite(result)


def _rgb_uint8(img: np.ndarray, name: str, what: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise WdsrError(f"{what} image '{name}' must be HxWx3 uint8, got {arr.shape} {arr.dtype}")
    return arr


# ------------------------------------------------------------------- the evaluate command


@dataclass
class EvalRequest:
    """What ``wdsr evaluate`` was asked (flags as given; None = the config's value)."""

    scale: int | None = None
    checkpoint: Path | None = None
    model: Path | None = None
    weights: str = "auto"
    backend: str = "auto"
    precision: str = "fp32"
    hr: Path | None = None
    lr: Path | None = None
    protocol: str | None = None
    self_ensemble: bool | None = None
    bicubic: bool = False
    degrade: str | None = None
    save_images: Path | None = None
    json_out: str | None = None
    report: Path | None = None
    overwrite: bool = False
    limit: int = 0
    runs_dir: Path = Path("runs")
    config_file: str | None = None  # read by the command: never a --report destination


@dataclass
class EvalPlan:
    """Everything checked, nothing loaded: the weights, the image pairs, where results go."""

    request: EvalRequest
    weights: Any
    dataset: EvalDataset
    protocol: str
    self_ensemble: bool
    bicubic: bool
    kind_why: str  # why these bundled weights ("" for a file the user named)
    save_images: Path | None
    report: Path | None
    collector: Any = None  # a report.ReportCollector with --report
    warnings: list[str] = field(default_factory=list)


def _check_request(r: EvalRequest, cfg: Any) -> tuple[str, bool, Any]:
    """The flag checks that need no file: (protocol, self-ensemble, degradation chain)."""
    from . import jsonout
    from .config import PROTOCOLS, check_scale

    protocol = cfg.eval.protocol if r.protocol is None else r.protocol
    if protocol not in PROTOCOLS:
        raise WdsrError(f"unknown protocol '{protocol}'",
                        "use y (PSNR on Y, border = scale) or rgb (RGB, border = scale + 6)")
    if r.scale is not None:
        check_scale(r.scale)
    jsonout.check(r.json_out)
    if r.limit < 0:
        raise WdsrError("--limit must be 0 or more", "0 = all images")
    if r.lr is not None and r.hr is None:
        raise WdsrError("--lr needs --hr", "pass the matching HR folder with --hr")
    chain = None
    if r.degrade is not None:
        from .data.degrade import parse_spec

        chain = parse_spec(r.degrade)  # a bad spec is reported before anything loads
        if r.lr is not None:
            raise WdsrError("--degrade makes each LR image from its HR image, so it does not "
                            "go with --lr", "drop --lr (or --degrade)")
    self_ensemble = cfg.eval.self_ensemble if r.self_ensemble is None else r.self_ensemble
    return protocol, self_ensemble, chain


def _check_report(r: EvalRequest, cfg: Any) -> Path | None:
    """--report: a new folder (or an earlier wdsr report with --overwrite) holding nothing the
    command reads; --save-images and --json outside it."""
    if r.report is None:
        return None
    from . import jsonout
    from .report import check_report_dest

    reads = ((r.hr, "the --hr folder"), (r.lr, "the --lr folder"),
             (r.checkpoint, "the checkpoint"), (r.model, "the model"),
             (r.config_file, "the config file"), (r.runs_dir, "the runs folder"),
             (cfg.data.root if r.hr is None else None, "the DIV2K data"))
    report = check_report_dest(r.report, r.overwrite, reads)
    if r.save_images is not None and Path(os.path.realpath(r.save_images)).is_relative_to(
            os.path.realpath(report)):
        raise WdsrError(f"--save-images '{r.save_images}' is inside the --report folder",
                        "save the images elsewhere (the report folder is made whole, "
                        "at the end)")
    jsonout.apart(r.json_out, owned=report, owner="--report")
    return report


def _dataset(r: EvalRequest, cfg: Any, scale: int) -> EvalDataset:
    dataset = dataset_from_folders(r.hr, r.lr, scale) if r.hr is not None else \
        dataset_from_div2k(cfg.data.root, scale)
    dataset = dataset.limited(r.limit)
    return dataset.degraded(r.degrade) if r.degrade is not None else dataset


NOISE_SAMPLE = 3  # LR images whose noise --weights auto reads (the median of each reading)


def _lr_noise(dataset: EvalDataset) -> NoiseReading:
    """The noise of the first LR images, as ``wdsr upscale`` reads it from a lossless file
    (:func:`inference.noise.noise_reading`): ``--weights auto`` makes one choice for the whole
    run, where upscale makes one per file."""
    from .inference.noise import NoiseReading, noise_reading

    readings = [noise_reading(load_pair(item, dataset.scale, dataset.degrade)[1])
                for item in dataset.items[:NOISE_SAMPLE]]
    return NoiseReading(*(float(np.median([getattr(n, f.name) for n in readings] or [0.0]))
                          for f in fields(NoiseReading)))  # each reading's median


def plan_evaluate(r: EvalRequest, cfg: Any) -> EvalPlan:
    """Check every flag, path and the weights before any model is loaded."""
    from .config import obsolete_tile_note
    from .inference.engines import bundled_choice
    from .inference.weights import bundled_kind, named_checkpoint, reads_noise, resolve

    protocol, self_ensemble, chain = _check_request(r, cfg)
    named_checkpoint(r.checkpoint, r.scale)  # a wrong path is reported before anything else
    for folder, what in ((r.hr, "--hr"), (r.lr, "--lr")):
        if folder is not None and not folder.is_dir():
            raise WdsrError(f"{what} folder '{folder}' does not exist", "check the path")
    kind, kind_why = None, ""
    if bundled_choice(r.weights, r.checkpoint, r.model):
        from .data.degrade import jpeg_quality_in

        quality = jpeg_quality_in(chain) if chain is not None else None
        noise = None
        if r.weights == "auto" and reads_noise(quality):
            noise = _lr_noise(_dataset(r, cfg, r.scale or 2))
        kind, kind_why = bundled_kind(r.weights, quality, r.scale or 2, noise)
    report = _check_report(r, cfg)
    weights = resolve(r.checkpoint, r.model, r.scale, r.backend, default="newest",
                      runs_dir=r.runs_dir, device_target=cfg.runtime.device_target,
                      device_id=cfg.runtime.device_id, precision=r.precision,
                      bundled=kind or "clean")
    dataset = _dataset(r, cfg, weights.scale)
    save = None if r.save_images is None else check_save_dir(r.save_images, dataset,
                                                             r.overwrite)
    collector = None
    if report is not None:
        from .report import ReportCollector

        collector = ReportCollector(weights.scale, protocol)
    warnings = [obsolete_tile_note("eval.tile")] if cfg.eval.tile else []
    return EvalPlan(r, weights, dataset, protocol, self_ensemble,
                    r.bicubic or report is not None, kind_why, save, report, collector,
                    warnings)


def run_evaluate(plan: EvalPlan, predictor: Any, on_image: ImageCallback | None = None
                 ) -> dict[str, Any]:
    """Score the plan's pairs with the loaded ``predictor``; the result names what ran (and,
    with --report, the plan's collector keeps the arrays for :func:`write_report`)."""
    from .inference.engines import engine_facts

    w, d, collector = plan.weights, plan.dataset, plan.collector
    result = evaluate_pairs(predictor, d, w.scale, plan.protocol, bicubic=plan.bicubic,
                            on_image=on_image, save_dir=plan.save_images,
                            on_arrays=collector.add if collector else None,
                            overwrite=plan.request.overwrite)
    result.update(checkpoint=str(w.path), checkpoint_step=w.step, dataset=d.description,
                  degrade=d.degrade.spec() if d.degrade else None, weights=w.bundled,
                  weights_why=plan.kind_why if w.bundled else None,
                  **engine_facts(w, predictor))
    return result


def write_report(plan: EvalPlan, predictor: Any, result: dict[str, Any]) -> Path:
    """--report: the visual report of ``result`` (see :mod:`.report`)."""
    from . import report as R

    d = plan.dataset
    facts = R.describe_weights(plan.weights.path, predictor.meta, plan.weights.why) + [
        ("data", d.description)] + ([("degradation", d.degrade.spec())] if d.degrade else [])
    return R.write_report(plan.report, plan.collector, result, facts,
                          overwrite=plan.request.overwrite)

"""The engine of ``wdsr prepare-data``: aligned HR/LR sub-images as memory-mappable shards.

Output layout (``out`` = config ``data.prepared``)::

    manifest.json                 deterministic description of everything below
    .journal.jsonl                one fsync'd JSON line per finished image (resume)
    train/hr/<name>.npy           (N, crop, crop, 3) uint8 HR sub-images, shared by all scales
    train/x{s}/<name>.npy         (N, crop/s, crop/s, 3) uint8 LR sub-images, same order
    valid/hr/<name>.npy           (H, W, 3) whole (mod-cropped) HR image
    valid/x{s}/<name>.npy         (H/s, W/s, 3) whole LR image

Geometry: every HR image is first cropped (bottom/right) to a multiple of ``m = lcm(scales)``,
so one HR crop serves every scale. Sub-image corners are multiples of ``crop_step`` (itself a
multiple of ``m``) and the last window of each axis is flush with the cropped border, so LR
sub-image ``lr[y/s:(y+crop)/s, x/s:(x+crop)/s]`` is exactly aligned with
``hr[y:y+crop, x:x+crop]``. LR images are either given (used as is, cropped to ``H/s x W/s``)
or generated from the cropped HR with the MATLAB bicubic (:func:`bicubic_downscale`).
Training images smaller than one crop are skipped with a warning.

Robustness: each worker writes its files under a temporary name and ``os.replace``-s them; the
main process then appends the image's record to the journal and fsyncs it. A rerun of the same
command reuses every journaled image whose sources are unchanged and whose outputs still exist
with the recorded sizes, so a run killed at any point (even ``kill -9``) continues where it
stopped and never uses a half-written shard. ``manifest.json`` is written last, atomically.

This module never imports typer, rich or mindspore; progress is reported through a callback.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WdsrError
from ..fileio import atomic_write, check_writable_folder, remove_stale_temps, sha256_file
from ..testpoint import hold_if_asked
from . import div2k

__all__ = ["Event", "Plan", "PrepareOptions", "check_options", "check_output_dir",
           "choose_sample_crop", "discover", "lay_out_sample", "make_plan", "prepare", "run",
           "sample_dir", "verify", "window_positions"]

MANIFEST = "manifest.json"
JOURNAL = ".journal.jsonl"
FORMAT = 1
SAMPLE_CROP = (192, 96)  # crop settings for the small bundled photos (see choose_sample_crop)
SAMPLE_MIN_SUBIMAGES = 200


@dataclass
class PrepareOptions:
    root: Path
    out: Path
    scales: tuple[int, ...] = (2, 3, 4)
    crop_size: int = 480
    crop_step: int = 240
    workers: int = 0  # 0 = one per CPU
    make_lr: bool | None = None  # None: generate where no LR folder exists (see find_dataset)
    skip_bad: bool = False
    force: bool = False
    degradation: str = "bicubic"
    valid_count: int = 0
    note: str = ""  # recorded in the manifest (e.g. why the sample uses other crop settings)

    @property
    def lcm(self) -> int:
        return math.lcm(*self.scales)


@dataclass
class Event:
    """Progress report. kind: start | image | skip | warning | verify-start | verify-file."""

    kind: str
    done: int = 0
    total: int = 0
    name: str = ""
    message: str = ""


Callback = Callable[[Event], None]


def _emit(cb: Callback | None, event: Event) -> None:
    if cb is not None:
        cb(event)


# ------------------------------------------------------------------------------ geometry


def window_positions(length: int, crop: int, step: int) -> list[int]:
    """Corners along one axis: 0, step, 2*step, ... and a last window flush with the end."""
    if length < crop:
        return []
    pos = list(range(0, length - crop + 1, step))
    if pos[-1] != length - crop:
        pos.append(length - crop)
    return pos


def check_options(opts: PrepareOptions) -> PrepareOptions:
    opts.scales = div2k.check_scales(opts.scales)
    m = opts.lcm
    for s in opts.scales:
        if opts.crop_size % s:
            raise WdsrError(f"crop size {opts.crop_size} is not divisible by scale {s}",
                            f"use a multiple of {m} (the lcm of the scales), e.g. "
                            f"{max(m, opts.crop_size // m * m)}")
    if opts.crop_size < m or opts.crop_size < 8:
        raise WdsrError(f"crop size {opts.crop_size} is too small", f"use a multiple of {m}")
    if opts.crop_step < 1 or opts.crop_step % m:
        raise WdsrError(f"crop step {opts.crop_step} is not a positive multiple of {m} "
                        f"(the lcm of scales {','.join(map(str, opts.scales))})",
                        f"use e.g. {max(m, opts.crop_step // m * m)}")
    if opts.workers < 0:
        raise WdsrError("--workers must be 0 (one per CPU) or more",
                        "for example -j 0, or -j 2 for two processes")
    return opts


def check_output_dir(out: Path) -> None:
    """``out`` (or the nearest folder above it, where it will be made) takes files; checked
    before any work and creating nothing, so a refused command leaves no folder behind."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise WdsrError(f"output path '{out}' is a file, not a folder", "pass another --out")
    in_the_way = _foreign(out) if out.is_dir() else None
    if in_the_way is not None:  # it would be written over, or removed by --force
        raise WdsrError(f"'{in_the_way}' is in the --out folder and was not written by wdsr "
                        "prepare-data", "pass a new --out folder (prepare-data writes "
                        f"{MANIFEST}, train/ and valid/ there)")
    check_writable_folder(out, "pass a writable --out folder")


def _foreign(out: Path) -> Path | None:
    """What prepare-data would write over in ``out`` that it did not write itself: a
    manifest, or train/ or valid/ holding files, in a folder without a wdsr manifest or
    journal. (Empty folders are what a run killed at its start leaves.)"""
    manifest = _load_json(out / MANIFEST)
    if (manifest is not None and manifest.get("format") == "wdsr-prepared"
            or _read_journal(out / JOURNAL)[0] is not None):
        return None
    for name in (MANIFEST, JOURNAL):
        if (out / name).exists() or (out / name).is_symlink():
            return out / name
    for name in ("train", "valid"):
        p = out / name
        if p.is_symlink() or p.exists() and (not p.is_dir() or any(
                q.is_symlink() or not q.is_dir() for q in p.rglob("*"))):
            return p
    return None


# ------------------------------------------------------------------------------- sample


def sample_dir() -> Path:
    """The bundled sample photos (package data) and their sample.json."""
    return Path(__file__).resolve().parents[2] / "assets" / "sample"


def lay_out_sample(dest: str | os.PathLike) -> Path:
    """Copy the bundled photos into ``dest`` as a DIV2K tree (train/valid HR folders).

    Files already there with the same bytes are left alone, so a rerun changes nothing.
    """
    src = sample_dir()
    try:
        spec = json.loads((src / "sample.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WdsrError(f"the bundled sample is missing or damaged ({exc})",
                        "reinstall wdsr") from None
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise WdsrError(f"sample path '{dest}' is a file, not a folder", "pass a folder")
    for split in ("train", "valid"):
        folder = dest / f"DIV2K_{split}_HR"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name in spec[split]:
                target = folder / name
                data = (src / name).read_bytes()
                if target.is_file() and target.read_bytes() == data:
                    continue
                atomic_write(target, data)
        except OSError as exc:
            raise WdsrError(f"cannot write the sample to '{folder}': {exc.strerror or exc}",
                            "pass a writable folder to --sample") from None
    return dest


def choose_sample_crop(inv: div2k.Inventory, opts: PrepareOptions) -> tuple[int, int, str]:
    """Keep the requested crop unless it skips sample photos or gives few sub-images."""
    count, small = _count_subimages(inv, opts.crop_size, opts.crop_step, opts.lcm)
    if not small and count >= SAMPLE_MIN_SUBIMAGES:
        return opts.crop_size, opts.crop_step, ""
    crop, step = SAMPLE_CROP
    note = (f"bundled sample: crop {crop} step {step} instead of {opts.crop_size}/"
            f"{opts.crop_step}, which would give {count} sub-images and skip {len(small)} of "
            f"{len(inv.split_pairs('train'))} photos")
    return crop, step, note


def _count_subimages(inv, crop, step, m) -> tuple[int, list[str]]:
    count, small = 0, []
    for pair in inv.split_pairs("train"):
        h, w = pair.hr.height // m * m, pair.hr.width // m * m
        n = len(window_positions(h, crop, step)) * len(window_positions(w, crop, step))
        count += n
        if n == 0:
            small.append(pair.hr.rel)
    return count, small


# --------------------------------------------------------------------------------- files


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _write_npy(out: Path, rel: str, arr: np.ndarray) -> dict[str, Any]:
    data = _npy_bytes(arr)
    atomic_write(out / rel, data)
    return {"file": rel, "shape": list(arr.shape), "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


def _source_info(path: Path, rel: str, role: str) -> dict[str, Any]:
    st = path.stat()
    return {"file": rel, "role": role, "size": st.st_size, "sha256": sha256_file(path),
            "mtime_ns": st.st_mtime_ns}


# -------------------------------------------------------------------------------- worker


class _BadSource(Exception):
    """A problem with one input image: skippable with --skip-bad."""


def _process(task: dict[str, Any]) -> dict[str, Any]:
    """Worker: one image -> its shards. Returns {"ok", "record"} or an error description."""
    hold_if_asked(f"prepare-image-{task['name']}")  # tests only (testpoint.py)
    try:
        return {"ok": True, "record": _process_image(task)}
    except _BadSource as exc:
        err = exc.args[0]
        return {"ok": False, "bad": True, "file": task["hr_rel"], "message": err.message,
                "hint": err.hint}
    except WdsrError as exc:
        return {"ok": False, "bad": False, "message": exc.message, "hint": exc.hint}
    except OSError as exc:
        return {"ok": False, "bad": False,
                "message": f"cannot write '{exc.filename or task['out']}': {exc.strerror or exc}",
                "hint": "check free disk space and permissions of --out"}


def _process_image(task: dict[str, Any]) -> dict[str, Any]:
    from .images import read_rgb_uint8
    from .resize import bicubic_downscale

    out = Path(task["out"])
    scales, m = task["scales"], task["lcm"]
    crop, step, split, name = task["crop"], task["step"], task["split"], task["name"]
    sources = []
    try:
        sources.append(_source_info(Path(task["hr"]), task["hr_rel"], "hr"))
        hr = read_rgb_uint8(task["hr"])
        h, w = hr.shape[0] // m * m, hr.shape[1] // m * m
        if h == 0 or w == 0:
            raise WdsrError(f"image '{task['hr_rel']}' is smaller than {m}x{m} pixels",
                            "remove it, pass --skip-bad, or prepare only smaller --scales")
        hr = hr[:h, :w]
        lrs: dict[int, np.ndarray] = {}
        kinds: dict[str, str] = {}
        for s in scales:
            given = task["lr"].get(str(s))
            if given is None:
                lrs[s] = bicubic_downscale(hr, s)
                kinds[str(s)] = "generated"
                continue
            path, rel = given
            sources.append(_source_info(Path(path), rel, f"x{s}"))
            lr = read_rgb_uint8(path)
            if lr.shape[0] < h // s or lr.shape[1] < w // s:
                raise WdsrError(f"LR '{rel}' is {lr.shape[1]}x{lr.shape[0]} but HR "
                                f"'{task['hr_rel']}' needs at least {w // s}x{h // s} at x{s}")
            lrs[s] = lr[: h // s, : w // s]
            kinds[str(s)] = "given"
        if split == "train":
            ys, xs = window_positions(h, crop, step), window_positions(w, crop, step)
            if not ys or not xs:
                raise WdsrError(f"image '{task['hr_rel']}' ({w}x{h} after cropping to a "
                                f"multiple of {m}) is smaller than the crop size {crop}")
    except WdsrError as exc:
        raise _BadSource(exc) from None

    outputs: dict[str, Any] = {}
    if split == "train":
        corners = [(y, x) for y in ys for x in xs]
        stack = np.stack([hr[y:y + crop, x:x + crop] for y, x in corners])
        outputs["hr"] = _write_npy(out, f"train/hr/{name}.npy", stack)
        for s in scales:
            c = crop // s
            lr = lrs[s]
            stack = np.stack([lr[y // s:y // s + c, x // s:x // s + c] for y, x in corners])
            outputs[f"x{s}"] = _write_npy(out, f"train/x{s}/{name}.npy", stack)
        n = len(corners)
    else:
        outputs["hr"] = _write_npy(out, f"valid/hr/{name}.npy", hr)
        for s in scales:
            outputs[f"x{s}"] = _write_npy(out, f"valid/x{s}/{name}.npy", lrs[s])
        n = 0
    return {"type": "image", "split": split, "name": name, "sources": sources,
            "hr_size": [h, w], "subimages": n, "lr": kinds, "outputs": outputs}


# ------------------------------------------------------------------------------ planning


@dataclass
class Plan:
    opts: PrepareOptions
    inventory: div2k.Inventory
    tasks: list[dict[str, Any]]  # every image to be in the manifest, sorted
    done: dict[tuple[str, str], dict[str, Any]]  # reusable journal records
    skipped: list[dict[str, str]]  # {"file", "reason"} left out (too small, --skip-bad)
    warnings: list[str] = field(default_factory=list)
    complete: dict[str, Any] | None = None  # the existing manifest when nothing is left to do

    @property
    def todo(self) -> list[dict[str, Any]]:
        return [t for t in self.tasks if (t["split"], t["name"]) not in self.done]


def discover(opts: PrepareOptions) -> div2k.Inventory:
    # --out may be the source folder itself: its manifest is not an image to prepare.
    return div2k.find_dataset(opts.root, opts.scales, make_lr=opts.make_lr,
                              degradation=opts.degradation, valid_count=opts.valid_count,
                              ignore=(Path(opts.out) / MANIFEST,))


def _journal_options(opts: PrepareOptions) -> dict[str, Any]:
    return {"crop_size": opts.crop_size, "crop_step": opts.crop_step,
            "scales": list(opts.scales), "degradation": opts.degradation,
            "source": str(Path(opts.root).resolve())}


def _manifest_options(opts: PrepareOptions, inv: div2k.Inventory) -> dict[str, Any]:
    return {"crop_size": opts.crop_size, "crop_step": opts.crop_step,
            "scales": list(opts.scales), "lcm": opts.lcm, "degradation": opts.degradation,
            "layout": inv.layout, "resize": "matlab-bicubic", "note": opts.note}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [k for k in new if old.get(k) != new[k]]
    return ", ".join(f"{k} {old.get(k)!r} -> {new[k]!r}" for k in keys)


def make_plan(inv: div2k.Inventory, opts: PrepareOptions) -> Plan:
    """Decide what to do: raise on problems (or skip them), reuse the journal, find skips."""
    out = Path(opts.out)
    skipped: list[dict[str, str]] = []
    warnings: list[str] = []
    if inv.problems:
        if not opts.skip_bad:
            first = inv.problems[0]
            more = f" (and {len(inv.problems) - 1} more problems)" if len(inv.problems) > 1 else ""
            raise WdsrError(first.message + more,
                            "fix or remove the file, or pass --skip-bad to leave it out")
        for p in inv.problems:
            skipped.append({"file": p.file, "reason": p.kind})
            warnings.append(f"skipped {p.file}: {p.message}")
    bad = inv.bad_names()
    tasks = []
    for pair in inv.pairs:
        if (pair.split, pair.name) in bad:
            continue
        h, w = pair.hr.height // opts.lcm * opts.lcm, pair.hr.width // opts.lcm * opts.lcm
        too_small = (h == 0 or w == 0) or (pair.split == "train" and (
            h < opts.crop_size or w < opts.crop_size))
        if too_small:
            skipped.append({"file": pair.hr.rel, "reason": "smaller than the crop"})
            warnings.append(f"skipped {pair.hr.rel}: {pair.hr.width}x{pair.hr.height} is smaller "
                            f"than the crop size {opts.crop_size}")
            continue
        tasks.append({
            "split": pair.split, "name": pair.name, "hr": str(pair.hr.path),
            "hr_rel": pair.hr.rel,
            "lr": {str(s): (None if img is None else (str(img.path), img.rel))
                   for s, img in sorted(pair.lr.items())},
            "scales": list(opts.scales), "lcm": opts.lcm, "crop": opts.crop_size,
            "step": opts.crop_step, "out": str(out)})
    if not any(t["split"] == "train" for t in tasks):
        raise WdsrError(f"no training images left in '{inv.root}'"
                        + (f" ({len(skipped)} skipped)" if skipped else ""),
                        f"a training image must be at least {opts.crop_size} pixels per side; "
                        "lower --crop-size or add images")
    skipped.sort(key=lambda d: d["file"])
    plan = Plan(opts, inv, tasks, {}, skipped, warnings)

    if opts.force:
        _wipe(out)
    _check_manifest_options(out, opts, inv)
    plan.done = _reusable_records(out, opts, tasks)
    existing = _load_json(out / MANIFEST)
    if existing is not None and not plan.todo:
        candidate = build_manifest(plan)
        if candidate == existing and _outputs_present(out, existing):
            plan.complete = existing
    return plan


def _check_manifest_options(out: Path, opts: PrepareOptions, inv: div2k.Inventory) -> None:
    existing = _load_json(out / MANIFEST)
    if existing is None:
        return
    old = {k: existing.get("options", {}).get(k) for k in ("crop_size", "crop_step", "scales",
                                                             "degradation")}
    new = {k: v for k, v in _manifest_options(opts, inv).items() if k in old}
    if old != new:
        raise WdsrError(f"'{out}' already holds data prepared with other options "
                        f"({_differences(old, new)})",
                        "use a new --out folder, or pass --force to start over")


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_journal(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Header and records; a torn (partly written) last line is ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None, []
    header, records = None, []
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            continue  # torn line from an interrupted append
        if item.get("type") == "header" and header is None:
            header = item
        elif item.get("type") == "image" and header is not None:
            records.append(item)
    return header, records


def _reusable_records(out: Path, opts: PrepareOptions, tasks) -> dict:
    header, records = _read_journal(out / JOURNAL)
    if header is None:
        return {}
    new = _journal_options(opts)
    if header.get("options") != new:
        raise WdsrError(f"'{out}' holds a preparation (journal) made with other options "
                        f"({_differences(header.get('options') or {}, new)})",
                        "rerun it with the same options, use a new --out folder, "
                        "or pass --force to start over")
    by_key = {(t["split"], t["name"]): t for t in tasks}
    done = {}
    for rec in records:
        key = (rec.get("split"), rec.get("name"))
        task = by_key.get(key)
        if task is not None and _record_matches(out, rec, task):
            done[key] = rec
    return done


def _record_matches(out: Path, rec: dict[str, Any], task: dict[str, Any]) -> bool:
    try:
        want = {("hr", task["hr_rel"])}
        want |= {(f"x{s}", v[1]) for s, v in task["lr"].items() if v is not None}
        have = {(src["role"], src["file"]) for src in rec["sources"]}
        if want != have:
            return False
        kinds = {s: ("generated" if v is None else "given") for s, v in task["lr"].items()}
        if rec["lr"] != kinds:
            return False
        root_of = {task["hr_rel"]: task["hr"]}
        root_of.update({v[1]: v[0] for v in task["lr"].values() if v is not None})
        for src in rec["sources"]:
            st = os.stat(root_of[src["file"]])
            if st.st_size != src["size"] or st.st_mtime_ns != src["mtime_ns"]:
                return False
        expected = {"hr"} | {f"x{s}" for s in task["scales"]}
        if set(rec["outputs"]) != expected:
            return False
        for o in rec["outputs"].values():
            if os.stat(out / o["file"]).st_size != o["size"]:
                return False
    except (KeyError, TypeError, OSError):
        return False
    return True


def _outputs_present(out: Path, manifest: dict[str, Any]) -> bool:
    try:
        for entry in manifest["train"] + manifest["valid"]:
            for o in entry["outputs"].values():
                if os.stat(out / o["file"]).st_size != o["size"]:
                    return False
    except (KeyError, TypeError, OSError):
        return False
    return True


def _our_dirs(out: Path) -> list[Path]:
    """The shard folders prepare-data writes: train/hr, train/x2, ... (exact names only)."""
    dirs = []
    for split in ("train", "valid"):
        base = out / split
        if base.is_dir():
            dirs += [d for d in base.iterdir() if d.is_dir() and not d.is_symlink()
                     and re.fullmatch(r"hr|x[0-9]+", d.name)]
    return dirs


def _wipe(out: Path) -> None:
    """--force: remove what prepare-data wrote (only its own files)."""
    for d in _our_dirs(out):
        shutil.rmtree(d)
    for split in ("train", "valid"):
        try:
            (out / split).rmdir()
        except OSError:
            pass
    for name in (MANIFEST, JOURNAL):
        try:
            (out / name).unlink()
        except FileNotFoundError:
            pass


# ----------------------------------------------------------------------------- manifest


def _strip(rec: dict[str, Any]) -> dict[str, Any]:
    entry = {k: v for k, v in rec.items() if k != "type"}
    entry["sources"] = [{k: v for k, v in s.items() if k != "mtime_ns"}
                        for s in rec["sources"]]
    return entry


def build_manifest(plan: Plan) -> dict[str, Any]:
    """The deterministic manifest of a finished plan (sorted, no times or absolute paths)."""
    opts = plan.opts
    entries = {"train": [], "valid": []}
    for t in plan.tasks:
        entries[t["split"]].append(_strip(plan.done[(t["split"], t["name"])]))
    for split in entries:
        entries[split].sort(key=lambda e: e["name"])
    subimages = sum(e["subimages"] for e in entries["train"])
    body = {
        "format": "wdsr-prepared",
        "version": FORMAT,
        "options": _manifest_options(opts, plan.inventory),
        "counts": {"train_images": len(entries["train"]), "train_subimages": subimages,
                   "valid_images": len(entries["valid"]),
                   "patches": {f"x{s}": subimages for s in opts.scales}},
        "train": entries["train"],
        "valid": entries["valid"],
        "skipped": plan.skipped,
    }
    return {"dataset_id": dataset_id(body), **body}


def dataset_id(body: dict[str, Any]) -> str:
    body = {k: v for k, v in body.items() if k != "dataset_id"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _dump(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------- run


class _Journal:
    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        old_header, _ = _read_journal(path)
        if old_header is None:
            atomic_write(path, (json.dumps(header, sort_keys=True) + "\n").encode())
        else:
            with open(path, "rb+") as f:  # drop a torn last line before appending
                data = f.read()
                keep = data.rfind(b"\n") + 1
                if keep != len(data):
                    f.truncate(keep)
        self.f = open(path, "a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        self.f.write(json.dumps(record, sort_keys=True) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def _summary(plan: Plan, manifest: dict[str, Any], status: str, processed: int,
             seconds: float) -> dict[str, Any]:
    c = manifest["counts"]
    return {"status": status, "out": str(plan.opts.out), "dataset_id": manifest["dataset_id"],
            "layout": manifest["options"]["layout"], "scales": list(plan.opts.scales),
            "crop_size": plan.opts.crop_size, "crop_step": plan.opts.crop_step,
            "note": plan.opts.note,
            "train_images": c["train_images"], "valid_images": c["valid_images"],
            "train_subimages": c["train_subimages"], "patches": c["patches"],
            "skipped": manifest["skipped"], "processed": processed,
            "reused": len(plan.tasks) - processed,
            "seconds": round(seconds, 3),
            "images_per_s": round(processed / seconds, 3) if seconds > 0 and processed else 0.0}


def run(plan: Plan, on_event: Callback | None = None) -> dict[str, Any]:
    """Process every image not yet done, then write the manifest. Returns a summary."""
    opts, out = plan.opts, Path(plan.opts.out)
    for w in plan.warnings:
        _emit(on_event, Event("warning", message=w))
    if plan.complete is not None:
        return _summary(plan, plan.complete, "already-prepared", 0, 0.0)
    for d in ["train/hr", "valid/hr"] + [f"{sp}/x{s}" for sp in ("train", "valid")
                                         for s in opts.scales]:
        (out / d).mkdir(parents=True, exist_ok=True)
    for d in _our_dirs(out):  # temporary files of a killed run
        remove_stale_temps(d)

    todo = plan.todo
    total = len(plan.tasks)
    _emit(on_event, Event("start", done=total - len(todo), total=total))
    journal = _Journal(out / JOURNAL, {"type": "header", "format": FORMAT,
                                       "options": _journal_options(opts)})
    start = time.perf_counter()
    processed = 0
    results = _results(todo, opts.workers)
    try:
        for res in results:
            if res["ok"]:
                rec = res["record"]
                journal.append(rec)
                plan.done[(rec["split"], rec["name"])] = rec
                processed += 1
                _emit(on_event, Event("image", done=total - len(todo) + processed,
                                      total=total, name=rec["name"]))
            elif res["bad"] and opts.skip_bad:
                plan.tasks = [t for t in plan.tasks if t["hr_rel"] != res["file"]]
                plan.skipped.append({"file": res["file"], "reason": "unreadable"})
                plan.skipped.sort(key=lambda d: d["file"])
                total -= 1
                _emit(on_event, Event("skip", done=total - len(todo) + processed, total=total,
                                      name=res["file"], message=res["message"]))
            else:
                raise WdsrError(res["message"], res.get("hint") or (
                    "fix or remove the file, or pass --skip-bad to leave it out"
                    if res["bad"] else None))
    except BaseException:  # an error, Ctrl-C, SIGTERM: the pool's workers are stopped (and
        results.close()    # waited for) here, then what they were writing is removed
        for d in _our_dirs(out):
            remove_stale_temps(d)
        raise
    finally:
        journal.close()
    seconds = time.perf_counter() - start
    if not any(t["split"] == "train" for t in plan.tasks):
        raise WdsrError("every training image was skipped", "see the warnings above")
    manifest = build_manifest(plan)
    atomic_write(out / MANIFEST, _dump(manifest))
    _remove_stale(out, manifest)
    return _summary(plan, manifest, "prepared", processed, seconds)


def _results(todo: list[dict[str, Any]], workers: int):
    n = min(workers or os.cpu_count() or 1, len(todo))
    if n <= 1:
        for task in todo:
            yield _process(task)
        return
    ctx = mp.get_context("spawn")  # safe with threads in the parent (progress UI)
    with ctx.Pool(n, initializer=_worker_init, initargs=(os.getpid(),)) as pool:
        yield from pool.imap_unordered(_process, todo, chunksize=1)


def _worker_init(parent_pid: int) -> None:
    from ..runtime import die_with_parent

    # Ctrl-C reaches the whole process group: the parent stops the pool, workers stay quiet.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # kill -9 of the parent: the workers go too (orphans printed BrokenPipeError tracebacks);
    # what they were writing is a temporary file the next run removes.
    die_with_parent(parent_pid)


def _remove_stale(out: Path, manifest: dict[str, Any]) -> None:
    keep = {o["file"] for e in manifest["train"] + manifest["valid"]
            for o in e["outputs"].values()}
    for d in _our_dirs(out):
        for f in d.glob("*.npy"):
            if f.relative_to(out).as_posix() not in keep:
                f.unlink(missing_ok=True)


# -------------------------------------------------------------------------------- verify


def verify(out: str | os.PathLike, root: str | os.PathLike | None,
           on_event: Callback | None = None, workers: int = 0) -> dict[str, Any]:
    """Re-hash every shard (and every source file under ``root``) against the manifest."""
    from .pipeline import read_manifest

    out = Path(out)
    manifest = read_manifest(out)
    checks = []  # (label, path, size, sha256)
    for entry in manifest["train"] + manifest["valid"]:
        for o in entry["outputs"].values():
            checks.append((o["file"], out / o["file"], o["size"], o["sha256"]))
        if root is not None:
            for src in entry["sources"]:
                checks.append((src["file"], Path(root) / src["file"], src["size"],
                               src["sha256"]))
    total = len(checks)
    _emit(on_event, Event("verify-start", total=total))

    def check(item) -> str:
        _label, path, size, sha = item
        try:
            if path.stat().st_size != size:
                return f"size {path.stat().st_size} != {size}"
            return "" if sha256_file(path) == sha else "sha256 differs"
        except OSError as exc:
            return "missing" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc))

    mismatches = []
    with ThreadPoolExecutor(max(1, workers or os.cpu_count() or 1)) as ex:
        for i, (item, problem) in enumerate(zip(checks, ex.map(check, checks), strict=True)):
            if problem:
                mismatches.append({"file": item[0], "problem": problem})
            _emit(on_event, Event("verify-file", done=i + 1, total=total, name=item[0]))
    return {"dataset_id": manifest.get("dataset_id"), "checked": total,
            "mismatches": mismatches}


# ------------------------------------------------------------------------- convenience


def prepare(opts: PrepareOptions, on_event: Callback | None = None,
            on_inventory: Callable[[div2k.Inventory], None] | None = None) -> dict[str, Any]:
    """check options -> discover -> check output -> plan -> run (the library entry point)."""
    check_options(opts)
    inv = discover(opts)
    check_output_dir(Path(opts.out))
    if on_inventory is not None:
        on_inventory(inv)
    return run(make_plan(inv, opts), on_event)


# -------------------------------------------------------------- the prepare-data command


@dataclass
class PrepareRequest:
    """What ``wdsr prepare-data`` was asked (flags as given; None = the config's value)."""

    root: Path | None = None
    out: Path | None = None
    scales: str = "2,3,4"
    crop_size: int | None = None
    crop_step: int | None = None
    workers: int | None = None
    make_lr: bool | None = None
    degradation: str = "bicubic"
    valid_count: int = 0
    skip_bad: bool = False
    verify: bool = False
    force: bool = False
    sample: Path | None = None  # lay out the bundled sample photos here, prepare them
    json_out: str | None = None
    overrides: list[str] = field(default_factory=list)


@dataclass
class PrepareJob:
    """A checked preparation: ``inventory`` and ``plan`` are None when only --verify runs
    (the output is prepared already)."""

    opts: PrepareOptions
    inventory: div2k.Inventory | None = None
    plan: Plan | None = None

    @property
    def notes(self) -> list[str]:
        return (self.inventory.notes if self.inventory else []) + (
            [self.opts.note] if self.opts.note else [])

    def run(self, on_event: Callback | None = None) -> dict[str, Any]:
        return run(self.plan, on_event)

    def verify(self, on_event: Callback | None = None) -> dict[str, Any]:
        return verify(self.opts.out, self.opts.root, on_event, workers=self.opts.workers)

    def verified(self, report: dict[str, Any]) -> str:
        """The line for a clean --verify; WdsrError naming the first mismatch otherwise."""
        bad = report["mismatches"]
        if bad:
            raise WdsrError(f"{len(bad)} of {report['checked']} files do not match the manifest "
                            f"of '{self.opts.out}' (first: {bad[0]['file']}: "
                            f"{bad[0]['problem']})", "prepare again with --force")
        return (f"verified: {report['checked']} files match the manifest of '{self.opts.out}' "
                f"(dataset id {report['dataset_id']})")


def _scales(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise WdsrError(f"--scales must be a comma-separated list of integers, got '{text}'",
                        "for example --scales 2,3,4") from None


def plan_prepare(r: PrepareRequest, cfg: Any) -> PrepareJob:
    """Check the flags, find the data and plan the work; creates nothing but the sample tree
    (with --sample). The bundled sample gets its own crop unless one was asked for."""
    from .. import jsonout
    from ..config import overridden

    jsonout.check(r.json_out)
    if r.sample is not None and r.root is not None:
        raise WdsrError("give either DIV2K_ROOT or --sample, not both",
                        "--sample DIR prepares the bundled photos in DIR")
    default_out = r.sample / "prepared" if r.sample is not None else Path(cfg.data.prepared)
    opts = check_options(PrepareOptions(
        root=r.sample if r.sample is not None else (r.root or Path(cfg.data.root)),
        out=r.out or default_out, scales=_scales(r.scales),
        crop_size=cfg.data.crop_size if r.crop_size is None else r.crop_size,
        crop_step=cfg.data.crop_step if r.crop_step is None else r.crop_step,
        workers=cfg.data.workers if r.workers is None else r.workers, make_lr=r.make_lr,
        skip_bad=r.skip_bad, force=r.force, degradation=r.degradation,
        valid_count=r.valid_count))
    jsonout.apart(r.json_out, owned=opts.out, owner="--out")
    if r.verify and (Path(opts.out) / MANIFEST).is_file():
        return PrepareJob(opts)
    if r.sample is not None:
        check_output_dir(opts.out)
        lay_out_sample(r.sample)
    inv = discover(opts)  # reads headers only; a wrong path creates no output folder
    check_output_dir(opts.out)
    crop_given = r.crop_size is not None or r.crop_step is not None or overridden(
        r.overrides, "data.crop_size", "data.crop_step")
    if r.sample is not None and not crop_given:
        opts.crop_size, opts.crop_step, opts.note = choose_sample_crop(inv, opts)
        check_options(opts)
    return PrepareJob(opts, inv, make_plan(inv, opts))

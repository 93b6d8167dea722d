"""Find the training data: DIV2K in its official or model-zoo layout, or a plain HR folder.

Three layouts are recognised under a root folder:

* **div2k** (official): ``DIV2K_train_HR/0001.png`` ... and ``DIV2K_valid_HR/0801.png`` ...,
  with LR images in ``DIV2K_{train,valid}_LR_{bicubic,unknown}/X{2,3,4}/NNNNx{s}.png``
  (x8: ``.../X8/`` or ``DIV2K_{split}_LR_x8/``). Each folder is its own split.
* **div2k-modelzoo**: only the train folders exist and also hold 0801-0900 (the MindSpore
  model-zoo WDSR asked users to copy validation images there). The split is by number:
  0001-0800 train, 0801-0900 valid.
* **folder**: any folder of HR images (non-recursive). LR images are generated with the
  MATLAB bicubic; ``valid_count`` (the last N names) makes a validation split.

Nothing is decoded here: sizes come from image headers, PNGs are checked for a complete chunk
list (a truncated download is the most common bad file), and every problem is collected in
:attr:`Inventory.problems` instead of raised, so the caller can show all of them at once.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..config import check_scale
from ..errors import WdsrError
from .images import is_image_file, probe_image

__all__ = ["DEGRADATIONS", "Image", "Inventory", "Pair", "Problem", "find_dataset"]

DEGRADATIONS = ("bicubic", "unknown")
_MODELZOO_FIRST_VALID = 801

# Problem kinds: a missing or mismatched file, a non-image in an HR folder, an unreadable file.
MISSING_LR = "missing LR"
LR_SIZE = "LR size"
NOT_IMAGE = "not an image"
UNREADABLE = "unreadable"
DUPLICATE = "duplicate name"


@dataclass(frozen=True)
class Image:
    """One file on disk: path relative to the dataset root, absolute path, oriented size."""

    rel: str
    path: Path
    height: int
    width: int


@dataclass
class Pair:
    """One HR image and, per scale, its given LR image (None: to be generated)."""

    split: str  # "train" | "valid"
    name: str  # output name (the HR file's stem)
    hr: Image
    lr: dict[int, Image | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    kind: str  # one of the constants above
    file: str  # relative to the root
    message: str
    split: str = ""
    name: str = ""  # the affected pair's name ("" for a stray file)
    scale: int = 0


@dataclass
class Inventory:
    root: Path
    layout: str  # "div2k" | "div2k-modelzoo" | "folder"
    degradation: str  # "bicubic" | "unknown" | "generated" (plain folders)
    scales: tuple[int, ...]
    pairs: list[Pair]
    problems: list[Problem]
    notes: list[str] = field(default_factory=list)

    def split_pairs(self, split: str) -> list[Pair]:
        return [p for p in self.pairs if p.split == split]

    def bad_names(self) -> set[tuple[str, str]]:
        return {(p.split, p.name) for p in self.problems if p.name}

    def summary_rows(self) -> list[dict[str, object]]:
        """One row per split for HR and per (split, scale) for LR: what the table shows."""
        rows: list[dict[str, object]] = []
        for split in ("train", "valid"):
            pairs = self.split_pairs(split)
            probs = [p for p in self.problems if p.split == split]
            if not pairs and not probs:
                continue
            stray = Counter(p.kind for p in probs if p.scale == 0)
            rows.append({"split": split, "kind": "HR", "images": len(pairs),
                         "given": len(pairs), "generated": 0, "missing": 0,
                         "mismatched": 0,
                         "bad": stray[NOT_IMAGE] + stray[UNREADABLE] + stray[DUPLICATE]})
            for s in self.scales:
                given = sum(1 for p in pairs if p.lr.get(s) is not None)
                per = Counter(p.kind for p in probs if p.scale == s)
                rows.append({"split": split, "kind": f"x{s}", "images": len(pairs),
                             "given": given, "generated": len(pairs) - given,
                             "missing": per[MISSING_LR], "mismatched": per[LR_SIZE],
                             "bad": per[UNREADABLE] + per[NOT_IMAGE]})
        return rows


# ---------------------------------------------------------------------------- scanning


class _Scan:
    def __init__(self, root: Path, ignore: frozenset[Path] = frozenset()) -> None:
        self.root = root
        self.ignore = ignore  # files that are not data (prepare-data's own, when --out = root)
        self.problems: list[Problem] = []

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def image(self, path: Path, split: str, name: str = "", scale: int = 0) -> Image | None:
        try:
            h, w = probe_image(path)
        except WdsrError as exc:
            self.problems.append(Problem(UNREADABLE, self.rel(path), exc.message, split, name,
                                         scale))
            return None
        return Image(self.rel(path), path, h, w)

    def listing(self, folder: Path, split: str, report_non_images: bool) -> list[Path]:
        """Image files in ``folder`` sorted by name; non-images become problems."""
        files = []
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if entry.name.startswith(".") or not entry.is_file() or entry in self.ignore:
                continue
            if is_image_file(entry):
                files.append(entry)
            elif report_non_images:
                self.problems.append(Problem(
                    NOT_IMAGE, self.rel(entry),
                    f"'{self.rel(entry)}' is not an image file", split))
        return files

    def hr_pairs(self, files: list[Path], split_of) -> list[Pair]:
        pairs, seen = [], {}
        for path in files:
            split = split_of(path)
            name = path.stem
            if (split, name) in seen:
                self.problems.append(Problem(
                    DUPLICATE, self.rel(path),
                    f"'{self.rel(path)}' has the same name as '{seen[(split, name)]}'", split))
                continue
            seen[(split, name)] = self.rel(path)
            img = self.image(path, split, name)
            if img is not None:
                pairs.append(Pair(split, name, img))
        return pairs


def _number(name: str) -> int | None:
    return int(name) if re.fullmatch(r"\d{3,5}", name) else None


def _lr_folder(root: Path, folder_split: str, degradation: str, scale: int) -> Path | None:
    candidates = [root / f"DIV2K_{folder_split}_LR_{degradation}" / f"X{scale}"]
    if scale == 8 and degradation == "bicubic":
        candidates.append(root / f"DIV2K_{folder_split}_LR_x8")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def _lr_index(folder: Path, scale: int) -> dict[str, Path]:
    """HR stem -> LR file for names like ``0001x2.png``."""
    index = {}
    suffix = f"x{scale}"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.is_file() and is_image_file(entry) and entry.stem.lower().endswith(suffix):
            index.setdefault(entry.stem[: -len(suffix)], entry)
    return index


def check_scales(scales) -> tuple[int, ...]:
    """Each scale checked (config.check_scale), once each, in increasing order."""
    out = []
    for s in map(check_scale, scales):
        if s not in out:
            out.append(s)
    if not out:
        raise WdsrError("no scale given", "for example --scales 2,3,4")
    return tuple(sorted(out))


def find_dataset(root: str | os.PathLike, scales=(2, 3, 4), *, make_lr: bool | None = None,
                 degradation: str = "bicubic", valid_count: int = 0,
                 ignore: tuple[str | os.PathLike, ...] = ()) -> Inventory:
    """Recognise the layout under ``root`` and pair every HR image with its LR images.

    ``make_lr``: True generates any missing LR image; False never generates (a missing LR is
    a problem); None (default) generates for plain folders and for DIV2K scales whose LR folder
    does not exist at all, while a missing file inside an existing LR folder is a problem.

    Raises WdsrError for a missing root, an empty folder or bad arguments; per-file problems
    are collected in ``Inventory.problems``. ``ignore``: files to pass over (not data).
    """
    scales = check_scales(scales)
    if degradation not in DEGRADATIONS:
        raise WdsrError(f"unknown degradation '{degradation}'",
                        "choose " + " or ".join(DEGRADATIONS))
    if valid_count < 0:
        raise WdsrError("--valid-count must be 0 or more",
                        "the last N images (by name) become validation; 0 = none")
    root = Path(root).expanduser()
    if not root.exists():
        raise WdsrError(f"dataset folder '{root}' does not exist",
                        "pass the DIV2K root (holding DIV2K_train_HR) or a folder of HR images")
    if not root.is_dir():
        raise WdsrError(f"dataset path '{root}' is not a folder",
                        "pass the DIV2K root (holding DIV2K_train_HR) or a folder of HR images")
    root = root.resolve()
    skip = frozenset(Path(p).expanduser().resolve() for p in ignore)
    train_dir, valid_dir = root / "DIV2K_train_HR", root / "DIV2K_valid_HR"
    if train_dir.is_dir() or valid_dir.is_dir():
        if valid_count:
            raise WdsrError("--valid-count only applies to a plain folder of images",
                            "DIV2K brings its own split (0801-0900 are validation)")
        return _find_div2k(root, scales, make_lr, degradation, skip)
    return _find_folder(root, scales, make_lr, valid_count, skip)


def _find_div2k(root: Path, scales, make_lr, degradation, skip) -> Inventory:
    scan = _Scan(root, skip)
    train_dir, valid_dir = root / "DIV2K_train_HR", root / "DIV2K_valid_HR"
    notes: list[str] = []
    folders = []  # (folder split, files)
    for split, folder in (("train", train_dir), ("valid", valid_dir)):
        if folder.is_dir():
            folders.append((split, scan.listing(folder, split, True)))
    train_files = dict(folders).get("train", [])
    late = [p for p in train_files if (_number(p.stem) or 0) >= _MODELZOO_FIRST_VALID]
    modelzoo = not valid_dir.is_dir() and bool(late)
    layout = "div2k-modelzoo" if modelzoo else "div2k"
    if modelzoo:
        notes.append(f"{len(late)} images numbered 0801 and up sit in DIV2K_train_HR: they are "
                     "used for validation (model-zoo layout)")

    pairs: list[Pair] = []
    made: list[str] = []
    valid_names = set()
    for folder_split, files in sorted(folders, key=lambda f: f[0] != "valid"):
        if folder_split == "train" and modelzoo:
            def split_of(p: Path) -> str:
                return "valid" if (_number(p.stem) or 0) >= _MODELZOO_FIRST_VALID else "train"
        else:
            def split_of(p: Path, s=folder_split) -> str:
                return s
        if folder_split == "train" and valid_names:
            dup = [p for p in files if p.stem in valid_names]
            if dup:
                notes.append(f"{len(dup)} images of DIV2K_train_HR are also in DIV2K_valid_HR: "
                             "they are left out of training")
                files = [p for p in files if p.stem not in valid_names]
        found = scan.hr_pairs(files, split_of)
        if folder_split == "valid":
            valid_names = {p.name for p in found}
        for s in scales:
            lr_dir = _lr_folder(root, folder_split, degradation, s)
            index = _lr_index(lr_dir, s) if lr_dir is not None else {}
            generate_missing = make_lr is True or (make_lr is None and lr_dir is None)
            if lr_dir is None and found and generate_missing and degradation == "bicubic":
                made.append(f"{folder_split} x{s}")
            for pair in found:
                lr_path = index.get(pair.name)
                if lr_path is None:
                    if generate_missing and degradation == "bicubic":
                        pair.lr[s] = None
                        continue
                    where = (f"DIV2K_{folder_split}_LR_{degradation}/X{s}/{pair.name}x{s}.png"
                             if lr_dir is None else
                             f"{scan.rel(lr_dir)}/{pair.name}x{s}.png")
                    scan.problems.append(Problem(
                        MISSING_LR, where,
                        f"'{pair.hr.rel}' has no x{s} LR image ('{where}' is missing)",
                        pair.split, pair.name, s))
                    continue
                lr = scan.image(lr_path, pair.split, pair.name, s)
                if lr is None:
                    continue
                if not _lr_size_ok(pair.hr, lr, s):
                    scan.problems.append(Problem(
                        LR_SIZE, lr.rel,
                        f"LR '{lr.rel}' is {lr.width}x{lr.height} but HR '{pair.hr.rel}' "
                        f"({pair.hr.width}x{pair.hr.height}) at x{s} needs "
                        f"{pair.hr.width // s}x{pair.hr.height // s}",
                        pair.split, pair.name, s))
                    continue
                pair.lr[s] = lr
        pairs.extend(found)
    if not pairs and not scan.problems:
        raise WdsrError(f"no images in '{train_dir}' or '{valid_dir}'",
                        "extract DIV2K_train_HR.zip (and DIV2K_valid_HR.zip) there")
    if made:
        notes.append(f"no LR folder for {', '.join(sorted(made))}: those LR images are generated "
                     "with the MATLAB bicubic")
    pairs.sort(key=lambda p: (p.split != "train", p.name))
    deg = degradation if any(v is not None for p in pairs for v in p.lr.values()) else "generated"
    return Inventory(root, layout, deg, scales, pairs, scan.problems, notes)


def _lr_size_ok(hr: Image, lr: Image, s: int) -> bool:
    """LR must be HR/s per side (floor; ceil is what MATLAB gives when s does not divide)."""
    ok_h = lr.height in (hr.height // s, -(-hr.height // s))
    ok_w = lr.width in (hr.width // s, -(-hr.width // s))
    return ok_h and ok_w


def _find_folder(root: Path, scales, make_lr, valid_count, skip) -> Inventory:
    if make_lr is False:
        raise WdsrError(f"'{root}' is a plain folder of images, so it has no LR images",
                        "drop --no-make-lr (LR images are generated with the MATLAB bicubic)")
    scan = _Scan(root, skip)
    files = scan.listing(root, "train", True)
    if not files:
        if scan.problems:
            raise WdsrError(f"no images in '{root}' (only {len(scan.problems)} other files, "
                            f"e.g. '{scan.problems[0].file}')",
                            "pass a folder of .png/.jpg images or a DIV2K root")
        nested = sorted(p.parent.name for p in root.glob("*/DIV2K_train_HR"))
        hint = (f"did you mean '{root / nested[0]}'?" if nested else
                "pass a folder of .png/.jpg images or a DIV2K root (holding DIV2K_train_HR)")
        raise WdsrError(f"no images in '{root}'", hint)
    names = sorted(p.stem for p in files)
    if valid_count >= len(names):
        raise WdsrError(f"--valid-count {valid_count} leaves no training images "
                        f"({len(names)} images found)", "use a smaller --valid-count")
    valid = set(names[len(names) - valid_count:]) if valid_count else set()
    pairs = scan.hr_pairs(files, lambda p: "valid" if p.stem in valid else "train")
    for pair in pairs:
        pair.lr = {s: None for s in scales}
    notes = ["plain folder: LR images are generated with the MATLAB bicubic"
             + (f"; the last {valid_count} names are the validation split" if valid else
                "; no validation split (--valid-count N makes one)")]
    problems = [Problem(p.kind, p.file, p.message, "valid" if p.name in valid else p.split,
                        p.name, p.scale) for p in scan.problems]
    pairs.sort(key=lambda p: (p.split != "train", p.name))
    return Inventory(root, "folder", "generated", scales, pairs, problems, notes)

"""Small synthetic datasets for the prepare-data and pipeline tests (PIL only, no images.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth-ish random RGB image (compresses well, has texture for alignment checks)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([np.sin(yy / (7 + c) + xx / (11 + 2 * c) + c) for c in range(3)], axis=2)
    img = 127.5 + 90 * base + rng.normal(0, 20, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def plain_folder(root: Path, sizes: list[tuple[int, int]], prefix: str = "img") -> Path:
    for i, (h, w) in enumerate(sizes):
        save(root / f"{prefix}{i:02d}.png", photo(h, w, i))
    return root


def div2k_tree(root: Path, train: dict[str, tuple[int, int]], valid: dict[str, tuple[int, int]],
               lr_scales=(), lr_splits=("train", "valid")) -> Path:
    """DIV2K_{split}_HR/<name>.png and, for ``lr_scales``, LR images (arbitrary pixels: a test
    of "given LR is used as is") named <name>x<s>.png of size floor(HR / s)."""
    for split, items in (("train", train), ("valid", valid)):
        for name, (h, w) in items.items():
            save(root / f"DIV2K_{split}_HR" / f"{name}.png", photo(h, w, int(name)))
            if split in lr_splits:
                for s in lr_scales:
                    lr = photo(h // s, w // s, 1000 + int(name) * 10 + s)
                    save(root / f"DIV2K_{split}_LR_bicubic" / f"X{s}" / f"{name}x{s}.png", lr)
    return root


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])

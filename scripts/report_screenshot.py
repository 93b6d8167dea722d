"""Render a `wdsr evaluate --report` page in headless Chromium and check the picture.

    python scripts/report_screenshot.py                 # `make report-screenshot`
    python scripts/report_screenshot.py --readme scripts/report.png   # also the docs image

(`--readme` writes the image shown in docs/evaluate.md "Report".)

1. `wdsr evaluate --checkpoint bundled --scale 2 --report` on the bundled sample's held-out
   photos (sample.json "valid"), into OUT/report (default OUT: report-check/);
2. `chromium --headless --screenshot` of OUT/report/index.html (offline, throw-away profile);
3. checks on the pixels: not blank; the dark header band on top with light text in it; a
   light page below; and the crop grid: a band of rows crossed by at least three picture
   runs of the crops' width, starting at the same columns.

Exit 1 when a check fails. Needs Debian's `chromium` (apt-get install chromium); `make test`
never runs this.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 1280, 2200
VIEW = 192  # report.VIEW: displayed crop side
PAGE_GREY = (244, 245, 247)  # report_html's --bg
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--force-device-scale-factor=1"]


def build_report(wdsr: str, out: Path) -> Path:
    import wdsr_cli

    sample = Path(wdsr_cli.__file__).parent / "assets" / "sample"
    hr = out / "held-out"
    shutil.rmtree(hr, ignore_errors=True)
    hr.mkdir(parents=True)
    for name in json.loads((sample / "sample.json").read_text())["valid"]:
        shutil.copy(sample / name, hr / name)
    report = out / "report"
    subprocess.run([wdsr, "evaluate", "--checkpoint", "bundled", "--scale", "2", "--hr", str(hr),
                    "--report", str(report), "--overwrite"], check=True)
    return report / "index.html"


def screenshot(chromium: str, page: Path, png: Path) -> np.ndarray:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", page.resolve().as_uri()]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if res.returncode != 0 or not png.is_file():
        sys.exit(f"chromium failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return np.asarray(Image.open(png).convert("RGB"))


def _runs(mask_row: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """(start, length) of the runs of True at least min_len long."""
    padded = np.concatenate([[False], mask_row, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    pairs = zip(edges[::2], edges[1::2], strict=True)
    return [(int(a), int(b - a)) for a, b in pairs if b - a >= min_len]


def check(img: np.ndarray) -> list[str]:
    """Problems found in the screenshot ([] = it looks like a report)."""
    problems = []
    gray = img.astype(np.float64) @ [0.299, 0.587, 0.114]
    if gray.std() < 20 or len(np.unique(img.reshape(-1, 3), axis=0)) < 1000:
        problems.append(f"blank-looking page (std {gray.std():.1f})")
    dark = gray.mean(axis=1) < 80  # the header rows
    header = int(np.argmin(dark)) if dark[0] else 0
    if not 40 <= header <= 140:
        problems.append(f"no dark header band on top (dark rows: {header})")
    else:
        light = (gray[:header] > 180).mean()
        if not 0.002 < light < 0.2:
            problems.append(f"header has no readable text ({100 * light:.2f}% light pixels)")
    if np.median(gray[header:]) < 230:
        problems.append("the page below the header is not light")
    # Picture runs: pixels away from white and the page grey, in runs as wide as a crop.
    picture = np.abs(img.astype(np.int16) - 244).max(axis=2) > 24
    band, best, grid_columns = 0, 0, None
    for y in range(header, img.shape[0]):
        runs = _runs(picture[y], VIEW - 8)
        starts = tuple(a for a, _ in runs)
        if len(runs) >= 3 and starts == grid_columns:
            band += 1
        else:
            band, grid_columns = (1, starts) if len(runs) >= 3 else (0, None)
        best = max(best, band)
    if best < VIEW // 2:
        problems.append(f"no crop grid (at most {best} rows with 3+ aligned crop-wide pictures)")
    return problems


def first_cards_bottom(img: np.ndarray, cards: int) -> int:
    """The row just below the first ``cards`` cards under the header (summary, table, first
    image): the cards are separated by rows of plain page grey."""
    grey = (np.abs(img.astype(np.int16) - PAGE_GREY).max(axis=2) <= 2).all(axis=1)
    gaps = [a for a, _ in _runs(grey, 8)]  # [header-summary, summary-table, table-image1, ...]
    return gaps[cards] + 12 if len(gaps) > cards else img.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wdsr", default=shutil.which("wdsr") or "wdsr")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    ap.add_argument("--out", type=Path, default=Path("report-check"))
    ap.add_argument("--page", type=Path, help="an existing report's index.html (skip step 1)")
    ap.add_argument("--readme", type=Path,
                    help="also write the screenshot shown in docs/evaluate.md here")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    page = args.page or build_report(args.wdsr, args.out.resolve())
    png = args.out / "screenshot.png"
    img = screenshot(args.chromium, page, png)
    problems = check(img)
    for p in problems:
        print(f"FAIL: {p}")
    if problems:
        sys.exit(1)
    print(f"ok: {png} ({img.shape[1]}x{img.shape[0]}) looks like a report")
    if args.readme:  # full colour: a palette would change the very pixels the crops compare
        Image.fromarray(img[:first_cards_bottom(img, 3)]).save(args.readme, optimize=True)
        print(f"docs image: {args.readme} ({args.readme.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()

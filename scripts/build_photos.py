#!/usr/bin/env python3
"""Build the real photographs wdsr ships (the bundled sample) and trains on (the full set).

There is no DIV2K here, so the photos come from freely licensed Debian wallpaper
packages and from scikit-image's CC0 / public-domain sample photos:

    python scripts/build_photos.py                 # rebuild wdsr_cli/assets/sample/
    python scripts/build_photos.py --check         # rebuild in a temp dir, compare bytes
    python scripts/build_photos.py --full OUTDIR   # ~38 photos, DIV2K-like tree

Needs the Debian package mirror (``apt-get download``; run ``apt-get update``
once first) and PyPI (``pip download scikit-image``); downloads are cached in
``--cache`` (default ``~/.cache/wdsr/photos``) and nothing is installed. The
packages are only unpacked with ``dpkg-deb -x``.

Processing (deterministic: same source bytes and same numpy/zlib -> same PNG
bytes): decode the JPEG/PNG (EXIF orientation applied), gray -> RGB, box
(area-average) downscale by an integer factor (mean in float64, round half to
even) so JPEG blocking and noise are averaged away, then a crop to a multiple of
12 pixels so x2, x3 and x4 all divide. Each source file's SHA-256 is checked
against the one recorded below; a mismatch is reported (the output would differ).

``--full OUTDIR`` writes ``OUTDIR/DIV2K_train_HR/NNNN.png``,
``OUTDIR/DIV2K_valid_HR/NNNN.png`` (long side <= 2040 px), ``OUTDIR/LICENSES.md``
and ``OUTDIR/photos.json``. It is built in a temporary sibling folder and moved
into place at the end, so an interrupted run never leaves a half-built set.
The sample's validation photos are also in the full set's validation split, so
weights trained on the full set can be evaluated honestly on the sample.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wdsr_cli.core.data.images import Image, read_image, write_image  # noqa: E402

SAMPLE_DIR = ROOT / "wdsr_cli" / "assets" / "sample"
FULL_LONG_SIDE = 2040
MULTIPLE = 12

# Debian packages (pinned; the mirror's current version is used if the pin is gone).
DEBS = {
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "mate-backgrounds": "1.26.0-1",
}
WHEEL = ("scikit-image", "0.26.0")

LICENCE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "LGPL-3.0": "https://www.gnu.org/licenses/lgpl-3.0.html",
    "GPL-2.0-or-later": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    "public domain": "",
}

LOMIRI = "/usr/share/backgrounds/"
PLASMA = "/usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
MATE = "/usr/share/backgrounds/mate/nature/"
SKIMAGE = "skimage/data/"


@dataclass(frozen=True)
class Photo:
    key: str  # short descriptive name (the sample's file name)
    source: str  # Debian package name, or "scikit-image" (wheel)
    path: str  # file inside the package
    author: str
    licence: str
    note: str = ""
    sample: int = 0  # box factor for the bundled sample (0: not in the sample)
    sample_crop: tuple[int, int] = (0, 0)  # max (height, width) after downscale, 0: all
    valid: bool = False  # in the validation split (sample and full set)
    full: bool = True  # in the full training set


L16 = "lomiri-wallpapers-16.04"
L20 = "lomiri-wallpapers-20.04"
KDE = "plasma-workspace-wallpapers"
MAT = "mate-backgrounds"
SKI = "scikit-image"

# fmt: off
PHOTOS: tuple[Photo, ...] = (
    # lomiri-wallpapers-16.04 (umang_by_Abhishek_Mudgal.jpg is abstract art: skipped)
    Photo("bridge", L16, LOMIRI + "Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk, 2018",
          "CC-BY-SA-4.0"),
    Photo("leaves", L16, LOMIRI + "Dragonfly_by_Bolly.jpg", '"Bolly", 2018',
          "CC-BY-SA-4.0", sample=6),
    Photo("fig", L16, LOMIRI + "Picture_0B_by_freespace.jpg", 'Trevor "Freespace", 2018',
          "CC-BY-4.0", sample=4),
    Photo("brushes", L16, LOMIRI + "Picture_1A_by_freespace.jpg", 'Trevor "Freespace", 2018',
          "CC-BY-4.0", sample=2, valid=True),
    Photo("drum", L16, LOMIRI + "Wine_by_Jakkub_Mede.jpg", "Jakub Mede, 2018",
          "CC-BY-4.0", sample=6),
    Photo("valley", L16, LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018",
          "CC-BY-4.0", sample=5),
    Photo("leather", L16, LOMIRI + "analogpattern_by_Peter_Nerlich.jpg", "Peter Nerlich, 2018",
          "CC-BY-SA-4.0"),
    Photo("bird_toy", L16, LOMIRI + "free_by_Peter_Nerlich.jpg", "Peter Nerlich, 2018",
          "CC-BY-SA-4.0"),
    Photo("dogs", L16, LOMIRI + "friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018",
          "CC-BY-4.0", sample=5, valid=True),
    Photo("clock", L16, LOMIRI + "greentock_by_Peter_Nerlich.jpg", "Peter Nerlich, 2018",
          "CC-BY-SA-4.0", sample=5),
    Photo("stream", L16, LOMIRI + "life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018",
          "CC-BY-4.0", sample=5),
    Photo("mountains", L16, LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg",
          "Aitzol Berasategi, 2018", "CC-BY-4.0", sample=5, valid=True),
    Photo("dandelions", L16, LOMIRI + "seeding_by_Clements_Engelhardt.jpg",
          "Clemens Engelhardt, 2018", "CC0-1.0", sample=8),
    Photo("sunset", L16, LOMIRI + "sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018",
          "CC-BY-4.0", sample=7),
    # lomiri-wallpapers-20.04 (Fossa, Infinite-Sea, Painting-Colors are digital art: skipped)
    Photo("nuthatch", L20, LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus, 2021",
          "CC-BY-SA-3.0", sample=5, sample_crop=(480, 720)),
    # plasma-workspace-wallpapers (LGPL-3 per each wallpaper's metadata.json; DarkestHour is
    # almost featureless fog: skipped). Not in the bundled sample (kept to CC / public domain).
    Photo("jetty", KDE, PLASMA.format("BytheWater"), "Maciej Wiklo",
          "LGPL-3.0"),
    Photo("pier", KDE, PLASMA.format("ColdRipple"), "Risto Saukonpää",
          "LGPL-3.0"),
    Photo("cups", KDE, PLASMA.format("ColorfulCups"), "Dmitri Popov",
          "LGPL-3.0"),
    Photo("boats", KDE, PLASMA.format("EveningGlow"), "Ian Hex",
          "LGPL-3.0", valid=True),
    Photo("fallen_leaf", KDE, PLASMA.format("FallenLeaf"), "Martin Klapetek",
          "LGPL-3.0"),
    Photo("facade", KDE, PLASMA.format("Grey"), "Sigi Sagi",
          "LGPL-3.0", note="grayscale JPEG, stored as RGB", valid=True),
    Photo("kite", KDE, PLASMA.format("Kite"), "Risto Saukonpää",
          "LGPL-3.0"),
    Photo("moss", KDE, PLASMA.format("OneStandsOut"), "Risto Saukonpää",
          "LGPL-3.0"),
    Photo("forest", KDE, PLASMA.format("Path"), "Risto Saukonpää",
          "LGPL-3.0"),
    Photo("lake", KDE, PLASMA.format("summer_1am"), "Risto Saukonpää",
          "LGPL-3.0"),
    # mate-backgrounds (GPL-2+; FreshFlower, Storm, YellowFlower are strongly defocused or
    # motion-blurred: skipped)
    Photo("drop", MAT, MATE + "Aqua.jpg", "Charles Barbin, 2008",
          "GPL-2.0-or-later"),
    Photo("leaf", MAT, MATE + "Blinds.jpg", "Lennart Poettering, Andrea Cimitan, 2008",
          "GPL-2.0-or-later", valid=True),
    Photo("dune", MAT, MATE + "Dune.jpg", "Marco Cogoni, Hylke Bons, 2007-2008",
          "GPL-2.0-or-later"),
    Photo("garden", MAT, MATE + "Garden.jpg", "Charles Barbin, 2008",
          "GPL-2.0-or-later"),
    Photo("meadow", MAT, MATE + "GreenMeadow.jpg",
          "Timothy Schellhase, Lapo Calamandrei, 2005-2008", "GPL-2.0-or-later"),
    Photo("ladybird", MAT, MATE + "LadyBird.jpg", "Charles Barbin, 2008",
          "GPL-2.0-or-later"),
    Photo("raindrops", MAT, MATE + "RainDrops.jpg", '"blackcombwhistler07", 2008',
          "GPL-2.0-or-later"),
    Photo("seeds", MAT, MATE + "TwoWings.jpg", "Charles Barbin, Hylke Bons, 2008",
          "GPL-2.0-or-later"),
    Photo("wood", MAT, MATE + "Wood.jpg", "Jean-François Fortin Tam, 2008",
          "GPL-2.0-or-later"),
    # scikit-image sample data (small already: cropped, not downscaled)
    Photo("coffee", SKI, SKIMAGE + "coffee.png", "Rachel Michetti",
          "CC0-1.0", sample=1),
    Photo("cat", SKI, SKIMAGE + "chelsea.png", "Stefan van der Walt",
          "CC0-1.0", sample=1),
    Photo("astronaut", SKI, SKIMAGE + "astronaut.png", "NASA",
          "public domain", sample=1),
    Photo("rocket", SKI, SKIMAGE + "rocket.jpg", "SpaceX",
          "public domain", sample=1),
)
# fmt: on

# SHA-256 of each source file this script was written for (checked, not enforced).
SOURCE_SHA256 = {
    "bridge": "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050",
    "leaves": "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3",
    "fig": "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad",
    "brushes": "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b",
    "drum": "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74",
    "valley": "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36",
    "leather": "15372488a192b2be2eafc67bd3ed31cbfca19abe3929e925607fcbc9cb4d4202",
    "bird_toy": "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373",
    "dogs": "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d",
    "clock": "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889",
    "stream": "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05",
    "mountains": "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a",
    "dandelions": "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f",
    "sunset": "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18",
    "nuthatch": "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7",
    "jetty": "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f",
    "pier": "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f",
    "cups": "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d",
    "boats": "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a",
    "fallen_leaf": "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de",
    "facade": "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed",
    "kite": "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8",
    "moss": "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd",
    "forest": "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8",
    "lake": "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8",
    "drop": "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce",
    "leaf": "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600",
    "dune": "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91",
    "garden": "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78",
    "meadow": "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832",
    "ladybird": "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d",
    "raindrops": "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16",
    "seeds": "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb",
    "wood": "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07",
    "coffee": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "cat": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "astronaut": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "rocket": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
}


# ---------------------------------------------------------------------------
# fetching


def run(cmd: list[str], cwd: Path | None = None) -> None:
    if cmd[0] == "apt-get" and hasattr(os, "geteuid") and os.geteuid() == 0:
        # as root, apt would hand the download to the _apt user, who can't write to the cache
        cmd = [cmd[0], "-o", "APT::Sandbox::User=root", *cmd[1:]]
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def fetch_deb(pkg: str, version: str, cache: Path) -> tuple[Path, str]:
    """Download and unpack a Debian package; return (unpacked root, version)."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    have = sorted(debs.glob(f"{pkg}_*.deb"))
    if not have:
        try:
            run(["apt-get", "download", f"{pkg}={version}"], cwd=debs)
        except (subprocess.CalledProcessError, FileNotFoundError):
            print(
                f"warning: {pkg}={version} not available, trying the current version",
                file=sys.stderr,
            )
            try:
                run(["apt-get", "download", pkg], cwd=debs)
            except (subprocess.CalledProcessError, FileNotFoundError) as e:
                sys.exit(
                    f"error: cannot download {pkg} ({e}); this needs the Debian package "
                    "mirror: run `apt-get update` first"
                )
        have = sorted(debs.glob(f"{pkg}_*.deb"))
    deb = have[-1]
    out = cache / "unpacked" / deb.stem
    if not (out / ".done").exists():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        run(["dpkg-deb", "-x", str(deb), str(out)])
        (out / ".done").write_text("ok\n")
    got = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return out, got


def fetch_wheel(cache: Path) -> tuple[Path, str]:
    name, version = WHEEL
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    have = sorted(wheels.glob("scikit_image-*.whl"))
    if not have:
        try:
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--only-binary=:all:",
                    "-d",
                    str(wheels),
                    f"{name}=={version}",
                ]
            )
        except subprocess.CalledProcessError as e:
            sys.exit(f"error: cannot download {name}=={version} from PyPI ({e})")
        have = sorted(wheels.glob("scikit_image-*.whl"))
    whl = have[-1]
    out = cache / "unpacked" / whl.stem
    if not (out / ".done").exists():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        with zipfile.ZipFile(whl) as z:
            for member in z.namelist():
                if member.startswith(SKIMAGE) and member.endswith((".png", ".jpg")):
                    z.extract(member, out)
        (out / ".done").write_text("ok\n")
    return out, whl.name.split("-")[1]


def fetch_all(photos: list[Photo], cache: Path) -> dict[str, tuple[Path, str]]:
    roots: dict[str, tuple[Path, str]] = {}
    for src in sorted({p.source for p in photos}):
        roots[src] = fetch_wheel(cache) if src == SKI else fetch_deb(src, DEBS[src], cache)
    return roots


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# processing


def box_downscale(a: np.ndarray, f: int) -> np.ndarray:
    """Area-average by an integer factor (the remainder is cropped evenly from both sides)."""
    if f == 1:
        return a
    h, w, c = a.shape
    hh, ww = h // f * f, w // f * f
    y0, x0 = (h - hh) // 2, (w - ww) // 2
    x = a[y0 : y0 + hh, x0 : x0 + ww].astype(np.float64)
    x = x.reshape(hh // f, f, ww // f, f, c).mean(axis=(1, 3))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def centre_crop(a: np.ndarray, max_hw: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Centre crop to at most max_hw (0: no limit) and to multiples of MULTIPLE."""
    h, w = a.shape[:2]
    th = min(h, max_hw[0] or h) // MULTIPLE * MULTIPLE
    tw = min(w, max_hw[1] or w) // MULTIPLE * MULTIPLE
    y0, x0 = (h - th) // 2, (w - tw) // 2
    return np.ascontiguousarray(a[y0 : y0 + th, x0 : x0 + tw])


def load_rgb(path: Path) -> np.ndarray:
    img = read_image(path)
    a = img.pixels
    if img.bit_depth != 8:  # pragma: no cover - none of the sources is 16-bit
        a = np.rint(a / 257.0).astype(np.uint8)
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def full_factor(h: int, w: int) -> int:
    return -(-max(h, w) // FULL_LONG_SIDE)


def source_file(p: Photo, roots: dict[str, tuple[Path, str]]) -> Path:
    root = roots[p.source][0]
    return root / p.path.lstrip("/")


def check_source(p: Photo, path: Path) -> str:
    digest = sha256(path)
    if digest != SOURCE_SHA256[p.key]:
        print(
            f"warning: {p.path} differs from the file this script was written for "
            f"(sha256 {digest[:16]}..., expected {SOURCE_SHA256[p.key][:16]}...): "
            "output will differ",
            file=sys.stderr,
        )
    return digest


def describe(p: Photo, roots, digest: str, factor: int, shape_in, shape_out) -> dict:
    return {
        "source": p.source,
        "source_version": roots[p.source][1],
        "file": p.path,
        "author": p.author,
        "licence": p.licence,
        "licence_url": LICENCE_URLS[p.licence],
        "sha256": digest,
        "original_size": [int(shape_in[1]), int(shape_in[0])],
        "box_factor": factor,
        "size": [int(shape_out[1]), int(shape_out[0])],
        "note": p.note,
    }


def processing_text(d: dict) -> str:
    w0, h0 = d["original_size"]
    w, h = d["size"]
    f = d["box_factor"]
    steps = []
    if f > 1:
        steps.append(f"box downscale x1/{f} ({w0}x{h0} -> {w0 // f}x{h0 // f})")
        w0, h0 = w0 // f, h0 // f
    if (w, h) != (w0, h0):
        steps.append(f"centre crop to {w}x{h}")
    if d["note"]:
        steps.append(d["note"])
    return "; ".join(steps) or "none"


LICENCE_INTRO = """\
Each photograph below is a modified version (downscaled by area averaging and/or
cropped, re-encoded as PNG) of the original named in the table. Each keeps the
original's licence: the modified versions are released under the same licence
as their original (for CC-BY-SA: CC-BY-SA of the same version). They are not
covered by the project's own licence. Licence texts: {urls}.
"""


def licences_md(title: str, rows: list[tuple[str, dict, str]]) -> str:
    used = sorted({d["licence"] for _, d, _ in rows})
    urls = "; ".join(f"{lic} {LICENCE_URLS[lic]}" if LICENCE_URLS[lic] else lic for lic in used)
    out = [f"# {title}", "", LICENCE_INTRO.format(urls=urls)]
    out += [
        "| file | split | size | source (package version) | original file | author | licence"
        " | what was done |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, d, split in rows:
        w, h = d["size"]
        src = f"{d['source']} {d['source_version']}"
        out.append(
            f"| {name} | {split} | {w}x{h} | {src} | `{d['file']}` | {d['author']} "
            f"| {d['licence']} | {processing_text(d)} |"
        )
    out += [
        "",
        "Sources: Debian packages (`apt-get download`, unpacked with `dpkg-deb -x`;",
        "licences from each package's `/usr/share/doc/<package>/copyright` and, for",
        "plasma-workspace-wallpapers, each wallpaper's `metadata.json`) and the",
        "scikit-image wheel from PyPI (`skimage/data`, licences from the docstrings of",
        "`skimage.data`). Rebuild with `python scripts/build_photos.py`.",
        "",
    ]
    return "\n".join(out)


# ---------------------------------------------------------------------------
# the two builds


def build_sample(out_dir: Path, cache: Path) -> None:
    photos = [p for p in PHOTOS if p.sample]
    roots = fetch_all(photos, cache)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta: dict = {"train": [], "valid": [], "sources": {}}
    rows = []
    for p in photos:
        src = source_file(p, roots)
        digest = check_source(p, src)
        a = load_rgb(src)
        b = centre_crop(box_downscale(a, p.sample), p.sample_crop)
        name = f"{p.key}.png"
        write_image(out_dir / name, Image(b))
        d = describe(p, roots, digest, p.sample, a.shape, b.shape)
        meta["valid" if p.valid else "train"].append(name)
        meta["sources"][name] = d
        rows.append((name, d, "valid" if p.valid else "train"))
        size_kb = (out_dir / name).stat().st_size / 1e3
        print(f"{name:18s} {b.shape[1]}x{b.shape[0]}  {size_kb:7.0f} kB", file=sys.stderr)
    keep = set(meta["sources"])
    for old in out_dir.glob("*.png"):
        if old.name not in keep:
            old.unlink()
    meta["multiple_of"] = MULTIPLE
    _write_text(out_dir / "sample.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    _write_text(
        out_dir / "LICENSES.md",
        licences_md("Bundled sample photographs: sources and licences", rows),
    )
    total = sum(f.stat().st_size for f in out_dir.glob("*.png"))
    print(f"sample: {len(photos)} photos, {total / 1e6:.2f} MB in {out_dir}", file=sys.stderr)


def build_full(out_dir: Path, cache: Path) -> None:
    photos = [p for p in PHOTOS if p.full]
    roots = fetch_all(photos, cache)
    out_dir = out_dir.resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "photos.json").exists():
        sys.exit(f"error: {out_dir} exists and was not made by this script; choose another folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)  # e.g. data/ in a fresh clone
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building.", dir=out_dir.parent))
    try:
        train = [p for p in photos if not p.valid]
        valid = [p for p in photos if p.valid]
        meta: dict = {
            "train": {},
            "valid": {},
            "long_side_max": FULL_LONG_SIDE,
            "multiple_of": MULTIPLE,
        }
        rows = []
        for split, group, first in (("train", train, 1), ("valid", valid, len(train) + 1)):
            folder = work / f"DIV2K_{split}_HR"
            folder.mkdir()
            for i, p in enumerate(group, start=first):
                src = source_file(p, roots)
                digest = check_source(p, src)
                a = load_rgb(src)
                f = full_factor(*a.shape[:2])
                b = centre_crop(box_downscale(a, f))
                name = f"{i:04d}.png"
                write_image(folder / name, Image(b))
                d = describe(p, roots, digest, f, a.shape, b.shape)
                d["name"] = p.key
                meta[split][name] = d
                rows.append((f"DIV2K_{split}_HR/{name} ({p.key})", d, split))
                print(f"{split}/{name} {p.key:12s} {b.shape[1]}x{b.shape[0]}", file=sys.stderr)
        _write_text(work / "photos.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        _write_text(
            work / "LICENSES.md",
            licences_md("wdsr training photographs: sources and licences", rows),
        )
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / "x")
            os.replace(work, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = sum(len(meta[s]) for s in ("train", "valid"))
    total = sum(f.stat().st_size for f in out_dir.rglob("*.png"))
    print(
        f"full set: {n} photos ({len(meta['train'])} train, {len(meta['valid'])} valid), "
        f"{total / 1e6:.1f} MB in {out_dir}",
        file=sys.stderr,
    )


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def check_sample(cache: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        build_sample(Path(tmp), cache)
        names = sorted(n for n in os.listdir(tmp) if not n.startswith("."))
        committed = sorted(n for n in os.listdir(SAMPLE_DIR) if not n.startswith("."))
        bad = [
            n
            for n in names
            if not (SAMPLE_DIR / n).exists()
            or not filecmp.cmp(Path(tmp) / n, SAMPLE_DIR / n, shallow=False)
        ]
        bad += [n for n in committed if n not in names]
    if bad:
        print("differs from the committed sample: " + ", ".join(bad), file=sys.stderr)
        return 1
    print("the committed sample is reproduced byte for byte", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--full",
        metavar="OUTDIR",
        type=Path,
        help="build the full training set (DIV2K-like tree) into OUTDIR",
    )
    ap.add_argument(
        "--sample",
        metavar="DIR",
        type=Path,
        default=None,
        help=f"where to write the bundled sample (default {SAMPLE_DIR})",
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="rebuild the sample in a temporary folder and compare it byte for byte",
    )
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "wdsr" / "photos",
        help="download cache (default ~/.cache/wdsr/photos)",
    )
    args = ap.parse_args(argv)
    if args.check:
        return check_sample(args.cache)
    if args.full is not None:
        build_full(args.full, args.cache)
        if args.sample is None:
            return 0
    build_sample(args.sample or SAMPLE_DIR, args.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

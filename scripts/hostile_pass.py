"""A hostile pass over the real `wdsr` CLI (issue 30): each case sets up a fresh folder, runs
the command(s) and judges what happened. Writes a Markdown table (case, command, expected,
observed, verdict).

    PYTHONPATH=. python scripts/hostile_pass.py --out /tmp/hostile.md [--src OTHER_TREE] [-k W1]

``--src`` runs the CLI from another source tree (e.g. an older commit unpacked with
``git archive``) to count what failed there. Signals land at the test hold points
(core/testpoint.py); a tree that lacks a hold point reports the case as "no hold point".
Tiny checkpoints (8 features, 2 blocks), tiny images: the whole pass takes minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
WDSR = str(Path(sys.executable).with_name("wdsr"))
SRC = str(ROOT)
CASES: list[tuple[str, str, str, Callable[[Path], tuple[str, str, bool]]]] = []
A: dict[str, Path] = {}  # assets


def case(cid: str, expected: str):
    def deco(fn):
        CASES.append((cid, fn.__doc__ or fn.__name__, expected, fn))
        return fn
    return deco


# ------------------------------------------------------------------------------- helpers


def env_for(d: Path, extra: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC, "WDSR_CACHE_DIR": str(d.parent / f"cache-{d.name}")}
    env.pop("WDSR_TEST_HOLD", None)
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class Res:
    def __init__(self, rc, out: str, err: str, args: list[str]) -> None:
        self.rc, self.out, self.err, self.args = rc, out, err, args

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def one_line(self) -> bool:
        return self.rc == 2 and len(self.lines) == 1 and self.lines[0].startswith("error:") \
            and "Traceback" not in self.err

    def first(self) -> str:
        for line in self.lines:
            if line.startswith("error:"):
                return line[:150]
        return (self.lines[-1] if self.lines else "")[:150]

    def brief(self) -> str:
        return f"exit {self.rc}: {self.first()}"


def wdsr(d: Path, *args: str, env: dict | None = None, timeout: float = 240) -> Res:
    try:
        p = subprocess.run([WDSR, *args], cwd=d, env=env_for(d, env), capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return Res(p.returncode, p.stdout, p.stderr, list(args))
    except subprocess.TimeoutExpired:
        return Res("timeout", "", f"timed out after {timeout} s", list(args))


def cmd(*args: str) -> str:
    return "wdsr " + " ".join(args)


def snap(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if stat.S_ISREG(st.st_mode):
            out[str(p.relative_to(root))] = ("f", st.st_mode, hashlib.sha256(
                p.read_bytes()).hexdigest())
        elif stat.S_ISLNK(st.st_mode):
            out[str(p.relative_to(root))] = ("l", os.readlink(p))
        else:
            out[str(p.relative_to(root))] = ("d" if p.is_dir() else "o", st.st_mode)
    return out


def hidden(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*"))


def held(d: Path, args: list[str], point: str, env: dict | None = None,
         marker_name: str = "held") -> tuple[subprocess.Popen, bool]:
    """Start ``wdsr args`` held at ``point``; (process, reached the point)."""
    marker = d / marker_name
    proc = subprocess.Popen([WDSR, *args], cwd=d, env={**env_for(d, env),
                            "WDSR_TEST_HOLD": f"{point}={marker}"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 240
    while not (marker.exists() and marker.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > end:
            return proc, False
        time.sleep(0.02)
    return proc, True


def finish(proc: subprocess.Popen) -> Res:
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return Res("timeout", out, err, [])
    return Res(proc.returncode, out, err, [])


def release(d: Path, marker_name: str = "held") -> None:
    (d / f"{marker_name}.go").touch()


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def img(path: Path, h: int = 24, w: int = 28, seed: int = 0) -> Path:
    from prep_helpers import photo

    from wdsr_cli.core.data.images import Image, write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, Image(pixels=photo(h, w, seed)))
    return path


def folder(path: Path, n: int, h: int = 24, w: int = 28) -> Path:
    for i in range(n):
        img(path / f"p{i:02d}.png", h, w, i)
    return path


def ckpt(d: Path, name: str = "tiny") -> Path:
    return Path(shutil.copy(A[name], d / f"{name}.ckpt"))


def make_assets(where: Path) -> None:
    import mindspore as ms
    import numpy as np
    from conftest import TINY_MODEL, save_tiny_checkpoint

    from wdsr_cli.core import runtime
    from wdsr_cli.core.checkpoints import save_checkpoint
    from wdsr_cli.core.config import Config, ModelConfig
    from wdsr_cli.core.model import build_model

    runtime.init_mindspore("CPU", mode="graph", seed=0)
    A["tiny"] = save_tiny_checkpoint(where / "tiny.ckpt", 2)
    A["tiny3"] = save_tiny_checkpoint(where / "tiny3.ckpt", 3)
    for name, value in (("nan", np.nan), ("inf", np.inf), ("huge", 1e38)):
        cfg = Config(model=ModelConfig(**{**TINY_MODEL, "scale": 2}))
        net = build_model(cfg.model)
        for _, param in net.parameters_and_names():
            values = param.asnumpy().copy()
            if name == "huge":
                values = values * value
            else:
                values.flat[0] = value
            param.set_data(ms.Tensor(values.astype(np.float32)))
            if name != "huge":
                break
        A[name] = save_checkpoint(net, where / f"{name}.ckpt", meta={
            "model": cfg.to_dict()["model"], "scale": 2, "step": 5, "kind": "weights",
            "dataset_id": "x"})


def export_onnx(d: Path, ck: Path, out: Path) -> Res:
    return wdsr(d, "export", "--checkpoint", str(ck), "-f", "onnx", "-o", str(out))


def upscale_onnx(d: Path, ck: Path, out: str, *extra: str, env: dict | None = None) -> Res:
    return wdsr(d, "upscale", "a.png", "-o", out, "--checkpoint", str(ck), "--backend",
                "onnxruntime", *extra, env=env)


# ------------------------------------------------------------- W: writes landing on inputs


def _refused_same(d: Path, *args: str, needle: str = "") -> tuple[str, str, bool]:
    before = snap(d)
    r = wdsr(d, *args)
    ok = r.one_line() and snap(d) == before and needle.lower() in r.first().lower()
    return cmd(*args), r.brief() + ("" if snap(d) == before else " [tree CHANGED]"), ok


@case("W1", "refused (exit 2, one line), tree byte-identical")
def w1(d):
    """upscale -o through a symlink to the input"""
    img(d / "a.png")
    (d / "link.png").symlink_to("a.png")
    return _refused_same(d, "upscale", "a.png", "-o", "link.png", "--checkpoint",
                         str(ckpt(d)), "--overwrite")


@case("W2", "a.png byte-identical (the new file is renamed over the name b.png; the "
            "input's inode is never written); refused would do too")
def w2(d):
    """upscale -o a hard link of the input, --overwrite"""
    img(d / "a.png")
    os.link(d / "a.png", d / "b.png")
    before = (d / "a.png").read_bytes()
    r = wdsr(d, "upscale", "a.png", "-o", "b.png", "--checkpoint", str(ckpt(d)), "--overwrite")
    same = (d / "a.png").read_bytes() == before
    return (cmd("upscale", "a.png", "-o", "b.png (hard link of a.png)", "--overwrite"),
            f"exit {r.rc}; a.png unchanged: {same}", same and r.rc in (0, 2))


@case("W3", "refused, tree byte-identical")
def w3(d):
    """upscale -o sub/../a.png (the input by another spelling)"""
    img(d / "a.png")
    (d / "sub").mkdir()
    return _refused_same(d, "upscale", "a.png", "-o", "sub/../a.png", "--checkpoint",
                         str(ckpt(d)), "--overwrite")


@case("W4", "the inputs byte-identical; results beside them; a rerun leaves them out")
def w4(d):
    """upscale DIR -o DIR (results into the input folder), twice"""
    folder(d / "in", 3)
    ck = ckpt(d)
    before = {k: v for k, v in snap(d / "in").items()}
    r1 = wdsr(d, "upscale", "in", "-o", "in", "--checkpoint", str(ck))
    r2 = wdsr(d, "upscale", "in", "-o", "in", "--checkpoint", str(ck), "--overwrite")
    after = snap(d / "in")
    same = all(after.get(k) == v for k, v in before.items())
    ok = r1.rc == 0 and r2.rc == 0 and same and len(after) == 6 and "left out" in r2.err
    return (cmd("upscale", "in", "-o", "in", "--checkpoint", "tiny.ckpt") + " (then again with "
            "--overwrite)", f"exit {r1.rc}, {r2.rc}; {len(after)} files; inputs same: {same}",
            ok)


@case("W5", "refused, tree byte-identical")
def w5(d):
    """upscale --json onto its own input image"""
    img(d / "a.png")
    return _refused_same(d, "upscale", "a.png", "--json", "a.png", "--checkpoint",
                         str(ckpt(d)))


@case("W6", "refused, tree byte-identical")
def w6(d):
    """upscale --json onto the checkpoint"""
    img(d / "a.png")
    ckpt(d)
    return _refused_same(d, "upscale", "a.png", "--json", "tiny.ckpt", "--checkpoint",
                         "tiny.ckpt")


@case("W7", "refused, tree byte-identical")
def w7(d):
    """evaluate --save-images into the --hr folder through a symlink"""
    folder(d / "hr", 2, 48, 48)
    (d / "hrlink").symlink_to("hr")
    return _refused_same(d, "evaluate", "--hr", "hr", "--save-images", "hrlink",
                         "--checkpoint", str(ckpt(d)))


@case("W8", "refused, tree byte-identical")
def w8(d):
    """evaluate --report the parent of --hr, --overwrite"""
    folder(d / "data" / "hr", 2, 48, 48)
    return _refused_same(d, "evaluate", "--hr", "data/hr", "--report", "data", "--overwrite",
                         "--checkpoint", str(ckpt(d)))


@case("W9", "refused, tree byte-identical")
def w9(d):
    """evaluate --json onto an HR image"""
    folder(d / "hr", 2, 48, 48)
    return _refused_same(d, "evaluate", "--hr", "hr", "--json", "hr/p00.png",
                         "--checkpoint", str(ckpt(d)))


@case("W10", "refused, tree byte-identical")
def w10(d):
    """export -o the checkpoint itself, --force"""
    ckpt(d)
    return _refused_same(d, "export", "--checkpoint", "tiny.ckpt", "-f", "onnx", "-o",
                         "tiny.ckpt", "--force")


@case("W11", "the checkpoint byte-identical (the symlink itself is replaced, as --force "
             "asks); refused would do too")
def w11(d):
    """export -o a symlink to the checkpoint, --force"""
    ck = ckpt(d)
    before = ck.read_bytes()
    (d / "m.mindir").symlink_to("tiny.ckpt")
    r = wdsr(d, "export", "--checkpoint", "tiny.ckpt", "-o", "m.mindir", "--force")
    same = ck.read_bytes() == before
    return (cmd("export", "--checkpoint", "tiny.ckpt", "-o", "m.mindir (-> tiny.ckpt)",
                "--force"), f"exit {r.rc}; checkpoint unchanged: {same}",
            same and r.rc in (0, 2))


@case("W12", "refused, tree byte-identical")
def w12(d):
    """export -o a user's photo (no --force)"""
    ckpt(d)
    img(d / "a.png")
    return _refused_same(d, "export", "--checkpoint", "tiny.ckpt", "-f", "onnx", "-o", "a.png")


@case("W13", "refused, tree byte-identical")
def w13(d):
    """prepare-data --json onto a source image"""
    folder(d / "src", 3, 96, 96)
    return _refused_same(d, "prepare-data", "src", "--out", "prep", "--scales", "2",
                         "--json", "src/p00.png")


@case("W14", "refused, tree byte-identical")
def w14(d):
    """upscale --json onto its own output name"""
    img(d / "a.png")
    return _refused_same(d, "upscale", "a.png", "--json", "a_x2.png", "--checkpoint",
                         str(ckpt(d)))


@case("W15", "the symlink is replaced by the result; its target is untouched")
def w15(d):
    """upscale --overwrite onto a symlink pointing at another user file"""
    img(d / "a.png")
    (d / "victim.txt").write_text("precious")
    (d / "a_x2.png").symlink_to("victim.txt")
    r = wdsr(d, "upscale", "a.png", "--overwrite", "--checkpoint", str(ckpt(d)))
    ok = r.rc == 0 and (d / "victim.txt").read_text() == "precious" \
        and not (d / "a_x2.png").is_symlink()
    return (cmd("upscale", "a.png", "--overwrite", "--checkpoint", "tiny.ckpt"),
            f"exit {r.rc}; victim: {(d / 'victim.txt').read_text()!r}; symlink replaced: "
            f"{not (d / 'a_x2.png').is_symlink()}", ok)


@case("W16", "refused, tree byte-identical")
def w16(d):
    """evaluate --save-images and --report the same folder"""
    folder(d / "hr", 2, 48, 48)
    return _refused_same(d, "evaluate", "--hr", "hr", "--report", "rep", "--save-images",
                         "rep/imgs", "--checkpoint", str(ckpt(d)))


@case("W17", "refused, tree byte-identical")
def w17(d):
    """train --runs-dir inside the prepared data"""
    folder(d / "src", 3, 96, 96)
    r = wdsr(d, "prepare-data", "src", "--out", "prep", "--scales", "2", "--crop-size", "48",
             "--crop-step", "48", "--valid-count", "1", "-j", "1")
    if r.rc != 0:
        return "prepare-data", r.brief(), False
    return _refused_same(d, "train", "--config", "demo", "--set", "data.prepared=prep",
                         "--runs-dir", "prep/train", "--steps", "1", "--device-target", "CPU")


@case("W18", "refused, tree byte-identical")
def w18(d):
    """upscale two inputs whose outputs collide (a.png, sub/a.png -o out/)"""
    img(d / "a.png")
    img(d / "sub" / "a.png", seed=3)
    return _refused_same(d, "upscale", "a.png", "sub/a.png", "-o", "out/", "--checkpoint",
                         str(ckpt(d)))


# ------------------------------------------------------- R: refused commands change nothing


@case("R1", "refused, no folder created")
def r1(d):
    """upscale a missing input -o new/folder/out.png"""
    return _refused_same(d, "upscale", "missing.png", "-o", "new/folder/out.png")


@case("R2", "refused, no folder created")
def r2(d):
    """upscale --scale 5 -o new/"""
    img(d / "a.png")
    return _refused_same(d, "upscale", "a.png", "--scale", "5", "-o", "new/")


@case("R3", "refused, no report folder")
def r3(d):
    """evaluate --report new with a missing checkpoint"""
    folder(d / "hr", 2, 48, 48)
    return _refused_same(d, "evaluate", "--hr", "hr", "--report", "rep", "--checkpoint",
                         "missing.ckpt")


@case("R4", "refused, no folder created")
def r4(d):
    """export a x2 checkpoint with --scale 3 -o new/m.onnx"""
    ckpt(d)
    return _refused_same(d, "export", "--checkpoint", "tiny.ckpt", "--scale", "3", "-f",
                         "onnx", "-o", "new/m.onnx")


@case("R5", "refused, no --out folder")
def r5(d):
    """prepare-data of a folder with no images --out new"""
    (d / "empty").mkdir()
    return _refused_same(d, "prepare-data", "empty", "--out", "prep")


@case("R6", "refused, no runs/ folder")
def r6(d):
    """train --resume of a run that does not exist"""
    return _refused_same(d, "train", "--resume", "runs/nothing", "--device-target", "CPU")


@case("R7", "refused before writing anything: nothing new, b_x2.png untouched")
def r7(d):
    """upscale a.png b.png where b_x2.png exists (no --overwrite)"""
    img(d / "a.png")
    img(d / "b.png", seed=2)
    (d / "b_x2.png").write_text("earlier result")
    return _refused_same(d, "upscale", "a.png", "b.png", "--checkpoint", str(ckpt(d)))


@case("R8", "refused, the folder unchanged")
def r8(d):
    """evaluate --report onto a folder holding a user's file, --overwrite"""
    folder(d / "hr", 2, 48, 48)
    (d / "rep").mkdir()
    (d / "rep" / "notes.txt").write_text("mine")
    return _refused_same(d, "evaluate", "--hr", "hr", "--report", "rep", "--overwrite",
                         "--checkpoint", str(ckpt(d)))


@case("R9", "refused, --out unchanged")
def r9(d):
    """prepare-data --force onto an --out with a foreign manifest.json"""
    folder(d / "src", 3, 96, 96)
    (d / "out").mkdir()
    (d / "out" / "manifest.json").write_text('{"mine": true}')
    return _refused_same(d, "prepare-data", "src", "--out", "out", "--force")


@case("R10", "refused, no output written")
def r10(d):
    """upscale --json onto a user's non-summary JSON"""
    img(d / "a.png")
    (d / "s.json").write_text('{"mine": 1}')
    return _refused_same(d, "upscale", "a.png", "--json", "s.json", "--checkpoint",
                         str(ckpt(d)))


@case("R11", "refused, nothing written")
def r11(d):
    """export --input-size 0x5"""
    ckpt(d)
    return _refused_same(d, "export", "--checkpoint", "tiny.ckpt", "--input-size", "0x5",
                         "-o", "new/m.mindir")


@case("R12", "refused, no runs/ folder")
def r12(d):
    """train --config with a YAML alias"""
    (d / "c.yaml").write_text("a: &x {lr: 1}\ntrain: *x\n")
    return _refused_same(d, "train", "--config", "c.yaml", "--device-target", "CPU")


@case("R13", "refused, nothing created (no ONNX form made either)")
def r13(d):
    """upscale --backend bogus -o new/"""
    img(d / "a.png")
    return _refused_same(d, "upscale", "a.png", "--backend", "bogus", "-o", "new/",
                         "--checkpoint", str(ckpt(d)))


@case("R14", "refused, tree byte-identical (no report, no saved images)")
def r14(d):
    """evaluate --save-images S where S holds an earlier result (no --overwrite)"""
    folder(d / "hr", 2, 48, 48)
    (d / "s").mkdir()
    (d / "s" / "p01_x2.png").write_text("earlier")
    return _refused_same(d, "evaluate", "--hr", "hr", "--save-images", "s", "--checkpoint",
                         str(ckpt(d)))


# ------------------------------------------------------------------- B: bounded inputs


@case("B1", "refused at once (a FIFO is never read), one line")
def b1(d):
    """upscale an input that is a FIFO named x.png"""
    os.mkfifo(d / "x.png")
    r = wdsr(d, "upscale", "x.png", "--checkpoint", str(ckpt(d)), timeout=60)
    return cmd("upscale", "x.png (a FIFO)"), r.brief(), r.one_line()


@case("B2", "refused at once, one line")
def b2(d):
    """upscale /dev/zero"""
    r = wdsr(d, "upscale", "/dev/zero", "-o", "z.png", "--checkpoint", str(ckpt(d)),
             timeout=60)
    return cmd("upscale", "/dev/zero", "-o", "z.png"), r.brief(), r.one_line()


@case("B3", "refused (decompression bomb), one line, nothing written")
def b3(d):
    """upscale a 20000x20000 PNG of 100 KB"""
    from PIL import Image as P

    P.new("1", (20000, 20000)).save(d / "bomb.png")
    return _refused_same(d, "upscale", "bomb.png", "--checkpoint", str(ckpt(d)))


@case("B4", "refused at once, one line")
def b4(d):
    """--config is a FIFO"""
    os.mkfifo(d / "c.yaml")
    r = wdsr(d, "train", "--config", "c.yaml", "--print-config", timeout=60)
    return cmd("train", "--config", "c.yaml (FIFO)", "--print-config"), r.brief(), r.one_line()


@case("B5", "refused, one line")
def b5(d):
    """--config of 2 MiB"""
    (d / "c.yaml").write_text("# " + "x" * (2 << 20) + "\n")
    r = wdsr(d, "train", "--config", "c.yaml", "--print-config")
    return cmd("train", "--config", "c.yaml (2 MiB)", "--print-config"), r.brief(), r.one_line()


@case("B6", "refused, one line naming byte and line")
def b6(d):
    """--config in Latin-1"""
    (d / "c.yaml").write_bytes(b"train:\n  # caf\xe9\n  lr: 1e-4\n")
    r = wdsr(d, "train", "--config", "c.yaml", "--print-config")
    return cmd("train", "--config", "c.yaml (Latin-1)", "--print-config"), r.brief(), \
        r.one_line() and "line 2" in r.first()


@case("B7", "refused, one line")
def b7(d):
    """--config an alias bomb (billion laughs)"""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [*{chr(96 + i)}, *{chr(96 + i)}, "
                     f"*{chr(96 + i)}, *{chr(96 + i)}]")
    (d / "c.yaml").write_text("\n".join(lines) + "\n")
    r = wdsr(d, "train", "--config", "c.yaml", "--print-config", timeout=60)
    return cmd("train", "--config", "c.yaml (alias bomb)", "--print-config"), r.brief(), \
        r.one_line()


@case("B8", "refused, one line")
def b8(d):
    """--set with nesting 40 deep"""
    r = wdsr(d, "train", "--config", "demo", "--set", "train.lr=" + "[" * 40 + "]" * 40,
             "--print-config")
    return cmd("train", "--set", "train.lr=[[[...40...]]]", "--print-config"), r.brief(), \
        r.one_line()


@case("B9", "refused at once, one line (a CPU target refuses a rank table before reading it)")
def b9(d):
    """--rank-table is a FIFO"""
    os.mkfifo(d / "rt.json")
    r = wdsr(d, "train", "--config", "demo", "--rank-table", "rt.json", "--dry-run",
             timeout=60)
    return cmd("train", "--rank-table", "rt.json (FIFO)", "--dry-run"), r.brief(), r.one_line()


@case("B10", "refused, one line")
def b10(d):
    """--rank-table nested 100000 deep"""
    (d / "rt.json").write_text("[" * 100000 + "]" * 100000)
    r = wdsr(d, "train", "--config", "demo", "--rank-table", "rt.json", "--dry-run")
    return cmd("train", "--rank-table", "rt.json (deep)", "--dry-run"), r.brief(), r.one_line()


@case("B11", "refused at once, one line")
def b11(d):
    """--checkpoint is a FIFO"""
    os.mkfifo(d / "c.ckpt")
    img(d / "a.png")
    r = wdsr(d, "upscale", "a.png", "--checkpoint", "c.ckpt", timeout=60)
    return cmd("upscale", "a.png", "--checkpoint", "c.ckpt (FIFO)"), r.brief(), r.one_line()


@case("B12", "refused, one line")
def b12(d):
    """--model: an empty .onnx with a contract"""
    ck = ckpt(d)
    r = export_onnx(d, ck, d / "m.onnx")
    if r.rc != 0:
        return "export", r.brief(), False
    (d / "m.onnx").write_bytes(b"")
    img(d / "a.png")
    r = wdsr(d, "upscale", "a.png", "--model", "m.onnx")
    return cmd("upscale", "a.png", "--model", "m.onnx (emptied)"), r.brief(), r.one_line()


@case("B13", "refused, one line")
def b13(d):
    """--model whose contract JSON is 300 MB"""
    ck = ckpt(d)
    r = export_onnx(d, ck, d / "m.onnx")
    if r.rc != 0:
        return "export", r.brief(), False
    with open(d / "m.onnx.json", "w") as f:
        f.write('{"pad": "')
        f.write("x" * (300 << 20))
        f.write('"}')
    img(d / "a.png")
    r = wdsr(d, "upscale", "a.png", "--model", "m.onnx")
    return cmd("upscale", "a.png", "--model", "m.onnx (contract 300 MB)"), r.brief(), \
        r.one_line()


@case("B14", "the FIFO is refused or left out; never blocks")
def b14(d):
    """evaluate --hr a folder holding a FIFO named x.png"""
    folder(d / "hr", 2, 48, 48)
    os.mkfifo(d / "hr" / "x.png")
    r = wdsr(d, "evaluate", "--hr", "hr", "--checkpoint", str(ckpt(d)), timeout=90)
    return cmd("evaluate", "--hr", "hr (with a FIFO x.png)"), r.brief(), \
        r.rc != "timeout" and "Traceback" not in r.err and r.rc in (0, 2)


@case("B15", "the FIFO is refused or left out; never blocks")
def b15(d):
    """prepare-data of a folder holding a FIFO named x.png"""
    folder(d / "src", 3, 96, 96)
    os.mkfifo(d / "src" / "x.png")
    r = wdsr(d, "prepare-data", "src", "--out", "prep", "--scales", "2", "--crop-size", "48",
             "--crop-step", "48", "-j", "1", timeout=90)
    return cmd("prepare-data", "src (with a FIFO x.png)", "--out", "prep"), r.brief(), \
        r.rc != "timeout" and "Traceback" not in r.err and r.rc in (0, 2)


@case("B16", "refused, one line")
def b16(d):
    """upscale a PNG truncated to half"""
    img(d / "a.png", 64, 64)
    data = (d / "a.png").read_bytes()
    (d / "a.png").write_bytes(data[:len(data) // 2])
    return _refused_same(d, "upscale", "a.png", "--checkpoint", str(ckpt(d)))


# ------------------------------------------------------------------ N: non-finite weights


def _nonfinite(d: Path, name: str, *args: str) -> tuple[str, str, bool]:
    ck = ckpt(d, name)
    img(d / "a.png")
    folder(d / "hr", 1, 48, 48)
    full = [a.replace("CK", str(ck)) for a in args]
    before = snap(d)
    r = wdsr(d, *full)
    ok = r.rc == 2 and r.first().startswith("error:") and "Traceback" not in r.err \
        and snap(d) == before
    return cmd(*[a.replace("CK", f"{name}.ckpt") for a in args]), r.brief(), ok


@case("N1", "refused (NaN named), nothing written")
def n1(d):
    """upscale with a checkpoint holding +inf"""
    return _nonfinite(d, "inf", "upscale", "a.png", "--checkpoint", "CK", "--backend",
                      "mindspore")


@case("N2", "refused, nothing written")
def n2(d):
    """evaluate --save-images with a NaN checkpoint"""
    return _nonfinite(d, "nan", "evaluate", "--hr", "hr", "--save-images", "s",
                      "--checkpoint", "CK")


@case("N3", "refused, nothing written")
def n3(d):
    """export -f onnx of a NaN checkpoint"""
    return _nonfinite(d, "nan", "export", "--checkpoint", "CK", "-f", "onnx", "-o", "m.onnx")


@case("N4", "an error instead of a black or white image; nothing written")
def n4(d):
    """upscale with finite weights x1e38 (the network overflows), MindSpore"""
    return _nonfinite(d, "huge", "upscale", "a.png", "--checkpoint", "CK", "--backend",
                      "mindspore")


@case("N5", "an error instead of a black or white image; nothing written")
def n5(d):
    """upscale with finite weights x1e38, ONNX Runtime (the form fails its parity check)"""
    return _nonfinite(d, "huge", "upscale", "a.png", "--checkpoint", "CK", "--backend",
                      "onnxruntime")


@case("N6", "refused, nothing written")
def n6(d):
    """upscale --model: an exported ONNX whose weights were set to NaN (contract updated)"""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    ck = ckpt(d)
    r = export_onnx(d, ck, d / "m.onnx")
    if r.rc != 0:
        return "export", r.brief(), False
    model = onnx.load(d / "m.onnx")
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size > 8:
            arr = arr.copy()
            arr.flat[:] = np.nan
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
            break
    onnx.save(model, d / "m.onnx")
    contract = json.loads((d / "m.onnx.json").read_text())
    contract["sha256"] = hashlib.sha256((d / "m.onnx").read_bytes()).hexdigest()
    contract["bytes"] = (d / "m.onnx").stat().st_size
    (d / "m.onnx.json").write_text(json.dumps(contract))
    img(d / "a.png")
    before = snap(d)
    r = wdsr(d, "upscale", "a.png", "--model", "m.onnx")
    return cmd("upscale", "a.png", "--model", "m.onnx (NaN weights)"), r.brief(), \
        r.one_line() and snap(d) == before


@case("N7", "refused, one line, no run folder")
def n7(d):
    """train --init with a +inf checkpoint"""
    ck = ckpt(d, "inf")
    before = snap(d)
    r = wdsr(d, "train", *_train_args(), "--init", str(ck), "--steps", "2")
    return cmd("train", "--config", "demo", "--init", "inf.ckpt"), r.brief(), \
        r.one_line() and snap(d) == before


# --------------------------------------------------------------------------- C: caches


def _cache_form(d: Path) -> tuple[Path, Path, Res]:
    ck = ckpt(d)
    img(d / "a.png")
    r = upscale_onnx(d, ck, "first.png")
    forms = list(Path(env_for(d)["WDSR_CACHE_DIR"]).glob("onnx/*.onnx"))
    return ck, (forms[0] if forms else Path("/nonexistent")), r


def _heals(d: Path, damage: Callable[[Path], None], what: str) -> tuple[str, str, bool]:
    ck, form, r = _cache_form(d)
    if r.rc != 0:
        return "upscale (make the form)", r.brief(), False
    damage(form)
    r2 = upscale_onnx(d, ck, "second.png")
    r3 = upscale_onnx(d, ck, "third.png")
    ok = r2.rc == 0 and r3.rc == 0 and "failed its check" not in r3.err \
        and (d / "second.png").is_file()
    note = "noted" if "failed its check" in r2.err else "no note"
    return (cmd("upscale", "a.png", "--checkpoint", "tiny.ckpt", "--backend", "onnxruntime")
            + f" after {what} (twice)", f"exit {r2.rc} ({note}: {r2.first()[:90]}), then "
            f"exit {r3.rc}", ok)


@case("C1", "the form is remade with a note; the next run is quiet")
def c1(d):
    """a cached ONNX form truncated"""
    return _heals(d, lambda f: f.write_bytes(f.read_bytes()[:500]), "truncating the cached form")


@case("C2", "the form is remade with a note")
def c2(d):
    """a cached ONNX form with one bit flipped"""
    def flip(f):
        b = bytearray(f.read_bytes())
        b[len(b) // 2] ^= 1
        f.write_bytes(bytes(b))
    return _heals(d, flip, "flipping one bit")


@case("C3", "the form is remade with a note")
def c3(d):
    """a cached contract truncated"""
    return _heals(d, lambda f: Path(str(f) + ".json").write_text('{"format": "on'),
                  "truncating its contract")


@case("C4", "the form is remade with a note")
def c4(d):
    """a cached contract saying the parity check failed"""
    def fail(f):
        p = Path(str(f) + ".json")
        c = json.loads(p.read_text())
        c["parity"]["passed"] = False
        p.write_text(json.dumps(c))
    return _heals(d, fail, "marking its parity failed")


@case("C5", "the form is remade (silently: a form being written looks the same)")
def c5(d):
    """a cached form whose contract was deleted"""
    return _heals(d, lambda f: Path(str(f) + ".json").unlink(), "deleting its contract")


@case("C6", "the form is remade with a note")
def c6(d):
    """another checkpoint's form copied under this checkpoint's name"""
    def swap(f):
        r = export_onnx(d, A["tiny3"], d / "other.onnx")
        assert r.rc == 0, r.err
        shutil.copy(d / "other.onnx", f)
        shutil.copy(d / "other.onnx.json", str(f) + ".json")
    return _heals(d, swap, "swapping in another checkpoint's form")


@case("C7", "one line naming WDSR_CACHE_DIR (not --output); nothing written")
def c7(d):
    """the cache's onnx/ folder is read-only (chattr +i, as root)"""
    ck = ckpt(d)
    img(d / "a.png")
    onnx_dir = Path(env_for(d)["WDSR_CACHE_DIR"]) / "onnx"
    onnx_dir.mkdir(parents=True)
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(onnx_dir)], capture_output=True).returncode:
            return "chattr", "not available", False
    else:
        onnx_dir.chmod(0o555)
    try:
        r = upscale_onnx(d, ck, "out.png")
    finally:
        subprocess.run(["chattr", "-i", str(onnx_dir)], capture_output=True)
        onnx_dir.chmod(0o755)
    ok = r.one_line() and "WDSR_CACHE_DIR" in r.first() and "--output" not in r.first() \
        and not (d / "out.png").exists()
    return cmd("upscale", "a.png", "-o", "out.png", "--backend", "onnxruntime",
               "(read-only cache)"), r.brief(), ok


@case("C8", "one line naming WDSR_CACHE_DIR")
def c8(d):
    """WDSR_CACHE_DIR names a file"""
    ck = ckpt(d)
    img(d / "a.png")
    (d / "f").write_text("x")
    r = upscale_onnx(d, ck, "out.png", env={"WDSR_CACHE_DIR": str(d / "f")})
    return cmd("upscale", "a.png", "--backend", "onnxruntime", "(WDSR_CACHE_DIR=a file)"), \
        r.brief(), r.one_line() and "WDSR_CACHE_DIR" in r.first()


@case("C9", "runs: a read-only cache is not needed when the form exists")
def c9(d):
    """a read-only cache that already holds the form"""
    ck, form, r = _cache_form(d)
    if r.rc != 0:
        return "upscale", r.brief(), False
    subprocess.run(["chattr", "+i", str(form.parent)], capture_output=True)
    try:
        r2 = upscale_onnx(d, ck, "out.png")
    finally:
        subprocess.run(["chattr", "-i", str(form.parent)], capture_output=True)
    return cmd("upscale", "a.png", "--backend", "onnxruntime", "(read-only cache, form in it)"), \
        r2.brief(), r2.rc == 0


@case("C10", "runs: OpenVINO recompiles a damaged blob")
def c10(d):
    """OpenVINO's compiled blobs in the cache truncated"""
    ck = ckpt(d)
    img(d / "a.png")
    r = wdsr(d, "upscale", "a.png", "-o", "1.png", "--checkpoint", str(ck), "--backend",
             "openvino")
    blobs = list(Path(env_for(d)["WDSR_CACHE_DIR"]).rglob("*.blob"))
    if r.rc != 0 or not blobs:
        return "upscale --backend openvino", r.brief() + f" ({len(blobs)} blobs)", False
    for b in blobs:
        b.chmod(0o644)
        b.write_bytes(b.read_bytes()[:300])
    r2 = wdsr(d, "upscale", "a.png", "-o", "2.png", "--checkpoint", str(ck), "--backend",
              "openvino")
    return cmd("upscale", "a.png", "--backend", "openvino", "(blobs truncated)"), r2.brief(), \
        r2.rc == 0


def _bf16() -> bool:
    from wdsr_cli.core.inference.device import bf16_native

    return bool(bf16_native())


@case("C11", "the verdict is made again with a note (or n/a without native bf16)")
def c11(d):
    """a cached bf16 verdict edited from failed to passed"""
    if not _bf16():
        return "n/a", "this CPU has no native bf16", True
    ck = ckpt(d)
    img(d / "a.png")
    args = ["upscale", "a.png", "--checkpoint", str(ck), "--backend", "openvino",
            "--precision", "bf16"]
    r = wdsr(d, *args, "-o", "1.png")
    checks = list(Path(env_for(d)["WDSR_CACHE_DIR"]).glob("checks/*.json"))
    if r.rc != 0 or not checks:
        return "upscale bf16", r.brief(), False
    v = json.loads(checks[0].read_text())
    v.update(passed=True, uint8_max_diff=30)
    checks[0].write_text(json.dumps(v))
    r2 = wdsr(d, *args, "-o", "2.png")
    return cmd(*args[:3], "tiny.ckpt", *args[4:], "(verdict edited)"), \
        f"exit {r2.rc}; {'noted' if 'failed its check' in r2.err else 'no note'}", \
        r2.rc == 0 and "failed its check" in r2.err


@case("C12", "runs; a note that the verdict could not be cached")
def c12(d):
    """bf16 with a read-only checks/ folder"""
    if not _bf16():
        return "n/a", "this CPU has no native bf16", True
    ck = ckpt(d)
    img(d / "a.png")
    checks = Path(env_for(d)["WDSR_CACHE_DIR"]) / "checks"
    checks.mkdir(parents=True)
    subprocess.run(["chattr", "+i", str(checks)], capture_output=True)
    try:
        r = wdsr(d, "upscale", "a.png", "--checkpoint", str(ck), "--backend", "openvino",
                 "--precision", "bf16")
    finally:
        subprocess.run(["chattr", "-i", str(checks)], capture_output=True)
    return cmd("upscale", "a.png", "--backend", "openvino", "--precision", "bf16",
               "(read-only checks/)"), r.brief(), r.rc == 0


@case("C13", "the user's file is left alone and not used (note); the cache form runs")
def c13(d):
    """a user's tampered <stem>.onnx next to the checkpoint"""
    ck = ckpt(d)
    img(d / "a.png")
    r = export_onnx(d, ck, d / "tiny.onnx")
    if r.rc != 0:
        return "export", r.brief(), False
    (d / "tiny.onnx").write_bytes((d / "tiny.onnx").read_bytes()[:800])
    before = (d / "tiny.onnx").read_bytes()
    r2 = upscale_onnx(d, ck, "out.png")
    ok = r2.rc == 0 and (d / "tiny.onnx").read_bytes() == before and "not used" in r2.err
    untouched = (d / "tiny.onnx").read_bytes() == before
    return (cmd("upscale", "a.png", "--checkpoint", "tiny.ckpt", "--backend", "onnxruntime",
                "(tiny.onnx beside it truncated)"),
            f"exit {r2.rc}; note: {'not used' in r2.err}; file untouched: {untouched}", ok)


@case("C14", "the form is remade with a note")
def c14(d):
    """a cached form replaced by an empty file"""
    return _heals(d, lambda f: f.write_bytes(b""), "emptying the cached form")


# ------------------------------------------------------------------------- S: signals


def _signalled(d: Path, args: list[str], point: str, sig: int, go: bool = True,
               env: dict | None = None, expect_line: str = "interrupted",
               check_dir: str = ".") -> tuple[str, str, bool]:
    proc, reached = held(d, args, point, env)
    if not reached:
        r = finish(proc)
        return cmd(*args), f"no hold point {point} (exit {r.rc})", False
    proc.send_signal(sig)
    if go:
        release(d)
    r = finish(proc)
    left = [h for h in hidden(d / check_dir) if not h.startswith(("held",))]
    ok = r.rc == 128 + sig and expect_line in r.err and "Traceback" not in r.err and not left
    return (cmd(*args) + f" + {signal.Signals(sig).name} at {point}",
            f"exit {r.rc}: {r.first()[:100]}" + (f"; left {left}" if left else ""), ok)


@case("S1", "exit 143, 'interrupted: N of 8 images were written', no temporary file")
def s1(d):
    """SIGTERM to upscale DIR on MindSpore"""
    folder(d / "in", 8)
    return _signalled(d, ["upscale", "in", "-o", "out", "--checkpoint", str(ckpt(d)),
                          "--backend", "mindspore"], "upscale-write-p01.png", signal.SIGTERM,
                      expect_line="images were written")


@case("S2", "exit 129, the same line, no temporary file")
def s2(d):
    """SIGHUP to upscale DIR on OpenVINO (auto)"""
    folder(d / "in", 8)
    return _signalled(d, ["upscale", "in", "-o", "out", "--checkpoint", str(ckpt(d))],
                      "upscale-write-p01.png", signal.SIGHUP, expect_line="images were written")


@case("S3", "exit 143, no private folder left in the cache")
def s3(d):
    """SIGTERM while upscale makes the ONNX form"""
    from wdsr_cli.core.fileio import sha256_file

    ck = ckpt(d)
    img(d / "a.png")
    res = _signalled(d, ["upscale", "a.png", "--checkpoint", str(ck), "--backend",
                         "onnxruntime"], f"export-written-{sha256_file(ck)}.onnx",
                     signal.SIGTERM, go=False)
    cache = Path(env_for(d)["WDSR_CACHE_DIR"])
    left = hidden(cache) if cache.exists() else []
    return res[0], res[1] + (f"; cache left {left}" if left else ""), res[2] and not left


@case("S4", "exit 143, no model, no private folder")
def s4(d):
    """SIGTERM to export (during its parity check point)"""
    ckpt(d)
    return _signalled(d, ["export", "--checkpoint", "tiny.ckpt", "-f", "onnx", "-o", "m.onnx"],
                      "export-written-m.onnx", signal.SIGTERM, go=False)


@case("S5", "exit 143, saved images complete, no temporary file")
def s5(d):
    """SIGTERM to evaluate --save-images"""
    folder(d / "hr", 4, 48, 48)
    return _signalled(d, ["evaluate", "--hr", "hr", "--save-images", "s", "--checkpoint",
                          str(ckpt(d))], "evaluate-image-p01", signal.SIGTERM, go=False)


@case("S6", "exit 129, no report folder, no staging folder")
def s6(d):
    """SIGHUP to evaluate --report"""
    folder(d / "hr", 3, 48, 48)
    res = _signalled(d, ["evaluate", "--hr", "hr", "--report", "rep", "--checkpoint",
                         str(ckpt(d))], "evaluate-image-p01", signal.SIGHUP, go=False)
    return res[0], res[1], res[2] and not (d / "rep").exists()


@case("S7", "exit 143 with the images kept; the rerun resumes and finishes")
def s7(d):
    """SIGTERM to prepare-data -j 1"""
    folder(d / "src", 4, 96, 96)
    args = ["prepare-data", "src", "--out", "prep", "--scales", "2", "--crop-size", "48",
            "--crop-step", "48", "-j", "1"]
    cmd_, obs, ok = _signalled(d, args, "prepare-image-p02", signal.SIGTERM, go=False,
                               check_dir="src")
    left = [h for h in hidden(d / "prep") if h != ".journal.jsonl"]
    r = wdsr(d, *args)
    return cmd_, obs + f"; rerun exit {r.rc}" + (f"; left {left}" if left else ""), \
        ok and not left and r.rc == 0 and "resuming" in r.err


@case("S8", "exit 143, workers gone, no temporary file; the rerun finishes")
def s8(d):
    """SIGTERM to prepare-data -j 2 (a worker held)"""
    folder(d / "src", 6, 96, 96)
    args = ["prepare-data", "src", "--out", "prep", "--scales", "2", "--crop-size", "48",
            "--crop-step", "48", "-j", "2"]
    proc, reached = held(d, args, "prepare-image-p03")
    if not reached:
        return cmd(*args), f"no hold point (exit {finish(proc).rc})", False
    proc.send_signal(signal.SIGTERM)
    r = finish(proc)
    worker = int((d / "held").read_text().split()[0])
    gone = not Path(f"/proc/{worker}").exists() or open(f"/proc/{worker}/stat").read().split(
        ")")[-1].split()[0] in "ZX"
    left = [h for h in hidden(d / "prep") if h != ".journal.jsonl"]
    r2 = wdsr(d, *args)
    ok = r.rc == 143 and "interrupted by SIGTERM" in r.err and gone and not left and r2.rc == 0
    return cmd(*args) + " + SIGTERM (worker held at p03)", f"exit {r.rc}: {r.first()[:80]}; "\
        f"worker gone: {gone}; left {left}; rerun exit {r2.rc}", ok


def _train_args() -> list[str]:
    return ["--config", "demo", "--set", "model.n_resblocks=2", "--set", "model.n_feats=8",
            "--set", "data.batch_size=2", "--set", "data.patch_size=16", "--set",
            "train.val_images=1", "--set", "train.val_every=1000", "--set",
            "train.ckpt_every=2", "--set", "train.warmup_steps=0", "--set",
            "train.log_every=1", "--device-target", "CPU"]


def _prepared(d: Path) -> Res:
    folder(d / "src", 3, 96, 96)
    return wdsr(d, "prepare-data", "src", "--out", "prep", "--scales", "2", "--crop-size",
                "48", "--crop-step", "48", "--valid-count", "1", "-j", "1")


def _signal_training(d: Path, sig: int):
    """A tiny training stopped by ``sig`` at step 3: (its result, what it left besides the run
    lock), or (None, why) when it never got there."""
    if _prepared(d).rc != 0:
        return None, "prepare-data failed"
    args = ["train", *_train_args(), "--set", "data.prepared=prep", "--steps", "8",
            "--name", "r"]
    proc, reached = held(d, args, "train-step-3")
    if not reached:
        return None, f"no hold point (exit {finish(proc).rc})"
    proc.send_signal(sig)
    r = finish(proc)
    return r, [h for h in hidden(d / "runs") if h not in ("r/.wdsr.lock",)]


@case("S9", "exit 143, a line, a --resume that works, lock free, no temporary file")
def s9(d):
    """SIGTERM to train (the launcher) at step 3"""
    r, left = _signal_training(d, signal.SIGTERM)
    if r is None:
        return cmd("train"), left, False
    r2 = wdsr(d, "train", "--resume", "runs/r", "--steps", "8", "--device-target", "CPU")
    ok = r.rc == 143 and "Traceback" not in r.err and not left and r2.rc == 0
    return "wdsr train --config demo (tiny) --steps 8 + SIGTERM at step 3; then --resume", \
        f"exit {r.rc}: {r.first()[:90]}; left {left}; resume exit {r2.rc}", ok


@case("S10", "exit 129, like S9")
def s10(d):
    """SIGHUP to train at step 3"""
    r, left = _signal_training(d, signal.SIGHUP)
    if r is None:
        return cmd("train"), left, False
    return "wdsr train (tiny) + SIGHUP at step 3", f"exit {r.rc}: {r.first()[:90]}; left "\
        f"{left}", r.rc == 129 and "Traceback" not in r.err and not left


@case("S11", "SIGHUP ignored under nohup: the run finishes, exit 0")
def s11(d):
    """SIGHUP to upscale started with SIGHUP ignored (nohup)"""
    folder(d / "in", 4)
    marker = d / "held"
    proc = subprocess.Popen([WDSR, "upscale", "in", "-o", "out", "--checkpoint",
                             str(ckpt(d))], cwd=d, env={
        **env_for(d), "WDSR_TEST_HOLD": f"upscale-write-p01.png={marker}"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    while not (marker.exists() and marker.read_text().strip()) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGHUP)
    release(d)
    r = finish(proc)
    n = len(list((d / "out").glob("*.png")))
    return cmd("upscale", "in", "-o", "out") + " under nohup + SIGHUP", f"exit {r.rc}; {n} "\
        "of 4 written", r.rc == 0 and n == 4


@case("S12", "exit 130, 'interrupted: N of 8 images were written' (Ctrl-C unchanged)")
def s12(d):
    """SIGINT to upscale DIR (regression check)"""
    folder(d / "in", 8)
    marker = d / "held"
    args = ["upscale", "in", "-o", "out", "--checkpoint", str(ckpt(d)), "--backend",
            "mindspore"]
    proc = subprocess.Popen([WDSR, *args], cwd=d, env={
        **env_for(d), "WDSR_TEST_HOLD": f"upscale-write-p01.png={marker}"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while not (marker.exists() and marker.read_text().strip()) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    release(d)
    r = finish(proc)
    return cmd(*args) + " + SIGINT", f"exit {r.rc}: {r.first()[:90]}", \
        r.rc == 130 and "images were written" in r.err and not hidden(d / "out")


@case("S13", "exit 143, --json summary not half-written (absent or whole)")
def s13(d):
    """SIGTERM to upscale --json s.json"""
    folder(d / "in", 6)
    cmd_, obs, ok = _signalled(d, ["upscale", "in", "-o", "out", "--json", "s.json",
                                   "--checkpoint", str(ckpt(d))], "upscale-write-p01.png",
                               signal.SIGTERM, expect_line="images were written")
    whole = True
    if (d / "s.json").exists():
        try:
            json.loads((d / "s.json").read_text())
        except ValueError:
            whole = False
    return cmd_, obs + f"; json whole: {whole}", ok and whole


# ---------------------------------------------------------- L: leftovers of dead writers


def _stale(d: Path, where: Path, name: str, is_dir: bool = False, pid: int | None = None
           ) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    p = where / (f".{name}.tmp{pid or dead_pid()}-0123abcd" + (".d" if is_dir else ""))
    if is_dir:
        p.mkdir()
        (p / "m.onnx").write_bytes(b"m" * 1000)
    else:
        p.write_bytes(b"partial")
    return p


def _swept(cmd_: str, r: Res, stale: list[Path], kept: list[Path] = ()) -> tuple[str, str, bool]:
    gone = [not (s.exists() or s.is_symlink()) for s in stale]
    stay = [k.exists() for k in kept]
    return cmd_, f"exit {r.rc}; stale removed {sum(gone)}/{len(gone)}" + (
        f"; live kept {sum(stay)}/{len(stay)}" if kept else ""), \
        r.rc == 0 and all(gone) and all(stay)


@case("L1", "the dead writer's temp is removed by the next upscale there")
def l1(d):
    """a killed upscale's .a_x2.png.tmpPID-* in the output folder"""
    img(d / "a.png")
    s = _stale(d, d / "out", "a_x2.png")
    r = wdsr(d, "upscale", "a.png", "-o", "out/", "--checkpoint", str(ckpt(d)))
    return _swept(cmd("upscale", "a.png", "-o", "out/"), r, [s])


@case("L2", "removed by the next run even though the form exists")
def l2(d):
    """a killed form maker's private folder in the cache (the form exists meanwhile)"""
    ck, form, r = _cache_form(d)
    if r.rc != 0:
        return "upscale", r.brief(), False
    s = _stale(d, form.parent, form.name, is_dir=True)
    r2 = upscale_onnx(d, ck, "2.png")
    return _swept(cmd("upscale", "a.png", "--backend", "onnxruntime"), r2, [s])


@case("L3", "removed by the next evaluate --report there")
def l3(d):
    """a killed report's staging folder next to --report"""
    folder(d / "hr", 2, 48, 48)
    s = _stale(d, d, "rep", is_dir=True)
    r = wdsr(d, "evaluate", "--hr", "hr", "--report", "rep", "--checkpoint", str(ckpt(d)))
    return _swept(cmd("evaluate", "--hr", "hr", "--report", "rep"), r, [s])


@case("L4", "removed by the next evaluate --save-images there")
def l4(d):
    """a killed evaluate's image temp in --save-images"""
    folder(d / "hr", 2, 48, 48)
    s = _stale(d, d / "s", "p00_x2.png")
    r = wdsr(d, "evaluate", "--hr", "hr", "--save-images", "s", "--checkpoint", str(ckpt(d)))
    return _swept(cmd("evaluate", "--hr", "hr", "--save-images", "s"), r, [s])


@case("L5", "removed by the next export there")
def l5(d):
    """a killed export's private folder next to -o"""
    ckpt(d)
    s = _stale(d, d, "m.onnx", is_dir=True)
    r = wdsr(d, "export", "--checkpoint", "tiny.ckpt", "-f", "onnx", "-o", "m.onnx")
    return _swept(cmd("export", "--checkpoint", "tiny.ckpt", "-f", "onnx", "-o", "m.onnx"),
                  r, [s])


@case("L6", "removed by the next --json there")
def l6(d):
    """a killed --json writer's temp"""
    img(d / "a.png")
    s = _stale(d, d / "j", "s.json")
    r = wdsr(d, "upscale", "a.png", "--json", "j/s.json", "--checkpoint", str(ckpt(d)))
    return _swept(cmd("upscale", "a.png", "--json", "j/s.json"), r, [s])


@case("L7", "a live writer's temp is kept; a dead one's removed")
def l7(d):
    """temps of a live process and of a dead one in one output folder"""
    img(d / "a.png")
    live = subprocess.Popen(["sleep", "300"])
    try:
        keep = _stale(d, d / "out", "b_x2.png", pid=live.pid)
        s = _stale(d, d / "out", "c_x2.png")
        r = wdsr(d, "upscale", "a.png", "-o", "out/", "--checkpoint", str(ckpt(d)))
        return _swept(cmd("upscale", "a.png", "-o", "out/"), r, [s], [keep])
    finally:
        live.kill()
        live.wait()


@case("L8", "a zombie writer's temp is removed")
def l8(d):
    """the temp of a writer that exited but is not reaped (zombie)"""
    img(d / "a.png")
    z = subprocess.Popen([sys.executable, "-c", "pass"])
    while open(f"/proc/{z.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    try:
        s = _stale(d, d / "out", "b_x2.png", pid=z.pid)
        r = wdsr(d, "upscale", "a.png", "-o", "out/", "--checkpoint", str(ckpt(d)))
        return _swept(cmd("upscale", "a.png", "-o", "out/"), r, [s])
    finally:
        z.wait()


@case("L9", "names that only look like temps are left alone")
def l9(d):
    """a user's .x.tmp123-notes and .a_x2.png.tmp5-ZZZZZZZZ in the output folder"""
    img(d / "a.png")
    (d / "out").mkdir()
    mine = [d / "out" / ".x.tmp123-notes", d / "out" / ".a_x2.png.tmp5-ZZZZZZZZ",
            d / "out" / "a_x2.png.tmp1-0123abcd"]
    for m in mine:
        m.write_text("mine")
    r = wdsr(d, "upscale", "a.png", "-o", "out/", "--checkpoint", str(ckpt(d)))
    kept = all(m.exists() for m in mine)
    return cmd("upscale", "a.png", "-o", "out/"), f"exit {r.rc}; kept {kept}", \
        r.rc == 0 and kept


@case("L10", "removed; the checkpoints are complete")
def l10(d):
    """a killed save's checkpoint temp in the run folder, then --resume"""
    if _prepared(d).rc != 0:
        return "prepare-data", "failed", False
    r = wdsr(d, "train", *_train_args(), "--set", "data.prepared=prep", "--steps", "2",
             "--name", "r")
    if r.rc != 0:
        return "train", r.brief(), False
    s = _stale(d, d / "runs" / "r", "last.ckpt")
    r2 = wdsr(d, "train", "--resume", "runs/r", "--steps", "4", "--device-target", "CPU")
    return _swept("wdsr train --resume runs/r --steps 4", r2, [s])


@case("L11", "kill -9 while the form is made leaves a folder; the next run removes it")
def l11(d):
    """kill -9 during ONNX form making, then the same upscale"""
    from wdsr_cli.core.fileio import sha256_file

    ck = ckpt(d)
    img(d / "a.png")
    args = ["upscale", "a.png", "--checkpoint", str(ck), "--backend", "onnxruntime"]
    proc, reached = held(d, args, f"export-written-{sha256_file(ck)}.onnx")
    if not reached:
        return cmd(*args), f"no hold point (exit {finish(proc).rc})", False
    proc.kill()
    proc.wait()
    cache = Path(env_for(d)["WDSR_CACHE_DIR"])
    left = hidden(cache)
    r = wdsr(d, *args)
    after = hidden(cache)
    return cmd(*args[:2]) + " ... (kill -9 at form making, then again)", \
        f"left after kill: {len(left)}; exit {r.rc}; left after rerun: {len(after)}", \
        bool(left) and r.rc == 0 and not after


@case("L12", "kill -9 during export leaves a folder; the next export there removes it")
def l12(d):
    """kill -9 during export, then export again"""
    ckpt(d)
    args = ["export", "--checkpoint", "tiny.ckpt", "-f", "onnx", "-o", "m.onnx"]
    proc, reached = held(d, args, "export-written-m.onnx")
    if not reached:
        return cmd(*args), f"no hold point (exit {finish(proc).rc})", False
    proc.kill()
    proc.wait()
    left = [h for h in hidden(d) if not h.startswith("held")]
    (d / "held").unlink()
    r = wdsr(d, *args)
    after = [h for h in hidden(d) if not h.startswith("held")]
    return cmd(*args) + " (kill -9, then again)", f"left after kill: {left}; exit {r.rc}; "\
        f"left after rerun: {after}", bool(left) and r.rc == 0 and not after


# ------------------------------------------------------------------- K: two at a time


@case("K1", "the held one is refused ('appeared while wdsr was working'); B's file stays")
def k1(d):
    """two upscales of one output name (A held before its write, B runs)"""
    img(d / "a.png")
    ck = ckpt(d)
    args = ["upscale", "a.png", "-o", "o.png", "--checkpoint", str(ck)]
    a, reached = held(d, args, "upscale-write-a.png")
    if not reached:
        return cmd(*args), "no hold point", False
    b = wdsr(d, *args)
    written = (d / "o.png").read_bytes() if (d / "o.png").exists() else b""
    release(d)
    ra = finish(a)
    ok = b.rc == 0 and ra.rc == 2 and "appeared while wdsr was working" in ra.err \
        and (d / "o.png").read_bytes() == written
    return cmd(*args) + " twice at once", f"B exit {b.rc}; A exit {ra.rc}: {ra.first()[:80]}", ok


@case("K2", "the second resume is refused with the holder's PID; the run unchanged")
def k2(d):
    """two resumes of one run (A held at step 3)"""
    if _prepared(d).rc != 0:
        return "prepare-data", "failed", False
    r = wdsr(d, "train", *_train_args(), "--set", "data.prepared=prep", "--steps", "2",
             "--name", "r")
    if r.rc != 0:
        return "train", r.brief(), False
    a, reached = held(d, ["train", "--resume", "runs/r", "--steps", "6", "--device-target",
                          "CPU"], "train-step-3")
    if not reached:
        return "train --resume", f"no hold point (exit {finish(a).rc})", False
    before = snap(d / "runs")
    b = wdsr(d, "train", "--resume", "runs/r", "--steps", "8", "--device-target", "CPU")
    same = snap(d / "runs") == before
    release(d)
    ra = finish(a)
    ok = b.one_line() and str(a.pid) in b.first() and same and ra.rc == 0
    return "wdsr train --resume runs/r twice at once", f"B: {b.brief()[:100]}; run unchanged: "\
        f"{same}; A exit {ra.rc}", ok


@case("K3", "the held export is refused; B's model and contract stay")
def k3(d):
    """two exports to one -o (A held before its check, B runs; no --force)"""
    ckpt(d)
    A3 = shutil.copy(A["tiny3"], d / "other.ckpt")
    args_a = ["export", "--checkpoint", "tiny.ckpt", "-f", "onnx", "-o", "m.onnx"]
    a, reached = held(d, args_a, "export-written-m.onnx")
    if not reached:
        return cmd(*args_a), "no hold point", False
    b = wdsr(d, "export", "--checkpoint", str(A3), "-f", "onnx", "-o", "m.onnx")
    mine = snap(d)
    release(d)
    ra = finish(a)
    after = snap(d)
    same = all(after.get(k) == v for k, v in mine.items() if k.startswith("m.onnx"))
    ok = b.rc == 0 and ra.rc == 2 and same and not [h for h in hidden(d)
                                                     if not h.startswith("held")]
    return cmd(*args_a) + " and another checkpoint to m.onnx at once", \
        f"B exit {b.rc}; A exit {ra.rc}: {ra.first()[:70]}; B's files kept: {same}", ok


@case("K4", "both run; the cached form is whole and checked")
def k4(d):
    """two upscales making one ONNX form at once"""
    from wdsr_cli.core.fileio import sha256_file

    ck = ckpt(d)
    img(d / "a.png")
    args = ["upscale", "a.png", "--checkpoint", str(ck), "--backend", "onnxruntime"]
    a, reached = held(d, [*args, "-o", "1.png"], f"export-written-{sha256_file(ck)}.onnx")
    if not reached:
        return cmd(*args), "no hold point", False
    b = wdsr(d, *args, "-o", "2.png")
    release(d)
    ra = finish(a)
    c = wdsr(d, *args, "-o", "3.png")
    ok = b.rc == 0 and ra.rc == 0 and c.rc == 0 and "failed its check" not in c.err
    return cmd(*args) + " twice at once, then again", f"exit {ra.rc}, {b.rc}, then {c.rc}", ok


@case("K5", "the held report is refused with one line; B's report stays whole")
def k5(d):
    """two evaluates --report to one folder (A held before moving its report in)"""
    folder(d / "hr", 2, 48, 48)
    ck = ckpt(d)
    args = ["evaluate", "--hr", "hr", "--report", "rep", "--checkpoint", str(ck)]
    a, reached = held(d, args, "report-commit-rep")
    if not reached:
        return cmd(*args), "no hold point", False
    b = wdsr(d, *args)
    mine = snap(d / "rep") if (d / "rep").exists() else {}
    release(d)
    ra = finish(a)
    same = (snap(d / "rep") if (d / "rep").exists() else {}) == mine
    left = [h for h in hidden(d) if not h.startswith("held")]
    ok = b.rc == 0 and ra.rc == 2 and "Traceback" not in ra.err and same and not left
    return cmd(*args) + " twice at once", f"B exit {b.rc}; A exit {ra.rc}: {ra.first()[:80]};"\
        f" B's report kept: {same}; left {left}", ok


@case("K6", "the held writer does not replace the user's file (refused, or kept)")
def k6(d):
    """upscale --json s.json, and a user writes s.json (not a summary) meanwhile"""
    img(d / "a.png")
    args = ["upscale", "a.png", "--json", "s.json", "--checkpoint", str(ckpt(d))]
    a, reached = held(d, args, "upscale-write-a.png")
    if not reached:
        return cmd(*args), "no hold point", False
    (d / "s.json").write_text('{"mine": true}')
    release(d)
    ra = finish(a)
    kept = (d / "s.json").read_text() == '{"mine": true}'
    return cmd(*args) + " while a user writes s.json", f"exit {ra.rc}: {ra.first()[:80]}; "\
        f"user's file kept: {kept}", kept and ra.rc == 2


@case("K7", "the second is refused while the first works, or both end with one valid set")
def k7(d):
    """two prepare-data into one --out (A held at p02, B runs)"""
    folder(d / "src", 4, 96, 96)
    args = ["prepare-data", "src", "--out", "prep", "--scales", "2", "--crop-size", "48",
            "--crop-step", "48", "-j", "1"]
    a, reached = held(d, args, "prepare-image-p02")
    if not reached:
        return cmd(*args), "no hold point", False
    b = wdsr(d, *args)
    release(d)
    ra = finish(a)
    v = wdsr(d, *args, "--verify")
    ok = ra.rc in (0, 2) and b.rc in (0, 2) and v.rc == 0 and "Traceback" not in ra.err + b.err
    return cmd(*args) + " twice at once, then --verify", f"A exit {ra.rc}, B exit {b.rc} "\
        f"({b.first()[:60]}); verify exit {v.rc}", ok


# --------------------------------------------------------------------------------- main


def main() -> None:
    global SRC
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--src", default=str(ROOT))
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    SRC = args.src
    work = Path(tempfile.mkdtemp(prefix="wdsr-hostile-"))
    make_assets(work)
    rows, failed = [], 0
    for cid, what, expected, fn in CASES:
        if args.k and cid not in args.k.split(","):
            continue
        d = work / cid
        d.mkdir()
        t = time.perf_counter()
        try:
            command, observed, ok = fn(d)
        except Exception as exc:  # the harness must go on
            command, observed, ok = what, f"harness: {type(exc).__name__}: {exc}", False
        failed += not ok
        verdict = "pass" if ok else "FAIL"
        print(f"{cid:4} {verdict:4} {time.perf_counter() - t:5.1f}s {what}: {observed}",
              flush=True)
        rows.append((cid, what, command, expected, observed, verdict))
    def esc(text: str, cid: str) -> str:
        return str(text).replace(f"{work}/{cid}/", "").replace(f"{work}/", "").replace(
            "|", "\\|").replace("\n", " ")

    lines = ["| case | what | command | expected | observed | verdict |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(esc(c, row[0]) for c in row) + " |" for row in rows]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"{len(rows)} cases, {failed} failed; table in {args.out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

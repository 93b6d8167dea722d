"""Nothing is lost, as a matrix: every option that writes, of every command, pointed at each of
that command's inputs (files and folders it reads). Each such command is refused with the
one-line error and leaves every file of the tree byte-identical (no file changed, added or
removed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import one_line_error, run_wdsr, save_tiny_checkpoint
from prep_helpers import photo, plain_folder

from wdsr_cli.core.data.images import Image, write_image


@pytest.fixture(scope="module")
def tree(ms_cpu, tmp_path_factory) -> Path:
    """t/img/{a,b}.png, t/hr/h1.png + t/lr/h1x2.png, t/tiny.ckpt, t/model.onnx (+ contract),
    t/cfg.yaml, t/src (a plain folder) prepared into t/prepared, t/rep (an earlier report)."""
    t = tmp_path_factory.mktemp("matrix")
    for folder in ("img", "hr", "lr"):
        (t / folder).mkdir()
    for i, name in enumerate(("a", "b")):
        write_image(t / "img" / f"{name}.png", Image(pixels=photo(24, 24, i)))
    write_image(t / "hr" / "h1.png", Image(pixels=photo(40, 40, 2)))
    write_image(t / "lr" / "h1x2.png", Image(pixels=photo(20, 20, 3)))
    save_tiny_checkpoint(t / "tiny.ckpt", 2)
    res = run_wdsr("export", "--checkpoint", str(t / "tiny.ckpt"), "-f", "onnx", "-o",
                   str(t / "model.onnx"))
    assert res.returncode == 0, res.stderr
    (t / "cfg.yaml").write_text("eval:\n  protocol: y\n")
    plain_folder(t / "src", [(48, 48), (48, 48)])
    res = run_wdsr("prepare-data", str(t / "src"), "--out", str(t / "prepared"), "--crop-size",
                   "24", "--valid-count", "1", "--scales", "2")
    assert res.returncode == 0, res.stderr
    res = run_wdsr("evaluate", "--checkpoint", str(t / "tiny.ckpt"), "--hr", str(t / "hr"),
                   "--report", str(t / "rep"))
    assert res.returncode == 0, res.stderr
    (t / "summary.json").write_text('{"mine": 1}\n')  # a user's JSON, not a wdsr summary
    return t


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<folder>")
            for p in sorted(root.rglob("*"))}


UP = ["upscale", "{t}/img/a.png", "--checkpoint", "{t}/tiny.ckpt"]
EV = ["evaluate", "--checkpoint", "{t}/tiny.ckpt", "--hr", "{t}/hr"]
EVM = ["evaluate", "--model", "{t}/model.onnx", "--hr", "{t}/hr"]
EX = ["export", "--checkpoint", "{t}/tiny.ckpt", "-f", "onnx"]
PR = ["prepare-data", "{t}/src", "--crop-size", "24", "--valid-count", "1", "--scales", "2"]
TR = ["train", "--config", "demo", "--set", "data.prepared={t}/prepared", "--set",
      "model.n_feats=8", "--set", "model.n_resblocks=2", "--device-target", "CPU"]

CASES = [  # (command, the writing option pointed at an input, what the one line says)
    (UP, ["-o", "{t}/img/a.png", "--overwrite"], "is the input itself"),
    (UP, ["-o", "{t}/tiny.ckpt", "--overwrite"], "has no image suffix"),
    (UP, ["-o", "{t}/out.png", "--json", "{t}/img/a.png"], "not a wdsr summary"),
    (UP, ["-o", "{t}/out.png", "--json", "{t}/tiny.ckpt"], "not a wdsr summary"),
    (UP, ["-o", "{t}/out.png", "--json", "{t}/out.png"], "also where this command writes"),
    (UP, ["-o", "{t}/out.png", "--json", "{t}/summary.json"], "not a wdsr summary"),
    (["upscale", "{t}/img/a.png", "--model", "{t}/model.onnx"],
     ["-o", "{t}/out.png", "--json", "{t}/model.onnx.json"], "not a wdsr summary"),
    (["upscale", "{t}/img/a.png", "{t}/img/b.png", "--checkpoint", "{t}/tiny.ckpt"],
     ["-o", "{t}/img/b.png", "--overwrite"], "need an output folder"),
    (EV, ["--json", "{t}/hr/h1.png"], "not a wdsr summary"),
    (EV, ["--json", "{t}/tiny.ckpt"], "not a wdsr summary"),
    (EV + ["-c", "{t}/cfg.yaml"], ["--json", "{t}/cfg.yaml"], "not a wdsr summary"),
    (EVM, ["--json", "{t}/model.onnx"], "not a wdsr summary"),
    (EV, ["--save-images", "{t}/hr", "--overwrite"], "folder of the --hr images"),
    (EV + ["--lr", "{t}/lr"], ["--save-images", "{t}/lr", "--overwrite"],
     "folder of the --lr images"),
    (EV, ["--save-images", "{t}/hr/h1.png"], "is a file"),
    (EV, ["--save-images", "{t}/tiny.ckpt"], "is a file"),
    (EV, ["--report", "{t}/hr", "--overwrite"], "would hold the --hr folder"),
    (EV + ["--lr", "{t}/lr"], ["--report", "{t}/lr", "--overwrite"],
     "would hold the --lr folder"),
    (EV, ["--report", "{t}", "--overwrite"], "would hold the --hr folder"),
    (EVM, ["--report", "{t}", "--overwrite"], "would hold the --hr folder"),
    (EV, ["--report", "{t}/tiny.ckpt", "--overwrite"], "would hold the checkpoint"),
    (EV, ["--report", "{t}/hr/h1.png", "--overwrite"], "is not a folder"),
    (EV, ["--report", "{t}/img", "--json", "{t}/img/results.json"], "already exists"),
    (EV, ["--report", "{t}/img", "--overwrite"], "not a wdsr report"),
    (EV, ["--report", "{t}/rep", "--overwrite", "--json", "{t}/rep/results.json"],
     "inside the --report"),
    (EX, ["-o", "{t}/tiny.ckpt", "--force"], "must end with .onnx"),
    (EX, ["-o", "{t}/img/a.png", "--force"], "must end with .onnx"),
    (EX, ["--json", "{t}/tiny.ckpt"], "not a wdsr summary"),
    (EX, ["-o", "{t}/m2.onnx", "--json", "{t}/m2.onnx"], "also where this command writes"),
    (EX, ["-o", "{t}/m2.onnx", "--json", "{t}/m2.onnx.json"], "also where this command writes"),
    (PR, ["--out", "{t}/prepared2", "--json", "{t}/src/img00.png"], "not a wdsr summary"),
    (PR, ["--out", "{t}/img", "--json", "{t}/img/manifest.json"], "inside the --out folder"),
    (PR, ["--out", "{t}/prepared", "--json", "{t}/prepared/manifest.json"],
     "not a wdsr summary"),
    (PR, ["--out", "{t}/img/a.png"], "is a file"),
    (PR, ["--out", "{t}/src/img00.png", "--force"], "is a file"),
    (TR, ["--runs-dir", "{t}/prepared"], "inside the prepared data"),
    (TR, ["--runs-dir", "{t}/prepared/train"], "inside the prepared data"),
    (TR, ["--runs-dir", "{t}/tiny.ckpt"], "is a file"),
    (TR, ["--dry-run", "--json", "{t}/prepared/manifest.json"], "not a wdsr summary"),
    (TR + ["--init", "{t}/tiny.ckpt"], ["--dry-run", "--json", "{t}/tiny.ckpt"],
     "not a wdsr summary"),
]


@pytest.mark.parametrize("command,writes,needle", CASES,
                         ids=[f"{c[0]}{' '.join(w)}".replace("{t}", "") for c, w, _ in CASES])
def test_a_write_pointed_at_an_input_is_refused_and_changes_nothing(tree, command, writes,
                                                                     needle):
    args = [a.format(t=tree) for a in command + writes]
    before = _snapshot(tree)
    line = one_line_error(run_wdsr(*args, cwd=tree))
    assert needle in line, line
    assert _snapshot(tree) == before

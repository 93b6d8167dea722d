"""--json never lands on something the command reads or writes (issue 30): an existing file is
replaced only if it is an earlier wdsr summary; a FIFO is written into, a symlink's target
replaced; a refused command changes nothing."""

from __future__ import annotations

import json
import os
import threading

import pytest
from conftest import one_line_error, run_wdsr
from prep_helpers import photo, plain_folder, save


@pytest.fixture
def image(tmp_path):
    return save(tmp_path / "a.png", photo(24, 20, seed=1))


def test_upscale_json_onto_its_input_is_refused_and_the_input_kept(image, tmp_path):
    before = image.read_bytes()
    line = one_line_error(run_wdsr("upscale", str(image), "-o", str(tmp_path / "b.png"),
                                   "--json", str(image), cwd=tmp_path))
    assert "is not a wdsr summary" in line
    assert image.read_bytes() == before and not (tmp_path / "b.png").exists()


def test_upscale_json_onto_its_own_output_is_refused(image, tmp_path):
    line = one_line_error(run_wdsr("upscale", str(image), "-o", str(tmp_path / "b.png"),
                                   "--json", str(tmp_path / "b.png"), cwd=tmp_path))
    assert "where this command writes" in line and not (tmp_path / "b.png").exists()


def test_evaluate_json_onto_a_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes(b"\x00not json, but precious")
    line = one_line_error(run_wdsr("evaluate", "--checkpoint", str(ckpt), "--json", str(ckpt),
                                   cwd=tmp_path))
    assert "is not a wdsr summary" in line
    assert ckpt.read_bytes() == b"\x00not json, but precious"


def test_prepare_json_inside_its_out_folder_is_refused(tmp_path):
    root = plain_folder(tmp_path / "p", [(40, 40), (44, 40)])
    out = tmp_path / "p" / "out"
    args = ("prepare-data", str(root), "--out", str(out), "--scales", "2", "--crop-size", "24",
            "--crop-step", "12")
    assert run_wdsr(*args, cwd=tmp_path).returncode == 0
    manifest = (out / "manifest.json").read_bytes()
    line = one_line_error(run_wdsr(*args, "--json", str(out / "manifest.json"), cwd=tmp_path))
    assert "is not a wdsr summary" in line
    line = one_line_error(run_wdsr(*args, "--force", "--json", str(out / "summary.json"),
                                   cwd=tmp_path))
    assert "inside the --out folder" in line
    assert (out / "manifest.json").read_bytes() == manifest and not (out / "summary.json").exists()


def test_export_json_onto_its_contract_is_refused(tmp_path):
    from conftest import save_tiny_checkpoint

    ckpt = save_tiny_checkpoint(tmp_path / "tiny.ckpt")
    line = one_line_error(run_wdsr("export", "--checkpoint", str(ckpt), "--format", "onnx",
                                   "--output", str(tmp_path / "m.onnx"),
                                   "--json", str(tmp_path / "m.onnx.json"), cwd=tmp_path))
    assert "where this command writes" in line and not (tmp_path / "m.onnx").exists()


def test_a_summary_is_replaced_a_symlink_kept_and_a_fifo_written_into(image, tmp_path):
    summary = tmp_path / "s.json"
    args = ("upscale", str(image), "-o", str(tmp_path / "b.png"), "--overwrite", "--scale", "2")
    assert run_wdsr(*args, "--json", str(summary), cwd=tmp_path).returncode == 0
    first = json.loads(summary.read_text())
    assert first["wdsr_summary"] == "upscale"
    link = tmp_path / "link.json"
    link.symlink_to(summary)
    summary.write_text(json.dumps({**first, "seconds": -1.0}))  # an earlier summary, edited
    assert run_wdsr(*args, "--json", str(link), cwd=tmp_path).returncode == 0
    assert link.is_symlink() and json.loads(summary.read_text())["seconds"] >= 0

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    res = run_wdsr(*args, "--json", str(fifo), cwd=tmp_path)
    reader.join(timeout=600)
    assert res.returncode == 0, res.stderr
    assert fifo.is_fifo() and json.loads(got[0])["wdsr_summary"] == "upscale"

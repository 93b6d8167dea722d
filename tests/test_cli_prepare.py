"""`wdsr prepare-data` through the real entry point: sample, rerun, kill -9, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import WDSR, one_line_error, run_wdsr
from prep_helpers import div2k_tree, photo, plain_folder, save, truncate


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("sample") / "sample"
    res = run_wdsr("prepare-data", "--sample", str(d), "--workers", "2")
    return d, res


def test_sample_prepares_x2_x3_x4_with_a_progress_bar(sample):
    d, res = sample
    assert res.returncode == 0, res.stderr
    assert "found: div2k layout" in res.stdout and "dataset id" in res.stdout
    assert "preparing" in res.stderr and "images/s" in res.stderr  # the progress bar
    spec = json.loads((d / "prepared/manifest.json").read_text())
    assert spec["options"]["scales"] == [2, 3, 4]
    assert spec["options"]["crop_size"] == 192 and "bundled sample" in spec["options"]["note"]
    n = spec["counts"]["train_subimages"]
    # the figures of docs/prepare-data.md "The bundled sample"
    assert n == 306 and spec["counts"]["patches"] == {"x2": n, "x3": n, "x4": n}
    assert spec["dataset_id"] == "bf373d76280aec7b"  # any change of the data changes it
    assert spec["counts"]["train_images"] == 13 and spec["counts"]["valid_images"] == 3
    total = 0
    for entry in spec["train"]:
        hr = np.load(d / "prepared" / entry["outputs"]["hr"]["file"], mmap_mode="r")
        total += hr.shape[0]
        for s in (2, 3, 4):
            lr = np.load(d / "prepared" / entry["outputs"][f"x{s}"]["file"], mmap_mode="r")
            assert lr.shape == (hr.shape[0], 192 // s, 192 // s, 3)
    assert total == n
    assert spec["dataset_id"] in res.stdout


def test_sample_rerun_is_a_no_op(sample):
    d, first = sample
    assert first.returncode == 0
    before = {p: p.stat().st_mtime_ns for p in sorted(d.rglob("*")) if p.is_file()}
    res = run_wdsr("prepare-data", "--sample", str(d), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["status"] == "already-prepared" and summary["processed"] == 0
    assert "already prepared" in res.stderr and summary["dataset_id"] in res.stderr
    assert {p: p.stat().st_mtime_ns for p in sorted(d.rglob("*")) if p.is_file()} == before


def test_verify_passes_then_catches_a_changed_shard(sample, tmp_path):
    d, first = sample
    assert first.returncode == 0
    res = run_wdsr("prepare-data", "--sample", str(d), "--verify")
    assert res.returncode == 0, res.stderr
    assert "files match the manifest" in res.stderr
    # a damaged copy of the prepared folder: verify exits 2 naming the file
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    victim = copy / "prepared/train/x2/cat.npy"
    data = bytearray(victim.read_bytes())
    data[-5] ^= 1
    victim.write_bytes(bytes(data))
    res = run_wdsr("prepare-data", str(copy), "--out", str(copy / "prepared"),
                   "--crop-size", "192", "--crop-step", "96", "--verify")
    assert res.returncode == 2
    assert "train/x2/cat.npy" in res.stderr and "do not match" in res.stderr


def test_prepare_data_never_imports_mindspore(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36)])
    code = (
        "import sys\n"
        "from wdsr_cli.cli import main\n"
        f"try:\n    main(['prepare-data', {str(root)!r}, '--out', {str(tmp_path / 'o')!r},"
        " '--crop-size', '24', '--crop-step', '12', '-j', '1'])\n"
        "except SystemExit as e:\n    print('EXIT', e.code)\n"
        "print('MINDSPORE_LOADED' if 'mindspore' in sys.modules else 'MINDSPORE_ABSENT')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "EXIT 0" in res.stdout and "MINDSPORE_ABSENT" in res.stdout, res.stdout + res.stderr


def test_help_has_an_example():
    res = run_wdsr("prepare-data", "--help")
    assert res.returncode == 0 and "Example:" in res.stdout
    assert "wdsr prepare-data" in res.stdout and "--sample" in res.stdout


# ---------------------------------------------------------------------------- kill -9


def _journal_records(path):
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0
    return sum(1 for line in lines if '"type": "image"' in line)


def _gone(pgid) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_kill_9_midway_then_rerun_gives_the_identical_manifest(tmp_path):
    """SIGKILL the real `wdsr prepare-data` while one pool worker is held before image z0
    (the WDSR_TEST_HOLD hook) and every other image is journaled, rerun it, and compare with
    an uninterrupted run."""
    src = tmp_path / "src"
    plain_folder(src, [(48, 48)] * 8, prefix="a")
    for i in range(2):
        save(src / f"z{i}.png", photo(96, 96, 50 + i))
    args = [str(src), "--crop-size", "48", "--crop-step", "48", "--workers", "2",
            "--valid-count", "1"]
    ref = run_wdsr("prepare-data", *args, "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr

    out, marker = tmp_path / "out", tmp_path / "held"
    proc = subprocess.Popen([WDSR, "prepare-data", *args, "--out", str(out)],
                            env={**os.environ, "WDSR_TEST_HOLD": f"prepare-image-z0={marker}"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    journal = out / ".journal.jsonl"
    deadline = time.monotonic() + 600  # a safety net: z0 is held until the kill
    try:
        while not (marker.exists() and _journal_records(journal) == 9):
            assert proc.poll() is None, "prepare-data ended before the test could kill it"
            assert time.monotonic() < deadline, "the other 9 images were never journaled"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # only the main process, like `kill -9 PID`
        proc.wait(timeout=60)
        # its pool workers (the held one too) notice their parent is gone and exit on their own
        while not _gone(proc.pid):
            assert time.monotonic() < deadline, "orphaned workers did not exit"
            time.sleep(0.01)
    finally:
        if not _gone(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert _journal_records(journal) == 9
    assert not (out / "manifest.json").exists()

    res = run_wdsr("prepare-data", *args, "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "resuming: 9 of 10 images already done" in res.stderr, res.stderr
    assert (out / "manifest.json").read_bytes() == (tmp_path / "ref/manifest.json").read_bytes()
    assert not list(out.rglob("*.tmp"))


# --------------------------------------------------------------------------- bad input


def test_missing_root(tmp_path):
    line = one_line_error(run_wdsr("prepare-data", str(tmp_path / "nope"),
                                    "--out", str(tmp_path / "o")))
    assert "does not exist" in line and "nope" in line
    assert not (tmp_path / "o").exists()  # nothing created for a wrong path


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    line = one_line_error(run_wdsr("prepare-data", str(tmp_path / "empty"),
                                    "--out", str(tmp_path / "o")))
    assert "no images in" in line


def test_non_image_file(tmp_path):
    root = plain_folder(tmp_path / "src", [(48, 48)])
    (root / "notes.txt").write_text("hello")
    line = one_line_error(run_wdsr("prepare-data", str(root), "--out", str(tmp_path / "o"),
                                    "--crop-size", "24", "--crop-step", "12"))
    assert "'notes.txt' is not an image file" in line and "--skip-bad" in line
    res = run_wdsr("prepare-data", str(root), "--out", str(tmp_path / "o"),
                   "--crop-size", "24", "--crop-step", "12", "--skip-bad")
    assert res.returncode == 0 and "skipped notes.txt" in res.stderr


def test_truncated_png(tmp_path):
    root = div2k_tree(tmp_path / "src", {"0001": (48, 48), "0002": (48, 48)}, {})
    truncate(root / "DIV2K_train_HR/0002.png")
    line = one_line_error(run_wdsr("prepare-data", str(root), "--out", str(tmp_path / "o"),
                                    "--crop-size", "24", "--crop-step", "12"))
    assert "DIV2K_train_HR/0002.png" in line and "truncated" in line


def test_lr_hr_size_mismatch(tmp_path):
    root = div2k_tree(tmp_path / "src", {"0001": (48, 48)}, {}, lr_scales=(2,))
    save(root / "DIV2K_train_LR_bicubic/X2/0001x2.png", photo(20, 24, 0))
    line = one_line_error(run_wdsr("prepare-data", str(root), "--out", str(tmp_path / "o"),
                                    "--scales", "2", "--crop-size", "24", "--crop-step", "12"))
    assert "DIV2K_train_LR_bicubic/X2/0001x2.png" in line and "needs 24x24" in line


@pytest.mark.parametrize("scales, message", [("5", "unsupported scale 5"),
                                             ("2,x", "comma-separated list")])
def test_unsupported_scale(tmp_path, scales, message):
    root = plain_folder(tmp_path / "src", [(48, 48)])
    line = one_line_error(run_wdsr("prepare-data", str(root), "--out", str(tmp_path / "o"),
                                    "--scales", scales))
    assert message in line


def test_crop_not_divisible_by_scale(tmp_path):
    root = plain_folder(tmp_path / "src", [(48, 48)])
    line = one_line_error(run_wdsr("prepare-data", str(root), "--out", str(tmp_path / "o"),
                                    "--crop-size", "100"))
    assert "crop size 100 is not divisible by scale 3" in line


def _tree(root):
    """Every file's bytes; the journal's lines sorted (one line per finished image, appended in
    the order the pool workers finish: that order depends on timing, its content does not)."""
    def content(p):
        data = p.read_bytes()
        return b"".join(sorted(data.splitlines(keepends=True))) if p.name.endswith(
            ".journal.jsonl") else data

    return {p.relative_to(root).as_posix(): content(p) if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def test_unwritable_output_folder(tmp_path):
    # tests run as root, where a read-only folder is still writable: a path under a file is not
    root = plain_folder(tmp_path / "src", [(48, 48)])
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "cwd").mkdir()
    before = _tree(tmp_path)
    line = one_line_error(run_wdsr("prepare-data", str(root), "--out",
                                    str(tmp_path / "file.txt" / "sub"), cwd=tmp_path / "cwd"))
    assert "file.txt' is a file, not a folder" in line and "file.txt/sub" in line
    assert _tree(tmp_path) == before  # nothing written anywhere, the file untouched


def test_a_refused_prepare_creates_no_output_folder(tmp_path):
    root = plain_folder(tmp_path / "src", [(48, 48)])  # smaller than the default crop
    before = _tree(tmp_path)
    line = one_line_error(run_wdsr("prepare-data", str(root), "--out",
                                    str(tmp_path / "n1" / "n2" / "n3")))
    assert "no training images left" in line
    assert _tree(tmp_path) == before  # no n1/n2/n3 left behind


def test_other_options_on_the_same_output_need_force(tmp_path):
    root = plain_folder(tmp_path / "src", [(48, 48), (48, 48)])
    base = ["prepare-data", str(root), "--out", str(tmp_path / "o"), "--crop-size", "24",
            "--valid-count", "1", "--scales", "2"]
    assert run_wdsr(*base, "--crop-step", "12").returncode == 0
    first = _tree(tmp_path / "o")
    line = one_line_error(run_wdsr(*base, "--crop-step", "24"))
    assert "other options" in line and "--force" in line
    assert _tree(tmp_path / "o") == first  # refused: untouched
    assert run_wdsr(*base, "--crop-step", "24", "--force").returncode == 0
    # The forced rerun holds exactly what a fresh preparation with the new options holds.
    fresh = run_wdsr("prepare-data", str(root), "--out", str(tmp_path / "fresh"),
                     "--crop-size", "24", "--valid-count", "1", "--scales", "2",
                     "--crop-step", "24")
    assert fresh.returncode == 0, fresh.stderr
    forced = _tree(tmp_path / "o")
    assert forced != first
    assert forced == _tree(tmp_path / "fresh")
    manifest = json.loads(forced["manifest.json"])
    assert manifest["options"]["crop_step"] == 24 and manifest["counts"]["patches"] == {"x2": 4}


def test_config_supplies_root_and_output(tmp_path):
    root = plain_folder(tmp_path / "src", [(48, 48)])
    res = run_wdsr("prepare-data", "--set", f"data.root={root}",
                   "--set", f"data.prepared={tmp_path / 'o'}", "--set", "data.crop_size=24",
                   "--set", "data.crop_step=12", "--scales", "2", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["crop_size"] == 24 and summary["patches"] == {"x2": 9}
    assert (tmp_path / "o/manifest.json").is_file()


def test_out_holding_files_wdsr_did_not_write_is_refused_even_with_force(tmp_path):
    """--out onto a folder with someone else's manifest.json or train/ (a project folder):
    the manifest would be replaced and --force would remove train/x*; refused, untouched."""
    root = plain_folder(tmp_path / "src", [(48, 48), (48, 48)])
    args = ["prepare-data", str(root), "--crop-size", "24", "--valid-count", "1",
            "--scales", "2"]
    for what in ("manifest.json", "train/xmas/card.txt", "valid/hr/notes.txt"):
        out = tmp_path / f"out-{what.split('/')[0]}"
        (out / what).parent.mkdir(parents=True)
        (out / what).write_text("the user's")
        before = _tree(tmp_path)
        for force in ([], ["--force"]):
            line = one_line_error(run_wdsr(*args, "--out", str(out), *force))
            assert "was not written by wdsr prepare-data" in line, line
        assert _tree(tmp_path) == before
    out = tmp_path / "ours"  # wdsr's own folder: prepared, then redone with --force
    for force in ([], ["--force"]):
        res = run_wdsr(*args, "--out", str(out), *force)
        assert res.returncode == 0, res.stderr

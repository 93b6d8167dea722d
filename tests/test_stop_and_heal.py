"""Issue 30, round 2: SIGTERM and SIGHUP get what Ctrl-C gets, the next writer removes what a
dead writer left (any kind of temporary file or folder), and caches heal. Signals land at test
hold points (core/testpoint.py), never after a sleep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import WDSR, one_line_error, run_wdsr, save_tiny_checkpoint, wait_for_marker
from prep_helpers import photo, plain_folder

from wdsr_cli.core import fileio
from wdsr_cli.core.data.images import Image, read_image, write_image
from wdsr_cli.core.errors import WdsrError


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _hidden(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


@pytest.fixture(scope="module")
def tiny(ms_cpu, tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_x2.ckpt", 2)


# SIGTERM and SIGHUP as a terminal's shell gives them, then wdsr in the same process. Under
# nohup (or a CI runner that ignores SIGHUP) the child would inherit an ignored SIGHUP, which
# wdsr rightly leaves ignored: the signal tests would then test the runner, not wdsr.
_DEFAULT_SIGNALS = ("import os, signal, sys\n"
                    "for s in (signal.SIGTERM, signal.SIGHUP):\n"
                    "    signal.signal(s, signal.SIG_DFL)\n"
                    "os.execv(sys.argv[1], sys.argv[1:])")


def _held(args: list[str], point: str, marker: Path, env: dict | None = None
          ) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _DEFAULT_SIGNALS, WDSR, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {}),
                                 "WDSR_TEST_HOLD": f"{point}={marker}"})
    wait_for_marker(proc, marker)
    return proc


def _finish(proc: subprocess.Popen) -> str:
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    return err


# -------------------------------------------------------------------------- signals


@pytest.mark.parametrize(("sig", "backend"), [(signal.SIGTERM, "mindspore"),
                                              (signal.SIGHUP, "onnxruntime")])
def test_sigterm_and_sighup_stop_upscale_as_ctrl_c_does(tiny, tmp_path, sig, backend):
    """The signal comes while the result of p01 is about to be written (the network runs on in
    the main thread); the hold is released after it, so the command stops within an image
    or two: finished files complete, no temporary file, a line saying how many, exit 128+sig.
    It used to die silently (143, 129) leaving .p0N_x2.png.tmp* behind."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(8):
        write_image(src / f"p{i:02d}.png", Image(pixels=photo(24, 28, i)))
    out, marker = tmp_path / "out", tmp_path / "held"
    proc = _held(["upscale", str(src), "-o", str(out), "--checkpoint", str(tiny),
                  "--backend", backend], "upscale-write-p01.png", marker)
    proc.send_signal(sig)
    (tmp_path / "held.go").touch()
    err = _finish(proc)
    assert proc.returncode == 128 + sig, err
    written = sorted(out.glob("*.png"))
    name = signal.Signals(sig).name  # the line names the signal
    assert f"interrupted by {name}: {len(written)} of 8 images were written" in err, err
    assert 0 < len(written) < 8 and "Traceback" not in err
    for f in written:
        assert read_image(f).pixels.shape == (48, 56, 3)
    assert _hidden(tmp_path) == []


def test_a_signal_or_kill_while_the_onnx_form_is_made(tiny, tmp_path):
    """SIGTERM while the ONNX form is made (upscale --backend onnxruntime): its private folder
    goes, exit 143 with a line. kill -9 there leaves the folder (with a whole model inside);
    the next run removes it and makes the form."""
    cache = tmp_path / "cache"
    img = tmp_path / "a.png"
    write_image(img, Image(pixels=photo(20, 20, 1)))
    args = ["upscale", str(img), "-o", str(tmp_path / "a_up.png"), "--checkpoint", str(tiny),
            "--backend", "onnxruntime"]
    env = {"WDSR_CACHE_DIR": str(cache)}
    marker = tmp_path / "held"
    point = f"export-written-{fileio.sha256_file(tiny)}.onnx"  # the cache names it so
    proc = _held(args, point, marker, env)
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc)
    assert proc.returncode == 143 and "interrupted by SIGTERM" in err, err
    assert _hidden(cache) == [] and not (tmp_path / "a_up.png").exists()

    marker.unlink()
    proc = _held(args, point, marker, env)
    proc.kill()
    proc.communicate()
    left = _hidden(cache / "onnx")
    assert len(left) == 1 and left[0].endswith(".d"), left
    assert any((cache / "onnx" / left[0]).iterdir())  # the model, at least
    res = run_wdsr(*args, env=env)
    assert res.returncode == 0, res.stderr
    assert _hidden(cache) == [] and len(list((cache / "onnx").glob("*.onnx"))) == 1


def test_sigterm_stops_export_and_prepare_data_cleanly(tiny, tmp_path):
    out = tmp_path / "m.onnx"
    marker = tmp_path / "held"
    proc = _held(["export", "--checkpoint", str(tiny), "--format", "onnx", "-o", str(out)],
                 "export-written-m.onnx", marker)
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc)
    assert proc.returncode == 143 and "interrupted by SIGTERM" in err, err
    assert not out.exists() and _hidden(tmp_path) == []

    src = plain_folder(tmp_path / "d", [(96, 96)] * 4)
    dest = tmp_path / "prep"
    args = ["prepare-data", str(src), "--out", str(dest), "--scales", "2", "--crop-size", "48",
            "--crop-step", "48", "-j", "1"]
    marker2 = tmp_path / "held2"
    names = sorted(p.stem for p in src.iterdir())
    proc = _held(args, f"prepare-image-{names[2]}", marker2)
    proc.send_signal(signal.SIGHUP)
    err = _finish(proc)
    assert proc.returncode == 129 and "interrupted by SIGHUP" in err, err
    assert "2 of 4 images are done and kept" in err, err
    assert _hidden(dest) == [".journal.jsonl"]
    res = run_wdsr(*args)
    assert res.returncode == 0 and "resuming: 2 of 4" in res.stderr, res.stderr


# -------------------------------------------------------------- leftovers of dead writers


def test_the_next_writer_removes_every_kind_of_dead_writers_leftover(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    kinds = [f".p0_x2.png.tmp{dead}-0123abcd", f".m.onnx.tmp{dead}-0123abcd.d",
             f".best.ckpt.tmp{dead}-0123abcd.tmp", f".report.tmp{dead}-0123abcd.d"]
    for name in kinds:
        if name.endswith(".d"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "m.onnx").write_bytes(b"x" * 100)
        else:
            (tmp_path / name).write_bytes(b"partial")
    mine = tmp_path / f".q.png.tmp{live}-0123abcd"
    mine.write_bytes(b"a live writer's")
    fileio.probe_writable(tmp_path)  # a check changes nothing
    assert len(_hidden(tmp_path)) > 4
    fileio.atomic_write(tmp_path / "out.json", "{}")
    assert _hidden(tmp_path) == [mine.name]


def test_upscale_removes_a_killed_upscales_temporary_files(tiny, tmp_path):
    img = tmp_path / "a.png"
    write_image(img, Image(pixels=photo(20, 20, 2)))
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".a_x2.png.tmp{_dead_pid()}-89abcdef"
    stale.write_bytes(b"half an image")
    res = run_wdsr("upscale", str(img), "-o", str(out) + "/", "--checkpoint", str(tiny),
                   "--backend", "mindspore")
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(out)) == ["a_x2.png"]


# --------------------------------------------------------------------------- caches heal


def test_a_tampered_or_truncated_cached_onnx_form_is_remade(tiny, tmp_path):
    cache = tmp_path / "cache"
    img = tmp_path / "a.png"
    write_image(img, Image(pixels=photo(20, 20, 3)))
    env = {"WDSR_CACHE_DIR": str(cache)}

    def run(name: str):
        return run_wdsr("upscale", str(img), "-o", str(tmp_path / name), "--checkpoint",
                        str(tiny), "--backend", "onnxruntime", env=env)

    assert run("1.png").returncode == 0
    (form,) = (cache / "onnx").glob("*.onnx")
    good = form.read_bytes()
    for damage in (good[:1000], good[:-1] + bytes([good[-1] ^ 1])):
        form.write_bytes(damage)
        res = run(f"{len(damage)}.png")
        assert res.returncode == 0, res.stderr
        assert f"the cached ONNX form '{form}' failed its check" in res.stderr
        assert fileio.sha256_file(form) == json.loads(
            form.with_name(form.name + ".json").read_text())["sha256"]
        assert "failed its check" not in run(f"again{len(damage)}.png").stderr  # healed


def test_a_cache_that_cannot_be_written_names_the_variable(tiny, tmp_path, monkeypatch):
    """A read-only cache folder (probed as root cannot chmod one: the probe fails here)."""
    from wdsr_cli.core.inference import weights as W

    monkeypatch.setenv("WDSR_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "onnx").mkdir(parents=True)

    def read_only(folder):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileio, "probe_writable", read_only)
    with pytest.raises(WdsrError) as info:
        W.make_onnx_form(tiny)
    assert "WDSR_CACHE_DIR" in info.value.hint and "--output" not in info.value.hint
    assert "Permission denied" in info.value.message


def test_a_cache_under_a_file_names_the_variable(tiny, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    img = tmp_path / "a.png"
    write_image(img, Image(pixels=photo(20, 20, 4)))
    line = one_line_error(run_wdsr("upscale", str(img), "--checkpoint", str(tiny),
                                   "--backend", "onnxruntime",
                                   env={"WDSR_CACHE_DIR": str(tmp_path / "file")}))
    assert "WDSR_CACHE_DIR" in line and "--output" not in line
    assert not (tmp_path / "a_x2.png").exists()


class _Same:
    """A stand-in Predictor: x2 nearest, so fp32 and "bf16" agree exactly."""

    def predict_uint8(self, lr):
        return np.repeat(np.repeat(lr, 2, axis=0), 2, axis=1)


@pytest.mark.parametrize("tamper", ["numbers", "cpu", "json", "type"])
def test_a_cached_precision_verdict_that_fails_its_check_is_made_again(tmp_path, tamper):
    from wdsr_cli.core.errors import WdsrNote
    from wdsr_cli.core.inference.precision import ensure_checked

    made = []

    def make():
        made.append(1)
        return _Same(), _Same()

    args = (tmp_path, "ab" * 32, "OpenVINO", "bf16", "Test CPU", 2, make)
    first = ensure_checked(*args)
    assert first["passed"] and not first["from_cache"] and len(made) == 1
    (path,) = (tmp_path / "checks").glob("*.json")
    data = json.loads(path.read_text())
    if tamper == "numbers":
        data["uint8_max_diff"] = 40  # a failed verdict edited to say it passed
    elif tamper == "cpu":
        data["cpu"] = "Another CPU"
    elif tamper == "type":
        data["psnr_change_db"] = "0"
    path.write_text("{" if tamper == "json" else json.dumps(data))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        again = ensure_checked(*args)
    assert len(made) == 2 and again["passed"] and not again["from_cache"]
    assert any(issubclass(w.category, WdsrNote) and "failed its check" in str(w.message)
               for w in seen)
    assert ensure_checked(*args)["from_cache"] and len(made) == 2  # healed


def test_an_unwritable_check_cache_costs_only_the_check(tmp_path, monkeypatch):
    from wdsr_cli.core.inference.precision import ensure_checked

    def refuse(path, data, fsync=True):
        raise WdsrError(f"cannot write '{path}': Read-only file system", "check the folder")

    monkeypatch.setattr(fileio, "atomic_write", refuse)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = ensure_checked(tmp_path, "cd" * 32, "OpenVINO", "bf16", "Test CPU", 2,
                                lambda: (_Same(), _Same()))
    assert result["passed"]
    assert any("WDSR_CACHE_DIR" in str(w.message) for w in seen)


# ------------------------------------------------------------- found by the hostile pass


def test_an_input_that_is_a_fifo_is_refused_at_once(tmp_path):
    """Reading it would block for ever (no writer) or never end (/dev/zero)."""
    os.mkfifo(tmp_path / "x.png")
    for name in (str(tmp_path / "x.png"), "/dev/zero"):
        line = one_line_error(run_wdsr("upscale", name, "-o", str(tmp_path / "o.png"),
                                       "--scale", "2", timeout=120))
        assert "not a regular file" in line
    assert sorted(os.listdir(tmp_path)) == ["x.png"]


def test_two_exports_to_one_name_never_replace_each_other(tiny, tmp_path):
    """A holds with its model in its private folder; B exports another model to the same
    name meanwhile; A (no --force) must not replace B's model or contract."""
    other = save_tiny_checkpoint(tmp_path / "other.ckpt", 3)
    out = tmp_path / "m.onnx"
    marker = tmp_path / "held"
    a = _held(["export", "--checkpoint", str(tiny), "-f", "onnx", "-o", str(out)],
              "export-written-m.onnx", marker)
    b = run_wdsr("export", "--checkpoint", str(other), "-f", "onnx", "-o", str(out))
    assert b.returncode == 0, b.stderr
    theirs = {p.name: p.read_bytes() for p in (out, out.with_name("m.onnx.json"))}
    (tmp_path / "held.go").touch()
    err = _finish(a)
    assert a.returncode == 2 and "appeared while wdsr was working" in err, err
    assert "--force" in err
    assert {p.name: p.read_bytes() for p in (out, out.with_name("m.onnx.json"))} == theirs
    assert _hidden(tmp_path) == []


def test_a_stopped_prepare_data_removes_what_its_workers_were_writing(tmp_path):
    """SIGTERM to prepare-data -j 2 while a worker is busy: the pool is stopped and what its
    workers were writing is removed at once (not only by the next run). The worker's
    half-written shard is stood in for by a temporary file under its PID, written while it
    is held."""
    src = plain_folder(tmp_path / "d", [(96, 96)] * 6)
    dest = tmp_path / "prep"
    names = sorted(p.stem for p in src.iterdir())
    marker = tmp_path / "held"
    proc = _held(["prepare-data", str(src), "--out", str(dest), "--scales", "2",
                  "--crop-size", "48", "--crop-step", "48", "-j", "2"],
                 f"prepare-image-{names[3]}", marker)
    worker = int(marker.read_text().split()[0])
    half = dest / "train" / "hr" / f".{names[3]}.npy.tmp{worker}-0123abcd.tmp"
    half.write_bytes(b"half a shard")
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc)
    assert proc.returncode == 143 and "interrupted by SIGTERM" in err, err
    assert _hidden(dest) == [".journal.jsonl"]


def test_json_never_replaces_a_file_a_user_wrote_meanwhile(tiny, tmp_path):
    """--json s.json was free when checked; a user writes s.json while upscale works: the
    summary must not replace it."""
    img = tmp_path / "a.png"
    write_image(img, Image(pixels=photo(20, 20, 5)))
    js = tmp_path / "s.json"
    marker = tmp_path / "held"
    proc = _held(["upscale", str(img), "--json", str(js), "--checkpoint", str(tiny),
                  "--backend", "mindspore"], "upscale-write-a.png", marker)
    js.write_text('{"mine": true}')
    (tmp_path / "held.go").touch()
    err = _finish(proc)
    assert proc.returncode == 2 and "while wdsr was working" in err, err
    assert js.read_text() == '{"mine": true}'
    assert _hidden(tmp_path) == []


def test_two_reports_to_one_folder_the_later_is_refused_in_one_line(tiny, tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    for i in range(2):
        write_image(hr / f"h{i}.png", Image(pixels=photo(48, 48, i)))
    args = ["evaluate", "--hr", str(hr), "--report", str(tmp_path / "rep"), "--checkpoint",
            str(tiny), "--backend", "mindspore"]
    marker = tmp_path / "held"
    proc = _held(args, "report-commit-rep", marker)
    b = run_wdsr(*args)
    assert b.returncode == 0, b.stderr
    theirs = sorted(p.name for p in (tmp_path / "rep").rglob("*"))
    (tmp_path / "held.go").touch()
    err = _finish(proc)
    assert proc.returncode == 2 and "'" + str(tmp_path / "rep") + "' appeared" in err, err
    assert sorted(p.name for p in (tmp_path / "rep").rglob("*")) == theirs
    assert _hidden(tmp_path) == []


def test_a_damaged_export_next_to_the_checkpoint_is_not_taken_for_its_form(ms_cpu, tmp_path):
    """A user's tiny.onnx (wdsr export) next to tiny.ckpt, truncated later: it used to be
    taken as the checkpoint's form (every run exited 2); now it is noted, left alone and the
    cached form runs."""
    ck = save_tiny_checkpoint(tmp_path / "tiny.ckpt", 2)
    assert run_wdsr("export", "--checkpoint", str(ck), "-f", "onnx").returncode == 0
    beside = tmp_path / "tiny.onnx"
    beside.write_bytes(beside.read_bytes()[:800])
    img = tmp_path / "a.png"
    write_image(img, Image(pixels=photo(20, 20, 6)))
    res = run_wdsr("upscale", str(img), "--checkpoint", str(ck), "--backend", "onnxruntime",
                   env={"WDSR_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 0, res.stderr
    assert f"'{beside}' is not a usable ONNX form" in res.stderr
    assert len(beside.read_bytes()) == 800

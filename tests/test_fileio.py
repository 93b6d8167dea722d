"""fileio and jsonout in-process, function by function (no `wdsr` process, no MindSpore): the
fast tests that kill the mutants of the file-safety modules (docs/mutation.md). The promises
seen from the command line are in test_safety.py and test_json_out.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wdsr_cli.core import fileio, jsonout
from wdsr_cli.core.errors import WdsrError


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _as_dead(tmp: Path) -> Path:
    """The same temporary name, written by a process that is gone."""
    return tmp.with_name(tmp.name.replace(f".tmp{os.getpid()}-", f".tmp{_dead_pid()}-"))


# ------------------------------------------------------------------------ names and modes

def test_file_mode_is_0666_without_the_umask_and_leaves_the_umask():
    mask = os.umask(0o027)
    os.umask(mask)
    assert fileio.file_mode() == 0o666 & ~mask
    assert fileio.file_mode() == 0o666 & ~mask  # read once, the same after
    assert os.umask(mask) == mask


@pytest.mark.parametrize("mask", [0o077, 0o002, 0o027, 0o000])
def test_written_files_get_0666_without_the_umask_under_any_umask(tmp_path, mask):
    """The umask is read once per process, so each umask runs in a fresh one: a file written
    atomically (and a folder lock) gets 0666 & ~umask, never a fixed 0644 (under 077 that
    would make a user's files world-readable; under 002 it would drop group write)."""
    code = ("import os, sys; os.umask(int(sys.argv[1], 8)); "
            "from wdsr_cli.core import fileio; "
            "fileio.atomic_write(sys.argv[2], b'x', fsync=False)")
    target = tmp_path / "out.bin"
    subprocess.run([sys.executable, "-c", code, oct(mask)[2:], str(target)], check=True,
                   env={**os.environ, "PYTHONPATH": str(Path(fileio.__file__).parents[2])})
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~mask


def test_temp_path_is_hidden_next_to_the_target_with_pid_token_and_suffix(tmp_path):
    a = fileio.temp_path(tmp_path / "x.png", ".tmp", sweep=False)
    b = fileio.temp_path(tmp_path / "x.png", ".ckpt", sweep=False)
    assert a.parent == tmp_path
    assert a.name.startswith(f".x.png.tmp{os.getpid()}-") and a.name.endswith(".tmp")
    assert b.name.endswith(".ckpt") and len(b.name) == len(f".x.png.tmp{os.getpid()}-") + 8 + 5
    assert fileio._TEMP.match(a.name) and fileio._TEMP.match(b.name)
    assert a != fileio.temp_path(tmp_path / "x.png", ".tmp", sweep=False)  # fresh each time


def test_temp_path_sweeps_dead_writers_once_per_folder(tmp_path):
    dead = _as_dead(fileio.temp_path(tmp_path / "a.png", sweep=False))
    dead.write_bytes(b"x")
    fileio.temp_path(tmp_path / "b.png", sweep=False)
    assert dead.exists()  # sweep=False: a check changes nothing
    fileio.temp_path(tmp_path / "b.png")
    assert not dead.exists()
    dead.write_bytes(b"x")  # a folder is listed once per process
    fileio.temp_path(tmp_path / "c.png")
    assert dead.exists()
    sub = tmp_path / "sub"  # each folder once
    sub.mkdir()
    dead_there = _as_dead(fileio.temp_path(sub / "a.png", sweep=False))
    dead_there.write_bytes(b"x")
    fileio.temp_path(sub / "b.png")
    assert not dead_there.exists()


def test_the_temp_pattern_needs_the_dot_pid_and_token():
    ok = ".a.png.tmp123-0123abcd"
    assert fileio._TEMP.match(ok) and fileio._TEMP.match(ok + ".ckpt")
    assert fileio._TEMP.match(ok).group(1) == "123"
    for name in ("a.png.tmp123-0123abcd", ".a.png.tmp-0123abcd", ".a.png.tmp123-0123abc",
                 ".a.png.tmp123-0123abcg", ".a.png.tmp123-0123abcdX", "x.a.png.tmp123-0123abcd"):
        assert not fileio._TEMP.match(name), name


# -------------------------------------------------------------------- writes and commits

def test_remove_temps_removes_the_stem_and_what_extends_it_only(tmp_path):
    tmp = fileio.temp_path(tmp_path / "m.ckpt", ".tmp", sweep=False)
    stem = tmp.name[:-4]
    (tmp_path / (stem + ".tmp")).write_bytes(b"x")
    (tmp_path / (stem + ".ckpt")).write_bytes(b"x")  # MindSpore's own temporary name
    (tmp_path / (stem + ".d")).mkdir()
    (tmp_path / (stem + ".d") / "inner").write_bytes(b"x")
    (tmp_path / "m.ckpt").write_bytes(b"keep")
    (tmp_path / "other").write_bytes(b"keep")
    fileio._remove_temps(tmp, ".tmp")
    assert sorted(os.listdir(tmp_path)) == ["m.ckpt", "other"]
    fileio._remove_temps(tmp_path / "gone" / "x", ".tmp")  # no folder: nothing, no error


def test_remove_temps_without_suffix_and_through_a_symlink(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "kept").write_bytes(b"x")
    tmp = tmp_path / ".a.tmp1-00000000"
    tmp.symlink_to(target)
    (tmp_path / ".a.tmp1-00000000.x").write_bytes(b"x")
    fileio._remove_temps(tmp, "")
    assert sorted(os.listdir(tmp_path)) == ["target"] and (target / "kept").exists()


@pytest.mark.parametrize("fsync", [True, False])
def test_commit_sets_the_mode_and_replaces(tmp_path, monkeypatch, fsync):
    synced = []
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: synced.append(fd))
    target = tmp_path / "out.txt"
    target.write_text("old")
    tmp = fileio.temp_path(target, sweep=False)
    tmp.write_text("new")
    os.chmod(tmp, 0o400)
    fileio.commit(tmp, target, fsync=fsync)
    assert target.read_text() == "new" and not tmp.exists()
    assert target.stat().st_mode & 0o777 == fileio.file_mode()
    assert len(synced) == (2 if fsync else 0)  # the file, then its folder


def test_fsync_of_a_folder_that_cannot_be_opened_is_skipped(tmp_path):
    fileio._fsync_folder(tmp_path / "missing")  # no error
    fileio._fsync_folder(tmp_path)


def test_replacing_removes_its_temps_on_any_exception_and_keeps_the_target(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with fileio.replacing(target, ".ckpt") as tmp:
            tmp.write_bytes(b"half")
            tmp.with_name(tmp.name[:-5] + ".tmp").write_bytes(b"its own temp")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["a.bin"] and target.read_bytes() == b"old"
    with fileio.replacing(target, ".ckpt") as tmp:
        assert tmp.name.endswith(".ckpt")
        tmp.write_bytes(b"new")
    assert os.listdir(tmp_path) == ["a.bin"] and target.read_bytes() == b"new"


def test_link_new_claims_only_a_free_name_and_names_the_flag(tmp_path):
    target = tmp_path / "t"
    tmp = tmp_path / "tmp"
    tmp.write_bytes(b"1")
    fileio._link_new(tmp, target)
    assert target.read_bytes() == b"1" and not tmp.exists()
    tmp.write_bytes(b"2")
    with pytest.raises(WdsrError, match="appeared while wdsr") as e:
        fileio._link_new(tmp, target, "--force")
    assert "--force" in e.value.hint and target.read_bytes() == b"1"
    with pytest.raises(WdsrError) as e:
        fileio._link_new(tmp, target, None)
    assert "--" not in e.value.hint and "choose another name" in e.value.hint


def test_link_new_without_hard_links_claims_the_name(tmp_path, monkeypatch):
    def no_link(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(fileio.os, "link", no_link)
    target, tmp = tmp_path / "t", tmp_path / "tmp"
    tmp.write_bytes(b"1")
    fileio._link_new(tmp, target)
    assert target.read_bytes() == b"1" and not tmp.exists()
    tmp.write_bytes(b"2")
    with pytest.raises(WdsrError, match="appeared"):
        fileio._link_new(tmp, target)
    assert target.read_bytes() == b"1" and tmp.exists()


def test_atomic_write_text_and_bytes(tmp_path):
    fileio.atomic_write(tmp_path / "a", "é")
    fileio.atomic_write(tmp_path / "b", b"\x00\xff", fsync=False)
    assert (tmp_path / "a").read_bytes() == "é".encode() and (tmp_path / "b").read_bytes() == \
        b"\x00\xff"
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]
    with pytest.raises(WdsrError, match="does not exist") as e:
        fileio.atomic_write(tmp_path / "no" / "a", "x")
    assert e.value.hint and not (tmp_path / "no").exists()


def test_atomic_write_error_names_the_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", full)
    (tmp_path / "a").write_text("old")
    with pytest.raises(WdsrError, match=r"cannot write '.*a': No space left") as e:
        fileio.atomic_write(tmp_path / "a", "new")
    assert "disk space" in e.value.hint
    assert os.listdir(tmp_path) == ["a"] and (tmp_path / "a").read_text() == "old"


# ------------------------------------------------------------------------------ summaries

def test_is_summary(tmp_path):
    cases = {"s.json": json.dumps({fileio.SUMMARY_MARK: "x"}), "o.json": '{"a": 1}',
             "l.json": json.dumps([fileio.SUMMARY_MARK]), "bad.json": "{",
             "bin.json": b"\xff\xfe"}
    for name, text in cases.items():
        p = tmp_path / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert [n for n in cases if fileio.is_summary(tmp_path / n)] == ["s.json"]
    assert not fileio.is_summary(tmp_path) and not fileio.is_summary(tmp_path / "missing")
    os.mkfifo(tmp_path / "fifo")
    assert not fileio.is_summary(tmp_path / "fifo")  # never opened: would block


def test_is_summary_reads_at_most_256_mib(tmp_path, monkeypatch):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({fileio.SUMMARY_MARK: "x"}))
    real = os.stat

    def sized(size):
        def fake(path, *a, **k):
            st = real(path, *a, **k)
            return os.stat_result((st.st_mode, *st[1:6], size, *st[7:]))
        return fake

    monkeypatch.setattr(fileio.os, "stat", sized(256 << 20))
    assert fileio.is_summary(p)
    monkeypatch.setattr(fileio.os, "stat", sized((256 << 20) + 1))
    assert not fileio.is_summary(p)


def test_write_summary_new_replaced_and_refused(tmp_path):
    out = tmp_path / "s.json"
    mark = json.dumps({fileio.SUMMARY_MARK: "x"})
    fileio.write_summary(out, mark)
    assert out.read_text() == mark
    fileio.write_summary(out, mark + " ")
    assert out.read_text() == mark + " "
    assert out.stat().st_mode & 0o777 == fileio.file_mode()
    out.write_text("user's notes")
    with pytest.raises(WdsrError, match="--report .* not a wdsr summary") as e:
        fileio.write_summary(out, mark, what="--report")
    assert e.value.hint
    assert out.read_text() == "user's notes" and os.listdir(tmp_path) == ["s.json"]
    with pytest.raises(WdsrError, match="does not exist"):
        fileio.write_summary(tmp_path / "no" / "s.json", mark)


def test_write_summary_never_replaces_a_name_taken_meanwhile(tmp_path, monkeypatch):
    out = tmp_path / "s.json"
    real = fileio.commit

    def taken_meanwhile(tmp, path, *args, **kwargs):
        Path(path).write_text("user")
        return real(tmp, path, *args, **kwargs)

    monkeypatch.setattr(fileio, "commit", taken_meanwhile)
    with pytest.raises(WdsrError, match="appeared while wdsr"):
        fileio.write_summary(out, "{}")
    assert out.read_text() == "user" and os.listdir(tmp_path) == ["s.json"]


def test_write_summary_os_error_is_one_line_and_leaves_no_temp(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", full)
    out = tmp_path / "s.json"
    out.write_text(json.dumps({fileio.SUMMARY_MARK: "x"}))
    with pytest.raises(WdsrError) as e:
        fileio.write_summary(out, "{}")
    assert e.value.message == f"cannot write '{out}': No space left on device"
    assert "disk space" in e.value.hint and os.listdir(tmp_path) == ["s.json"]


# ------------------------------------------------------------------- folders and hashing

def test_check_writable_folder(tmp_path, monkeypatch):
    fileio.check_writable_folder(tmp_path / "a" / "b", "hint")
    assert os.listdir(tmp_path) == []  # creates nothing
    (tmp_path / "f").write_text("x")
    with pytest.raises(WdsrError, match="'.*f' is a file, not a folder") as e:
        fileio.check_writable_folder(tmp_path / "f" / "sub", "use --out")
    assert e.value.hint == "use --out"
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(WdsrError, match="dangling' is not a folder"):
        fileio.check_writable_folder(tmp_path / "dangling" / "x", "h")

    def read_only(folder):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(fileio, "probe_writable", read_only)
    with pytest.raises(WdsrError, match="cannot write to .*Read-only") as e:
        fileio.check_writable_folder(tmp_path, "h2")
    assert e.value.hint == "h2"


def test_probe_writable_leaves_nothing_and_fails_on_a_missing_folder(tmp_path):
    dead = _as_dead(fileio.temp_path(tmp_path / "a", sweep=False))
    dead.write_bytes(b"x")
    fileio.probe_writable(tmp_path)
    assert os.listdir(tmp_path) == [dead.name]  # a check sweeps nothing either
    with pytest.raises(OSError):
        fileio.probe_writable(tmp_path / "missing")


def test_sha256_file_over_several_chunks(tmp_path):
    data = os.urandom((1 << 22) + 5)
    (tmp_path / "a").write_bytes(data)
    assert fileio.sha256_file(tmp_path / "a") == hashlib.sha256(data).hexdigest()
    (tmp_path / "e").write_bytes(b"")
    assert fileio.sha256_file(tmp_path / "e") == hashlib.sha256(b"").hexdigest()


def test_alive(monkeypatch):
    """Only processes of this test are asked (a mutant of ``os.kill(pid, 0)`` sends a real
    signal: never to a process the test did not start)."""
    assert fileio._alive(os.getpid())
    assert not fileio._alive(_dead_pid())
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        assert fileio._alive(live.pid)
        assert live.poll() is None

        def not_ours(pid, sig):
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(fileio.os, "kill", not_ours)
        assert fileio._alive(live.pid)  # exists, owned by someone else
        monkeypatch.setattr(fileio, "proc_stat", lambda pid: ["Z", "1"])
        assert not fileio._alive(live.pid)
    finally:
        live.stdin.close()
        assert live.wait() == 0  # asking sent it no signal
    monkeypatch.setattr(fileio, "proc_stat", lambda pid: ["X"])
    assert fileio._exited(12345)
    monkeypatch.setattr(fileio, "proc_stat", lambda pid: None)
    assert not fileio._exited(12345)
    monkeypatch.setattr(fileio, "proc_stat", lambda pid: [])
    assert not fileio._exited(12345)


def test_remove_stale_temps_files_folders_and_links(tmp_path):
    dead = _dead_pid()
    names = [f".a.tmp{dead}-0123abcd", f".b.tmp{dead}-0123abcd.d", f".c.tmp{dead}-0123abcd.l"]
    (tmp_path / names[0]).write_bytes(b"x")
    (tmp_path / names[1]).mkdir()
    (tmp_path / names[1] / "inner").write_bytes(b"x")
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "inner").write_bytes(b"x")
    (tmp_path / names[2]).symlink_to(keep)
    live = f".d.tmp{os.getpid()}-0123abcd"
    (tmp_path / live).write_bytes(b"x")
    removed = fileio.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(names)
    assert sorted(os.listdir(tmp_path)) == sorted([live, "keep"])
    assert (keep / "inner").exists()
    assert fileio.remove_stale_temps(tmp_path / "missing") == []


def test_remove_stale_temps_reports_only_what_it_removed(tmp_path, monkeypatch):
    name = f".a.tmp{_dead_pid()}-0123abcd"
    (tmp_path / name).write_bytes(b"x")

    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", refuse)
    assert fileio.remove_stale_temps(tmp_path) == []


def test_locks(tmp_path):
    assert fileio.lock_holder(tmp_path) is None
    assert not (tmp_path / fileio.LOCK_NAME).exists()  # asking creates nothing
    fd = fileio.lock_folder(tmp_path)
    try:
        assert fd is not None
        assert (tmp_path / fileio.LOCK_NAME).read_text() == f"{os.getpid()}\n"
        assert fileio.lock_holder(tmp_path) == os.getpid()
        code = ("import sys; from wdsr_cli.core import fileio; "
                "print(fileio.lock_folder(sys.argv[1]), fileio.lock_holder(sys.argv[1]))")
        res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                             text=True, check=True)
        assert res.stdout.split() == ["None", str(os.getpid())]
        (tmp_path / fileio.LOCK_NAME).write_text("garbage")
        assert fileio.lock_holder(tmp_path) == 0
    finally:
        os.close(fd)
    assert fileio.lock_holder(tmp_path) is None
    fd = fileio.lock_folder(tmp_path)  # a long old content is cut to this pid
    assert (tmp_path / fileio.LOCK_NAME).read_text() == f"{os.getpid()}\n"
    os.close(fd)


def test_private_folder_is_0700_temporary_and_removed(tmp_path):
    with fileio.private_folder(tmp_path / "m.onnx") as folder:
        assert folder.parent == tmp_path and folder.is_dir()
        assert fileio._TEMP.match(folder.name) and folder.name.endswith(".d")
        assert folder.stat().st_mode & 0o777 == 0o700
        (folder / "x").write_bytes(b"x")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError), fileio.private_folder(tmp_path / "m.onnx"):
        raise ValueError
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------- small text files

def test_read_small_text(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"a\nb")
    assert fileio.read_small_text(p, "config", 3, "h") == "a\nb"
    with pytest.raises(WdsrError, match=r"config '.*' is 0.0 MiB; one is at most") as e:
        fileio.read_small_text(p, "config", 2, "h")
    assert e.value.hint == "h"
    with pytest.raises(WdsrError, match="does not exist"):
        fileio.read_small_text(tmp_path / "missing", "config", 9, "h")
    with pytest.raises(WdsrError, match="is a folder, not a file"):
        fileio.read_small_text(tmp_path, "config", 9, "h")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(WdsrError, match="not a regular file"):
        fileio.read_small_text(tmp_path / "fifo", "config", 9, "h")
    p.write_bytes(b"ok\n\xff")
    with pytest.raises(WdsrError, match=r"not UTF-8 text \(byte 3, line 2\)") as e:
        fileio.read_small_text(p, "rank table", 9, "h")
    assert e.value.hint == "save it as UTF-8; h"


def test_read_small_text_that_grew_while_read(tmp_path, monkeypatch):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"abc")
    real = os.fstat

    def small(fd):
        st = real(fd)
        return os.stat_result((*st[:6], 1, *st[7:]))

    monkeypatch.setattr(fileio.os, "fstat", small)
    with pytest.raises(WdsrError, match="is over"):
        fileio.read_small_text(p, "config", 2, "h")
    assert fileio.read_small_text(p, "config", 3, "h") == "abc"


def test_read_small_text_unreadable(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileio.os, "open", denied)
    with pytest.raises(WdsrError, match="cannot read config .*Permission denied"):
        fileio.read_small_text(tmp_path / "c", "config", 9, "h")


# ------------------------------------------------------------------------------- jsonout

def test_finite():
    data = {"a": [1.0, float("inf"), {"b": float("nan")}], "c": -float("inf"), "d": "x", "e": 2}
    assert jsonout.finite(data) == {"a": [1.0, None, {"b": None}], "c": None, "d": "x", "e": 2}


def test_check(tmp_path):
    jsonout.check(None)
    jsonout.check("-")
    jsonout.check(str(tmp_path / "new.json"))
    with pytest.raises(WdsrError, match="is a folder"):
        jsonout.check(str(tmp_path))
    (tmp_path / "user.json").write_text("{}")
    with pytest.raises(WdsrError, match="exists and is not a wdsr summary"):
        jsonout.check(str(tmp_path / "user.json"))
    (tmp_path / "s.json").write_text(json.dumps({fileio.SUMMARY_MARK: "x"}))
    jsonout.check(str(tmp_path / "s.json"))
    os.mkfifo(tmp_path / "fifo")
    jsonout.check(str(tmp_path / "fifo"))  # written into, never replaced
    with pytest.raises(WdsrError, match="does not exist"):
        jsonout.check(str(tmp_path / "no" / "s.json"))
    (tmp_path / "link.json").symlink_to(tmp_path / "s.json")
    jsonout.check(str(tmp_path / "link.json"))
    assert sorted(os.listdir(tmp_path)) == ["fifo", "link.json", "s.json", "user.json"]


def test_check_unwritable(tmp_path, monkeypatch):
    def read_only(folder):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(fileio, "probe_writable", read_only)
    with pytest.raises(WdsrError, match="cannot write --json .*Read-only"):
        jsonout.check(str(tmp_path / "s.json"))


def test_apart(tmp_path):
    jsonout.apart(None, [tmp_path / "a"])
    jsonout.apart("-", [tmp_path / "a"], owned=tmp_path)
    jsonout.apart(str(tmp_path / "s.json"), [tmp_path / "a"], owned=tmp_path / "out")
    with pytest.raises(WdsrError, match="also where this command writes"):
        jsonout.apart(str(tmp_path / "x" / ".." / "a"), [tmp_path / "b", tmp_path / "a"])
    with pytest.raises(WdsrError, match="inside the --out folder"):
        jsonout.apart(str(tmp_path / "out" / "s.json"), owned=tmp_path / "out", owner="--out")
    with pytest.raises(WdsrError, match="inside"):
        jsonout.apart(str(tmp_path / "out"), owned=tmp_path / "out", owner="--out")


def test_write_file_fifo_symlink_and_stdout(tmp_path, capsys):
    out = tmp_path / "s.json"
    jsonout.write(str(out), {"b": 1, "a": 2}, "evaluate")
    text = out.read_text()
    assert text.endswith("}\n") and json.loads(text) == {fileio.SUMMARY_MARK: "evaluate",
                                                          "a": 2, "b": 1}
    assert text.index('"a"') < text.index('"b"')
    with pytest.raises(ValueError):
        jsonout.write(str(out), {"x": float("nan")}, "evaluate")
    link = tmp_path / "link.json"
    link.symlink_to(out)
    jsonout.write(str(link), {}, "upscale")
    assert link.is_symlink() and json.loads(out.read_text()) == {fileio.SUMMARY_MARK: "upscale"}
    jsonout.write("-", {"a": 1}, "export")
    assert json.loads(capsys.readouterr().out) == {fileio.SUMMARY_MARK: "export", "a": 1}
    jsonout.write(os.devnull, {"a": 1}, "export")  # a device: written into, never replaced
    assert Path(os.devnull).exists() and not Path(os.devnull).is_file()
    with pytest.raises(WdsrError, match="cannot write --json"):
        jsonout.write("/dev/full", {}, "export")  # a device that is full


# ------------------------------------------- more edges found by mutation testing (issue 34)

def test_the_on_disk_names_are_the_documented_ones():
    """Summaries and locks written by earlier versions must still be recognised
    (docs/promises.md)."""
    assert fileio.SUMMARY_MARK == "wdsr_summary" and fileio.LOCK_NAME == ".wdsr.lock"


def test_defaults_sync_and_use_the_tmp_suffix(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: synced.append(fd))
    fileio.atomic_write(tmp_path / "a", "x")
    assert len(synced) == 2
    with fileio.replacing(tmp_path / "b") as tmp:
        assert tmp.name.endswith(".tmp")
        tmp.write_text("x")
    assert len(synced) == 4
    tmp = fileio.temp_path(tmp_path / "c", sweep=False)
    tmp.write_text("x")
    fileio.commit(tmp, tmp_path / "c")
    assert len(synced) == 6


def test_exclusive_messages_name_the_default_flag_and_the_file(tmp_path):
    target, tmp = tmp_path / "t", tmp_path / "tmp"
    target.write_bytes(b"1")
    tmp.write_bytes(b"2")
    with pytest.raises(WdsrError) as e:
        fileio._link_new(tmp, target)
    assert e.value.message == f"'{target}' appeared while wdsr was working (another process " \
        "wrote it)"
    assert e.value.hint == "it was left as it is: pass --overwrite to replace it, or choose " \
        "another name"
    with pytest.raises(WdsrError) as e:
        fileio.commit(tmp, target, exclusive=True)
    assert "pass --overwrite to" in e.value.hint
    with pytest.raises(WdsrError) as e:
        fileio.write_summary(target, "{}")
    assert e.value.message.startswith(f"--json '{target}' appeared or changed")


def test_link_new_moves_a_symlink_itself(tmp_path):
    other = tmp_path / "other"
    other.write_bytes(b"x")
    tmp = tmp_path / "tmp"
    tmp.symlink_to(other)
    fileio._link_new(tmp, tmp_path / "t")
    assert (tmp_path / "t").is_symlink() and not tmp.is_symlink()


def test_a_failed_summary_removes_its_own_temp_only(tmp_path, monkeypatch):
    """The temporary name's stem is cut exactly: another temporary file of this process whose
    token shares a prefix is not touched (both error paths)."""
    monkeypatch.setattr(fileio.secrets, "token_hex", lambda n: "0123abcd")
    sibling = tmp_path / f".s.json.tmp{os.getpid()}-0123ffff"
    sibling.write_text("another writer's")
    out = tmp_path / "s.json"
    out.write_text("user's")  # not a summary: refused (WdsrError path)
    with pytest.raises(WdsrError):
        fileio.write_summary(out, "{}")
    assert sorted(os.listdir(tmp_path)) == sorted([sibling.name, "s.json"])

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    out.write_text(json.dumps({fileio.SUMMARY_MARK: "x"}))
    monkeypatch.setattr(fileio.os, "replace", full)
    with pytest.raises(WdsrError):
        fileio.write_summary(out, "{}")
    assert sorted(os.listdir(tmp_path)) == sorted([sibling.name, "s.json"])


def test_os_errors_are_told_by_their_words(tmp_path, monkeypatch):
    def read_only(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(fileio, "probe_writable", read_only)
    with pytest.raises(WdsrError) as e:
        fileio.check_writable_folder(tmp_path, "h")
    assert e.value.message == f"cannot write to '{tmp_path}': Read-only file system"
    monkeypatch.setattr(fileio.os, "open", read_only)
    with pytest.raises(WdsrError) as e:
        fileio.read_small_text(tmp_path / "c", "config", 9, "h")
    assert e.value.message == f"cannot read config '{tmp_path / 'c'}': Read-only file system"


def test_size_messages_are_in_mib(tmp_path, monkeypatch):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"x" * ((2 << 20) + 1))
    with pytest.raises(WdsrError) as e:
        fileio.read_small_text(p, "config", 1 << 20, "h")
    assert e.value.message == f"config '{p}' is 2.0 MiB; one is at most 1 MiB"
    real = os.fstat
    monkeypatch.setattr(fileio.os, "fstat",
                        lambda fd: os.stat_result((*real(fd)[:6], 1, *real(fd)[7:])))
    with pytest.raises(WdsrError) as e:
        fileio.read_small_text(p, "config", 2 << 20, "h")
    assert e.value.message == f"config '{p}' is over 2 MiB"


def test_remove_temps_keeps_going_past_what_it_cannot_remove(tmp_path, monkeypatch):
    tmp = tmp_path / ".a.tmp1-00000000.d"
    tmp.mkdir()
    for name in ("x", "y"):
        (tmp / name).write_bytes(b"x")
    tried = []

    def refuse(path, *a, **k):
        tried.append(path)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "unlink", refuse)
    fileio._remove_temps(tmp, ".d")
    assert sorted(tried) == ["x", "y"]


def test_a_private_folder_removed_meanwhile_is_no_error(tmp_path):
    import shutil

    with fileio.private_folder(tmp_path / "m.onnx") as folder:
        shutil.rmtree(folder)
    assert os.listdir(tmp_path) == []


def test_lock_holder_of_a_garbled_lock_file(tmp_path):
    fd = fileio.lock_folder(tmp_path)
    try:
        (tmp_path / fileio.LOCK_NAME).write_bytes(b"\xff\xfe")
        assert fileio.lock_holder(tmp_path) == 0
    finally:
        os.close(fd)


def test_jsonout_errors_are_told_by_their_words(tmp_path, monkeypatch):
    with pytest.raises(WdsrError) as e:
        jsonout.write("/dev/full", {}, "export")
    assert e.value.message == "cannot write --json '/dev/full': No space left on device"

    def read_only(folder):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(fileio, "probe_writable", read_only)
    with pytest.raises(WdsrError) as e:
        jsonout.check(str(tmp_path / "s.json"))
    assert e.value.message == f"cannot write --json '{tmp_path / 's.json'}': Read-only file system"

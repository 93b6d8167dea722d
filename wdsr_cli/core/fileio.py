"""File safety in one place: atomic writes, temporary names, file modes, hashing.

Every file wdsr writes goes through here, so the promises hold everywhere:

* **Atomic**: a file is written under a temporary name in its own folder, flushed to disk
  (``fsync``) and moved over the target with ``os.replace``; a reader never sees half a file
  and an existing file survives a failed write.
* **No temporary file survives**: on any failure (an error, Ctrl-C, a full disk) every file
  whose name starts with the temporary name is removed (MindSpore writes checkpoints to a
  name of its own, ``<stem>.tmp``, next to the one it was given). Temporary names carry the
  writer's process id, so :func:`remove_stale_temps` can remove what a killed writer left
  (``kill -9`` gives it no chance) without touching a live writer's file; the next writer in
  that folder does so (:func:`temp_path`).
* **No folder mode changed**: tools that chmod the folder they write into (MindSpore's ONNX
  exporter sets it to 0700) write into :func:`private_folder`, a folder made for them.
* **Usual modes**: written files get ``0666 & ~umask`` (MindSpore writes 0400).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WdsrError
from .runtime import proc_stat

__all__ = ["LOCK_NAME", "atomic_write", "check_writable_folder", "commit", "file_mode",
           "lock_folder", "lock_holder", "private_folder", "probe_writable",
           "read_small_text", "remove_stale_temps", "replacing", "sha256_file", "temp_path",
           "write_summary"]

_TEMP = re.compile(r"^\..+\.tmp(\d+)-[0-9a-f]{8}(\..*)?$")  # .NAME.tmpPID-TOKEN[.suffix...]
_lock = threading.Lock()
_mode: list[int] = []


def file_mode() -> int:
    """``0666 & ~umask``: the mode ``open()`` gives a new file. The umask is read once, under a
    lock: reading it means setting it, which would race between writer threads."""
    with _lock:
        if not _mode:
            mask = os.umask(0o022)
            os.umask(mask)
            _mode.append(0o666 & ~mask)
        return _mode[0]


def temp_path(path: str | os.PathLike, suffix: str = ".tmp", sweep: bool = True) -> Path:
    """A fresh temporary name next to ``path``: ``.NAME.tmpPID-TOKEN`` + ``suffix`` (writers
    that insist on a suffix, like MindSpore's, keep theirs).

    Every temporary name is made here, so this is where the leftovers of dead writers go: the
    first time a process makes one in a folder (``sweep``), the temporary files and folders
    there whose writer is gone are removed (:func:`remove_stale_temps`), whatever wrote them
    (an image, a checkpoint, a shard, an ONNX form's private folder, a report's staging)."""
    path = Path(path)
    if sweep:
        _sweep_once(path.parent)
    return path.with_name(f".{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}{suffix}")


_swept: set[str] = set()
_sweep_lock = threading.Lock()


def _sweep_once(folder: Path) -> None:
    """:func:`remove_stale_temps` of ``folder``, once per process (writers call this for
    each file; a folder of many images is listed once)."""
    key = os.path.abspath(folder)
    with _sweep_lock:
        if key in _swept:
            return
        _swept.add(key)
        remove_stale_temps(folder)


def _remove_temps(tmp: Path, suffix: str) -> None:
    """Remove ``tmp`` and every file or folder whose name extends its stem."""
    stem = tmp.name[:len(tmp.name) - len(suffix)] if suffix else tmp.name
    try:
        leftovers = [p for p in tmp.parent.iterdir() if p.name.startswith(stem)]
    except OSError:
        return
    for p in leftovers:
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
        except OSError:
            pass


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit(tmp: str | os.PathLike, path: str | os.PathLike, fsync: bool = True,
           exclusive: bool = False, flag: str = "--overwrite") -> None:
    """Give the finished file ``tmp`` the usual mode, sync it and move it over ``path`` (same
    file system). ``exclusive``: never replace a ``path`` that appeared meanwhile (another
    process wrote it after the command's checks): WdsrError (its hint names ``flag``, the
    command's option that replaces), ``path`` left as it is."""
    os.chmod(tmp, file_mode())
    if fsync:
        _fsync_file(Path(tmp))
    if exclusive:
        _link_new(Path(tmp), Path(path), flag)
    else:
        os.replace(tmp, path)
    if fsync:
        _fsync_folder(Path(path).parent)


def _link_new(tmp: Path, path: Path, flag: str = "--overwrite") -> None:
    """Move ``tmp`` to ``path`` only if no ``path`` exists: a hard link fails atomically on an
    existing name, where ``os.replace`` would silently replace it."""
    appeared = WdsrError(f"'{path}' appeared while wdsr was working (another process wrote "
                         f"it)", f"it was left as it is: pass {flag} to replace it, or choose "
                         "another name" if flag else "it was left as it is: choose another "
                         "name")
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise appeared from None
    except OSError:  # no hard links here (some network and FUSE file systems): claim the name
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise appeared from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextmanager
def replacing(path: str | os.PathLike, suffix: str = ".tmp", fsync: bool = True,
              exclusive: bool = False) -> Iterator[Path]:
    """``with replacing(target) as tmp: <write tmp>``; then ``tmp`` gets the usual mode, is
    synced and replaces ``target`` (``exclusive``: see :func:`commit`). On any exception
    (Ctrl-C included) the temporary file(s) are removed and the exception goes on; ``target``
    is untouched."""
    path = Path(path)
    tmp = temp_path(path, suffix)
    try:
        yield tmp
        commit(tmp, path, fsync, exclusive)
    except BaseException:
        _remove_temps(tmp, suffix)
        raise


# Every --json summary (and a report's results.json) carries this key, its value the command:
# --json replaces only files that carry it (cli._check_json_out).
SUMMARY_MARK = "wdsr_summary"


def atomic_write(path: str | os.PathLike, data: bytes | str, fsync: bool = True) -> None:
    """Write ``data`` (str: UTF-8) to ``path`` atomically; a problem raises WdsrError naming
    the file (the target is untouched and no temporary file is left)."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if not path.parent.is_dir():
        raise WdsrError(f"cannot write '{path}': folder '{path.parent}' does not exist",
                        "create the folder first or choose another path")
    try:
        with replacing(path, fsync=fsync) as tmp, open(tmp, "xb") as f:
            f.write(raw)
    except OSError as exc:
        raise WdsrError(f"cannot write '{path}': {exc.strerror or exc}",
                        "check free disk space and the folder's permissions") from None


def is_summary(path: str | os.PathLike) -> bool:
    """Is ``path`` a regular file holding a wdsr summary (a JSON object with
    :data:`SUMMARY_MARK`)? Reads at most 256 MiB."""
    import json
    import stat

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 256 << 20:
            return False
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and SUMMARY_MARK in data


def write_summary(path: str | os.PathLike, text: str, what: str = "--json") -> None:
    """Write a summary (``--json``) atomically, replacing only a wdsr summary: the file must
    still be one at the moment it is replaced (a user's file written there while the command
    worked is never replaced), and a name that was free when the command was checked is
    created exclusively (WdsrError otherwise; the file is left as it is)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise WdsrError(f"cannot write '{path}': folder '{path.parent}' does not exist",
                        "create the folder first or choose another path")
    tmp = temp_path(path)
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
        if not os.path.lexists(path):
            commit(tmp, path, exclusive=True, flag=None)
        elif is_summary(path):
            commit(tmp, path)
        else:
            raise WdsrError(f"{what} '{path}' appeared or changed while wdsr was working "
                            "(another process wrote it; it is not a wdsr summary)",
                            "it was left as it is: choose another name")
    except OSError as exc:
        _remove_temps(tmp, ".tmp")
        raise WdsrError(f"cannot write '{path}': {exc.strerror or exc}",
                        "check free disk space and the folder's permissions") from None
    except BaseException:
        _remove_temps(tmp, ".tmp")
        raise


def check_writable_folder(folder: str | os.PathLike, hint: str) -> None:
    """``folder``, or the nearest existing folder above it (where it will be created), takes a
    new file; checked by creating one, which catches read-only mounts too. ``hint``: what to
    do instead (names the command's option)."""
    folder = Path(folder)
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        what = "a file, not a folder" if existing.is_file() else "not a folder"
        raise WdsrError(f"cannot create folder '{folder}': '{existing}' is {what}", hint)
    try:
        probe_writable(existing)
    except OSError as exc:
        raise WdsrError(f"cannot write to '{existing}': {exc.strerror or exc}", hint) from None


def probe_writable(folder: str | os.PathLike) -> None:
    """Create and remove a file in ``folder`` (OSError if that fails): catches read-only
    mounts and root-proof folders that ``os.access`` does not."""
    probe = temp_path(Path(folder) / "write-test", sweep=False)  # a check changes nothing
    with open(probe, "xb"):
        pass
    probe.unlink()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        pass
    return not _exited(pid)


def _exited(pid: int) -> bool:
    """A process that has exited but is not reaped yet (a zombie: kill -0 still finds it) writes
    nothing more. Orphans of a killed command wait for init to reap them, which can take a
    while; their temporary files are stale already. Linux only (elsewhere: False)."""
    fields = proc_stat(pid)
    return bool(fields) and fields[0] in ("Z", "X")  # the state


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files (see :func:`temp_path`) in ``folder`` whose writer process is
    gone; a live writer's are left alone. Returns what was removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP.match(p.name)
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


# ------------------------------------------------------------------------------ folder locks

LOCK_NAME = ".wdsr.lock"


def lock_folder(folder: str | os.PathLike) -> int | None:
    """Take the exclusive lock of ``folder`` (the file ``.wdsr.lock`` in it, which then holds
    this process's id) for as long as the returned descriptor stays open; None if another
    process holds it. The kernel drops the lock of a process that ends, however it ends, so a
    lock left by a dead process never blocks."""
    import fcntl

    fd = os.open(Path(folder) / LOCK_NAME, os.O_RDWR | os.O_CREAT, file_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def lock_holder(folder: str | os.PathLike) -> int | None:
    """The id of the process holding ``folder``'s lock (0 if it is held but unreadable), or
    None when it is free. Creates nothing."""
    import fcntl

    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else 0
    finally:
        os.close(fd)


@contextmanager
def private_folder(near: str | os.PathLike) -> Iterator[Path]:
    """A new folder next to ``near`` (same file system, so ``os.replace`` out of it is atomic)
    for writers that change the mode of the folder they write into; removed afterwards with
    whatever is left in it. Its name is a temporary name of ``near``."""
    folder = temp_path(near, ".d")
    folder.mkdir(0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_regular(st: os.stat_result, path, what: str, hint: str, limit: int) -> None:
    import stat

    if stat.S_ISDIR(st.st_mode):
        raise WdsrError(f"{what} '{path}' is a folder, not a file", hint)
    if not stat.S_ISREG(st.st_mode):
        raise WdsrError(f"{what} '{path}' is not a regular file (a FIFO, socket or device)", hint)
    if st.st_size > limit:
        raise WdsrError(f"{what} '{path}' is {st.st_size / 2**20:.1f} MiB; one is at most "
                        f"{limit / 2**20:g} MiB", hint)


def read_small_text(path: str | os.PathLike, what: str, limit: int, hint: str) -> str:
    """The text of ``path``, a small UTF-8 file the user named (a config, a rank table).

    Refused with a one-line :class:`WdsrError` (``what`` names the file in it): anything but a
    regular file (a FIFO is opened without blocking and never read, so it cannot hang the
    command), a file over ``limit`` bytes, and text that is not UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise WdsrError(f"{what} '{path}' does not exist", hint) from None
    except OSError as exc:
        raise WdsrError(f"cannot read {what} '{path}': {exc.strerror or exc}", hint) from None
    try:
        _check_regular(os.fstat(fd), path, what, hint, limit)
        with open(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while we read
        raise WdsrError(f"{what} '{path}' is over {limit / 2**20:g} MiB", hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise WdsrError(f"{what} '{path}' is not UTF-8 text (byte {exc.start}, line {line})",
                        "save it as UTF-8; " + hint) from None

"""``--json FILE``: where a command's summary goes, and what it may never replace.

A summary carries ``fileio.SUMMARY_MARK`` (the command's name). An existing regular file
without it is not ours (an input photo, a checkpoint, a manifest, a user's notes), so --json
never replaces it. A FIFO or device (``/dev/stdout``) is written into, never replaced; through a
symlink, the target is replaced and the link kept. ``-`` is stdout.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import fileio
from .errors import WdsrError

STDOUT = "-"


def finite(data: Any) -> Any:
    """A copy that ``json.dumps(..., allow_nan=False)`` accepts: inf/nan become None (PSNR of
    identical images is infinite)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(x) for k, x in data.items()}
    if isinstance(data, list):
        return [finite(x) for x in data]
    return data


def check(json_out: str | None) -> None:
    """Checked before any work: the folder exists and takes a file; an existing regular file
    is an earlier wdsr summary. Paths the command writes itself: :func:`apart`, once known."""
    if json_out is None or json_out == STDOUT:
        return
    path = Path(json_out).expanduser()
    if path.is_dir():
        raise WdsrError(f"--json '{json_out}' is a folder", "name a file, e.g. --json out.json")
    if path.exists():
        if stat.S_ISREG(os.stat(path).st_mode) and not fileio.is_summary(path):
            raise WdsrError(f"--json '{json_out}' exists and is not a wdsr summary",
                            "choose a new file name (--json replaces only its own summaries)")
        path = path.resolve()
    folder = path.parent
    if not folder.is_dir():
        raise WdsrError(f"folder '{folder}' for --json '{json_out}' does not exist",
                        "create it first, or pass --json - for stdout")
    try:
        fileio.probe_writable(folder)
    except OSError as exc:
        raise WdsrError(f"cannot write --json '{json_out}': {exc.strerror or exc}",
                        "choose a writable folder, or pass --json - for stdout") from None


def apart(json_out: str | None, writes: Iterable[os.PathLike | str] = (),
          owned: os.PathLike | str | None = None, owner: str = "") -> None:
    """--json is none of ``writes`` (files the command writes) and not inside ``owned`` (a
    folder the command option ``owner`` makes whole). Reads nothing."""
    if json_out is None or json_out == STDOUT:
        return
    path = Path(json_out).expanduser().resolve()
    if any(Path(w).expanduser().resolve() == path for w in writes):
        raise WdsrError(f"--json '{json_out}' is also where this command writes its output",
                        "give --json another file name")
    if owned is not None and path.is_relative_to(Path(owned).resolve()):
        raise WdsrError(f"--json '{json_out}' is inside the {owner} folder '{owned}', which "
                        "wdsr makes whole", "write the summary elsewhere, e.g. --json out.json")


def write(json_out: str, data: dict, command: str) -> None:
    """The summary on stdout ('-'), into a FIFO or device as it is, else into a file
    (atomically; through a symlink, its target)."""
    text = json.dumps({fileio.SUMMARY_MARK: command, **data}, indent=1, sort_keys=True,
                      allow_nan=False) + "\n"
    path = Path(json_out).expanduser()
    if json_out == STDOUT:
        sys.stdout.write(text)
    elif path.exists() and not stat.S_ISREG(os.stat(path).st_mode):
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise WdsrError(f"cannot write --json '{json_out}': {exc.strerror or exc}",
                            "pass --json - for stdout, or a file name") from None
    else:
        fileio.write_summary(path.resolve() if path.is_symlink() else path, text)

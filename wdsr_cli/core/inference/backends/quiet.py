"""Silence an engine's C++ logging while it loads a file we report on ourselves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for a moment: engines' C++ loggers print lines of their own
    before they raise on a bad file (MindSpore an ``[ERROR]``, OpenVINO's other frontends
    parse errors), and we raise our own one-line message."""
    import sys

    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)

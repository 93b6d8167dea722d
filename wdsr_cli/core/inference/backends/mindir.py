"""A MINDIR file (``wdsr export --format mindir``) run by MindSpore."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ...errors import WdsrError


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for a moment: MindSpore's C++ logger prints an ``[ERROR]``
    line before it raises on a bad MINDIR file, and we raise our own one-line message."""
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


class MindIRBackend:
    """Runs a MINDIR file (``wdsr export --format mindir``) with MindSpore: ``ms.load`` +
    ``nn.GraphCell``. A dynamic-shape MINDIR (the default export) takes any N/H/W; a
    fixed-shape one only its own size (:meth:`Predictor.from_model` wraps it in
    :class:`FixedSizeWindows`). MindSpore must already be set up (``runtime.init_mindspore``).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import mindspore as ms
        from mindspore import nn

        path = Path(path)
        if not path.is_file():
            raise WdsrError(f"model '{path}' does not exist", "check the path")
        try:
            with _quiet_stderr():
                self.net = nn.GraphCell(ms.load(str(path)))
        except (RuntimeError, ValueError, TypeError, OSError):
            raise WdsrError(f"'{path}' is not a MINDIR model that MindSpore can load",
                            "pass a .mindir file written by wdsr export") from None
        self.name = "MINDIR (MindSpore)"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from mindspore import Tensor

        out = self.net(Tensor(np.ascontiguousarray(x, dtype=np.float32)))
        return out.asnumpy()

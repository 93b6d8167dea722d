"""A MINDIR file (``wdsr export --format mindir``) run by MindSpore."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import WdsrError
from .quiet import quiet_stderr


class MindIRBackend:
    """Runs a MINDIR file (``wdsr export --format mindir``) with MindSpore: ``ms.load`` +
    ``nn.GraphCell``. A dynamic-shape MINDIR (the default export) takes any N/H/W; a
    fixed-shape one only its own size (:meth:`Predictor.from_model` wraps it in
    :class:`FixedSizeWindows`). MindSpore must already be set up (``runtime.init_mindspore``).
    """

    precision = "fp32"

    def __init__(self, path: str | os.PathLike) -> None:
        import mindspore as ms
        from mindspore import nn

        path = Path(path)
        if not path.is_file():
            raise WdsrError(f"model '{path}' does not exist", "check the path")
        try:
            with quiet_stderr():
                self.net = nn.GraphCell(ms.load(str(path)))
        except (RuntimeError, ValueError, TypeError, OSError):
            raise WdsrError(f"'{path}' is not a MINDIR model that MindSpore can load",
                            "pass a .mindir file written by wdsr export") from None
        self.name = "MINDIR (MindSpore)"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from mindspore import Tensor

        out = self.net(Tensor(np.ascontiguousarray(x, dtype=np.float32)))
        return out.asnumpy()

"""A live MindSpore WDSR cell (training validation, ``--backend mindspore`` on a checkpoint)."""

from __future__ import annotations

from typing import Any

import numpy as np


class MindSporeBackend:
    """Runs a live MindSpore WDSR cell (weight-normalised or folded).

    The cell is put in inference mode (``set_train(False)``) and declared with dynamic N/H/W
    (``model.dynamic_input``) once, so GRAPH mode compiles one graph for every image size.
    The caller owns the cell: a trainer that validates with it calls ``set_train(True)`` again
    before the next training step.
    """

    precision = "fp32"

    def __init__(self, net: Any) -> None:
        from ...model import dynamic_input

        net.set_train(False)
        if not getattr(net, "_wdsr_dynamic_input", False):
            dynamic_input(net)
            net._wdsr_dynamic_input = True
        self.net = net
        self.name = "MindSpore"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from mindspore import Tensor

        out = self.net(Tensor(np.ascontiguousarray(x, dtype=np.float32)))
        return out.asnumpy()

"""The exponential moving average of a network's weights (``train.ema_decay``)."""

from __future__ import annotations

from typing import Any

import numpy as np


class WeightAverage:
    """The exponential moving average of a network's trainable weights, kept on the host:
    after every step, ``avg = decay * avg + (1 - decay) * w`` in float32. Elementwise numpy
    (no reductions), so the same bits on every CPU, and part of last.ckpt (``ema.<name>``), so a
    resumed run continues it exactly. It starts from the weights the run starts from (--init,
    random, or a checkpoint without an average)."""

    def __init__(self, net: Any, decay: float, step: int,
                 saved: dict[str, Any] | None = None) -> None:
        from .checkpoints import EMA_PREFIX, as_array

        self.params = net.trainable_params()
        self.decay = np.float32(decay)
        self.rest = np.float32(1) - self.decay
        saved = saved or {}
        self.resumed = all(EMA_PREFIX + p.name in saved for p in self.params)
        values = {p.name: (as_array(saved[EMA_PREFIX + p.name]) if self.resumed
                           else p.asnumpy()).astype(np.float32) for p in self.params}
        # (steps averaged in, averages) replaced as one object: a Ctrl-C in the middle of
        # update() leaves the previous state whole, and catch_up() knows what is missing
        self.state = (step, values)

    def update(self) -> None:
        step, values = self.state
        new = {p.name: self.decay * values[p.name] + self.rest * p.asnumpy() for p in self.params}
        self.state = (step + 1, new)

    def catch_up(self, applied_steps: int) -> None:
        """After an interrupt: fold in the last step if it was applied to the weights but not
        yet averaged (the average then holds exactly ``applied_steps`` updates)."""
        if self.state[0] == applied_steps - 1:
            self.update()

    def entries(self) -> dict[str, np.ndarray]:
        """What last.ckpt stores: ema.<parameter name> -> average."""
        from .checkpoints import EMA_PREFIX

        return {EMA_PREFIX + name: avg for name, avg in self.state[1].items()}

    def copy_to(self, net: Any) -> Any:
        """Put the average into ``net`` (a second network of the same config); returns it."""
        from mindspore import Tensor

        values = self.state[1]
        for name, param in net.parameters_and_names():
            if name in values:
                param.set_data(Tensor(values[name]))
        return net

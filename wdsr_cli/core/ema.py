"""The exponential moving average of a network's weights (``train.ema_decay``)."""

from __future__ import annotations

from typing import Any

import numpy as np

# The share of the starting weights an average may keep at a run's last step before the plan
# warns: 0.999 over a 750-step fine-tune keeps 47% (0.999^750), which is then what validation
# scores and best.ckpt holds (the photo x2 weights of issue 29 were shipped that way).
START_SHARE_WARN = 0.05


def start_share(decay: float, steps: int) -> float:
    """How much of the weights a run starts from is still in its average after ``steps``
    updates: ``decay ** steps``."""
    return float(decay) ** max(steps, 0)


def short_run_warning(decay: float, steps: int) -> str | None:
    """The plan's warning when the average of a run this short would still be mostly its
    start; None when it is not (or the average is off)."""
    share = start_share(decay, steps)
    if decay <= 0 or share <= START_SHARE_WARN:
        return None
    # 1 - 5/steps keeps e^-5 (< 1%) of the start
    fix = (f"for {steps:,} steps use about --set train.ema_decay={1 - 5 / steps:.4g}"
           if steps >= 10 else "turn it off (--set train.ema_decay=0)")
    return (f"train.ema_decay {decay:g} averages over about {1 / (1 - decay):,.0f} steps: at "
            f"step {steps:,} the average that validation scores and best.ckpt holds is still "
            f"{share:.0%} the starting weights; {fix}")


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

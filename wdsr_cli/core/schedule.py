"""Per-step learning rates, computed once as an array: ``lrs[s]`` is the rate used by step s
(0-based). MindSpore's Adam indexes a learning-rate tensor with its own ``global_step``, which
lives in the checkpoint, so a resumed run continues with exactly the rate it stopped at."""

from __future__ import annotations

import numpy as np

from .config import TrainConfig


def learning_rates(t: TrainConfig) -> np.ndarray:
    steps = np.arange(t.steps, dtype=np.float64)
    if t.schedule == "constant":
        lrs = np.full(t.steps, t.lr)
    elif t.schedule == "step":
        lrs = t.lr * t.gamma ** np.floor(steps / t.decay_every)
    elif t.schedule == "multistep":
        # milestone m: steps m, m+1, ... use the decayed rate (step m is the first after m updates)
        drops = np.searchsorted(np.asarray(t.milestones, dtype=np.float64), steps, side="right")
        lrs = t.lr * t.gamma**drops
    else:  # cosine from lr to min_lr over the steps after warm-up
        span = max(t.steps - t.warmup_steps - 1, 1)
        progress = np.clip((steps - t.warmup_steps) / span, 0.0, 1.0)
        lrs = t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + np.cos(np.pi * progress))
    if t.warmup_steps:
        warm = steps < t.warmup_steps
        lrs = np.where(warm, t.lr * (steps + 1) / t.warmup_steps, lrs)
    return lrs.astype(np.float32)

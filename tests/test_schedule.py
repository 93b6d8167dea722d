import numpy as np
import pytest

from wdsr_cli.core.config import TrainConfig
from wdsr_cli.core.schedule import learning_rates


def test_step_schedule_halves_exactly_at_the_boundary():
    lrs = learning_rates(TrainConfig(steps=10, lr=1.0, schedule="step", decay_every=4, gamma=0.5))
    np.testing.assert_allclose(lrs, [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25])


def test_multistep_uses_decayed_rate_from_the_milestone_on():
    t = TrainConfig(steps=8, lr=0.8, schedule="multistep", milestones=[2, 5], gamma=0.5)
    np.testing.assert_allclose(learning_rates(t), [0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2])


def test_warmup_then_cosine_reaches_min_lr_on_the_last_step():
    t = TrainConfig(steps=12, lr=1.0, schedule="cosine", warmup_steps=2, min_lr=0.1)
    lrs = learning_rates(t)
    np.testing.assert_allclose(lrs[:2], [0.5, 1.0])
    assert lrs[2] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1)
    assert np.all(np.diff(lrs[2:]) <= 1e-7)


def test_constant_and_dtype():
    lrs = learning_rates(TrainConfig(steps=5, lr=3e-4, schedule="constant"))
    assert lrs.dtype == np.float32 and lrs.shape == (5,)
    np.testing.assert_allclose(lrs, 3e-4)

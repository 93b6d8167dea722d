"""The train step cell: the recipe's Adam settings and gradient clipping reach the optimizer.

The config goes through `--set` parsing and the worker spec's dict round trip, as in
`wdsr train`, before build_train_step sees it.
"""

import numpy as np
import pytest

from wdsr_cli.core.config import config_from_dict, load_config

SETTINGS = ["model.n_resblocks=1", "model.n_feats=8", "train.steps=3", "train.warmup_steps=0"]


def _step_cell(*overrides):
    import mindspore as ms

    from wdsr_cli.core.model import build_model
    from wdsr_cli.core.schedule import learning_rates
    from wdsr_cli.core.train import build_train_step

    cfg = load_config("demo", SETTINGS + list(overrides))
    cfg = config_from_dict(cfg.to_dict(), source="worker spec")  # what a worker receives
    ms.set_seed(0)  # the same initial weights for every cell
    net = build_model(cfg.model)
    return net, build_train_step(net, cfg.train, learning_rates(cfg.train))


def test_adam_settings_reach_the_optimizer(ms_cpu):
    _, cell = _step_cell("train.beta1=0.8", "train.beta2=0.99", "train.eps=0.5",
                         "train.weight_decay=0.01", "train.clip_grad_norm=0.25")
    opt = cell.optimizer
    got = {k: float(getattr(opt, k).asnumpy()) for k in ("beta1", "beta2", "eps", "weight_decay")}
    assert got == pytest.approx({"beta1": 0.8, "beta2": 0.99, "eps": 0.5, "weight_decay": 0.01})
    assert cell.clip_norm == 0.25


def test_gradient_clipping_bounds_the_update(ms_cpu):
    """With eps = 1 Adam's first update is nearly linear in the gradient (|g| << 1), so a
    gradient clipped to global norm c moves the weights c-proportionally: clipping at 2e-5
    moves them twice as far as at 1e-5, in the same direction as without clipping."""
    from mindspore import Tensor

    rng = np.random.default_rng(0)
    lr = Tensor(rng.uniform(0, 255, (2, 3, 8, 8)).astype(np.float32))
    hr = Tensor(rng.uniform(0, 255, (2, 3, 16, 16)).astype(np.float32))

    def update(clip: float) -> np.ndarray:
        net, cell = _step_cell("train.lr=1000", "train.schedule=constant", "train.eps=1",
                               f"train.clip_grad_norm={clip}")
        before = np.concatenate([p.asnumpy().ravel() for p in net.trainable_params()])
        cell(lr, hr)
        after = np.concatenate([p.asnumpy().ravel() for p in net.trainable_params()])
        return after.astype(np.float64) - before

    free, c1, c2 = update(0), update(1e-5), update(2e-5)
    n1, n2 = np.linalg.norm(c1), np.linalg.norm(c2)
    assert n1 > 0 and n2 / n1 == pytest.approx(2, rel=1e-2)
    assert np.linalg.norm(free) > 100 * n1  # the unclipped gradient is far larger
    cosine = float(free @ c1 / (np.linalg.norm(free) * n1))
    assert cosine > 0.99


@pytest.mark.parametrize("loss", ["l1", "l2"])
def test_the_step_minimises_the_configured_loss(ms_cpu, loss):
    """The cell returns the configured loss of the weights it starts from (mean |e| or mean
    e^2 over the batch, e = SR - HR) and its first Adam step (lr 1e-3, eps 1e-8: every moved
    weight moves by ~lr in the direction of -sign(gradient)) lowers that loss."""
    from mindspore import Tensor

    rng = np.random.default_rng(1)
    lr = Tensor(rng.uniform(0, 255, (2, 3, 8, 8)).astype(np.float32))
    hr = Tensor(rng.uniform(0, 255, (2, 3, 16, 16)).astype(np.float32))
    net, cell = _step_cell("train.lr=1e-3", "train.schedule=constant", f"train.loss={loss}")

    def measured() -> float:
        err = net(lr).asnumpy().astype(np.float64) - hr.asnumpy()
        return float(np.mean(err * err) if loss == "l2" else np.mean(np.abs(err)))

    before = measured()
    returned = float(cell(lr, hr).asnumpy())
    assert returned == pytest.approx(before, rel=1e-5)
    assert measured() < before


class _FakeParam:
    """What WeightAverage reads of a MindSpore Parameter: its name and its value."""

    def __init__(self, name, value):
        self.name, self.value = name, np.asarray(value, dtype=np.float32)

    def asnumpy(self):
        return self.value.copy()


class _FakeNet:
    def __init__(self, **values):
        self.params = [_FakeParam(k, v) for k, v in values.items()]

    def trainable_params(self):
        return self.params


def test_weight_average_update_catch_up_and_resume():
    from wdsr_cli.core.ema import WeightAverage

    net = _FakeNet(w=[1.0, 2.0], b=[0.5])
    avg = WeightAverage(net, 0.75, step=10)
    assert not avg.resumed
    net.params[0].value[:] = [5.0, 6.0]  # step 11 changed w
    avg.update()
    assert avg.state[0] == 11
    np.testing.assert_array_equal(avg.entries()["ema.w"], np.float32([2.0, 3.0]))
    np.testing.assert_array_equal(avg.entries()["ema.b"], np.float32([0.5]))
    # Ctrl-C after step 12 was applied but before it was averaged: catch_up folds it in once
    net.params[0].value[:] = [6.0, 7.0]
    avg.catch_up(12)
    avg.catch_up(12)
    assert avg.state[0] == 12
    np.testing.assert_array_equal(avg.entries()["ema.w"], np.float32([3.0, 4.0]))
    # a resumed average continues from the saved one, not from the current weights
    again = WeightAverage(net, 0.75, step=12, saved={"ema.w": np.float32([9.0, 9.0]),
                                                     "ema.b": np.float32([1.0])})
    assert again.resumed
    np.testing.assert_array_equal(again.entries()["ema.w"], np.float32([9.0, 9.0]))
    # a checkpoint without an average (or part of one) starts it from the current weights
    fresh = WeightAverage(net, 0.75, step=12, saved={"ema.w": np.float32([9.0, 9.0])})
    assert not fresh.resumed
    np.testing.assert_array_equal(fresh.entries()["ema.w"], np.float32([6.0, 7.0]))

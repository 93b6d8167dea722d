import numpy as np
import pytest

from wdsr_cli.core.config import ModelConfig
from wdsr_cli.core.model_info import count_parameters, receptive_radius


def tiny(variant="b", scale=2, **kw):
    base = dict(variant=variant, scale=scale, n_feats=8, n_resblocks=2, block_feats=16)
    base.update(kw)
    return ModelConfig(**base)


def _run(net, x):
    from mindspore import Tensor

    return net(Tensor(x.astype(np.float32))).asnumpy()


def test_published_wdsr_a_parameter_count(ms_cpu):
    from wdsr_cli.core.model import build_model

    cfg = ModelConfig(variant="a", scale=2, n_feats=32, n_resblocks=16, block_feats=128)
    net = build_model(cfg)
    built = sum(int(np.prod(p.shape)) for p in net.get_parameters())
    assert built == 1_190_100 == count_parameters(cfg)


def test_fold_drops_exactly_one_g_per_output_channel():
    cfg = ModelConfig(variant="b")
    assert count_parameters(cfg) - count_parameters(cfg, weight_norm=False) == (
        32 + 16 * (192 + 25 + 32) + 12 + 12)


@pytest.mark.parametrize("variant", ["a", "b"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shapes_for_odd_sizes(ms_cpu, variant, scale):
    from wdsr_cli.core.model import build_model, dynamic_input

    net = dynamic_input(build_model(tiny(variant, scale)))
    net.set_train(False)
    for h, w in [(7, 9), (13, 5)]:
        x = np.random.rand(1, 3, h, w) * 255
        assert _run(net, x).shape == (1, 3, h * scale, w * scale)


@pytest.mark.parametrize("variant", ["a", "b"])
def test_fold_weight_norm_is_equivalent(ms_cpu, variant):
    from wdsr_cli.core.model import build_model, dynamic_input, fold_weight_norm

    net = build_model(tiny(variant, 3))
    # Make g differ from ||v|| so the fold has real work to do.
    for p in net.get_parameters():
        if p.name.endswith("weight_g"):
            p.set_data(p * 1.7)
    x = np.random.rand(2, 3, 11, 10) * 255
    ref = _run(dynamic_input(net), x)
    folded = fold_weight_norm(net)
    assert not any(p.name.endswith("weight_g") for p in folded.get_parameters())
    out = _run(dynamic_input(folded), x)
    assert np.abs(ref - out).max() < 1e-3
    assert np.abs(ref).max() > 1.0  # a real output, not zeros


def test_pixel_shuffle_is_crd(ms_cpu):
    from wdsr_cli.core.model import PixelShuffle

    r, c, h, w = 2, 3, 2, 3
    x = np.arange(c * r * r * h * w, dtype=np.float32).reshape(1, c * r * r, h, w)
    y = _run(PixelShuffle(r), x)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                # CRD: input channel ch*r*r + i*r + j lands at rows i::r, cols j::r of channel ch
                np.testing.assert_array_equal(y[0, ch, i::r, j::r], x[0, ch * r * r + i * r + j])


@pytest.mark.parametrize("variant", ["a", "b"])
def test_receptive_radius_is_exact(ms_cpu, variant):
    from wdsr_cli.core.model import build_model, dynamic_input

    cfg = tiny(variant, 2)
    rad = receptive_radius(cfg)
    net = dynamic_input(build_model(cfg))
    size = 2 * rad + 9
    x = np.random.rand(1, 3, size, size) * 255
    x2 = x.copy()
    c = size // 2
    x2[0, :, c, c] += 50.0
    diff = np.abs(_run(net, x2) - _run(net, x))[0].max(axis=0)
    rows = np.nonzero(diff.max(axis=1) > 0)[0]
    # Output pixels that changed are exactly those within `rad` LR pixels of the poked one.
    assert rows.min() == (c - rad) * 2 and rows.max() == (c + rad) * 2 + 1

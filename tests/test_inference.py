"""The Predictor: exact halo tiling, self-ensemble, error propagation, the MindSpore backend."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.inference import (
    Backend,
    Predictor,
    dihedral_transforms,
    plan_tiles,
    to_uint8,
)

RNG = np.random.default_rng(7)


# ----------------------------------------------------------------- a position-exact backend


class NumpyNet:
    """A small conv net in float64 numpy whose value at a pixel does not depend on the array
    shape (every conv is a fixed sequence of elementwise multiply-adds over shifted copies),
    so tiling can be checked bit for bit. Like WDSR: 3x3 convs with zero 'same' padding and a
    ReLU, a 5x5 skip branch, pixel shuffle (CRD order)."""

    def __init__(self, scale: int, feats: int = 4, depth: int = 3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.scale = scale
        out = 3 * scale * scale
        chans = [3] + [feats] * (depth - 1) + [out]
        self.convs = [(rng.normal(0, 0.3, (chans[i + 1], chans[i], 3, 3)),
                       rng.normal(0, 0.1, chans[i + 1])) for i in range(depth)]
        self.skip = (rng.normal(0, 0.1, (out, 3, 5, 5)), rng.normal(0, 0.1, out))
        self.receptive_radius = max(depth, 2)
        self.name = "numpy"
        self.calls: list[tuple[int, ...]] = []

    @staticmethod
    def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        cout, cin, k, _ = w.shape
        p = k // 2
        h, wd = x.shape[1:]
        xp = np.zeros((cin, h + 2 * p, wd + 2 * p))
        xp[:, p:p + h, p:p + wd] = x
        y = np.empty((cout, h, wd))
        for o in range(cout):
            acc = np.full((h, wd), b[o])
            for c in range(cin):
                for dy in range(k):
                    for dx in range(k):
                        acc = acc + w[o, c, dy, dx] * xp[c, dy:dy + h, dx:dx + wd]
            y[o] = acc
        return y

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape)
        x = (batch[0].astype(np.float64) - 110.0) / 127.5
        skip = self._conv(x, *self.skip)
        y = x
        for i, (w, b) in enumerate(self.convs):
            y = self._conv(y, w, b)
            if i < len(self.convs) - 1:
                y = np.maximum(y, 0.0)
        y = y + skip
        s = self.scale
        c, h, wd = y.shape
        y = y.reshape(c // (s * s), s, s, h, wd).transpose(0, 3, 1, 4, 2)
        y = y.reshape(c // (s * s), h * s, wd * s)
        return (y * 127.5 + 110.0).astype(np.float32)[None]


def _image(h: int, w: int) -> np.ndarray:
    return RNG.uniform(0, 255, (h, w, 3)).astype(np.float32)


def test_numpy_net_satisfies_the_backend_protocol():
    assert isinstance(NumpyNet(2), Backend)


# ---------------------------------------------------------------------------- tile planning


@pytest.mark.parametrize("h,w,tile,halo", [(1, 1, 0, 3), (7, 13, 3, 2), (31, 29, 8, 5),
                                           (50, 9, 16, 20), (10, 10, 10, 1), (33, 64, 1, 4)])
def test_tiles_cover_the_image_once_and_crops_hold_the_halo(h, w, tile, halo):
    tiles = plan_tiles(h, w, tile, halo)
    cover = np.zeros((h, w), int)
    shapes = set()
    for t in tiles:
        cover[t.y0:t.y1, t.x0:t.x1] += 1
        assert t.cy0 <= max(t.y0 - halo, 0) and t.cy1 >= min(t.y1 + halo, h)
        assert t.cx0 <= max(t.x0 - halo, 0) and t.cx1 >= min(t.x1 + halo, w)
        assert 0 <= t.cy0 < t.cy1 <= h and 0 <= t.cx0 < t.cx1 <= w
        shapes.add((t.cy1 - t.cy0, t.cx1 - t.cx0))
    assert (cover == 1).all()
    assert len(shapes) == 1  # one input shape per image: last crops move inwards
    if tile == 0:
        assert len(tiles) == 1


@pytest.mark.parametrize("h,w", [(5, 400), (400, 5), (12, 13), (47, 47), (48, 48), (49, 300),
                                 (300, 47), (1000, 1000)])
def test_tiles_hold_the_memory_budget_and_are_never_thinner_than_needed(h, w):
    """--tile 32 with a halo of 8: a crop holds at most (32 + 16)^2 pixels (about: a stretched
    crop rounds down), and no crop is smaller than that unless it is the whole image, so
    crops stay in the size range where the convolutions compute a pixel the same way."""
    tile, halo = 32, 8
    budget = (tile + 2 * halo) ** 2
    tiles = plan_tiles(h, w, tile, halo)
    areas = {(t.cy1 - t.cy0) * (t.cx1 - t.cx0) for t in tiles}
    assert len(areas) == 1
    area = areas.pop()
    if h * w <= budget:
        assert len(tiles) == 1
    else:
        assert len(tiles) > 1 and budget - max(h, w) < area <= budget


def test_bad_tile_arguments():
    with pytest.raises(WdsrError):
        plan_tiles(0, 5, 4, 1)
    with pytest.raises(WdsrError):
        Predictor(NumpyNet(2), 2, 3, tile=-1)


# ------------------------------------------------------------------ tiled == untiled, exactly


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("h,w", [(1, 1), (7, 13), (17, 5), (23, 31)])
def test_tiled_equals_untiled_bit_for_bit(scale, h, w):
    net = NumpyNet(scale)
    img = _image(h, w)
    ref = Predictor(net, scale, net.receptive_radius).predict(img)
    assert ref.shape == (h * scale, w * scale, 3) and ref.dtype == np.float32
    for tile in (1, 2, 3, 5, 8, 16, 100):
        out = Predictor(net, scale, net.receptive_radius, tile=tile).predict(img)
        np.testing.assert_array_equal(out, ref, err_msg=f"tile {tile}")
        np.testing.assert_array_equal(to_uint8(out), to_uint8(ref))


def test_a_halo_below_the_receptive_radius_would_show_seams():
    """The exactness test above has teeth: one pixel less of halo changes the output."""
    net = NumpyNet(2)
    img = _image(20, 20)
    ref = Predictor(net, 2, net.receptive_radius).predict(img)
    short = Predictor(net, 2, net.receptive_radius - 1, tile=5).predict(img)
    assert not np.array_equal(short, ref)


def test_tiles_are_streamed_one_at_a_time_with_progress():
    net = NumpyNet(2)
    seen = []
    out = Predictor(net, 2, net.receptive_radius, tile=4).predict(
        _image(12, 13), on_tile=lambda d, t: seen.append((d, t)))
    assert out.shape == (24, 26, 3)
    assert seen == [(i, 12) for i in range(1, 13)]  # 3 rows x 4 columns of 4x4 tiles
    assert set(net.calls) == {(1, 3, 10, 10)}  # crops of 4 + 2 * 3: one shape


# ------------------------------------------------------------------------------ self-ensemble


def _ensemble_by_hand(backend, img: np.ndarray) -> np.ndarray:
    """The mean of the 8 passes, each written out independently of the Predictor code."""
    passes = []
    for k in range(4):
        for flip in (False, True):
            t = np.rot90(img, k)
            if flip:
                t = t[:, ::-1]
            y = backend(np.ascontiguousarray(t.transpose(2, 0, 1)[None]))[0].transpose(1, 2, 0)
            if flip:
                y = y[:, ::-1]
            passes.append(np.rot90(y, -k).astype(np.float64))
    return (sum(passes) / 8.0).astype(np.float32)


def test_dihedral_transforms_are_the_eight_symmetries_and_invert():
    img = _image(3, 5)
    ts = dihedral_transforms()
    assert len(ts) == 8
    outs = {t.apply(img).tobytes() + bytes(t.apply(img).shape) for t in ts}
    assert len(outs) == 8
    for t in ts:
        np.testing.assert_array_equal(t.invert(t.apply(img)), img)


def test_self_ensemble_is_the_mean_of_the_eight_passes_numpy():
    net = NumpyNet(3)
    img = _image(11, 8)
    want = _ensemble_by_hand(net, img)
    got = Predictor(net, 3, net.receptive_radius, self_ensemble=True).predict(img)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    tiled = Predictor(net, 3, net.receptive_radius, tile=2, self_ensemble=True)
    assert tiled.tiles_for(11, 8) > 8  # really tiled
    np.testing.assert_array_equal(tiled.predict(img), got)


def test_self_ensemble_progress_counts_every_pass():
    net = NumpyNet(2)
    p = Predictor(net, 2, net.receptive_radius, tile=2, self_ensemble=True)
    seen = []
    p.predict(_image(13, 11), on_tile=lambda d, t: seen.append((d, t)))
    assert p.tiles_for(13, 11) == 4 * 42 + 4 * 42 == len(seen)  # 7 x 6 tiles of 2x2 each way
    assert seen[-1] == (336, 336)


# --------------------------------------------------------------------------------- errors


class _Failing:
    name = "failing"

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.n = fail_at, 0

    def __call__(self, x):
        self.n += 1
        if self.n == self.fail_at:
            raise MemoryError("out of device memory in tile")
        return np.zeros((1, 3, x.shape[2] * 2, x.shape[3] * 2), np.float32)


def test_an_error_inside_a_tile_propagates():
    p = Predictor(_Failing(3), 2, 1, tile=4)
    with pytest.raises(MemoryError, match="tile"):
        p.predict(_image(10, 10))


def test_a_backend_with_the_wrong_scale_is_a_clear_error():
    p = Predictor(NumpyNet(2), 3, 3)
    with pytest.raises(WdsrError, match="does not upscale by x3"):
        p.predict(_image(5, 5))


@pytest.mark.parametrize("bad,message", [(np.zeros((4, 4)), "expected an HxWx3 RGB image"),
                                         (np.zeros((4, 4, 4)), "expected an HxWx3 RGB image"),
                                         (np.zeros((0, 3, 3)), "cannot upscale an empty image")])
def test_bad_input_arrays(bad, message):
    with pytest.raises(WdsrError, match=message):
        Predictor(NumpyNet(2), 2, 3).predict(bad)


def test_to_uint8_clips_and_rounds_halves_up():
    x = np.array([-3.0, 0.49, 0.5, 1.5, 2.5, 254.5, 300.0], np.float32)
    np.testing.assert_array_equal(to_uint8(x), [0, 0, 1, 2, 3, 255, 255])


# ---------------------------------------------------------------------- the MindSpore backend


def _tiny_net(scale: int, variant: str = "b"):
    from wdsr_cli.core.config import ModelConfig
    from wdsr_cli.core.model import build_model, fold_weight_norm

    cfg = ModelConfig(variant=variant, scale=scale, n_feats=8, n_resblocks=2, block_feats=16)
    net = build_model(cfg)
    return net, fold_weight_norm(net)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_mindspore_tiled_matches_untiled(ms_cpu, scale):
    """Tiling is exact; MindSpore's CPU convolutions differ by float rounding between input
    shapes (see inference.py), so tiled and untiled agree to ~1e-4 and, after rounding to
    8 bits, in all but a vanishing fraction of values (which differ by one level)."""
    _, net = _tiny_net(scale)
    compared = flipped = 0
    for h, w in [(7, 13), (21, 16), (30, 41)]:
        img = _image(h, w)
        ref = Predictor.from_network(net).predict(img)
        assert ref.shape == (h * scale, w * scale, 3)
        for tile in (4, 9, 16):
            out = Predictor.from_network(net, tile=tile).predict(img)
            assert np.abs(out - ref).max() < 1e-3
            a, b = to_uint8(out).astype(int), to_uint8(ref).astype(int)
            assert np.abs(a - b).max() <= 1
            compared += a.size
            flipped += int((a != b).sum())
    assert flipped <= compared * 1e-4


def test_mindspore_self_ensemble_is_the_mean_of_the_eight_passes(ms_cpu):
    _, net = _tiny_net(2)
    predictor = Predictor.from_network(net, self_ensemble=True)
    img = _image(12, 9)
    want = _ensemble_by_hand(predictor.backend, img)
    np.testing.assert_allclose(predictor.predict(img), want, rtol=0, atol=1e-4)


def test_weight_norm_and_folded_networks_agree(ms_cpu):
    wn, folded = _tiny_net(2, variant="a")
    img = _image(10, 11)
    a = Predictor.from_network(wn).predict(img)
    b = Predictor.from_network(folded).predict(img)
    assert np.abs(a - b).max() < 1e-3  # the README's promise (0..255 scale)


def test_from_checkpoint_exposes_metadata(ms_cpu, tmp_path):
    from wdsr_cli.core.checkpoints import save_checkpoint

    wn, folded = _tiny_net(3)
    cfg = dataclasses.asdict(wn.cfg)
    cfg["rgb_mean"] = list(cfg["rgb_mean"])
    path = save_checkpoint(wn, tmp_path / "tiny.ckpt",
                           meta={"model": cfg, "scale": 3, "step": 0, "kind": "weights",
                                 "dataset_id": "test"})
    p = Predictor.from_checkpoint(path, tile=5)
    assert p.meta["scale"] == 3 and p.scale == 3 and p.tile == 5
    assert p.receptive_radius == 4 and p.source == str(path)
    img = (RNG.uniform(0, 255, (9, 7, 3))).astype(np.uint8)
    out = p.predict_uint8(img)
    assert out.shape == (27, 21, 3) and out.dtype == np.uint8
    ref = Predictor.from_network(folded).predict_uint8(img)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1

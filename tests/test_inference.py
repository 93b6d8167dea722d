"""The Predictor: the fixed window grid, self-ensemble, error propagation, the MindSpore
backend."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.inference import (
    WINDOW,
    Predictor,
    dihedral_transforms,
    plan_windows,
    to_uint8,
    window_side,
)
from wdsr_cli.core.inference.backends import Backend

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
        # all output channels at once; each value is still the same sequence of float64
        # multiply-adds (bias, then c, dy, dx in order), whatever the array shape
        acc = np.broadcast_to(b[:, None, None], (cout, h, wd)).copy()
        for c in range(cin):
            for dy in range(k):
                for dx in range(k):
                    acc = acc + w[:, c, dy, dx][:, None, None] * xp[c, dy:dy + h, dx:dx + wd]
        return acc

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


# -------------------------------------------------------------------------- the window grid


@pytest.mark.parametrize("h,w,window,halo", [(1, 1, 8, 3), (7, 13, 7, 2), (31, 29, 11, 5),
                                             (50, 9, 40, 10), (10, 10, 10, 1), (33, 64, 9, 4),
                                             (1000, 301, 256, 18), (257, 512, 256, 18)])
@pytest.mark.parametrize("exact", [False, True])
def test_windows_cover_the_image_once_have_one_shape_and_keep_the_halo(h, w, window, halo,
                                                                        exact):
    tiles = plan_windows(h, w, window, halo, exact)
    cover = np.zeros((h, w), int)
    shapes = {(t.cy1 - t.cy0, t.cx1 - t.cx0) for t in tiles}
    assert len(shapes) == 1  # one input shape per image
    rows, cols = shapes.pop()
    assert rows == (h if h <= window else window if exact else rows) <= min(h, window)
    assert cols == (w if w <= window else window if exact else cols) <= min(w, window)
    for t in tiles:
        cover[t.y0:t.y1, t.x0:t.x1] += 1
        assert 0 <= t.cy0 and t.cy1 <= h and 0 <= t.cx0 and t.cx1 <= w
        # every kept pixel is >= halo from each window edge that is not an image border
        assert t.y0 - t.cy0 >= (halo if t.cy0 > 0 else 0) and t.cy0 <= t.y0
        assert t.cy1 - t.y1 >= (halo if t.cy1 < h else 0)
        assert t.x0 - t.cx0 >= (halo if t.cx0 > 0 else 0) and t.cx0 <= t.x0
        assert t.cx1 - t.x1 >= (halo if t.cx1 < w else 0)
    assert (cover == 1).all()
    # the fewest windows that can do it: first/last keep window - halo, the others window - 2 halo
    for n, side, starts in ((h, rows, {t.cy0 for t in tiles}), (w, cols, {t.cx0 for t in tiles})):
        want = 1 if n <= window else 1 + -(-(n - window) // (window - 2 * halo))
        assert len(starts) == want and min(starts) == 0 and max(starts) == n - side


def test_the_grid_depends_on_the_image_size_window_and_halo_only():
    """300 rows need 2 windows of at most 256 (halo 18): 2 x 168 rows cover 300 + 2 * 18;
    520 columns need 3: 3 x 198 >= 520 + 4 * 18. Exact windows are 256 wide."""
    a = plan_windows(300, 520, 256, 18)
    assert a == plan_windows(300, 520, (256, 256), 18) and len(a) == 2 * 3
    assert {(t.cy1 - t.cy0, t.cx1 - t.cx0) for t in a} == {(168, 198)}
    assert [t.cy0 for t in a[::3]] == [0, 132] and [t.cx0 for t in a[:3]] == [0, 161, 322]
    assert [(t.x0, t.x1) for t in a[:3]] == [(0, 179), (179, 340), (340, 520)]
    b = plan_windows(300, 520, 256, 18, exact=True)
    assert [t.cy0 for t in b[::3]] == [0, 44] and [t.cx0 for t in b[:3]] == [0, 132, 264]


def test_window_side_grows_for_a_wide_receptive_field():
    assert window_side(18) == WINDOW and window_side(150) == 600 and window_side(5, 64) == 64


def test_an_engine_brings_its_own_window():
    """ONNX Runtime runs larger windows than MindSpore: the window is the engine's (fixed per
    engine, never a user setting), still grown for a wide receptive field."""
    from wdsr_cli.core.inference.backends import OnnxBackend

    class Wide:
        window = 40

        def __call__(self, x):
            return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)

    assert OnnxBackend.window > WINDOW
    assert Predictor(Wide(), 2, 3).window == (40, 40)
    assert Predictor(Wide(), 2, 30).window == (120, 120)  # 4 x the receptive radius
    assert Predictor(Wide(), 2, 3, window=16).window == (16, 16)  # an explicit window wins
    img = RNG.uniform(0, 255, (40, 90, 3)).astype(np.float32)
    assert Predictor(Wide(), 2, 3).windows_for(40, 90) == 3  # 40-px windows: one row of 3
    assert np.array_equal(Predictor(Wide(), 2, 3).predict(img), Wide()(
        img.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0))


def test_bad_window_arguments():
    with pytest.raises(WdsrError):
        plan_windows(0, 5, 4, 1)
    with pytest.raises(WdsrError, match="halo"):
        plan_windows(20, 20, 6, 3)  # nothing of a window would be kept
    with pytest.raises(WdsrError):
        Predictor(NumpyNet(2), 2, 3, window=0)
    with pytest.raises(TypeError):
        Predictor(NumpyNet(2), 2, 3, 64)  # the old positional tile: window is keyword-only


# ---------------------------------------------------------- windows == whole image, exactly


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("h,w", [(1, 1), (7, 13), (17, 5), (23, 31)])
def test_windowed_equals_whole_image_bit_for_bit(scale, h, w):
    net = NumpyNet(scale)
    img = _image(h, w)
    whole = Predictor(net, scale, net.receptive_radius, window=max(h, w))
    ref = whole.predict(img)
    assert whole.windows_for(h, w) == 1
    assert ref.shape == (h * scale, w * scale, 3) and ref.dtype == np.float32
    for window in (7, 8, 11, 16, 100):
        p = Predictor(net, scale, net.receptive_radius, window=window)
        net.calls.clear()
        out = p.predict(img)
        np.testing.assert_array_equal(out, ref, err_msg=f"window {window}")
        assert len(net.calls) == p.windows_for(h, w) and len(set(net.calls)) == 1
        assert p.windows_for(h, w) > 1 or max(h, w) <= window
        np.testing.assert_array_equal(p.predict_uint8(img.round().astype(np.uint8)),
                                      to_uint8(whole.predict(img.round())))


def test_a_halo_below_the_receptive_radius_would_show_seams():
    """The exactness test above has teeth: one pixel less of halo changes the output."""
    net = NumpyNet(2)
    img = _image(20, 20)
    ref = Predictor(net, 2, net.receptive_radius, window=20).predict(img)
    assert np.array_equal(Predictor(net, 2, net.receptive_radius, window=8).predict(img), ref)
    short = Predictor(net, 2, net.receptive_radius - 1, window=8)
    assert short.windows_for(20, 20) > 1
    assert not np.array_equal(short.predict(img), ref)


def test_windows_are_streamed_one_at_a_time_with_progress():
    net = NumpyNet(2)
    seen = []
    out = Predictor(net, 2, net.receptive_radius, window=8).predict(
        _image(12, 13), on_tile=lambda d, t: seen.append((d, t)))
    assert out.shape == (24, 26, 3)
    # a window of 8 keeps 8 - 2 * 3 = 2 pixels inside (5 at the ends): 3 x 4 windows of 8x8
    assert seen == [(i, 12) for i in range(1, 13)]
    assert set(net.calls) == {(1, 3, 8, 8)}


@pytest.mark.parametrize("self_ensemble", [False, True])
def test_predict_uint8_never_holds_the_float_image(monkeypatch, self_ensemble):
    """Rounding (and self-ensemble averaging) happens per window: no full-size float array
    is ever allocated (the ensemble used to sum whole transformed images in float64)."""
    import wdsr_cli.core.inference.predictor as inference

    big = []

    def watch(real):
        def watched(shape, dtype=float, *a, **k):
            if np.dtype(dtype).kind == "f" and int(np.prod(shape)) >= 40 * 40 * 3:
                big.append(shape)
            return real(shape, dtype, *a, **k)
        return watched

    monkeypatch.setattr(inference.np, "empty", watch(np.empty))
    monkeypatch.setattr(inference.np, "zeros", watch(np.zeros))
    net = NumpyNet(2)
    p = Predictor(net, 2, net.receptive_radius, window=8, self_ensemble=self_ensemble)
    out = p.predict_uint8(RNG.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    assert out.dtype == np.uint8 and out.shape == (40, 40, 3) and not big


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
    assert len(set(ts)) == 8 and ts[0] == dataclasses.replace(ts[0])  # values, as Tile
    with pytest.raises(dataclasses.FrozenInstanceError):
        ts[0].transpose = True


def test_self_ensemble_is_the_mean_of_the_eight_passes_numpy():
    net = NumpyNet(3)
    img = _image(11, 8)
    want = _ensemble_by_hand(net, img)
    got = Predictor(net, 3, net.receptive_radius, self_ensemble=True).predict(img)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    tiled = Predictor(net, 3, net.receptive_radius, window=7, self_ensemble=True)
    assert tiled.windows_for(11, 8) > 8  # really windowed
    np.testing.assert_array_equal(tiled.predict(img), got)


def test_self_ensemble_progress_counts_every_pass():
    net = NumpyNet(2)
    p = Predictor(net, 2, net.receptive_radius, window=9, self_ensemble=True)
    seen = []
    p.predict(_image(13, 11), on_tile=lambda d, t: seen.append((d, t)))
    assert p.windows_for(13, 11) == 4 * 6 + 4 * 6 == len(seen)  # 3 x 2 windows each way
    assert seen[-1] == (48, 48)


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
    p = Predictor(_Failing(3), 2, 1, window=4)
    with pytest.raises(MemoryError, match="tile"):
        p.predict(_image(10, 10))


def test_a_backend_with_the_wrong_scale_is_a_clear_error():
    p = Predictor(NumpyNet(2), 3, 3)
    with pytest.raises(WdsrError, match="does not upscale by x3") as caught:
        p.predict(_image(5, 7))
    assert caught.value.message == ("the model returned shape (1, 3, 10, 14) for an input of "
                                    "(1, 3, 5, 7); expected (1, 3, 15, 21)")


class _NaNAt:
    """Zeros, with one NaN in call ``at`` (broken weights, or an overflow at low precision)."""

    name = "nan"

    def __init__(self, at: int) -> None:
        self.at, self.n = at, 0

    def __call__(self, x):
        self.n += 1
        y = np.zeros((1, 3, x.shape[2] * 2, x.shape[3] * 2), np.float32)
        if self.n == self.at:
            y[0, 1, 0, 0] = np.nan
        return y


@pytest.mark.parametrize("self_ensemble", [False, True])
def test_a_nan_from_the_model_is_an_error_not_a_black_image(self_ensemble):
    from wdsr_cli.core.inference.predictor import NonFiniteOutput

    p = Predictor(_NaNAt(2), 2, 1, window=4, self_ensemble=self_ensemble)
    with pytest.raises(NonFiniteOutput, match="NaN or infinite"):
        p.predict_uint8(_image(10, 10).astype(np.uint8))


def test_a_reduced_precision_that_overflows_fails_its_check_instead_of_stopping():
    from wdsr_cli.core.inference.precision import compare

    lr = _image(6, 6).astype(np.uint8)
    pairs = [("p", lr, np.repeat(np.repeat(lr, 2, 0), 2, 1))]
    good = Predictor(_NaNAt(0), 2, 1)
    verdict = compare(good, Predictor(_NaNAt(1), 2, 1), 2, pairs=pairs)
    assert not verdict["passed"] and verdict["uint8_max_diff"] == 255
    assert compare(good, Predictor(_NaNAt(0), 2, 1), 2, pairs=pairs)["passed"]


@pytest.mark.parametrize("bad,message", [(np.zeros((4, 4)), "expected an HxWx3 RGB image"),
                                         (np.zeros((4, 4, 4)), "expected an HxWx3 RGB image"),
                                         (np.zeros((0, 3, 3)), "cannot upscale an empty image"),
                                         (np.zeros((3, 0, 3)), r"upscale an empty image \(3x0"),
                                         (np.zeros((4, 4, 3), complex), "unsupported image dtype"),
                                         (np.zeros((4, 4, 3), bool), "unsupported image dtype"),
                                         (np.zeros((4, 4, 3), object), "unsupported image dtype")])
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


class _Counting:
    """Wraps a backend and records the shape of every call."""

    def __init__(self, backend) -> None:
        self.backend, self.name, self.calls = backend, backend.name, []

    def __call__(self, x):
        self.calls.append(x.shape)
        return self.backend(x)


@pytest.mark.parametrize("variant", ["a", "b"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_mindspore_windows_are_exactly_the_planned_calls(ms_cpu, variant, scale):
    """With the real kernels: an image larger than the window runs as the planned number of
    calls, all of one shape, and each output pixel is, bit for bit, the kept part of its own
    window's call (nothing else is batched or recomputed); it also agrees with the whole image
    run in one call to float rounding (a wrong halo would show seams of many levels), and a
    call history with other shapes in between changes no bit."""
    from wdsr_cli.core.inference.backends import MindSporeBackend

    _, net = _tiny_net(scale, variant)
    r = Predictor.from_network(net).receptive_radius
    counting = _Counting(MindSporeBackend(net))
    p = Predictor(counting, scale, r, window=window_side(r, 24))
    img = _image(50, 37)
    out = p.predict(img)
    plan = plan_windows(50, 37, p.window, r)
    assert len(counting.calls) == len(plan) == p.windows_for(50, 37) >= 4
    assert len(set(counting.calls)) == 1
    for t in plan:
        crop = np.ascontiguousarray(img[t.cy0:t.cy1, t.cx0:t.cx1].transpose(2, 0, 1)[None])
        y = counting.backend(crop)[0].transpose(1, 2, 0)
        s = scale
        want = y[(t.y0 - t.cy0) * s:(t.y1 - t.cy0) * s, (t.x0 - t.cx0) * s:(t.x1 - t.cx0) * s]
        np.testing.assert_array_equal(out[t.y0 * s:t.y1 * s, t.x0 * s:t.x1 * s], want)
    whole = Predictor(counting, scale, r, window=50).predict(img)
    assert np.abs(out - whole).max() < 1e-3
    Predictor(counting, scale, r, window=13).predict(_image(30, 41))  # other shapes between
    np.testing.assert_array_equal(p.predict(img), out)


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
    assert np.abs(a - b).max() < 1e-3  # docs/architecture.md "The network"


def test_from_checkpoint_exposes_metadata(ms_cpu, tmp_path):
    from wdsr_cli.core.checkpoints import save_checkpoint

    wn, folded = _tiny_net(3)
    cfg = dataclasses.asdict(wn.cfg)
    cfg["rgb_mean"] = list(cfg["rgb_mean"])
    path = save_checkpoint(wn, tmp_path / "tiny.ckpt",
                           meta={"model": cfg, "scale": 3, "step": 0, "kind": "weights",
                                 "dataset_id": "test"})
    p = Predictor.from_checkpoint(path)
    assert p.meta["scale"] == 3 and p.scale == 3 and p.window == (WINDOW, WINDOW)
    assert p.receptive_radius == 4 and p.source == str(path)
    img = (RNG.uniform(0, 255, (9, 7, 3))).astype(np.uint8)
    out = p.predict_uint8(img)
    assert out.shape == (27, 21, 3) and out.dtype == np.uint8
    ref = Predictor.from_network(folded).predict_uint8(img)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


# ------------------------------------------------- edges found by mutation testing (issue 34)

def test_a_fixed_size_model_with_self_ensemble_windows_each_transform_once():
    """A fixed-shape model with self-ensemble: each of the 8 transforms of the whole image is
    windowed once (4 on the image's grid, 4 on the transposed image's), one call per window, and
    the progress total is right. (Found by mutation testing: each window was ensembled again,
    8x the calls, and a non-square fixed size failed on the transposed windows.)"""
    from wdsr_cli.core.inference.predictor import FixedSizeWindows

    net = NumpyNet(2)
    r = net.receptive_radius
    calls = []

    def counting(x):
        calls.append(x.shape)
        return net(x)

    p = Predictor(FixedSizeWindows(counting, (10, 12), 2, r), 2, r, self_ensemble=True)
    straight = len(plan_windows(23, 13, (10, 12), r, True))
    turned = len(plan_windows(13, 23, (10, 12), r, True))
    assert straight != turned
    assert p.windows_for(23, 13) == 4 * straight + 4 * turned
    seen = []
    img = _image(23, 13)
    out = p.predict(img, on_tile=lambda d, t: seen.append((d, t)))
    total = p.windows_for(23, 13)
    assert len(calls) == total and seen[-1] == (total, total) and set(calls) == {(1, 3, 10, 12)}
    whole = Predictor(net, 2, r, window=64, self_ensemble=True).predict(img)
    np.testing.assert_allclose(out, whole, rtol=0, atol=1e-4)


def test_a_zero_halo_and_each_bad_window_side():
    tiles = plan_windows(9, 8, 4, 0)
    assert [(t.y0, t.y1, t.cy0, t.cy1) for t in tiles[::2]] == [(0, 3, 0, 3), (3, 6, 3, 6),
                                                                   (6, 9, 6, 9)]
    for window in ((0, 5), (5, 0)):
        with pytest.raises(WdsrError, match="must be >= 1"):
            plan_windows(9, 8, window, 1)
    with pytest.raises(WdsrError, match="halo"):
        plan_windows(9, 8, 4, -1)
    with pytest.raises(dataclasses.FrozenInstanceError):  # a plan is never changed in place
        tiles[0].y0 = 1


# ------------------------------------------ fixed-size models, called directly (issue 34)

class _OneShape:
    """A model exported with a fixed input size: refuses any other shape, records each call."""

    def __init__(self, net: NumpyNet, size: tuple[int, int], **attrs) -> None:
        self.net, self.size, self.calls = net, size, []
        self.__dict__.update(attrs)

    def __call__(self, x):
        assert x.shape[2:] == self.size, f"a {x.shape} input for a fixed {self.size} model"
        self.calls.append(x.shape)
        return self.net(x)


@pytest.mark.parametrize("size,shape", [((10, 12), (23, 29)), ((10, 12), (10, 29)),
                                        ((10, 12), (23, 12)), ((10, 12), (10, 12)),
                                        ((6, 12), (6, 29)), ((12, 6), (29, 6)),
                                        ((7, 12), (9, 29)), ((12, 7), (29, 9)),
                                        ((10, 12), (11, 13))])
def test_a_fixed_size_model_runs_any_input_at_least_its_size_exactly(size, shape):
    """FixedSizeWindows is a backend of its own: called directly on a larger input (a
    Predictor over it uses the fixed size as its window, so its calls pass straight through),
    every call to the model has the fixed shape and the result is the whole-image one bit for
    bit, down to an input as large as the fixed size along a side, a fixed side of just over
    twice the radius (7 > 2 x 3), and an input one pixel larger (the fewest windows would be
    smaller than the fixed size: they must not be)."""
    from wdsr_cli.core.inference.predictor import FixedSizeWindows

    net = NumpyNet(2)
    model = _OneShape(net, size)
    fixed = FixedSizeWindows(model, size, 2, net.receptive_radius)
    x = np.ascontiguousarray(_image(*shape).transpose(2, 0, 1)[None])
    out = fixed(x)
    assert out.dtype == np.float32 and out.shape == (1, 3, shape[0] * 2, shape[1] * 2)
    np.testing.assert_array_equal(out, net(x))
    assert len(model.calls) == len(plan_windows(*shape, size, net.receptive_radius, True))


@pytest.mark.parametrize("size,shape,message", [
    ((10, 12), (9, 29), "cannot run a smaller 9x29"), ((10, 12), (23, 11), "smaller 23x11"),
    ((10, 12), (9, 11), "smaller 9x11"),
    ((6, 12), (7, 29), "fixed input size 6x12 .* too small to tile"),
    ((12, 6), (29, 7), "fixed input size 12x6 .* too small to tile")])
def test_a_fixed_size_model_refuses_what_it_cannot_compute_exactly(size, shape, message):
    from wdsr_cli.core.inference.predictor import FixedSizeWindows

    model = _OneShape(NumpyNet(2), size)
    with pytest.raises(WdsrError, match=message):
        FixedSizeWindows(model, size, 2, 3)(np.zeros((1, 3, *shape), np.float32))
    assert not model.calls


def test_a_fixed_size_model_keeps_the_backend_precision_and_names_its_size():
    from wdsr_cli.core.inference.predictor import FixedSizeWindows

    net = NumpyNet(2)
    plain = FixedSizeWindows(_OneShape(net, (10, 12), name="ONNX Runtime"), (10, 12), 2, 3)
    assert plain.name == "ONNX Runtime, fixed 10x12 input" and plain.precision == "fp32"
    bf16 = FixedSizeWindows(_OneShape(net, (10, 12), precision="bf16"), (10, 12), 2, 3)
    assert bf16.precision == "bf16" and bf16.name == "_OneShape, fixed 10x12 input"
    p = Predictor(bf16, 2, 3)
    assert p.precision == "bf16" and p.window == (10, 12) and p.source == bf16.name


def test_a_fixed_size_model_without_self_ensemble_calls_each_window_once():
    """Through a Predictor (the fixed size is its window, so each call passes straight
    through): one call per planned window, the whole-image result bit for bit, rounded per
    window by predict_uint8; no pass of the whole-image ensemble."""
    from wdsr_cli.core.inference.predictor import FixedSizeWindows

    net = NumpyNet(2)
    r = net.receptive_radius
    model = _OneShape(net, (10, 12))
    p = Predictor(FixedSizeWindows(model, (10, 12), 2, r), 2, r)
    img = _image(23, 13)
    want = net(np.ascontiguousarray(img.transpose(2, 0, 1)[None]))[0].transpose(1, 2, 0)
    np.testing.assert_array_equal(p.predict(img), want)
    assert len(model.calls) == p.windows_for(23, 13) == len(plan_windows(23, 13, (10, 12), r,
                                                                         True)) > 1
    lr = img.round().astype(np.uint8)
    want = net(np.ascontiguousarray(lr.transpose(2, 0, 1)[None], np.float32))
    model.calls.clear()
    np.testing.assert_array_equal(p.predict_uint8(lr), to_uint8(want[0].transpose(1, 2, 0)))
    assert len(model.calls) == p.windows_for(23, 13)


# --------------------------------------------- construction: what a Predictor runs and reports

class _Identity:
    """x1 with no context (receptive radius 0): returns its input."""

    def __call__(self, x):
        return np.array(x, np.float32)


def test_a_scale_of_one_and_a_radius_of_zero_are_valid_and_each_bad_argument_is_named():
    img = _image(9, 7)
    p = Predictor(_Identity(), 1, 0, window=4)
    assert p.windows_for(9, 7) == 3 * 2
    np.testing.assert_array_equal(p.predict(img), img)
    for args, kwargs, message in (((0, 3), {}, "scale must be an integer >= 1, got 0"),
                                  ((2.0, 3), {}, "scale must be an integer >= 1, got 2.0"),
                                  ((True, 3), {}, "scale must be an integer >= 1, got True"),
                                  ((2, -1), {}, "receptive_radius must be an integer >= 0"),
                                  ((2, 3.0), {}, "receptive_radius must be an integer >= 0"),
                                  ((2, 3), {"window": (8, 0)}, "window must be an integer >= 1, "
                                                               "got 0")):
        with pytest.raises(WdsrError, match=message):
            Predictor(_Identity(), *args, **kwargs)
    assert Predictor(_Identity(), np.int64(2), np.int32(3)).window == (WINDOW, WINDOW)


def test_a_new_predictor_reports_its_backend_and_no_checks_yet():
    class Reduced(_Identity):
        name, precision = "OpenVINO", "bf16"

    p = Predictor(Reduced(), 1, 0)
    assert (p.source, p.precision, p.scale, p.receptive_radius) == ("OpenVINO", "bf16", 1, 0)
    assert p.meta is None and p.precision_check is None and p.precision_why is None
    plain = Predictor(_Identity(), 1, 0)
    assert (plain.source, plain.precision) == ("_Identity", "fp32")


def test_from_network_takes_scale_and_receptive_radius_from_the_config(monkeypatch):
    """The halo is the network's receptive radius (model_info; WDSR-A with 2 blocks: 6)."""
    from wdsr_cli.core.config import ModelConfig
    from wdsr_cli.core.inference import predictor as module

    class Backend:
        def __init__(self, net):
            self.net, self.name = net, "MindSpore"

        def __call__(self, x):
            return self.net(x)

    class Net(NumpyNet):
        cfg = ModelConfig(variant="a", scale=3, n_resblocks=2)

    monkeypatch.setattr(module, "MindSporeBackend", Backend)
    net = Net(3)
    p = Predictor.from_network(net)
    assert (p.scale, p.receptive_radius, p.self_ensemble) == (3, 6, False)
    assert p.backend.net is net and p.window == (WINDOW, WINDOW)
    assert Predictor.from_network(net, self_ensemble=True).self_ensemble


@pytest.mark.parametrize("input_size", [None, [10, 12]])
def test_from_model_runs_the_contract_scale_radius_and_fixed_size(monkeypatch, tmp_path,
                                                                  input_size):
    """An exported model: scale, receptive radius and a fixed input size come from its
    contract; a fixed-size model is wrapped in its windows (its size is the Predictor's
    window), and the result is the whole-image one bit for bit."""
    from wdsr_cli.core.inference import predictor as module
    from wdsr_cli.core.inference.predictor import FixedSizeWindows

    net = NumpyNet(2)
    model = _OneShape(net, tuple(input_size or (23, 13)), name="ONNX Runtime")
    contract = {"scale": 2, "receptive_radius": net.receptive_radius, "format": "onnx"}
    if input_size:
        contract["input_size"] = input_size
    asked = []

    def load_exported(path, given, engine, precision):
        asked.append((path, given, engine, precision))
        return model, contract

    monkeypatch.setattr(module, "load_exported", load_exported)
    path = tmp_path / "model.onnx"
    p = Predictor.from_model(path)
    assert asked == [(path, None, None, "fp32")]
    assert p.meta is contract and p.source == str(path) and not p.self_ensemble
    assert (p.scale, p.receptive_radius) == (2, net.receptive_radius)
    assert isinstance(p.backend, FixedSizeWindows) == bool(input_size)
    if input_size:
        assert p.window == (10, 12) and p.backend.scale == 2
        assert p.backend.receptive_radius == net.receptive_radius
    img = _image(23, 13)
    want = net(np.ascontiguousarray(img.transpose(2, 0, 1)[None]))[0].transpose(1, 2, 0)
    np.testing.assert_array_equal(p.predict(img), want)
    p = Predictor.from_model(path, True, contract, "openvino", "bf16")
    assert p.self_ensemble and asked[-1] == (path, contract, "openvino", "bf16")

"""Checkpoints of the MindSpore model-zoo WDSR (research/cv/wdsr): read, mapped, same function.

The zoo checkpoint is written here by MindSpore from a small Cell laid out like the zoo's
network (the parameter names come from that layout: head.0, body.N.body.0/2/3, tail.0, skip.0,
sub_mean, add_mean; plain convs; DepthToSpace, i.e. DCR channel order), so the test checks
the zoo's own forward function against wdsr's reading of its file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, run_wdsr, save_tiny_checkpoint

from wdsr_cli.core.data.images import Image, write_image

FEATS, BLOCKS, SCALE = 8, 2, 2
MEAN = (0.4488, 0.4371, 0.4040)


def _zoo_like_net(feats: int, blocks: int, scale: int):
    """A Cell with the zoo WDSR's structure and parameter names (random weights)."""
    import mindspore as ms
    from mindspore import nn, ops

    def conv(cin, cout, k):
        return nn.Conv2d(cin, cout, k, pad_mode="pad", padding=k // 2, has_bias=True,
                         weight_init="normal", bias_init="normal")

    class MeanShift(nn.Conv2d):
        def __init__(self, sign):
            weight = ms.Tensor(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1))
            bias = ms.Tensor(sign * 255.0 * np.array(MEAN, np.float32))
            super().__init__(3, 3, 1, has_bias=True, weight_init=weight, bias_init=bias)

    class Block(nn.Cell):
        def __init__(self):
            super().__init__()
            self.body = nn.SequentialCell([conv(feats, feats * 6, 1), nn.ReLU(),
                                           conv(feats * 6, int(feats * 0.8), 1),
                                           conv(int(feats * 0.8), feats, 3)])

        def construct(self, x):
            return self.body(x) + x

    class ZooWDSR(nn.Cell):
        def __init__(self):
            super().__init__()
            self.sub_mean, self.add_mean = MeanShift(-1), MeanShift(1)
            self.head = nn.SequentialCell([conv(3, feats, 3)])
            self.body = nn.SequentialCell([Block() for _ in range(blocks)])
            self.tail = nn.SequentialCell([conv(feats, 3 * scale * scale, 3)])
            self.skip = nn.SequentialCell([conv(3, 3 * scale * scale, 5)])
            self.d2s = ops.DepthToSpace(scale)

        def construct(self, x):
            x = self.sub_mean(x) / 127.5
            s = self.skip(x)
            x = self.tail(self.body(self.head(x))) + s
            return self.add_mean(self.d2s(x) * 127.5)

    ms.set_seed(5)
    return ZooWDSR()


@pytest.fixture(scope="module")
def zoo(ms_cpu, tmp_path_factory):
    import mindspore as ms

    d = tmp_path_factory.mktemp("zoo")
    net = _zoo_like_net(FEATS, BLOCKS, SCALE)
    net.set_train(False)
    path = d / "wdsr-zoo.ckpt"
    ms.save_checkpoint(net, str(path))
    return net, path


def test_names_are_the_zoos(zoo):
    import mindspore as ms

    names = set(ms.load_checkpoint(str(zoo[1])))
    assert {"head.0.weight", "body.0.body.0.weight", "body.1.body.3.bias", "tail.0.weight",
            "skip.0.bias", "sub_mean.bias"} <= names
    assert not any("weight_v" in n or "weight_g" in n for n in names)  # no weight norm there


def test_read_infers_the_model_and_says_what_was_mapped(zoo):
    from wdsr_cli.core.checkpoints import read_checkpoint

    params, meta = read_checkpoint(zoo[1])
    model = meta["model"]
    assert (model["variant"], model["scale"], model["n_feats"], model["n_resblocks"]) == \
        ("b", SCALE, FEATS, BLOCKS)
    assert model["expansion"] == 6 and int(FEATS * model["low_rank_ratio"]) == int(FEATS * 0.8)
    assert np.allclose(model["rgb_mean"], MEAN, atol=1e-6)
    assert meta["weight_norm"] is False and meta["source"] == "mindspore-modelzoo"
    assert "model-zoo" in meta["mapping"] and "no weight norm" in meta["mapping"]
    assert "body.1.conv3.weight" in params and "tail.weight" in params


def test_loaded_network_computes_the_zoos_function(zoo):
    """The zoo's own forward (DepthToSpace) equals wdsr's network on the mapped weights; a
    mapping that forgot the DCR -> CRD channel order would scramble the sub-pixels."""
    from mindspore import Tensor

    from wdsr_cli.core.checkpoints import load_network

    net, path = zoo
    x = np.random.default_rng(3).uniform(0, 255, (1, 3, 12, 10)).astype(np.float32)
    want = net(Tensor(x)).asnumpy()
    ours, _ = load_network(path, weight_norm=False)
    got = ours(Tensor(x)).asnumpy()
    assert got.shape == want.shape == (1, 3, 24, 20)
    assert np.abs(got - want).max() < 1e-3, np.abs(got - want).max()
    assert np.abs(want).max() > 1  # not a trivially zero output


def test_weight_norm_form_keeps_every_kernel(zoo):
    """train --init: v = kernel, g = ||kernel||, so g * v / ||v|| is the kernel again, and
    every parameter of the matching wdsr model is filled."""
    from wdsr_cli.core.checkpoints import check_init, init_parameters, read_checkpoint
    from wdsr_cli.core.config import model_config_from_dict

    plain, meta = read_checkpoint(zoo[1])
    wn, _ = init_parameters(zoo[1])
    v, g = wn["head.weight_v"], wn["head.weight_g"]
    w = g * v / np.sqrt((v.astype(np.float64) ** 2).sum(axis=(1, 2, 3), keepdims=True))
    assert np.allclose(w, plain["head.weight"], rtol=1e-6, atol=0)
    fits, total, _ = check_init(zoo[1], model_config_from_dict(meta["model"]))
    assert fits == total


def _zoo_file_from(native: Path, out: Path) -> Path:
    """The same weights as a wdsr checkpoint, written in the zoo's layout (plain kernels, zoo
    names, DCR channel order)."""
    import mindspore as ms

    from wdsr_cli.core.checkpoints import load_network
    from wdsr_cli.core.model import folded_parameters

    net, _ = load_network(native, weight_norm=True)
    folded = folded_parameters(net)
    r2 = SCALE * SCALE
    to_dcr = [(k % 3) * r2 + k // 3 for k in range(3 * r2)]  # inverse of CRD -> DCR
    names = {"head": "head.0", "tail": "tail.0", "skip": "skip.0"}
    entries = []
    for name, value in folded.items():
        stem, kind = name.rsplit(".", 1)
        part = stem.split(".")[0]
        if part == "body":
            _, i, conv = stem.split(".")
            zoo_stem = f"body.{i}.body.{ {'conv1': 0, 'conv2': 2, 'conv3': 3}[conv] }"
        else:
            zoo_stem = names[part]
            if part in ("tail", "skip"):
                value = value[to_dcr]
        entries.append({"name": f"{zoo_stem}.{kind}", "data": ms.Tensor(value)})
    ms.save_checkpoint(entries, str(out))
    return out


def test_evaluate_zoo_checkpoint_matches_the_same_weights_loaded_natively(ms_cpu, tmp_path):
    native = save_tiny_checkpoint(tmp_path / "native.ckpt", SCALE, n_feats=FEATS,
                                  n_resblocks=BLOCKS)
    zoo_file = _zoo_file_from(native, tmp_path / "zoo.ckpt")
    hr = tmp_path / "hr"
    hr.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        write_image(hr / f"{i}.png", Image(pixels=rng.integers(0, 256, (24, 30, 3), np.uint8)))
    scores = {}
    for tag, ckpt in (("native", native), ("zoo", zoo_file)):
        res = run_wdsr("evaluate", "--hr", str(hr), "--checkpoint", str(ckpt), "--json",
                       str(tmp_path / f"{tag}.json"), "--device-target", "CPU")
        assert res.returncode == 0, res.stderr
        scores[tag] = json.loads((tmp_path / f"{tag}.json").read_text())
    for key in ("psnr", "ssim"):  # the same weights, the same numbers
        assert scores["zoo"]["mean"][key] == scores["native"]["mean"][key]
        assert [r[key] for r in scores["zoo"]["images"]] == \
            [r[key] for r in scores["native"]["images"]]


def test_a_checkpoint_that_is_neither_is_refused_in_one_line(ms_cpu, tmp_path):
    import mindspore as ms

    other = tmp_path / "other.ckpt"
    ms.save_checkpoint([{"name": "fc.weight", "data": ms.Tensor(np.ones((2, 2), np.float32))}],
                       str(other))
    line = one_line_error(run_wdsr("evaluate", "--hr", str(tmp_path), "--checkpoint", str(other),
                                   "--device-target", "CPU"))
    assert "nor a MindSpore model-zoo WDSR one" in line


@pytest.mark.parametrize("drop", ["tail.0.bias", "body.1.body.2.weight"])
def test_a_zoo_checkpoint_missing_a_tensor_is_refused_in_one_line(zoo, tmp_path, drop):
    import mindspore as ms

    params = ms.load_checkpoint(str(zoo[1]))
    del params[drop]
    cut = tmp_path / "cut.ckpt"
    ms.save_checkpoint([{"name": n, "data": v} for n, v in params.items()], str(cut))
    img = tmp_path / "x.png"
    write_image(img, Image(pixels=np.full((8, 8, 3), 128, np.uint8)))
    line = one_line_error(run_wdsr("upscale", str(img), "--checkpoint", str(cut)))
    assert "lacks 1 tensor" in line and "cut.ckpt" in line, line

"""WDSR-A and WDSR-B (Yu et al., 2018, "Wide Activation for Efficient and Accurate Image
Super-Resolution") in MindSpore.

    x (0..255) -> (x - mean*255)/127.5 -+-> head 3x3 -> residual body -> tail 3x3 -+-> shuffle
                                        +-> skip 5x5 -------------------------------+    |
                                                                   y = out*127.5 + mean*255

Every convolution is weight-normalised (w = g * v / ||v|| per output channel) and has a bias.
The pixel shuffle uses PyTorch's CRD channel order so weights can be shared with PyTorch WDSR
checkpoints. ``fold_weight_norm`` turns a trained network into plain convolutions for export.
"""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from .config import ModelConfig


class Conv2d(nn.Cell):
    """k x k convolution with 'same' zero padding and a bias, optionally weight-normalised.

    Weight-normalised: parameters ``weight_v`` (kernel direction), ``weight_g`` (out x 1 x 1 x 1,
    initialised to ||v|| so the initial kernel equals v) and ``bias``. Plain: ``weight``, ``bias``.
    Initialisation follows the common default for convolutions: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for kernel and bias, drawn from numpy's global generator (seeded by the runtime).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, weight_norm: bool = True) -> None:
        super().__init__()
        self.kernel = kernel
        self.weight_norm = weight_norm
        fan_in = in_ch * kernel * kernel
        bound = 1.0 / math.sqrt(fan_in)
        v = np.random.uniform(-bound, bound, (out_ch, in_ch, kernel, kernel)).astype(np.float32)
        b = np.random.uniform(-bound, bound, (out_ch,)).astype(np.float32)
        if weight_norm:
            g = np.sqrt((v.astype(np.float64) ** 2).sum(axis=(1, 2, 3), keepdims=True))
            self.weight_v = Parameter(Tensor(v), name="weight_v")
            self.weight_g = Parameter(Tensor(g.astype(np.float32)), name="weight_g")
        else:
            self.weight = Parameter(Tensor(v), name="weight")
        self.bias = Parameter(Tensor(b), name="bias")
        self.pad = kernel // 2

    def effective_weight(self) -> Tensor:
        if not self.weight_norm:
            return self.weight
        norm = ops.sqrt(ops.sum(self.weight_v * self.weight_v, dim=(1, 2, 3), keepdim=True))
        return self.weight_g * self.weight_v / norm

    def construct(self, x: Tensor) -> Tensor:
        w = self.effective_weight()
        if self.pad:
            y = ops.conv2d(x, w, pad_mode="pad", padding=self.pad)
        else:
            y = ops.conv2d(x, w)
        return ops.bias_add(y, self.bias)


class PixelShuffle(nn.Cell):
    """(N, C*r*r, H, W) -> (N, C, H*r, W*r) with CRD order: channel c*r*r + i*r + j -> (c, i, j)."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.r = factor

    def construct(self, x: Tensor) -> Tensor:
        n, c, h, w = ops.shape(x)
        r = self.r
        x = ops.reshape(x, (n, c // (r * r), r, r, h, w))
        x = ops.transpose(x, (0, 1, 4, 2, 5, 3))
        return ops.reshape(x, (n, c // (r * r), h * r, w * r))


class BlockA(nn.Cell):
    """WDSR-A: conv3x3 n_feats -> block_feats, ReLU, conv3x3 -> n_feats."""

    def __init__(self, cfg: ModelConfig, weight_norm: bool) -> None:
        super().__init__()
        self.conv1 = Conv2d(cfg.n_feats, cfg.block_feats, 3, weight_norm)
        self.conv2 = Conv2d(cfg.block_feats, cfg.n_feats, 3, weight_norm)
        self.relu = nn.ReLU()
        self.res_scale = cfg.res_scale

    def construct(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class BlockB(nn.Cell):
    """WDSR-B: conv1x1 -> expansion*n_feats, ReLU, linear low-rank conv1x1, conv3x3 -> n_feats."""

    def __init__(self, cfg: ModelConfig, weight_norm: bool) -> None:
        super().__init__()
        wide = cfg.n_feats * cfg.expansion
        low_rank = int(cfg.n_feats * cfg.low_rank_ratio)
        self.conv1 = Conv2d(cfg.n_feats, wide, 1, weight_norm)
        self.conv2 = Conv2d(wide, low_rank, 1, weight_norm)
        self.conv3 = Conv2d(low_rank, cfg.n_feats, 3, weight_norm)
        self.relu = nn.ReLU()
        self.res_scale = cfg.res_scale

    def construct(self, x: Tensor) -> Tensor:
        return x + self.conv3(self.conv2(self.relu(self.conv1(x)))) * self.res_scale


class WDSR(nn.Cell):
    """Input and output: float32 NCHW RGB on the 0..255 scale (output not clipped)."""

    def __init__(self, cfg: ModelConfig, weight_norm: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        out_ch = cfg.n_colors * cfg.scale * cfg.scale
        block = BlockA if cfg.variant == "a" else BlockB
        self.head = Conv2d(cfg.n_colors, cfg.n_feats, 3, weight_norm)
        self.body = nn.SequentialCell([block(cfg, weight_norm) for _ in range(cfg.n_resblocks)])
        self.tail = Conv2d(cfg.n_feats, out_ch, 3, weight_norm)
        self.skip = Conv2d(cfg.n_colors, out_ch, 5, weight_norm)
        self.shuffle = PixelShuffle(cfg.scale)
        mean = np.array(cfg.rgb_mean, np.float32).reshape(1, cfg.n_colors, 1, 1) * 255.0
        self.mean = Tensor(mean)

    def construct(self, x: Tensor) -> Tensor:
        x = (x - self.mean) / 127.5
        skip = self.skip(x)
        y = self.tail(self.body(self.head(x)))
        y = self.shuffle(y + skip)  # shuffle is linear: shuffle(a) + shuffle(b) == shuffle(a + b)
        return y * 127.5 + self.mean


# ------------------------------------------------------------------------------ utilities


def build_model(cfg: ModelConfig, weight_norm: bool = True) -> WDSR:
    return WDSR(cfg, weight_norm=weight_norm)


def folded_parameters(net: WDSR) -> dict[str, np.ndarray]:
    """Plain-conv parameters equal to ``net``'s weight-normalised ones: w = g * v / ||v||."""
    out: dict[str, np.ndarray] = {}
    for name, cell in net.cells_and_names():
        if not isinstance(cell, Conv2d):
            continue
        if cell.weight_norm:
            v = cell.weight_v.asnumpy().astype(np.float64)
            g = cell.weight_g.asnumpy().astype(np.float64)
            norm = np.sqrt((v**2).sum(axis=(1, 2, 3), keepdims=True))
            out[f"{name}.weight"] = (g * v / norm).astype(np.float32)
        else:
            out[f"{name}.weight"] = cell.weight.asnumpy()
        out[f"{name}.bias"] = cell.bias.asnumpy()
    return out


def fold_weight_norm(net: WDSR) -> WDSR:
    """A new plain-convolution WDSR computing the same function (for inference and export)."""
    folded = WDSR(net.cfg, weight_norm=False)
    params = folded_parameters(net)
    for name, param in folded.parameters_and_names():
        param.set_data(Tensor(params[name]))
    folded.set_train(False)
    return folded


def dynamic_input(net: nn.Cell) -> nn.Cell:
    """Declare N, H and W dynamic so GRAPH mode compiles once for every image size."""
    net.set_inputs(Tensor(shape=[None, 3, None, None], dtype=ms.float32))
    return net

"""Checkpoints of the MindSpore model-zoo WDSR (``research/cv/wdsr`` in mindspore-ai/models).

People moving from the model zoo bring weights trained there. Its network computes the same
function as a wdsr WDSR-B with ``res_scale`` 1 (same input normalisation, head/body/tail, 5x5
skip), with three differences that this module undoes:

- parameter names: ``head.0``, ``body.<i>.body.0/2/3`` (1x1 wide, 1x1 low-rank, 3x3; index 1
  is the ReLU), ``tail.0``, ``skip.0``, plus the frozen mean-shift convs ``sub_mean`` and
  ``add_mean`` (their bias is -/+ 255 x the RGB mean);
- no weight normalisation: its convs hold plain kernels. They are loaded as plain kernels
  (``weight_norm: false`` in the metadata), so inference and export use the very same numbers;
  ``train --init`` turns each into ``v = kernel``, ``g = ||kernel||`` (the same kernel);
- its pixel shuffle is ``ops.DepthToSpace`` (DCR channel order) where wdsr uses PyTorch's CRD:
  the output channels of ``tail`` and ``skip`` are permuted (exact, a reordering).

Scale, blocks, features and block widths are read from the tensor shapes; the zoo itself
hard-codes 64 features in its blocks and a x2 shuffle, so real zoo checkpoints are x2.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from .config import SCALES, ModelConfig
from .errors import WdsrError

SOURCE = "mindspore-modelzoo"
_BLOCK = re.compile(r"body\.(\d+)\.body\.([023])\.(weight|bias)$")
_ROLE = {"0": "conv1", "2": "conv2", "3": "conv3"}
# Optimizer and loss-scale state a zoo training checkpoint also holds (not network weights).
_STATE_PREFIXES = ("moment1.", "moment2.", "beta1_power", "beta2_power", "global_step",
                   "learning_rate", "scale_sense", "current_iterator_step",
                   "last_overflow_iterator_step", "epoch_num", "step_num", "loss_scale")


def is_modelzoo(params: dict[str, Any]) -> bool:
    """True when ``params`` use the zoo's WDSR parameter names."""
    return all(f"{part}.0.weight" in params for part in ("head", "tail", "skip"))


def _array(value: Any) -> np.ndarray:
    return np.asarray(value.asnumpy() if hasattr(value, "asnumpy") else value, np.float32)


def dcr_to_crd(array: np.ndarray, scale: int) -> np.ndarray:
    """Reorder the output channels of a conv feeding DepthToSpace (DCR: channel
    (i*r + j)*C + c) so that a CRD pixel shuffle (channel c*r*r + i*r + j) gives the same image."""
    r2 = scale * scale
    colors = array.shape[0] // r2
    order = [(k % r2) * colors + k // r2 for k in range(array.shape[0])]
    return array[order]


def _model_config(weights: dict[str, np.ndarray], blocks: int, path: Any) -> ModelConfig:
    n_colors, n_feats = weights["head.weight"].shape[1], weights["head.weight"].shape[0]
    out = weights["tail.weight"].shape[0]
    scale = math.isqrt(out // n_colors)
    if scale * scale * n_colors != out or scale not in SCALES:
        raise WdsrError(f"model-zoo checkpoint '{path}': tail.0 has {out} output channels, "
                        f"which is no supported scale ({', '.join(map(str, SCALES))})")
    cfg = ModelConfig(variant="b", scale=scale, n_feats=n_feats, n_resblocks=blocks,
                      res_scale=1.0, n_colors=n_colors)
    if blocks:
        wide = weights["body.0.conv1.weight"].shape[0]
        low = weights["body.0.conv2.weight"].shape[0]
        if wide % n_feats:
            raise WdsrError(f"model-zoo checkpoint '{path}': block width {wide} is not a "
                            f"multiple of {n_feats} features")
        cfg.expansion = wide // n_feats
        cfg.low_rank_ratio = 0.8 if int(n_feats * 0.8) == low else low / n_feats
    mean = weights.pop("sub_mean.bias", None)
    if mean is not None and mean.shape == (n_colors,):
        cfg.rgb_mean = tuple(round(float(m), 6) for m in -mean / 255.0)
    return cfg


def convert(params: dict[str, Any], path: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Zoo parameters -> (wdsr plain-conv parameters, wdsr metadata). WdsrError if the layout
    is not one this module understands."""
    step = params.get("global_step")
    weights: dict[str, np.ndarray] = {}
    ignored: list[str] = []
    blocks: set[int] = set()
    for name, value in params.items():
        if name.startswith(_STATE_PREFIXES) or name.startswith(("add_mean.", "sub_mean.weight")):
            continue
        if name == "sub_mean.bias":
            weights[name] = _array(value)
            continue
        head = re.fullmatch(r"(head|tail|skip)\.0\.(weight|bias)", name)
        block = _BLOCK.fullmatch(name)
        if head:
            weights[f"{head.group(1)}.{head.group(2)}"] = _array(value)
        elif block:
            index = int(block.group(1))
            blocks.add(index)
            weights[f"body.{index}.{_ROLE[block.group(2)]}.{block.group(3)}"] = _array(value)
        else:
            ignored.append(name)
    if blocks != set(range(len(blocks))):
        raise WdsrError(f"model-zoo checkpoint '{path}': residual blocks "
                        f"{sorted(blocks)} are not numbered 0..{len(blocks) - 1}")
    wanted = [f"{part}.{kind}" for part in ("head", "tail", "skip") for kind in ("weight", "bias")]
    wanted += [f"body.{i}.{conv}.{kind}" for i in sorted(blocks) for conv in _ROLE.values()
               for kind in ("weight", "bias")]
    missing = [name for name in wanted if name not in weights]
    if missing:
        raise WdsrError(f"model-zoo checkpoint '{path}' lacks {len(missing)} tensor(s) of its "
                        f"network: {', '.join(missing[:3])}",
                        "the file is incomplete: use the checkpoint as the model zoo wrote it")
    cfg = _model_config(weights, len(blocks), path)
    for part in ("tail", "skip"):
        for kind in ("weight", "bias"):
            key = f"{part}.{kind}"
            weights[key] = dcr_to_crd(weights[key], cfg.scale)
    mapping = (f"MindSpore model-zoo WDSR checkpoint: {len(weights)} tensors mapped "
               f"(head.0, body.N.body.0/2/3, tail.0, skip.0), no weight norm, DepthToSpace "
               f"channel order converted; WDSR-B x{cfg.scale}, {cfg.n_resblocks} blocks, "
               f"{cfg.n_feats} features")
    if ignored:
        mapping += f"; ignored {len(ignored)} unknown tensor(s): {', '.join(ignored[:3])}"
    from .config import Config

    meta = {"format_version": 1, "kind": "weights", "source": SOURCE, "weight_norm": False,
            "model": Config(model=cfg).to_dict()["model"], "scale": cfg.scale,
            "step": int(_array(step).reshape(-1)[0]) if step is not None else None,
            "mapping": mapping}
    return weights, meta


def with_weight_norm(weights: dict[str, Any]) -> dict[str, np.ndarray]:
    """Plain-conv parameters -> weight-normalised ones computing the same kernels:
    ``v = kernel``, ``g = ||kernel||`` per output channel (for ``train --init``)."""
    out: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        array = _array(value)
        if name.endswith(".weight") and array.ndim == 4:
            stem = name[: -len(".weight")]
            norm = np.sqrt((array.astype(np.float64) ** 2).sum(axis=(1, 2, 3), keepdims=True))
            out[f"{stem}.weight_v"] = array
            out[f"{stem}.weight_g"] = norm.astype(np.float32)
        else:
            out[name] = array
    return out

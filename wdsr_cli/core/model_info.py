"""Facts about a WDSR configuration that need no network (and no mindspore import):
parameter count, receptive field, the summary table shown by `wdsr train --print-config`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import ModelConfig


@dataclass(frozen=True)
class ModelSummary:
    variant: str
    scale: int
    n_resblocks: int
    n_feats: int
    block_feats: int  # A: block_feats; B: expansion * n_feats
    parameters: int
    receptive_radius: int  # LR pixels an output pixel depends on, on each side

    def rows(self) -> list[tuple[str, str]]:
        side = 2 * self.receptive_radius + 1
        return [
            ("variant", f"WDSR-{self.variant.upper()}"),
            ("scale", f"x{self.scale}"),
            ("residual blocks", str(self.n_resblocks)),
            ("features", str(self.n_feats)),
            ("block width", str(self.block_feats)),
            ("parameters", f"{self.parameters:,}"),
            ("receptive field", f"{side}x{side} LR px"),
        ]


def receptive_radius(cfg: ModelConfig) -> int:
    """Each 3x3 conv adds one LR pixel of context on each side, the 5x5 skip two."""
    per_block = 2 if cfg.variant == "a" else 1
    return max(1 + per_block * cfg.n_resblocks + 1, 2)


def parameter_shapes(cfg: ModelConfig, weight_norm: bool = True) -> dict[str, tuple[int, ...]]:
    """Every parameter of ``build_model(cfg, weight_norm)``: name -> shape (no network built)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, cin: int, cout: int, k: int) -> None:
        if weight_norm:
            shapes[f"{name}.weight_v"] = (cout, cin, k, k)
            shapes[f"{name}.weight_g"] = (cout, 1, 1, 1)
        else:
            shapes[f"{name}.weight"] = (cout, cin, k, k)
        shapes[f"{name}.bias"] = (cout,)

    c, f, out = cfg.n_colors, cfg.n_feats, cfg.n_colors * cfg.scale**2
    conv("head", c, f, 3)
    for i in range(cfg.n_resblocks):
        if cfg.variant == "a":
            conv(f"body.{i}.conv1", f, cfg.block_feats, 3)
            conv(f"body.{i}.conv2", cfg.block_feats, f, 3)
        else:
            wide, low = f * cfg.expansion, int(f * cfg.low_rank_ratio)
            conv(f"body.{i}.conv1", f, wide, 1)
            conv(f"body.{i}.conv2", wide, low, 1)
            conv(f"body.{i}.conv3", low, f, 3)
    conv("tail", f, out, 3)
    conv("skip", c, out, 5)
    return shapes


def count_parameters(cfg: ModelConfig, weight_norm: bool = True) -> int:
    """Closed form (no network built): kernels, biases and, with weight norm, one g per output."""
    return sum(math.prod(shape) for shape in parameter_shapes(cfg, weight_norm).values())


def summarize(cfg: ModelConfig) -> ModelSummary:
    width = cfg.block_feats if cfg.variant == "a" else cfg.n_feats * cfg.expansion
    return ModelSummary(cfg.variant, cfg.scale, cfg.n_resblocks, cfg.n_feats, width,
                        count_parameters(cfg), receptive_radius(cfg))

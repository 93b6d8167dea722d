"""Typed configuration: dataclasses, YAML recipes, dotted overrides, validation.

A recipe is a YAML file with up to six sections (model, data, degrade, train, eval, runtime);
anything it leaves out keeps the defaults below. ``--set train.lr=1e-3`` overrides one
field after the recipe is loaded. Every value is type-checked against its field, and every
mistake becomes a ``WdsrError`` naming the key and the valid choices.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import WdsrError
from .scales import SCALES, check_scale  # noqa: F401  (the owner is scales.py)

VARIANTS = ("a", "b")
DEVICE_TARGETS = ("auto", "CPU", "GPU", "Ascend")
SCHEDULES = ("constant", "step", "multistep", "cosine")
PROTOCOLS = ("y", "rgb")


PRECISIONS = ("auto", "fp32", "fp16")
LOSSES = ("l1", "l2")


@dataclass
class ModelConfig:
    """WDSR network shape. The paper's names: n_feats, n_resblocks, block_feats, res_scale."""

    variant: str = "b"  # "a": wide 3x3 blocks; "b": wide 1x1 + low-rank 3x3 blocks
    scale: int = 2
    n_feats: int = 32
    n_resblocks: int = 16
    block_feats: int = 128  # WDSR-A only: width of the activation inside a block
    expansion: int = 6  # WDSR-B only: 1x1 expansion factor before ReLU
    low_rank_ratio: float = 0.8  # WDSR-B only: width of the linear low-rank 1x1 conv
    res_scale: float = 1.0
    n_colors: int = 3
    rgb_mean: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)  # DIV2K mean, 0..1 scale


@dataclass
class DataConfig:
    root: str = "data/DIV2K"  # raw DIV2K tree (or any HR folder) for prepare-data
    prepared: str = "data/prepared"  # output of prepare-data, input of train
    patch_size: int = 48  # LR patch side; the HR patch is patch_size * scale
    batch_size: int = 16  # per device
    augment: bool = True  # random flips and 90-degree rotations
    crop_size: int = 480  # prepare-data: HR sub-image side
    crop_step: int = 240  # prepare-data: stride between sub-images
    workers: int = 0  # prepare-data processes; 0 = one per CPU
    prefetch: int = 4  # training batches prepared ahead by a background thread


@dataclass
class DegradeConfig:
    """What a user's photo went through, drawn per training patch (data/degrade.py: blur ->
    downscale -> noise -> JPEG -> a second JPEG on a shifted grid). All probabilities 0 and
    the bicubic kernel (the defaults) = the clean benchmark LR of prepare-data."""

    blur_prob: float = 0.0  # a Gaussian blur of the HR patch before the downscale
    blur_sigma: tuple[float, float] = (0.2, 1.5)  # HR pixels
    blur_aniso_prob: float = 0.5  # of the blurs: two sigmas and an angle
    kernels: list[str] = field(default_factory=lambda: ["bicubic"])  # downscale, drawn evenly
    noise_prob: float = 0.0  # additive Gaussian noise on the LR patch
    noise_sigma: tuple[float, float] = (1.0, 8.0)  # 0..255 scale
    noise_gray_prob: float = 0.3  # of the noises: one value for all channels
    jpeg_prob: float = 0.0  # a 4:2:0 JPEG round trip
    jpeg_quality: tuple[int, int] = (30, 95)
    jpeg2_prob: float = 0.0  # of the JPEGs: a second one on a shifted 8x8 grid
    jpeg2_quality: tuple[int, int] = (60, 95)
    # validation during training runs on LR made by this spec (wdsr evaluate --degrade's words,
    # e.g. "jpeg:75"); "" = the prepared clean LR
    val_spec: str = ""


@dataclass
class TrainConfig:
    steps: int = 300_000
    lr: float = 1e-3
    schedule: str = "step"
    decay_every: int = 200_000  # "step": multiply lr by gamma every this many steps
    milestones: list[int] = field(default_factory=list)  # "multistep": steps where lr *= gamma
    gamma: float = 0.5
    warmup_steps: int = 0  # linear warm-up from 0 to lr
    min_lr: float = 0.0  # "cosine": final learning rate
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_grad_norm: float = 0.0  # 0 = off
    # l1: mean |SR - HR| (the paper's); l2: mean squared error, the quantity PSNR measures
    # (a short l2 stage at the end is a common way to buy the last hundredths of a dB)
    loss: str = "l1"
    # Exponential moving average of the weights, updated after every step (0 = off; e.g. 0.999
    # averages over ~1,000 steps). When on, validation, best.ckpt and so evaluate/upscale/export
    # use the averaged weights; last.ckpt holds both (exact resume).
    ema_decay: float = 0.0
    precision: str = "auto"  # auto = fp16 with dynamic loss scaling on Ascend/GPU, fp32 on CPU
    log_every: int = 10
    val_every: int = 1000
    ckpt_every: int = 1000
    keep_checkpoints: int = 3
    val_images: int = 0  # 0 = the whole validation split
    seed: int = 0
    # Weights a new run starts from (wdsr train --init); kept in the run's config.yaml so a
    # --resume before the first checkpoint starts from them again. "" = random weights.
    init: str = ""


@dataclass
class EvalConfig:
    protocol: str = "y"  # "y": BT.601 luma, border = scale; "rgb": RGB, border = scale + 6
    self_ensemble: bool = False
    tile: int = 0  # obsolete, no effect (images run in fixed windows); kept so old configs load


@dataclass
class RuntimeConfig:
    device_target: str = "auto"
    device_id: int = 0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    name: str = "custom"
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


SECTIONS = [f.name for f in dataclasses.fields(Config) if f.name not in ("name", "description")]


def _plain(value: Any) -> Any:
    """Tuples become lists so YAML/JSON dumps stay plain."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------- loading


def builtin_config_dir() -> Path:
    """Recipes ship inside the package (wdsr_cli/configs); a source checkout has ./configs."""
    installed = Path(__file__).resolve().parents[1] / "configs"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "configs"


def builtin_config_names() -> list[str]:
    return sorted(p.stem for p in builtin_config_dir().glob("*.yaml"))


def resolve_config_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path).expanduser()
    looks_like_path = candidate.suffix in (".yaml", ".yml") or "/" in name_or_path
    if candidate.is_file():
        return candidate
    if candidate.exists() and not candidate.is_dir():  # a FIFO or device: refused when read
        return candidate
    builtin = builtin_config_dir() / f"{name_or_path}.yaml"
    # A bare name means the recipe even when a folder of that name is here (`make demo` leaves
    # ./demo/ beside `wdsr train --config demo`).
    if not looks_like_path and builtin.is_file():
        return builtin
    if candidate.is_dir():
        raise WdsrError(f"config '{name_or_path}' is a folder, not a YAML file",
                        "pass a YAML file or one of: " + ", ".join(builtin_config_names()))
    if looks_like_path:
        raise WdsrError(
            f"config file '{name_or_path}' does not exist",
            "pass an existing YAML file or one of: " + ", ".join(builtin_config_names()),
        )
    raise WdsrError(
        f"unknown config '{name_or_path}'",
        "built-in configs: " + ", ".join(builtin_config_names()) + " (or pass a YAML file path)",
    )


CONFIG_MAX_BYTES = 1 << 20  # a recipe is a few hundred bytes
YAML_MAX_DEPTH = 16  # a recipe is two levels deep (section, key) plus small lists


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (``*name``: the way a few lines expand into
    gigabytes) and nesting deeper than :data:`YAML_MAX_DEPTH` (which would exhaust the stack)."""

    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed; "
                                              "write the value out", event.start_mark)
        if self._depth >= YAML_MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {YAML_MAX_DEPTH} "
                                              "levels deep", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def yaml_load(text: str) -> Any:
    """One YAML document of a recipe or a ``--set`` value, without aliases or deep nesting."""
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass


def load_config(name_or_path: str | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the recipe (by name or path), then each ``section.key=value`` override."""
    cfg = Config()
    if name_or_path:
        path = resolve_config_path(name_or_path)
        from .fileio import read_small_text

        text = read_small_text(path, "config", CONFIG_MAX_BYTES,
                               "pass a YAML recipe file, or a built-in recipe name such as "
                               "wdsr-b-x2")
        try:
            raw = yaml_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise WdsrError(
                f"config '{path}' is not valid YAML{where}: {problem}",
                "fix the file (sections: " + ", ".join(SECTIONS) + ")",
            ) from None
        cfg = config_from_dict(raw if raw is not None else {}, source=str(path))
        if cfg.name == "custom":
            cfg.name = path.stem
    for item in overrides or []:
        apply_override(cfg, item)
    validate(cfg)
    return cfg


def obsolete_tile_note(where: str) -> str:
    """The warning for ``--tile`` / ``eval.tile``: accepted so old scripts and configs still
    run, but they change nothing (a setting that picked other windows could change the
    output)."""
    return (f"{where} has no effect any more: every image runs in the same fixed windows "
            "(output independent of any setting, memory bounded); drop it")


def overridden(overrides: list[str] | None, *keys: str) -> bool:
    """Whether one of ``overrides`` (``--set section.key=value`` items) sets one of ``keys``
    (dotted, e.g. ``"data.crop_size"``): a value the user chose on the command line, which
    beats any other source of it."""
    return any(item.split("=", 1)[0].strip() in keys for item in overrides or [])


def config_from_dict(raw: Any, source: str = "config") -> Config:
    if not isinstance(raw, dict):
        raise WdsrError(f"{source}: expected a mapping of sections, got {type(raw).__name__}",
                        "a recipe maps sections to keys, e.g. 'train:' then '  lr: 0.001' "
                        "(sections: " + ", ".join(SECTIONS) + ")")
    cfg = Config()
    for key, value in raw.items():
        if key in ("name", "description"):
            setattr(cfg, key, str(value))
            continue
        if key not in SECTIONS:
            raise WdsrError(
                f"{source}: unknown section '{key}'",
                "valid sections: " + ", ".join(SECTIONS) + ", name, description",
            )
        if value is None:
            continue
        if not isinstance(value, dict):
            raise WdsrError(f"{source}: section '{key}' must be a mapping of keys to values",
                            f"write '{key}:' then one indented 'key: value' per line")
        section = getattr(cfg, key)
        for sub_key, sub_value in value.items():
            _set_field(section, key, sub_key, sub_value, source)
    return cfg


def apply_override(cfg: Config, item: str) -> None:
    """Apply one ``section.key=value``; the value is parsed as YAML (so 1e-3, true, [1, 2])."""
    if "=" not in item:
        raise WdsrError(f"override '{item}' is not of the form section.key=value",
                        "example: --set train.lr=1e-3")
    dotted, text = item.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS:
        raise WdsrError(
            f"override key '{dotted}' must be section.key",
            "sections: " + ", ".join(SECTIONS) + "; example: --set model.n_resblocks=8",
        )
    try:
        value = yaml_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    _set_field(getattr(cfg, parts[0]), parts[0], parts[1], value, "--set")


def _set_field(section: Any, section_name: str, key: str, value: Any, source: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(section)}
    if key not in fields:
        raise WdsrError(
            f"{source}: unknown key '{section_name}.{key}'",
            f"valid keys in '{section_name}': " + ", ".join(fields),
        )
    hints = typing.get_type_hints(type(section))
    setattr(section, key, _coerce(value, hints[key], f"{section_name}.{key}", source))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    bad = WdsrError(
        f"{source}: '{key}' must be {_type_name(tp)}, got {value!r}",
        f"example: {key}={_example(tp)}",
    )
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise bad
            return tuple(_coerce(v, a, key, source) for v, a in zip(value, args, strict=True))
        return [_coerce(v, args[0], key, source) for v in value]
    if origin in (typing.Union, types.UnionType):
        raise bad  # no optional fields today; keep the error explicit if one appears
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if isinstance(value, str) and tp in (int, float):
        # YAML reads "1e-3" (no dot) as a string; accept any Python number literal.
        try:
            value = int(value) if tp is int else float(value)
        except ValueError:
            raise bad from None
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise bad
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise bad
        return str(value)
    return value


def _example(tp: Any) -> str:
    return {int: "16", float: "0.001", bool: "true", str: "text"}.get(tp, "[1, 2]")


# ------------------------------------------------------------------------------- validation


def _check(ok: bool, message: str, hint: str | None = None) -> None:
    if not ok:
        raise WdsrError(message, hint or "fix it in the recipe, or override it with --set "
                                         "section.key=value (see configs/ for examples)")


def _one_of(value: Any, choices: tuple, key: str) -> None:
    _check(value in choices, f"'{key}' is {value!r}",
           "choose one of: " + ", ".join(map(str, choices)))


def validate(cfg: Config) -> None:
    m, d, t, e, r = cfg.model, cfg.data, cfg.train, cfg.eval, cfg.runtime
    _one_of(m.variant, VARIANTS, "model.variant")
    _one_of(m.scale, SCALES, "model.scale")
    for key in ("n_feats", "n_resblocks", "block_feats", "expansion", "n_colors"):
        _check(getattr(m, key) >= 1, f"'model.{key}' must be at least 1")
    _check(0 < m.low_rank_ratio <= 1 and int(m.low_rank_ratio * m.n_feats) >= 1,
           "'model.low_rank_ratio' must be in (0, 1] and leave at least one channel")
    _check(m.res_scale > 0, "'model.res_scale' must be positive")
    _check(m.n_colors == 3, "'model.n_colors' must be 3 (RGB); grayscale inputs are converted")
    _check(d.patch_size >= 4, "'data.patch_size' must be at least 4 LR pixels")
    _check(d.batch_size >= 1, "'data.batch_size' must be at least 1")
    _check(d.crop_step >= 1 and d.crop_size >= 8, "'data.crop_size'/'data.crop_step' too small")
    _check(d.workers >= 0 and d.prefetch >= 1, "'data.workers' >= 0 and 'data.prefetch' >= 1")
    _check(t.steps >= 1, "'train.steps' must be at least 1")
    _check(t.lr > 0, "'train.lr' must be positive")
    _one_of(t.schedule, SCHEDULES, "train.schedule")
    _check(t.decay_every >= 1, "'train.decay_every' must be at least 1")
    _check(t.milestones == sorted(set(t.milestones)) and all(s > 0 for s in t.milestones),
           "'train.milestones' must be increasing positive step numbers")
    _check(0 < t.gamma <= 1, "'train.gamma' must be in (0, 1]")
    _check(0 <= t.warmup_steps < t.steps, "'train.warmup_steps' must be below 'train.steps'")
    _check(t.schedule != "cosine" or 0 <= t.min_lr <= t.lr,
           "'train.min_lr' must be between 0 and 'train.lr' for the cosine schedule")
    _check(0 <= t.beta1 < 1 and 0 <= t.beta2 < 1 and t.eps > 0, "Adam betas in [0, 1), eps > 0")
    _check(t.weight_decay >= 0 and t.clip_grad_norm >= 0, "weight decay / clipping must be >= 0")
    _one_of(t.precision, PRECISIONS, "train.precision")
    _one_of(t.loss, LOSSES, "train.loss")
    _check(0 <= t.ema_decay < 1, "'train.ema_decay' must be in [0, 1) (0 = off, e.g. 0.999)")
    for key in ("log_every", "val_every", "ckpt_every", "keep_checkpoints"):
        _check(getattr(t, key) >= 1, f"'train.{key}' must be at least 1")
    _check(t.val_images >= 0 and t.seed >= 0, "'train.val_images' and 'train.seed' must be >= 0")
    from .data.degrade import validate_section

    validate_section(cfg.degrade)
    _one_of(e.protocol, PROTOCOLS, "eval.protocol")
    _check(e.tile >= 0, "'eval.tile' must be >= 0 (it is obsolete and has no effect)")
    _one_of(r.device_target, DEVICE_TARGETS, "runtime.device_target")
    _check(r.device_id >= 0, "'runtime.device_id' must be >= 0")


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def model_config_from_dict(raw: dict[str, Any]) -> ModelConfig:
    """Rebuild the model section stored in a checkpoint (unknown keys are an error)."""
    cfg = config_from_dict({"model": raw}, source="checkpoint metadata")
    validate(cfg)
    return cfg.model

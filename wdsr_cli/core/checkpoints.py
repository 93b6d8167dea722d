"""Checkpoints that know their model.

A wdsr checkpoint is a MindSpore ``.ckpt`` file (written with a CRC, so a truncated or
corrupted file is detected on load) with one extra entry, ``wdsr_meta``: a JSON string holding
the model config, the scale, the step, metrics, the dataset id and (for training checkpoints)
the whole run config. Evaluate, export and upscale rebuild the network from it, so no flag can
build a network that does not match the weights.

Writes are atomic (:mod:`.fileio`): a temporary file in the same folder, then ``os.replace``;
no temporary file survives a failed save, and a save removes those of killed writers.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .config import ModelConfig, model_config_from_dict
from .errors import WdsrError

META_KEY = "wdsr_meta"  # prefixed: a metadata key equal to a parameter name breaks loading
FORMAT_VERSION = 1
EMA_PREFIX = "ema."  # the weight average in a training checkpoint: ema.<parameter name>
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "assets" / "weights"


@contextmanager
def _quiet_mindspore_logger():
    """MindSpore prints [ERROR]/[WARNING] lines (from Python and from C++, straight to file
    descriptor 2) before raising on a bad file; we raise our own one-line message instead.
    What it printed is passed on only when loading worked."""
    import sys
    import tempfile

    logger = logging.getLogger("mindspore")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    sys.stderr.flush()
    saved = os.dup(2)
    ok = False
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
            ok = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            logger.setLevel(level)
            if ok:
                captured.seek(0)
                text = captured.read()
                if text:
                    os.write(2, text)


def save_checkpoint(obj: Any, path: str | os.PathLike, meta: dict[str, Any],
                    extra: dict[str, np.ndarray] | None = None) -> Path:
    """Save a Cell (or a list of {"name", "data"} dicts) with metadata, atomically; ``extra``
    adds arrays under their own names (the weight average of a training checkpoint)."""
    import mindspore as ms

    from .fileio import remove_stale_temps, replacing

    path = Path(path)
    meta = {"format_version": FORMAT_VERSION, **meta}
    remove_stale_temps(path.parent)  # what a killed writer left (kill -9 during a save)
    try:
        # The temporary name keeps the .ckpt suffix (MindSpore appends one to any other name);
        # MindSpore writes <stem>.tmp first, which replacing() also removes on failure.
        appended = {name: ms.Tensor(array) for name, array in (extra or {}).items()}
        appended[META_KEY] = json.dumps(meta, sort_keys=True)
        with replacing(path, suffix=".ckpt") as tmp:
            ms.save_checkpoint(obj, str(tmp), append_dict=appended, crc_check=True)
    except OSError as exc:
        raise WdsrError(f"cannot write checkpoint '{path}': {exc.strerror or exc}",
                        "free some disk space, or check that the folder is writable") from None
    return path


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(parameters by name, metadata); missing, truncated, corrupt or foreign file -> WdsrError."""
    import mindspore as ms

    path = Path(path)
    if not path.is_file():
        raise WdsrError(f"checkpoint '{path}' does not exist",
                        "pass a .ckpt written by wdsr train (runs/<name>/best.ckpt)")
    try:
        with _quiet_mindspore_logger():
            params = ms.load_checkpoint(str(path), crc_check=True)
    except (ValueError, RuntimeError, OSError):
        raise WdsrError(f"checkpoint '{path}' is truncated or corrupted",
                        "use another checkpoint (e.g. the previous periodic one)") from None
    raw = params.pop(META_KEY, None)
    _check_finite(params, path)
    if raw is None:
        from . import modelzoo

        if modelzoo.is_modelzoo(params):  # weights trained with the MindSpore model zoo
            return modelzoo.convert(params, path)
        raise WdsrError(f"'{path}' is not a wdsr checkpoint (no model metadata) nor a "
                        "MindSpore model-zoo WDSR one", "use a checkpoint written by wdsr train")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError:
        raise WdsrError(f"checkpoint '{path}' has unreadable metadata") from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise WdsrError(f"checkpoint '{path}' was written by a newer wdsr",
                        "upgrade wdsr-cli to read it")
    return params, meta


def _check_finite(params: dict[str, Any], path: Path) -> None:
    """Every tensor finite: a NaN weight makes an all-black image, or a NaN training."""
    for name, value in params.items():
        array = as_array(value)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise WdsrError(f"checkpoint '{path}' holds NaN or infinite values (in '{name}'): "
                            "the training that wrote it diverged",
                            "use an earlier checkpoint of that run (runs/<name>/ckpt/step_*.ckpt), "
                            "or retrain with a lower train.lr")


def model_config_of(meta: dict[str, Any]) -> ModelConfig:
    try:
        return model_config_from_dict(meta["model"])
    except KeyError:
        raise WdsrError("checkpoint metadata has no model config") from None


def network_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Only the network's own weights (drop optimizer moments, step counters, ...). A training
    checkpoint of a run with a weight average (train.ema_decay) gives the average: it is what
    that run validates and keeps as best.ckpt; only --resume reads the raw weights."""
    skip = ("moment1.", "moment2.", "vhat.", "beta1_power", "beta2_power", "global_step",
            "learning_rate", "scale_sense", "current_step", EMA_PREFIX)
    weights = {k: v for k, v in params.items() if not k.startswith(skip)}
    weights.update({k[len(EMA_PREFIX):]: v for k, v in params.items() if k.startswith(EMA_PREFIX)})
    return weights


def load_network(path: str | os.PathLike, weight_norm: bool = True):
    """Rebuild the network a checkpoint describes and load its weights: (net, meta)."""
    from .model import build_model, fold_weight_norm

    params, meta = read_checkpoint(path)
    cfg = model_config_of(meta)
    if meta.get("weight_norm") is False:  # plain kernels (a model-zoo checkpoint): use as they are
        net = build_model(cfg, weight_norm=False)
        assign_parameters(net, params, path)
        net.set_train(False)
        return net, meta
    net = build_model(cfg)
    assign_parameters(net, network_parameters(params), path)
    net.set_train(False)
    return (net if weight_norm else fold_weight_norm(net)), meta


def init_parameters(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """The weights of ``train --init`` (any checkpoint wdsr reads), named as in a
    weight-normalised network: (parameters, metadata)."""
    params, meta = read_checkpoint(path)
    params = network_parameters(params)
    if meta.get("weight_norm") is False:
        from .modelzoo import with_weight_norm

        params = with_weight_norm(params)
    return params, meta


def check_init(path: str | os.PathLike, cfg: ModelConfig) -> tuple[int, int, dict[str, Any]]:
    """How many of ``cfg``'s parameters ``path`` can fill (same name and shape), out of how
    many, and its metadata. Reads the file; builds no network. WdsrError when none fits."""
    from .model_info import parameter_shapes

    params, meta = init_parameters(path)
    wanted = parameter_shapes(cfg)
    fits = [n for n, shape in wanted.items()
            if n in params and tuple(np.shape(as_array(params[n]))) == shape]
    if not fits:
        raise WdsrError(f"no parameter of --init checkpoint '{path}' fits this model",
                        "--init needs a checkpoint of the same variant and width (see "
                        "wdsr train --print-config)")
    return len(fits), len(wanted), meta


def as_array(value: Any) -> np.ndarray:
    """A checkpoint value (a MindSpore Parameter/Tensor, or numpy) as a numpy array."""
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


def assign_parameters(net: Any, params: dict[str, Any], source: Any, strict: bool = True) -> list:
    """Copy matching parameters into ``net``; strict: names and shapes must match exactly.
    Returns the names that were loaded."""
    from mindspore import Tensor

    own = dict(net.parameters_and_names())
    loaded = []
    for name, param in own.items():
        if name not in params:
            if strict:
                raise WdsrError(f"checkpoint '{source}' has no parameter '{name}'",
                                "the checkpoint does not match its recorded model config")
            continue
        data = as_array(params[name])
        if tuple(data.shape) != tuple(param.shape):
            if strict:
                raise WdsrError(f"checkpoint '{source}': '{name}' has shape {tuple(data.shape)}, "
                                f"the model expects {tuple(param.shape)}")
            continue
        param.set_data(Tensor(data.astype(np.float32)))
        loaded.append(name)
    return loaded


def bundled_checkpoint(scale: int, kind: str = "clean") -> Path | None:
    """The weights shipped with the package for this scale and kind, if any:
    ``wdsr_x{scale}.ckpt`` (clean: trained on bicubic LR), ``wdsr_photo_x{scale}.ckpt``
    (photo: trained on JPEG, noisy, blurred LR) or ``wdsr_photo_low_x{scale}.ckpt``
    (photo-low: for strongly compressed JPEGs)."""
    stem = "" if kind == "clean" else kind.replace("-", "_") + "_"
    path = BUNDLED_DIR / f"wdsr_{stem}x{scale}.ckpt"
    return path if path.is_file() else None

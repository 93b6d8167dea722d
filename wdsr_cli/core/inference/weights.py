"""One answer to "which weights run, and on what": evaluate, upscale and export ask
:func:`resolve`, and nothing else decides.

What the user can say, and what it means:

* ``--model FILE.onnx|FILE.mindir``: that exported model (``wdsr export``); its contract
  (:mod:`.contract`) gives scale and step. ONNX runs on ONNX Runtime, MINDIR on MindSpore.
* ``--checkpoint PATH``: that checkpoint; ``--checkpoint bundled``: the weights shipped with
  wdsr for the scale (default x2).
* nothing: the bundled weights (upscale), or the newest ``runs/*/best.ckpt`` of the scale, else
  the bundled weights (evaluate, export).

Two kinds of weights are bundled per scale (``--weights auto|clean|photo``): *clean*, trained on
the MATLAB-bicubic LR of benchmarks, and *photo*, trained on LR that went through blur, noise
and JPEG (``configs/bundled-photo-x*.yaml``). ``auto`` (:func:`bundled_kind`) gives a JPEG
input the photo weights and anything else the clean ones; the file's own quantization tables
say whether it is a JPEG and how hard it was compressed.

Backends (``--backend``): ``mindspore`` runs the checkpoint itself; ``onnxruntime`` runs the
checkpoint's *ONNX form*; ``auto`` takes ONNX Runtime on a CPU where it is installed (about 3x
faster than MindSpore there, README "Backends"), MindSpore on Ascend/GPU.

The ONNX form of a checkpoint is an ONNX file whose contract names the checkpoint's sha256 and
records a passed parity check against it (``wdsr export --format onnx``: the output compared
with MindSpore's on real photo crops). It is looked for next to the checkpoint
(``<stem>.onnx``: where ``wdsr export`` writes it, and where the bundled ones ship) and in the
cache (:func:`cache_dir`); when there is none, :func:`load_predictor` makes it once with
``wdsr export`` into the cache. A run whose form exists never imports MindSpore.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import runtime
from ..errors import WdsrError
from ..fileio import sha256_file
from .contract import read_contract

__all__ = [
    "BACKENDS",
    "WEIGHT_CHOICES",
    "Weights",
    "bundled_kind",
    "cache_dir",
    "checkpoint_facts",
    "load_predictor",
    "named_checkpoint",
    "onnx_form",
    "resolve",
    "start_mindspore",
]

BACKENDS = ("auto", "mindspore", "onnxruntime")
BACKEND_NAMES = {"mindspore": "MindSpore", "onnxruntime": "ONNX Runtime"}
CHECKPOINT_HINT = "pass a .ckpt written by wdsr train (runs/<name>/best.ckpt)"
NEWEST_RUN = "newest best.ckpt in ./runs for this scale"
BUNDLED = "bundled weights"
WEIGHT_CHOICES = ("auto", "clean", "photo")
# JPEG inputs compressed at or below this quality get the photo weights under --weights auto;
# above it a JPEG is nearly lossless and the clean weights gain more (README model card,
# "Which weights run").
PHOTO_MAX_QUALITY = 95


@dataclass(frozen=True)
class Weights:
    """What will run. ``kind``: checkpoint, onnx or mindir; ``path``: that file; ``why``: how
    it was chosen; ``backend``: mindspore or onnxruntime, ``backend_why``: why;
    ``onnx_form``: the checked ONNX form of a checkpoint, if it exists already."""

    kind: str
    path: Path
    scale: int
    step: int | None
    why: str
    backend: str
    backend_why: str
    onnx_form: Path | None = None
    device_target: str = "CPU"
    device_id: int = 0
    bundled: str | None = None  # "clean" or "photo" for the bundled weights, else None

    @property
    def label(self) -> str:
        """``checkpoint: PATH`` or ``model: PATH``."""
        return f"{'checkpoint' if self.kind == 'checkpoint' else 'model'}: {self.path}"

    @property
    def backend_label(self) -> str:
        return f"{BACKEND_NAMES[self.backend]} ({self.backend_why})"


# ------------------------------------------------------------------------------ MindSpore


def start_mindspore(device_target: str = "auto", device_id: int = 0) -> None:
    """MindSpore set up for inference (evaluate, upscale, export): GRAPH mode, seeded, the
    inference oneDNN cap (``runtime.prepare_environment``)."""
    runtime.init_mindspore(device_target, device_id, "graph", seed=0, purpose="inference")


# ---------------------------------------------------------------------------- checkpoints


def bundled_kind(requested: str, jpeg_quality: int | None, scale: int | None = None
                 ) -> tuple[str, str]:
    """(kind, why) of the bundled weights for one input: ``requested`` is ``--weights``;
    ``jpeg_quality`` the input's (:func:`data.degrade.jpeg_quality_of`), None if lossless.
    ``auto`` falls back to the clean weights where no photo weights are bundled for
    ``scale``."""
    from ..checkpoints import bundled_checkpoint

    if requested not in WEIGHT_CHOICES:
        raise WdsrError(f"unknown --weights '{requested}'",
                        "choose auto (photo weights for JPEG inputs), clean or photo")
    if requested != "auto":
        return requested, f"--weights {requested}"
    if jpeg_quality is None:
        return "clean", "auto: lossless input"
    if jpeg_quality > PHOTO_MAX_QUALITY:
        return "clean", f"auto: JPEG at quality ~{jpeg_quality}, nearly lossless"
    if scale is not None and bundled_checkpoint(scale, "photo") is None:
        return "clean", f"auto: JPEG, but no x{scale} photo weights are bundled"
    return "photo", f"auto: JPEG at quality ~{jpeg_quality}"


def named_checkpoint(checkpoint: str | os.PathLike | None, scale: int | None, *,
                     what: str = "checkpoint", hint: str = CHECKPOINT_HINT,
                     bundled: str = "clean") -> Path | None:
    """``--checkpoint`` (or ``--init``: ``what``, ``hint``) as a path: ``bundled`` resolved for
    the scale (default x2) and kind, and the file must exist (a folder is refused as such).
    None stays None. Reads nothing."""
    if checkpoint is None:
        return None
    if str(checkpoint) == "bundled":
        from ..checkpoints import bundled_checkpoint

        path = bundled_checkpoint(scale or 2, bundled)
        if path is None:
            kind = "" if bundled == "clean" else f" {bundled}"
            raise WdsrError(f"this version of wdsr has no bundled x{scale or 2}{kind} weights",
                            "bundled scales: 2, 3, 4")
        return path
    path = Path(checkpoint)
    if path.is_dir():  # a folder is not "missing": say which file was probably meant
        raise WdsrError(f"{what} '{path}' is a folder, not a checkpoint file",
                        f"pass a .ckpt file, e.g. {path / 'best.ckpt'}")
    if not path.is_file():
        raise WdsrError(f"{what} '{path}' does not exist", hint)
    return path


def cache_dir() -> Path:
    """Where ONNX forms of checkpoints are cached: ``$WDSR_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/wdsr``, else ``~/.cache/wdsr``."""
    if os.environ.get("WDSR_CACHE_DIR"):
        return Path(os.environ["WDSR_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wdsr"


def _form_contract(path: Path, sha256: str) -> dict[str, Any] | None:
    """The contract of ``path`` if it is a checked, any-size ONNX form of the checkpoint with
    this sha256; None otherwise (missing, unreadable, another checkpoint, not checked)."""
    if not path.is_file():
        return None
    try:
        contract = read_contract(path)
    except WdsrError:
        return None
    parity = contract.get("parity") or {}
    source = contract.get("checkpoint") or {}
    if contract["format"] != "onnx" or contract.get("input_size") is not None \
            or source.get("sha256") != sha256 \
            or not (parity.get("checked") and parity.get("passed")):
        return None
    return contract


def onnx_form(checkpoint: str | os.PathLike, sha256: str | None = None
              ) -> tuple[Path, dict[str, Any]] | None:
    """(file, contract) of the checkpoint's checked ONNX form, next to it or in the cache."""
    checkpoint = Path(checkpoint)
    sha256 = sha256 or sha256_file(checkpoint)
    for path in (checkpoint.with_suffix(".onnx"), cache_dir() / "onnx" / f"{sha256}.onnx"):
        contract = _form_contract(path, sha256)
        if contract is not None:
            return path, contract
    return None


def checkpoint_facts(checkpoint: str | os.PathLike, device_target: str = "auto",
                     device_id: int = 0) -> tuple[int, int | None]:
    """(scale, step) of a checkpoint: from its ONNX form's contract when there is one (no
    MindSpore needed), else read from the file (a corrupt file is reported here)."""
    form = onnx_form(checkpoint)
    if form is not None:
        recorded = form[1]["checkpoint"]
        return int(form[1]["scale"]), recorded.get("step")
    from ..checkpoints import model_config_of, read_checkpoint

    start_mindspore(device_target, device_id)
    _, meta = read_checkpoint(checkpoint)
    scale = meta.get("scale")
    if not isinstance(scale, int):
        scale = model_config_of(meta).scale
    return int(scale), meta.get("step")


def _newest_run(scale: int, runs_dir: str | os.PathLike, device_target: str, device_id: int
                ) -> tuple[tuple[Path, int | None] | None, list[int]]:
    """((path, step) of the newest ``runs/*/best.ckpt`` trained for ``scale`` or None, the
    other scales seen). Unreadable checkpoints are skipped."""
    runs = Path(runs_dir)
    candidates = sorted(runs.glob("*/best.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    others = []
    for path in candidates:
        try:
            s, step = checkpoint_facts(path, device_target, device_id)
        except WdsrError:
            continue
        if s == scale:
            return (path, step), []
        others.append(s)
    return None, sorted(set(others))


# -------------------------------------------------------------------------------- backends


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # e.g. sys.modules[module] = None: blocked
        return False


def _choose_backend(requested: str, target: str, form: Path | None) -> tuple[str, str]:
    """(backend, why) for a checkpoint."""
    from .backends import ONNX_INSTALL_HINT

    if requested == "mindspore":
        return "mindspore", "--backend mindspore"
    if requested == "onnxruntime":
        if not _installed("onnxruntime"):
            raise WdsrError("--backend onnxruntime needs ONNX Runtime, which is not installed",
                            ONNX_INSTALL_HINT)
        if form is None and not _installed("onnx"):
            raise WdsrError("--backend onnxruntime needs the 'onnx' package to make this "
                            "checkpoint's ONNX form", ONNX_INSTALL_HINT)
        return "onnxruntime", "--backend onnxruntime"
    if target != "CPU":
        return "mindspore", f"auto: {target} device"
    if not _installed("onnxruntime"):
        return "mindspore", "auto: ONNX Runtime is not installed"
    if form is None and not _installed("onnx"):
        return "mindspore", "auto: the 'onnx' package to make the ONNX form is not installed"
    return "onnxruntime", "auto: CPU with ONNX Runtime installed"


def _check_scale(what: str, path: Path, have: int, want: int | None) -> None:
    if want is not None and have != want:
        raise WdsrError(f"{what} '{path}' is a x{have} model, but the scale asked for is "
                        f"x{want}", f"pass --scale {have} or a x{want} {what}")


def _resolve_model(model: Path, scale: int | None, requested: str,
                   device_target: str, device_id: int) -> Weights:
    from .backends import model_format

    fmt = model_format(model)
    backend = "onnxruntime" if fmt == "onnx" else "mindspore"
    if requested not in ("auto", backend):
        raise WdsrError(f"'{model}' is a {fmt.upper()} model, which runs on "
                        f"{BACKEND_NAMES[backend]}, not --backend {requested}",
                        f"drop --backend, or pass --checkpoint to run on "
                        f"{BACKEND_NAMES[requested]}")
    contract = read_contract(model)
    _check_scale("model", model, int(contract["scale"]), scale)
    return Weights("onnx" if fmt == "onnx" else "mindir", model, int(contract["scale"]),
                   (contract.get("checkpoint") or {}).get("step"), "--model", backend,
                   f"a {fmt.upper()} model", None, device_target, device_id)


def resolve(checkpoint: str | os.PathLike | None = None, model: str | os.PathLike | None = None,
            scale: int | None = None, backend: str = "auto", *, default: str = "bundled",
            runs_dir: str | os.PathLike = "runs", device_target: str = "auto",
            device_id: int = 0, bundled: str = "clean") -> Weights:
    """What runs for what the user said (see the module docstring).

    ``bundled``: which bundled weights "bundled" means (``clean`` or ``photo``, see
    :func:`bundled_kind`). ``default``: what nothing means, ``"bundled"`` (upscale) or
    ``"newest"`` (the newest run's best.ckpt of the scale, else bundled: evaluate, export).
    Reads only what it must: a checkpoint with an ONNX form is not opened (its form's
    contract knows scale and step). WdsrError for anything that cannot run.
    """
    from ..checkpoints import bundled_checkpoint

    if backend not in BACKENDS:
        raise WdsrError(f"unknown backend '{backend}'", "choose auto, mindspore or onnxruntime")
    target = runtime.resolve_device_target(device_target)
    path = named_checkpoint(checkpoint, scale, bundled=bundled)
    is_bundled = str(checkpoint) == "bundled"
    if model is not None:
        if path is not None:
            raise WdsrError("give --checkpoint or --model, not both",
                            "--model runs an exported file, --checkpoint a .ckpt")
        return _resolve_model(Path(model), scale, backend, target, device_id)

    if path is not None:
        why = "--checkpoint"
        have, step = checkpoint_facts(path, target, device_id)
        _check_scale("checkpoint", path, have, scale)
        scale = have
    else:
        scale = scale or 2
        newest, others = (None, []) if default == "bundled" else \
            _newest_run(scale, runs_dir, target, device_id)
        if newest is not None:
            (path, step), why = newest, NEWEST_RUN
        else:
            path, is_bundled = bundled_checkpoint(scale, bundled), True
            why = BUNDLED if bundled == "clean" else f"bundled {bundled} weights"
            if path is None and default == "bundled":
                raise WdsrError(f"this version of wdsr has no bundled x{scale} weights yet",
                                "pass --checkpoint runs/<name>/best.ckpt (train one with "
                                "'wdsr train')")
            if path is None:
                seen = f" (runs/ has best.ckpt for x{', x'.join(map(str, others))})" \
                    if others else ""
                raise WdsrError(f"no x{scale} checkpoint found{seen} and no bundled x{scale} "
                                "weights", "pass --checkpoint PATH, or train one with "
                                "'wdsr train'")
            step = checkpoint_facts(path, target, device_id)[1]
    form = onnx_form(path) if backend != "mindspore" else None
    chosen, backend_why = _choose_backend(backend, target, form and form[0])
    return Weights("checkpoint", path, scale, step, why, chosen, backend_why,
                   form[0] if form and chosen == "onnxruntime" else None, target, device_id,
                   bundled if is_bundled else None)


# ------------------------------------------------------------------------------- running


def make_onnx_form(checkpoint: Path, device_target: str = "CPU", device_id: int = 0,
                   on_stage: Callable[[str], None] | None = None) -> Path:
    """Write the checkpoint's ONNX form into the cache with ``wdsr export`` (parity checked
    against the checkpoint; nothing is written if it fails) and return its path."""
    from .export import export_model

    folder = cache_dir() / "onnx"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WdsrError(f"cannot create the cache folder '{folder}': {exc.strerror or exc}",
                        "set WDSR_CACHE_DIR to a writable folder, or pass --backend "
                        "mindspore") from None
    start_mindspore(device_target, device_id)
    output = folder / f"{sha256_file(checkpoint)}.onnx"
    export_model(checkpoint, "onnx", output, force=True, check=True, on_stage=on_stage,
                 device_target=device_target)
    return output


def load_predictor(weights: Weights, on_stage: Callable[[str], None] | None = None,
                   **options: Any):
    """The Predictor that runs ``weights``; ``options`` go to the Predictor (e.g.
    ``self_ensemble``). A checkpoint chosen for ONNX Runtime whose ONNX form does not exist
    yet gets it made first (``on_stage`` hears about it)."""
    from .predictor import Predictor

    if weights.backend == "mindspore":
        start_mindspore(weights.device_target, weights.device_id)
    if weights.kind != "checkpoint":
        return Predictor.from_model(weights.path, **options)
    if weights.backend == "mindspore":
        return Predictor.from_checkpoint(weights.path, **options)
    form = weights.onnx_form or make_onnx_form(weights.path, weights.device_target,
                                               weights.device_id, on_stage)
    predictor = Predictor.from_model(form, **options)
    predictor.source = str(weights.path)
    return predictor

"""One answer to "which weights run, and on what": evaluate, upscale and export ask
:func:`resolve`, and nothing else decides.

What the user can say, and what it means:

* ``--model FILE.onnx|FILE.mindir``: that exported model (``wdsr export``); its contract
  (:mod:`.contract`) gives scale and step. ONNX runs on ONNX Runtime, MINDIR on MindSpore.
* ``--checkpoint PATH``: that checkpoint; ``--checkpoint bundled``: the weights shipped with
  wdsr for the scale (default x2).
* nothing: the bundled weights (upscale), or the newest ``runs/*/best.ckpt`` of the scale, else
  the bundled weights (evaluate, export).

Three kinds of weights are bundled per scale (``--weights auto|clean|photo|photo-low``):
*clean*, trained on the MATLAB-bicubic LR of benchmarks; *photo*, trained on LR that went
through blur, noise and JPEG (``configs/bundled-photo-x*.yaml``); *photo-low*, the photo weights
trained on further on JPEGs alone, better on strongly compressed ones and worse on light ones.
``auto`` (:func:`bundled_kind`) gives a JPEG input the photo-low weights up to quality
:data:`PHOTO_LOW_MAX_QUALITY`, the photo weights up to :data:`PHOTO_MAX_QUALITY`, and anything
else the clean ones; the file's own quantization tables say whether it is a JPEG and how hard
it was compressed. A lossless input, or a JPEG above :data:`PHOTO_MAX_QUALITY`
(:func:`reads_noise`), whose noise (:mod:`.noise`, colour or brightness) is strong enough gets
the photo weights too.

Engines (``--backend``): ``mindspore`` runs the checkpoint itself; ``onnxruntime`` and
``openvino`` run the checkpoint's *ONNX form*; ``auto`` takes, on a CPU, the engine the
measurements say is fastest there (:mod:`.device`), else MindSpore (Ascend/GPU, or no ONNX
engine installed). Precision (``--precision``): ``fp32`` (every engine), ``bf16`` (OpenVINO on a
CPU with native bf16, held to a checked tolerance: :mod:`.precision`), ``auto`` (bf16 where
:mod:`.device` says it is native and measured faster, else fp32). ``Weights`` says which ran and
why.

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
from typing import TYPE_CHECKING, Any

from .. import runtime
from ..errors import WdsrError
from ..fileio import sha256_file
from .contract import read_contract

if TYPE_CHECKING:
    from .noise import NoiseReading

__all__ = [
    "BACKENDS",
    "WEIGHT_CHOICES",
    "Weights",
    "brief",
    "bundled_kind",
    "check_weights_choice",
    "cache_dir",
    "checkpoint_facts",
    "load_predictor",
    "named_checkpoint",
    "onnx_form",
    "resolve",
    "start_mindspore",
]

BACKENDS = ("auto", "mindspore", "onnxruntime", "openvino")
BACKEND_NAMES = {"mindspore": "MindSpore", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
PRECISIONS = ("auto", "fp32", "bf16")
ONNX_ENGINES = ("onnxruntime", "openvino")  # engines that run ONNX forms
CHECKPOINT_HINT = "pass a .ckpt written by wdsr train (runs/<name>/best.ckpt)"
NEWEST_RUN = "newest best.ckpt in ./runs for this scale"
BUNDLED = "bundled weights"
WEIGHT_CHOICES = ("auto", "clean", "photo", "photo-low")
# JPEG inputs compressed at or below this quality get the photo weights under --weights auto;
# above it a JPEG is nearly lossless and the clean weights gain more (measured: clean wins at
# q95 at every scale, q93 is a tie, photo wins at q90 and below; the model card,
# wdsr_cli/assets/weights/MODEL_CARD.md "Photo against clean weights").
PHOTO_MAX_QUALITY = 92
# ... and at or below this one the photo-low weights (measured: they lose to the photo weights
# at q85 and above at every scale, win at q75 and below at every scale, and at q80 win at x2
# and x3 by 0.03-0.04 dB and tie at x4; the model card, "Photo against clean weights").
PHOTO_LOW_MAX_QUALITY = 80
# Lossy inputs that are not JPEG (:mod:`data.compression`), measured on the held-out photos
# (`scripts/lossy_gains.py`; the model card, "Other lossy formats"). A lossy WebP blocks as a
# JPEG does: at x4 q75 clean +1.05 dB over bicubic, photo +1.27; q80 +1.26 / +1.37; q85 a tie
# (+1.45 both, at x2 too); q90 +1.63 / +1.51. So up to q85 (read from its quantizer) it gets
# the photo weights, above it the clean ones unless its noise reads high (a noisy WebP q90,
# gray sigma 3: clean -0.02 dB, photo +1.24).
# HEIC smooths where JPEG blocks and the clean weights gain more at every quality measured (x4
# q50 +1.43 / +1.35): its quality is not read, and it is treated as lossless inputs are (its
# noise decides). AVIF smooths too, down to a quality: the photo weights win at q65 (x4 +1.27
# / +1.21, x2 +1.03 / +1.00) and below, the clean ones from q70 (x4 +1.43 / +1.40, x2 +1.24 /
# +1.17). So an AVIF whose quality (read from its AV1 quantizer) is up to q65 gets the photo
# weights, one above it, or unread, is treated as a lossless input. Up to q50 the photo-low
# weights gain a little more (q50 x2 +0.73 / +0.66, x3 +0.84 / +0.80, x4 a tie; q40 x2 +0.51 /
# +0.40, x4 +0.64 / +0.59); q55 is a tie.
WEBP_PHOTO_MAX_QUALITY = 85
AVIF_PHOTO_MAX_QUALITY = 65
AVIF_PHOTO_LOW_MAX_QUALITY = 50


@dataclass(frozen=True)
class Weights:
    """What will run. ``kind``: checkpoint, onnx or mindir; ``path``: that file; ``why``: how
    it was chosen; ``backend``: mindspore, onnxruntime or openvino, ``backend_why``: why;
    ``onnx_form``: the checked ONNX form of a checkpoint, if it exists already;
    ``precision``: fp32 or bf16, ``precision_why``: why."""

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
    precision: str = "fp32"
    precision_why: str = "fp32: the default"
    bundled: str | None = None  # "clean", "photo" or "photo-low" for the bundled weights

    @property
    def label(self) -> str:
        """``checkpoint: PATH`` or ``model: PATH``."""
        return f"{'checkpoint' if self.kind == 'checkpoint' else 'model'}: {self.path}"

    @property
    def checkpoint_file(self) -> str | None:
        """The checkpoint that runs, as a string; None for an exported ``--model``."""
        return str(self.path) if self.kind == "checkpoint" else None

    @property
    def runs_onnx(self) -> bool:
        return self.backend in ONNX_ENGINES


# ------------------------------------------------------------------------------ MindSpore


def start_mindspore(device_target: str = "auto", device_id: int = 0) -> None:
    """MindSpore set up for inference (evaluate, upscale, export): GRAPH mode, seeded, the
    inference oneDNN cap (``runtime.prepare_environment``)."""
    runtime.init_mindspore(device_target, device_id, "graph", seed=0, purpose="inference")


# ---------------------------------------------------------------------------- checkpoints


def check_weights_choice(requested: str) -> None:
    """``--weights`` must be one of :data:`WEIGHT_CHOICES` (WdsrError otherwise)."""
    if requested not in WEIGHT_CHOICES:
        raise WdsrError(f"unknown --weights '{requested}'",
                        "choose auto (photo weights for JPEG inputs), clean, photo or photo-low")


def bundled_kind(requested: str, jpeg_quality: int | None, scale: int | None = None,
                 noise: NoiseReading | None = None, lossy: str | None = None,
                 lossy_quality: int | None = None) -> tuple[str, str]:
    """(kind, why) of the bundled weights for one input: ``requested`` is ``--weights``;
    ``jpeg_quality`` the input's (:func:`data.compression.jpeg_quality_of`), None if lossless;
    ``noise`` its :func:`.noise.noise_reading`, None if not read (:func:`reads_noise`);
    ``lossy`` the lossy format of a file that is not a JPEG (``WebP``, ``HEIC``, ``AVIF``:
    :func:`data.compression.lossy_format_of`), ``lossy_quality`` a lossy WebP's or an AVIF's
    quality, None if unread (:data:`WEBP_PHOTO_MAX_QUALITY`, :data:`AVIF_PHOTO_MAX_QUALITY`).
    ``auto`` falls back to the clean weights where no photo weights are bundled for
    ``scale``."""
    from ..checkpoints import bundled_checkpoint

    check_weights_choice(requested)
    if requested != "auto":
        return requested, f"--weights {requested}"

    def why(form: str, facts: list[str]) -> str:  # "auto: <form>[; facts]": brief() keeps form
        return f"auto: {form}" + (f"; {', '.join(facts)}" if facts else "")

    facts: list[str] = []
    form = f"JPEG q~{jpeg_quality}" if jpeg_quality is not None else \
        f"{lossy} q~{lossy_quality}" if lossy_quality is not None else \
        "lossy WebP" if lossy == "WebP" else f"{lossy} input" if lossy else "lossless input"
    if reads_noise(jpeg_quality, lossy, lossy_quality):  # only noise asks for photo weights
        compressed = jpeg_quality is not None or lossy is not None
        if noise is None or not noise.noisy_at(compressed):
            facts = (["nearly lossless"] if jpeg_quality is not None else
                     ["lightly compressed"] if lossy == "WebP" else []) + \
                ([] if noise is None else [noise.describe(compressed)])
            return "clean", why(form, facts)
        form, facts = f"noisy {form}", [noise.describe(compressed)]
    if scale is not None and bundled_checkpoint(scale, "photo") is None:
        return "clean", why(form, [f"no x{scale} photo weights are bundled"])
    low = (jpeg_quality is not None and jpeg_quality <= PHOTO_LOW_MAX_QUALITY
           or lossy == "AVIF" and lossy_quality is not None
           and lossy_quality <= AVIF_PHOTO_LOW_MAX_QUALITY) and (
        scale is None or bundled_checkpoint(scale, "photo-low") is not None)
    return ("photo-low", why(form, [*facts, "strongly compressed"])) if low else \
        ("photo", why(form, facts))


def reads_noise(jpeg_quality: int | None, lossy: str | None = None,
                lossy_quality: int | None = None) -> bool:
    """Whether ``--weights auto`` reads an input's noise: one its compression alone would give
    the clean weights. A lossless input (``jpeg_quality`` None), a JPEG above
    :data:`PHOTO_MAX_QUALITY`, a HEIC, an AVIF above :data:`AVIF_PHOTO_MAX_QUALITY` or of a
    quality unread, a lossy WebP above :data:`WEBP_PHOTO_MAX_QUALITY`. Noise costs the clean
    weights most there: at q95 x2 with gray sigma 3 they gain -0.26 dB over bicubic, the
    photo ones +1.27 (:mod:`.noise`); a WebP q90 -0.02 and +1.24."""
    if lossy == "WebP":
        return lossy_quality is not None and lossy_quality > WEBP_PHOTO_MAX_QUALITY
    if lossy == "AVIF" and lossy_quality is not None:
        return lossy_quality > AVIF_PHOTO_MAX_QUALITY
    return jpeg_quality is None or jpeg_quality > PHOTO_MAX_QUALITY


def brief(why: str) -> str:
    """The input's form a :func:`bundled_kind` reason names ("JPEG q~70", "noisy lossless
    input"), without what else decided it: for a table cell."""
    return why.split("; ")[0].removeprefix("auto: ")


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
    if path.exists() and not path.is_file():  # a FIFO or device: never opened
        raise WdsrError(f"{what} '{path}' is not a regular file (a FIFO, socket or device)",
                        hint)
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


CACHE_HINT = ("set WDSR_CACHE_DIR to a writable folder (where wdsr keeps ONNX forms and "
              "precision checks), or pass --backend mindspore")


def _form_contract(path: Path, sha256: str) -> tuple[dict[str, Any] | None, str | None]:
    """(contract, None) if ``path`` is a checked, any-size ONNX form of the checkpoint with
    this sha256 and the file is the one its contract describes (sha256 and size); else (None,
    why it is not, or None where there is nothing to say: no file, no contract yet)."""
    if not path.is_file():
        return None, None
    from .contract import contract_path

    if not contract_path(path).is_file():
        return None, None  # a form being written (file first, contract last), or not a form
    try:
        contract = read_contract(path)
    except WdsrError as exc:
        return None, f"its contract is unreadable: {exc.message}"
    parity = contract.get("parity") or {}
    source = contract.get("checkpoint") or {}
    if contract["format"] != "onnx" or contract.get("input_size") is not None:
        return None, "it is not an any-size ONNX model"
    if source.get("sha256") != sha256:
        return None, "it was made from another checkpoint"
    if not (parity.get("checked") and parity.get("passed")):
        return None, "it has no passed parity check"
    try:
        size = path.stat().st_size
        same = size == contract.get("bytes") and sha256_file(path) == contract.get("sha256")
    except OSError as exc:
        return None, f"it cannot be read: {exc.strerror or exc}"
    if not same:
        return None, "the file is not the one its contract describes (changed or truncated)"
    return contract, None


def _discard(path: Path) -> None:
    """Remove a cached ONNX form that failed its check (file and contract)."""
    from .contract import contract_path

    for p in (path, contract_path(path)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise WdsrError(f"the cached ONNX form '{path}' failed its check and cannot be "
                            f"removed: {exc.strerror or exc}", CACHE_HINT) from None


_NOTED: set[str] = set()  # forms next to a checkpoint already noted as unusable
_DAMAGED = ("its contract is unreadable", "it cannot be read", "the file is not the one")


def onnx_form(checkpoint: str | os.PathLike, sha256: str | None = None
              ) -> tuple[Path, dict[str, Any]] | None:
    """(file, contract) of the checkpoint's checked ONNX form, next to it or in the cache.

    A cached form that fails its check (another checkpoint's, no passed parity check, a file
    that is not the one its contract describes: tampered, truncated) is discarded with a note,
    so it is made again; one next to the checkpoint (the user's) is left alone and not used."""
    import warnings

    from ..errors import WdsrNote
    from ..fileio import remove_stale_temps

    checkpoint = Path(checkpoint)
    sha256 = sha256 or sha256_file(checkpoint)
    beside, cached = checkpoint.with_suffix(".onnx"), cache_dir() / "onnx" / f"{sha256}.onnx"
    remove_stale_temps(cached.parent)  # what a killed maker left (its private folder)
    for path in (beside, cached):
        contract, why = _form_contract(path, sha256)
        if contract is not None:
            return path, contract
        if why is None or (path == beside and not why.startswith(_DAMAGED)):
            continue  # nothing there, or a user's export that is not a checked form
        if path == cached:
            _discard(path)
            warnings.warn(f"the cached ONNX form '{path}' failed its check ({why}): it was "
                          "removed and is made again", WdsrNote, stacklevel=2)
        elif str(path) not in _NOTED:
            _NOTED.add(str(path))
            warnings.warn(f"'{path}' is not a usable ONNX form of '{checkpoint}' ({why}): "
                          "not used", WdsrNote, stacklevel=2)
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


def _require(engine: str, form: Path | None, why: str) -> str | None:
    """None if ``engine`` can run here (installed, and the ONNX form exists or can be made),
    else what is missing (for a message)."""
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}[engine]
    if not _installed(module):
        return BACKEND_NAMES[engine]
    if form is None and not (_installed("onnx") and _installed("onnxruntime")):
        return f"the 'onnx' and 'onnxruntime' packages (to make the ONNX form{why})"
    return None


def _install_hint(engine: str) -> str:
    from .backends import ONNX_INSTALL_HINT
    from .backends.ov import OPENVINO_INSTALL_HINT

    return OPENVINO_INSTALL_HINT if engine == "openvino" else ONNX_INSTALL_HINT


def _choose_engine(requested: str, precision: str, target: str, form: Path | None,
                   onnx_only: bool = False) -> tuple[str, str, str, str]:
    """(engine, why, precision, why) for a checkpoint (or, ``onnx_only``, an ONNX file)."""
    from .device import bf16_native, cpu_facts, fp32_engine

    if precision not in PRECISIONS:
        raise WdsrError(f"unknown precision '{precision}'", "choose auto, fp32 or bf16")
    if requested in ONNX_ENGINES:
        missing = _require(requested, form, " of this checkpoint")
        if missing is not None:
            raise WdsrError(f"--backend {requested} needs {missing}, which is not installed",
                            _install_hint(requested))
        engine, why = requested, f"--backend {requested}"
    elif requested == "mindspore":
        engine, why = "mindspore", "--backend mindspore"
    elif target != "CPU" and not onnx_only:
        engine, why = "mindspore", f"auto: {target} device"
    else:  # auto on a CPU: what the measurements say, among what is installed
        cpu = cpu_facts()
        engine, why = fp32_engine(cpu)
        if precision in ("auto", "bf16") and _require("openvino", form, "") is None \
                and bf16_native():
            engine, why = "openvino", "bf16 native on this CPU: OpenVINO bf16 measured " \
                "2.1-3.5x faster than fp32"
        missing = _require(engine, form, "")
        other = "onnxruntime" if engine == "openvino" else "openvino"
        if missing is not None and _require(other, form, "") is None:
            engine, why = other, f"{missing} is not installed"
        elif missing is not None:
            if onnx_only:
                raise WdsrError("this ONNX model needs ONNX Runtime or OpenVINO, and neither "
                                "is installed", _install_hint("onnxruntime"))
            engine, why = "mindspore", f"no ONNX engine: {missing} is not installed"
        why = f"auto: {why}"

    if precision == "fp32":
        return engine, why, "fp32", "--precision fp32"
    if precision == "bf16":
        if engine != "openvino" and requested != "auto":
            raise WdsrError(f"--precision bf16 runs on OpenVINO only, not on "
                            f"{BACKEND_NAMES[engine]}", "pass --backend openvino, or "
                            "--precision fp32")
        if not bf16_native():
            raise WdsrError(f"this CPU ({cpu_facts().label}) has no native bf16, so OpenVINO "
                            "would only emulate it (slower, not faster)",
                            "use --precision fp32 (or auto)")
        if engine != "openvino":
            raise WdsrError(f"--precision bf16 runs on OpenVINO, which cannot run here "
                            f"({why})", _install_hint("openvino"))
        return engine, why, "bf16", "--precision bf16"
    if engine == "openvino" and bf16_native():
        return engine, why, "bf16", "auto: native bf16 on this CPU, measured faster " \
            "(within the checked tolerance)"
    reason = "no native bf16 on this CPU" if engine == "openvino" else \
        f"{BACKEND_NAMES[engine]} runs fp32 only"
    return engine, why, "fp32", f"auto: {reason}"


def _check_scale_matches(what: str, path: Path, have: int, want: int | None) -> None:
    if want is not None and have != want:
        raise WdsrError(f"{what} '{path}' is a x{have} model, but the scale asked for is "
                        f"x{want}", f"pass --scale {have} or a x{want} {what}")


def _resolve_model(model: Path, scale: int | None, requested: str, precision: str,
                   device_target: str, device_id: int) -> Weights:
    from .backends import model_format

    fmt = model_format(model)
    if fmt == "onnx" and requested != "mindspore":
        engine, why, prec, prec_why = _choose_engine(requested, precision, "CPU", model,
                                                     onnx_only=True)
        if requested == "auto":
            why = f"a ONNX model, {why}"
    else:
        backend = "onnxruntime" if fmt == "onnx" else "mindspore"
        if requested not in ("auto", backend):
            raise WdsrError(f"'{model}' is a {fmt.upper()} model, which runs on "
                            f"{BACKEND_NAMES[backend]}, not --backend {requested}",
                            f"drop --backend, or pass --checkpoint to run on "
                            f"{BACKEND_NAMES[requested]}")
        if precision == "bf16":
            raise WdsrError(f"--precision bf16 runs on OpenVINO only, and '{model}' is a "
                            f"{fmt.upper()} model", "use --precision fp32")
        engine, why, prec = backend, f"a {fmt.upper()} model", "fp32"
        prec_why = "--precision fp32" if precision == "fp32" else \
            f"auto: {BACKEND_NAMES[backend]} runs fp32 only"
    contract = read_contract(model)
    _check_scale_matches("model", model, int(contract["scale"]), scale)
    return Weights("onnx" if fmt == "onnx" else "mindir", model, int(contract["scale"]),
                   (contract.get("checkpoint") or {}).get("step"), "--model", engine,
                   why, None, device_target, device_id, prec, prec_why)


def resolve(checkpoint: str | os.PathLike | None = None, model: str | os.PathLike | None = None,
            scale: int | None = None, backend: str = "auto", *, default: str = "bundled",
            runs_dir: str | os.PathLike = "runs", device_target: str = "auto",
            device_id: int = 0, precision: str = "fp32", bundled: str = "clean") -> Weights:
    """What runs for what the user said (see the module docstring).

    ``default``: what nothing means, ``"bundled"`` (upscale) or ``"newest"`` (the newest
    run's best.ckpt of the scale, else bundled: evaluate, export). Reads only what it must:
    a checkpoint with an ONNX form is not opened (its form's contract knows scale and step).
    ``precision``: ``fp32`` (the library's and evaluate's default), ``bf16`` or ``auto``
    (upscale's default). ``bundled``: which bundled weights "bundled" means (``clean``,
    ``photo`` or ``photo-low``, see :func:`bundled_kind`). WdsrError for anything that cannot run.
    """
    from ..checkpoints import bundled_checkpoint

    if backend not in BACKENDS:
        raise WdsrError(f"unknown backend '{backend}'",
                        "choose auto, mindspore, onnxruntime or openvino")
    if precision not in PRECISIONS:
        raise WdsrError(f"unknown precision '{precision}'", "choose auto, fp32 or bf16")
    target = runtime.resolve_device_target(device_target)
    path = named_checkpoint(checkpoint, scale, bundled=bundled)
    is_bundled = str(checkpoint) == "bundled"
    if model is not None:
        if path is not None:
            raise WdsrError("give --checkpoint or --model, not both",
                            "--model runs an exported file, --checkpoint a .ckpt")
        return _resolve_model(Path(model), scale, backend, precision, target, device_id)

    if path is not None:
        why = "--checkpoint"
        have, step = checkpoint_facts(path, target, device_id)
        _check_scale_matches("checkpoint", path, have, scale)
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
    chosen, backend_why, prec, prec_why = _choose_engine(backend, precision, target,
                                                         form and form[0])
    return Weights("checkpoint", path, scale, step, why, chosen, backend_why,
                   form[0] if form and chosen in ONNX_ENGINES else None, target, device_id,
                   prec, prec_why, bundled if is_bundled else None)


# ------------------------------------------------------------------------------- running


def make_onnx_form(checkpoint: Path, device_target: str = "CPU", device_id: int = 0,
                   on_stage: Callable[[str], None] | None = None) -> Path:
    """Write the checkpoint's ONNX form into the cache with ``wdsr export`` (parity checked
    against the checkpoint; nothing is written if it fails) and return its path."""
    from ..fileio import check_writable_folder
    from .export import export_model

    folder = cache_dir() / "onnx"
    check_writable_folder(folder, CACHE_HINT)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WdsrError(f"cannot create the cache folder '{folder}': {exc.strerror or exc}",
                        CACHE_HINT) from None
    start_mindspore(device_target, device_id)
    output = folder / f"{sha256_file(checkpoint)}.onnx"
    try:
        export_model(checkpoint, "onnx", output, force=True, check=True, on_stage=on_stage,
                     device_target=device_target)
    except WdsrError as exc:
        if "--output" not in (exc.hint or ""):  # not about writing into the cache
            raise
        raise WdsrError(f"cannot make the ONNX form in the cache: {exc.message}",
                        CACHE_HINT) from None
    return output


def load_predictor(weights: Weights, on_stage: Callable[[str], None] | None = None,
                   **options: Any):
    """The Predictor that runs ``weights``; ``options`` go to the Predictor (e.g.
    ``self_ensemble``). A checkpoint chosen for an ONNX engine whose ONNX form does not exist
    yet gets it made first (``on_stage`` hears about it). A reduced precision runs only once
    its form has passed the check (:mod:`.precision`, cached): :class:`PrecisionError`
    otherwise. ``predictor.precision_check`` holds that check's numbers (None at fp32)."""
    from .predictor import Predictor

    if weights.backend == "mindspore":
        start_mindspore(weights.device_target, weights.device_id)
    if weights.kind == "mindir" or (weights.kind == "checkpoint"
                                    and weights.backend == "mindspore"):
        predictor = Predictor.from_model(weights.path, **options) if weights.kind == "mindir" \
            else Predictor.from_checkpoint(weights.path, **options)
        return predictor
    form = weights.path if weights.kind == "onnx" else (
        weights.onnx_form or make_onnx_form(weights.path, weights.device_target,
                                            weights.device_id, on_stage))
    predictor = Predictor.from_model(form, engine=weights.backend,
                                     precision=weights.precision, **options)
    if weights.precision != "fp32":
        from .device import cpu_facts
        from .precision import ensure_checked

        def pair():
            if on_stage is not None:
                on_stage(f"checking {weights.precision} against fp32 (once)")
            return (Predictor.from_model(form, engine=weights.backend, precision="fp32"),
                    Predictor(predictor.backend, predictor.scale, predictor.receptive_radius))

        from .precision import PrecisionError

        try:
            predictor.precision_check = ensure_checked(
                cache_dir(), predictor.meta.get("sha256") or sha256_file(form),
                predictor.backend.name, weights.precision, cpu_facts().label, predictor.scale,
                pair)
        except PrecisionError as exc:
            if not weights.precision_why.startswith("auto"):
                raise  # asked for by name: refused
            # auto: the form is outside its tolerance at bf16 here, so it runs at fp32
            failed = exc.result
            predictor = Predictor.from_model(form, engine=weights.backend, precision="fp32",
                                             **options)
            predictor.precision_check = failed
            predictor.precision_why = (f"auto: bf16 failed its check ({failed['uint8_max_diff']}"
                                       f" levels, {failed['psnr_change_db']:+.4f} dB), so fp32")
    if weights.kind == "checkpoint":
        predictor.source = str(weights.path)
    return predictor

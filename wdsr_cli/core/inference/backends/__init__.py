"""Backends: what runs a batch of LR windows through a network. Nothing else.

A backend maps an NCHW float32 batch on the 0..255 scale to the upscaled batch (see
:class:`Backend`); tiling, halos and self-ensemble are the Predictor's job
(:mod:`.predictor`). Four kinds:

* :class:`MindSporeBackend`: a live MindSpore WDSR cell (training validation, checkpoints);
* :class:`MindIRBackend`: a MINDIR file, ``ms.load`` + ``nn.GraphCell``;
* :class:`OnnxBackend`: an ONNX file in ONNX Runtime (optional: ``pip install
  'wdsr-cli[onnx]'``). It never imports MindSpore.
* :class:`OpenVinoBackend`: the same ONNX file in OpenVINO, fp32 or bf16, its compiled model
  cached (optional: ``pip install 'wdsr-cli[openvino]'``). It never imports MindSpore.

Each is one small file and alike: built from a checked file (or cell), a ``window`` (the LR
window side it runs best at; fixed per engine), ``precision``, ``name``, and ``backend(x)``
running one batch. A new engine is one more file here and one line in :func:`load_exported`.

Which one runs for what the user named is decided in :mod:`.weights`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ...errors import WdsrError
from ...fileio import sha256_file
from ..contract import MODEL_FORMATS, check_contract, contract_path, read_contract
from .cell import MindSporeBackend
from .mindir import MindIRBackend
from .ort import ONNX_INSTALL_HINT, OnnxBackend
from .ov import OPENVINO_INSTALL_HINT, OpenVinoBackend

__all__ = ["ENGINES", "ONNX_INSTALL_HINT", "OPENVINO_INSTALL_HINT", "Backend", "MindIRBackend",
           "MindSporeBackend", "OnnxBackend", "OpenVinoBackend", "load_exported",
           "model_format"]

ENGINES = {"mindir": ("mindspore",), "onnx": ("onnxruntime", "openvino")}  # by file format


@runtime_checkable
class Backend(Protocol):
    """What a Predictor needs from a model runtime (MindSpore, MINDIR, ONNX Runtime, ...).

    ``backend(x)`` takes a C-contiguous float32 array of shape ``(1, 3, H, W)`` holding RGB on
    the 0..255 scale, for any ``H, W >= 1``, and returns a float32 array of shape
    ``(1, 3, H * scale, W * scale)`` on the same scale, not clipped. It must be a pure function
    of its input (no state carried between calls) and must raise on failure.
    ``name`` is a short description for messages (e.g. ``"MindSpore CPU"``). Optional:
    ``precision``, what it computes in (``"fp32"``, the default, or ``"bf16"``), and
    ``window``, the LR window side the Predictor cuts images into for this engine (default
    ``WINDOW``).
    """

    name: str

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


def model_format(path: Path) -> str:
    """"mindir" or "onnx" for an existing exported model file; a one-line error otherwise."""
    if not path.is_file():
        raise WdsrError(f"model '{path}' does not exist",
                        "pass a .mindir or .onnx file written by wdsr export")
    fmt = MODEL_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise WdsrError(f"'{path}' is not an exported model (expected .mindir or .onnx)",
                        "--model takes a file written by wdsr export; pass a .ckpt "
                        "checkpoint with --checkpoint")
    return fmt


def load_exported(path: str | os.PathLike, contract: dict[str, Any] | None = None,
                  engine: str | None = None, precision: str = "fp32",
                  cache: str | os.PathLike | None = None) -> tuple[Backend, dict[str, Any]]:
    """(backend, contract) for an exported model file; the contract is read from
    ``<path>.json`` unless given and must describe this very file (format, sha256). A
    fixed-shape model (contract ``input_size``) runs only its own size: the Predictor wraps
    it in windows. ``engine``: for ONNX ``onnxruntime`` (default) or ``openvino``; MINDIR runs
    on ``mindspore``. ``precision``: ``fp32``, or ``bf16`` (OpenVINO only). ``cache``: the
    folder for OpenVINO's compiled blobs (default: the wdsr cache)."""
    path = Path(path)
    fmt = model_format(path)
    engine = engine or ENGINES[fmt][0]
    if engine not in ENGINES[fmt]:
        raise WdsrError(f"'{path}' is a {fmt.upper()} model, which {engine} does not run",
                        f"choose {' or '.join(ENGINES[fmt])}")
    if precision != "fp32" and engine != "openvino":
        raise WdsrError(f"{engine} runs fp32 only, not {precision}", "use --precision fp32")
    sha256 = sha256_file(path) if path.is_file() else None
    backend: Backend
    if engine == "mindspore":
        backend = MindIRBackend(path)
    elif engine == "onnxruntime":
        backend = OnnxBackend(path)
    else:
        if cache is None:
            from ..weights import cache_dir

            cache = cache_dir()
        backend = OpenVinoBackend(path, precision, cache, sha256)
    if contract is None:
        contract = read_contract(path)
    else:
        contract = check_contract(contract, contract_path(path))
    if contract["format"] != fmt:
        raise WdsrError(f"contract file '{contract_path(path)}' describes a "
                        f"{contract['format']} model, not '{path}'",
                        "re-export with wdsr export")
    recorded = contract.get("sha256")
    if recorded and sha256 != recorded:
        raise WdsrError(f"contract file '{contract_path(path)}' does not describe '{path}' "
                        "(the model's sha256 differs: the file changed after export)",
                        "re-export with wdsr export")
    return backend, contract

"""Backends: what runs a batch of LR windows through a network. Nothing else.

A backend maps an NCHW float32 batch on the 0..255 scale to the upscaled batch (see
:class:`Backend`); tiling, halos and self-ensemble are the Predictor's job
(:mod:`.inference`). Three kinds:

* :class:`MindSporeBackend`: a live MindSpore WDSR cell (training validation, checkpoints);
* :class:`MindIRBackend`: a MINDIR file, ``ms.load`` + ``nn.GraphCell``;
* :class:`OnnxBackend`: an ONNX file in ONNX Runtime (optional: ``pip install
  'wdsr-cli[onnx]'``). It never imports MindSpore.

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

__all__ = ["ONNX_INSTALL_HINT", "Backend", "MindIRBackend", "MindSporeBackend", "OnnxBackend",
           "load_exported", "model_format"]


@runtime_checkable
class Backend(Protocol):
    """What a Predictor needs from a model runtime (MindSpore, MINDIR, ONNX Runtime, ...).

    ``backend(x)`` takes a C-contiguous float32 array of shape ``(1, 3, H, W)`` holding RGB on
    the 0..255 scale, for any ``H, W >= 1``, and returns a float32 array of shape
    ``(1, 3, H * scale, W * scale)`` on the same scale, not clipped. It must be a pure function
    of its input (no state carried between calls) and must raise on failure.
    ``name`` is a short description for messages (e.g. ``"MindSpore CPU"``).
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


def load_exported(path: str | os.PathLike, contract: dict[str, Any] | None = None
                  ) -> tuple[Backend, dict[str, Any]]:
    """(backend, contract) for an exported model file; the contract is read from
    ``<path>.json`` unless given and must describe this very file (format, sha256). A
    fixed-shape model (contract ``input_size``) runs only its own size: the Predictor wraps
    it in windows."""
    path = Path(path)
    fmt = model_format(path)
    backend: Backend = MindIRBackend(path) if fmt == "mindir" else OnnxBackend(path)
    if contract is None:
        contract = read_contract(path)
    else:
        contract = check_contract(contract, contract_path(path))
    if contract["format"] != fmt:
        raise WdsrError(f"contract file '{contract_path(path)}' describes a "
                        f"{contract['format']} model, not '{path}'",
                        "re-export with wdsr export")
    recorded = contract.get("sha256")
    if recorded and sha256_file(path) != recorded:
        raise WdsrError(f"contract file '{contract_path(path)}' does not describe '{path}' "
                        "(the model's sha256 differs: the file changed after export)",
                        "re-export with wdsr export")
    return backend, contract


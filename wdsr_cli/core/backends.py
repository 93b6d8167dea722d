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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .contract import MODEL_FORMATS, check_contract, contract_path, read_contract
from .errors import WdsrError
from .fileio import sha256_file

ONNX_INSTALL_HINT = "install the ONNX extra: pip install 'wdsr-cli[onnx]'"


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


class MindSporeBackend:
    """Runs a live MindSpore WDSR cell (weight-normalised or folded).

    The cell is put in inference mode (``set_train(False)``) and declared with dynamic N/H/W
    (``model.dynamic_input``) once, so GRAPH mode compiles one graph for every image size.
    The caller owns the cell: a trainer that validates with it calls ``set_train(True)`` again
    before the next training step.
    """

    def __init__(self, net: Any) -> None:
        from .model import dynamic_input

        net.set_train(False)
        if not getattr(net, "_wdsr_dynamic_input", False):
            dynamic_input(net)
            net._wdsr_dynamic_input = True
        self.net = net
        self.name = "MindSpore"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from mindspore import Tensor

        out = self.net(Tensor(np.ascontiguousarray(x, dtype=np.float32)))
        return out.asnumpy()


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for a moment: MindSpore's C++ logger prints an ``[ERROR]``
    line before it raises on a bad MINDIR file, and we raise our own one-line message."""
    import sys

    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)



class MindIRBackend:
    """Runs a MINDIR file (``wdsr export --format mindir``) with MindSpore: ``ms.load`` +
    ``nn.GraphCell``. A dynamic-shape MINDIR (the default export) takes any N/H/W; a
    fixed-shape one only its own size (:meth:`Predictor.from_model` wraps it in
    :class:`FixedSizeWindows`). MindSpore must already be set up (``runtime.init_mindspore``).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import mindspore as ms
        from mindspore import nn

        path = Path(path)
        if not path.is_file():
            raise WdsrError(f"model '{path}' does not exist", "check the path")
        try:
            with _quiet_stderr():
                self.net = nn.GraphCell(ms.load(str(path)))
        except (RuntimeError, ValueError, TypeError, OSError):
            raise WdsrError(f"'{path}' is not a MINDIR model that MindSpore can load",
                            "pass a .mindir file written by wdsr export") from None
        self.name = "MINDIR (MindSpore)"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from mindspore import Tensor

        out = self.net(Tensor(np.ascontiguousarray(x, dtype=np.float32)))
        return out.asnumpy()



class OnnxBackend:
    """Runs an ONNX file (``wdsr export --format onnx``) with ONNX Runtime (an optional
    dependency: ``pip install 'wdsr-cli[onnx]'``). Uses the CUDA provider when the installed
    ONNX Runtime has it, else the CPU one. Needs no MindSpore.

    ``window``: the LR window side the Predictor cuts images into for this engine. ONNX
    Runtime runs larger windows faster per pixel than MindSpore's 448 (measured on a 2000x2000
    x2 photo, README "Backends": 448 -> 41.6 s, 768 -> 37.0 s, 1024 -> 35.7 s); 768 keeps
    the process under 1 GB RSS. It is fixed per engine, so exactness never depends on it.
    """

    window = 768

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if not path.is_file():
            raise WdsrError(f"model '{path}' does not exist", "check the path")
        try:
            import onnxruntime as ort
        except ImportError:
            raise WdsrError(f"'{path}' is an ONNX model, but ONNX Runtime is not installed",
                            ONNX_INSTALL_HINT) from None
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in available] or available
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options,
                                                providers=providers)
        except Exception:  # ONNX Runtime raises its own types (InvalidProtobuf, Fail, ...)
            raise WdsrError(f"'{path}' is not an ONNX model that ONNX Runtime can load",
                            "pass a .onnx file written by wdsr export") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise WdsrError(f"'{path}' has {len(inputs)} inputs and {len(outputs)} outputs; a "
                            "wdsr model has one of each", "pass a .onnx written by wdsr export")
        self.input_name = inputs[0].name
        provider = self.session.get_providers()[0].replace("ExecutionProvider", "")
        self.name = f"ONNX Runtime {ort.__version__} ({provider})"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        feed = {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}
        return self.session.run(None, feed)[0]



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


"""An ONNX file in ONNX Runtime (optional: ``pip install 'wdsr-cli[onnx]'``); no MindSpore."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import WdsrError

ONNX_INSTALL_HINT = "install the ONNX extra: pip install 'wdsr-cli[onnx]'"


class OnnxBackend:
    """Runs an ONNX file (``wdsr export --format onnx``) with ONNX Runtime (an optional
    dependency: ``pip install 'wdsr-cli[onnx]'``). Uses the CUDA provider when the installed
    ONNX Runtime has it, else the CPU one. Needs no MindSpore.

    ``window``: the LR window side the Predictor cuts images into for this engine. ONNX
    Runtime runs larger windows faster per pixel than MindSpore's 448 (measured on a 2000x2000
    x2 photo, docs/engines.md "Windows": 448 -> 41.6 s, 768 -> 37.0 s, 1024 -> 35.7 s); 768 keeps
    the process under 1 GB RSS. It is fixed per engine, so exactness never depends on it.
    """

    window = 768
    precision = "fp32"  # ONNX Runtime's CPU engine has no bf16 convolutions on x86

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

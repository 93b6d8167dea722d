"""An ONNX file in OpenVINO (optional: ``pip install 'wdsr-cli[openvino]'``); no MindSpore.

It reads the same checked ONNX forms as ONNX Runtime (:mod:`.ort`). The compiled model is
kept in OpenVINO's model cache (``CACHE_DIR``) in a folder of its own per model *content*,
precision and OpenVINO version (:func:`blob_folder`), so a changed ONNX file can never reuse a
stale blob and a second run skips compilation (``loaded_from_cache``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ...errors import WdsrError
from ...fileio import sha256_file
from .quiet import quiet_stderr

OPENVINO_INSTALL_HINT = "install the OpenVINO extra: pip install 'wdsr-cli[openvino]'"
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}  # wdsr's names -> INFERENCE_PRECISION_HINT


@contextmanager
def _without_isa_cap() -> Iterator[None]:
    """Hide MindSpore's oneDNN cap from OpenVINO for a moment.

    ``ONEDNN_MAX_CPU_ISA`` (``runtime.prepare_environment``: set in this process when a
    checkpoint's form was just made, or inherited) is read by OpenVINO's own oneDNN too, once,
    when its CPU plugin first loads and makes kernels. Capped at AVX2 it has no bf16
    convolution ("Convolution node ... is not initialized") and a later model crashed the
    process. So every first touch of OpenVINO (the capability query, compiling a model and
    running its first tiny window) happens without it; MindSpore has read it already.
    """
    cap = os.environ.pop("ONEDNN_MAX_CPU_ISA", None)
    try:
        yield
    finally:
        if cap is not None:
            os.environ["ONEDNN_MAX_CPU_ISA"] = cap


def import_openvino():
    """The ``openvino`` module, or a one-line error with the install hint."""
    try:
        import openvino
    except ImportError:
        raise WdsrError("OpenVINO is not installed", OPENVINO_INSTALL_HINT) from None
    return openvino


def native_bf16() -> bool:
    """OpenVINO's own word on whether this CPU computes bf16 natively (AMX or AVX512-BF16):
    ``BF16`` in the CPU plugin's ``OPTIMIZATION_CAPABILITIES``."""
    ov = import_openvino()
    with _without_isa_cap():
        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def blob_folder(cache: Path, sha256: str, precision: str, version: str) -> Path:
    """``cache/openvino/<model sha256>-<precision>-ov<version>``: one model content, one
    precision, one OpenVINO build per folder."""
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in version.split("-")[0])
    return Path(cache) / "openvino" / f"{sha256}-{precision}-ov{safe}"


class OpenVinoBackend:
    """Runs an ONNX file with OpenVINO on the CPU at ``precision`` (``fp32`` or ``bf16``;
    OpenVINO's own default on a bf16 CPU is bf16, so fp32 is always asked for explicitly).

    ``window``: the LR window side the Predictor cuts images into for this engine, measured on
    a 2000x2000 x2 photo (AMD EPYC Zen 4, network s): fp32 448 -> 22.7, 768 -> 20.9, 1024 ->
    20.5; bf16 448 -> 10.2, 768 -> 9.4, 1024 -> 9.3. 768 is within 2% of 1024, keeps a 512x512
    photo in one call and the memory of ONNX Runtime's 768. Fixed per engine, so exactness
    never depends on it.
    ``cache``: the wdsr cache folder (compiled blobs go under ``cache/openvino``); None: no
    cache. ``sha256``: the file's, if known already (the contract check computed it).
    """

    window = 768

    def __init__(self, path: str | os.PathLike, precision: str = "fp32",
                 cache: str | os.PathLike | None = None, sha256: str | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise WdsrError(f"model '{path}' does not exist", "check the path")
        if precision not in PRECISION_HINTS:
            raise WdsrError(f"unknown precision '{precision}'", "choose fp32 or bf16")
        ov = import_openvino()
        with _without_isa_cap():
            core = ov.Core()
        self.cache_folder: Path | None = None
        if cache is not None:
            folder = blob_folder(Path(cache), sha256 or sha256_file(path), precision,
                                 ov.__version__)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:
                folder = None  # an unwritable cache only costs the compile time
            if folder is not None:
                core.set_property({"CACHE_DIR": str(folder)})
                self.cache_folder = folder
        try:
            with _without_isa_cap(), quiet_stderr():
                self.compiled = core.compile_model(
                    str(path), "CPU", {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision]})
                self.request = self.compiled.create_infer_request()
                self.request.infer([np.zeros((1, 3, 8, 8), np.float32)])
        except Exception:  # OpenVINO raises RuntimeError and its own types
            raise WdsrError(f"'{path}' is not an ONNX model that OpenVINO can load",
                            "pass a .onnx file written by wdsr export") from None
        if len(self.compiled.inputs) != 1 or len(self.compiled.outputs) != 1:
            raise WdsrError(f"'{path}' has {len(self.compiled.inputs)} inputs and "
                            f"{len(self.compiled.outputs)} outputs; a wdsr model has one of "
                            "each", "pass a .onnx written by wdsr export")
        self.loaded_from_cache = bool(self._property("LOADED_FROM_CACHE", False))
        self.precision = precision
        self.version = ov.__version__.split("-")[0]
        self.name = f"OpenVINO {self.version} (CPU, {precision})"

    def _property(self, name: str, default):
        try:
            return self.compiled.get_property(name)
        except Exception:  # older OpenVINO: the property does not exist
            return default

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.request.infer([np.ascontiguousarray(x, dtype=np.float32)])
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32)

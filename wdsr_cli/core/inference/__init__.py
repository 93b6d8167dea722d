"""Inference: everything that runs a trained WDSR on images, and nothing that trains one.

* :mod:`.predictor`: the Predictor and its fixed window grid (the one forward path of
  validation, ``evaluate`` and ``upscale``);
* :mod:`.backends`: one small file per engine (a live MindSpore cell, MINDIR, ONNX Runtime);
* :mod:`.contract`: what an exported model file promises (``<model>.json``);
* :mod:`.weights`: which weights run, and on which engine (the one resolver);
* :mod:`.upscale`: image files in and out; :mod:`.export`: MINDIR / ONNX / AIR files.

This package never imports training or launch code (``core.train``, ``core.launch``,
``core.data.pipeline``, ``core.data.prepare``); ``tests/test_inference_package.py`` checks it.
``from wdsr_cli.core.inference import Predictor`` is the library entry point.
"""

from .backends import Backend
from .predictor import (
    WINDOW,
    FixedSizeWindows,
    Predictor,
    Tile,
    dihedral_transforms,
    plan_windows,
    to_uint8,
    window_side,
)

__all__ = [
    "Backend",
    "FixedSizeWindows",
    "Predictor",
    "Tile",
    "WINDOW",
    "dihedral_transforms",
    "plan_windows",
    "to_uint8",
    "window_side",
]

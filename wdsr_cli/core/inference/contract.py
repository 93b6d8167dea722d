"""The exported-model contract: what a ``.mindir`` / ``.onnx`` written by ``wdsr export``
promises, in ``<model file>.json`` next to it (scale, receptive radius, input shape, the
model file's sha256 and the sha256 of the checkpoint it came from).

Export writes it (:mod:`.export`); the backends and the weight resolver read it
(:mod:`.backends`, :mod:`.weights`). Reading one needs neither MindSpore nor ONNX Runtime.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import WdsrError

MODEL_FORMATS = {".mindir": "mindir", ".onnx": "onnx"}  # what --model accepts, by suffix
CONTRACT_VERSION = 1


def contract_path(model: str | os.PathLike) -> Path:
    """Where ``wdsr export`` writes a model's I/O contract: ``<model file>.json``."""
    return Path(f"{os.fspath(model)}.json")


def read_contract(model: str | os.PathLike) -> dict[str, Any]:
    """The I/O contract of an exported model, checked for the fields a Predictor needs."""
    path = contract_path(model)
    if not path.is_file():
        raise WdsrError(f"exported model '{model}' has no contract file '{path}' next to it",
                        "re-export with wdsr export (the contract records scale and "
                        "receptive radius)")
    try:
        contract = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise WdsrError(f"contract file '{path}' is unreadable",
                        "re-export with wdsr export") from None
    return check_contract(contract, path)


def check_contract(contract: Any, where: str | os.PathLike) -> dict[str, Any]:
    def bad(what: str) -> WdsrError:
        return WdsrError(f"contract file '{where}' {what}", "re-export with wdsr export")

    if not isinstance(contract, dict):
        raise bad("is not a JSON object")
    version = contract.get("contract_version")
    if not isinstance(version, int):
        raise bad("has no contract_version")
    if version > CONTRACT_VERSION:
        raise WdsrError(f"contract file '{where}' was written by a newer wdsr",
                        "upgrade wdsr-cli to run this model")
    for key, low in (("scale", 1), ("receptive_radius", 0)):
        value = contract.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise bad(f"has no valid '{key}'")
    if contract.get("format") not in ("mindir", "onnx", "air"):
        raise bad("has no valid 'format'")
    size = contract.get("input_size")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise bad("has an invalid 'input_size'")
    return contract


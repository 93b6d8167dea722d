"""Which weights and engine a command runs, said once for evaluate and upscale alike.

* :func:`bundled_choice`: does ``--weights`` choose among the bundled weights?
* :func:`engine_facts`: what ran and why (engine, precision, its bf16 check), for the lines
  above a table and for ``--json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import WdsrError


def bundled_choice(choice: str, checkpoint: str | os.PathLike | None,
                   model: str | os.PathLike | None) -> bool:
    """True when ``--weights`` picks among the bundled weights (no --model, no checkpoint
    file); ``--weights clean|photo`` beside a file is refused."""
    from .weights import check_weights_choice

    check_weights_choice(choice)
    bundled = model is None and checkpoint in (None, Path("bundled"), "bundled")
    if choice != "auto" and not bundled:
        raise WdsrError(f"--weights {choice} chooses among the bundled weights, so it does not "
                        "go with --checkpoint FILE or --model", "drop --weights (or the file)")
    return bundled


def engine_facts(weights: Any, predictor: Any) -> dict[str, Any]:
    """Engine, precision and the precision check of a loaded predictor, with the reasons."""
    check = predictor.precision_check
    return {"backend": predictor.backend.name, "engine": weights.backend,
            "backend_why": weights.backend_why, "precision": predictor.precision,
            "precision_why": predictor.precision_why or weights.precision_why,
            "precision_check": None if check is None else {
                k: check[k] for k in ("passed", "uint8_max_diff", "psnr_change_db",
                                      "tolerance", "from_cache")}}

#!/usr/bin/env python3
"""The weights a run ended with, as a weights-only checkpoint like best.ckpt.

    python scripts/final_weights.py RUN_DIR OUT.ckpt

best.ckpt is the step that validation liked best; a stage shipped at the end of its schedule
(the photo-low weights: their validation scores JPEG q75, the top of the band they serve) takes
its last.ckpt instead, whose network weights are the run's weight average when it kept one
(``train.ema_decay``), without the optimizer state and the raw weights. Example:

    python scripts/final_weights.py runs/bundled-photo-x2-stage2 \\
        wdsr_cli/assets/weights/wdsr_photo_low_x2.ckpt
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wdsr_cli.core.checkpoints import (  # noqa: E402
    as_array,
    network_parameters,
    read_checkpoint,
    save_checkpoint,
)


def main() -> int:
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/final_weights.py RUN_DIR OUT.ckpt")
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    last = run / "last.ckpt"
    if out.resolve() == last.resolve():
        sys.exit("the output must not be the run's last.ckpt")
    params, meta = read_checkpoint(last)
    import mindspore as ms

    decay = yaml.safe_load((run / "config.yaml").read_text())["train"].get("ema_decay", 0.0)
    meta = {**meta, "kind": "final", "ema_decay": decay}
    items = [{"name": name, "data": ms.Tensor(as_array(value))}
             for name, value in sorted(network_parameters(params).items())]
    save_checkpoint(items, out, meta)
    print(f"{out}: {len(items)} tensors, step {meta['step']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

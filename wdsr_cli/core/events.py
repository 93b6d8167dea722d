"""Events a training rank emits, as JSON lines. Workers never draw: they emit these, and
whoever supervises them (the launcher, or the in-process runner) renders them.

Every event is a flat dict with ``type`` and ``rank``:

- ``start``: total_steps, start_step, run_dir, world_size, global_batch, dataset_id, bicubic_psnr
- ``step``: step (completed, 1-based), epoch, loss, loss_avg, lr, patches_per_s, data_wait, elapsed
- ``validation``: step, psnr, ssim, best_psnr, is_best, bicubic_psnr, protocol
- ``checkpoint``: step, path, kind ("last" | "best" | "periodic")
- ``done``: step, best_psnr, interrupted
- ``error``: message, hint
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TextIO

Event = dict[str, Any]
Emit = Callable[[Event], None]


def make(kind: str, rank: int = 0, /, **fields: Any) -> Event:
    return {"type": kind, "rank": rank, "time": round(time.time(), 3), **fields}


def encode(event: Event) -> str:
    return json.dumps(event, sort_keys=True, allow_nan=True)


def decode(line: str) -> Event | None:
    """One JSON line -> event; anything else (a torn line, stray output) -> None."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and "type" in value else None


class JsonLinesWriter:
    """An emitter that appends events to a stream, flushing each line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.stream.write(encode(event) + "\n")
        self.stream.flush()


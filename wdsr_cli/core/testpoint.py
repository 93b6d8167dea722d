"""Test-only hook: hold a process at a named point, so a test can interrupt it exactly there.

``WDSR_TEST_HOLD=POINT=MARKER`` (unset in normal use: then nothing happens). A process that
reaches ``POINT`` (``train-step-4``: step 4 done and checkpointed; ``prepare-image-z0``: a
prepare-data worker is about to read image ``z0``; ``upscale-write-a.png``: the result of
``a.png`` is about to be written; ``export-written-m.onnx``: the exported file is in its private
folder, not yet checked or moved into place; ``evaluate-image-a``: image ``a`` is scored, its
result not yet saved; ``report-commit-rep``: the report is staged, not yet moved to ``rep``)
appends its pid as a line to the file
``MARKER`` (so a test sees how many got there, e.g. both ranks) and waits until it is
signalled, killed or orphaned, or until the file ``MARKER.go`` exists (then it goes on). A
test that acts once the marker appears acts at that point on every machine, however fast or
slow.
"""

from __future__ import annotations

import os
import time

HOLD_ENV = "WDSR_TEST_HOLD"


def hold_if_asked(point: str) -> None:
    spec = os.environ.get(HOLD_ENV)
    if not spec:
        return
    wanted, _, marker = spec.partition("=")
    if wanted != point:
        return
    parent = os.getppid()
    with open(marker, "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    release = marker + ".go"
    while os.getppid() == parent and not os.path.exists(release):
        time.sleep(0.01)  # a Ctrl-C/SIGUSR1 raises KeyboardInterrupt in here

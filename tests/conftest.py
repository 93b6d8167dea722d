"""Shared test helpers. Tests import the *installed* package (make test installs it first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wdsr_cli.core import runtime

# Before any test imports mindspore: quiet logs and the fast oneDNN kernels (see runtime.py).
runtime.prepare_environment("CPU")

WDSR = str(Path(sys.executable).with_name("wdsr"))


def run_wdsr(*args: str, cwd: str | os.PathLike | None = None, env: dict | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `wdsr` console script, capturing text output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([WDSR, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def ms_cpu():
    """MindSpore configured once for the test session: CPU, GRAPH mode, seeded."""
    return runtime.init_mindspore("CPU", mode="graph", seed=0)

"""Shared test helpers. Tests import the *installed* package (make test installs it first)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from wdsr_cli.core import runtime

# Before any test imports mindspore: quiet logs and the fast oneDNN kernels (see runtime.py).
runtime.prepare_environment("CPU")
# ONNX forms of test checkpoints go to a fresh cache (inherited by `wdsr` subprocesses), never
# to the user's ~/.cache/wdsr.
os.environ["WDSR_CACHE_DIR"] = tempfile.mkdtemp(prefix="wdsr-test-cache-")
atexit.register(shutil.rmtree, os.environ["WDSR_CACHE_DIR"], True)

WDSR = str(Path(sys.executable).with_name("wdsr"))


def run_wdsr(*args: str, cwd: str | os.PathLike | None = None, env: dict | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `wdsr` console script, capturing text output (``env``: extra variables;
    a value of None removes the variable)."""
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    return subprocess.run([WDSR, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def wait_for_marker(proc: subprocess.Popen, marker: Path, lines: int = 1) -> None:
    """Wait until ``lines`` processes reached the test hold point writing ``marker``
    (core/testpoint.py); fail if ``proc`` ends first."""
    end = time.monotonic() + 600  # a safety net only: a held process waits until told
    while not (marker.exists() and len(marker.read_text().splitlines()) >= lines):
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"ended (exit {proc.returncode}) before the hold point: {err}")
        assert time.monotonic() < end, "never reached the hold point"
        time.sleep(0.02)


@pytest.fixture(scope="session")
def ms_cpu():
    """MindSpore configured once for the test session: CPU, GRAPH mode, seeded."""
    return runtime.init_mindspore("CPU", mode="graph", seed=0)


def one_line_error(res: subprocess.CompletedProcess) -> str:
    """Assert the ground rule for bad input (exit 2, one `error:` line, no traceback); return
    that line."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error:") and "Traceback" not in res.stderr
    return lines[0]


TINY_MODEL = {"variant": "b", "scale": 2, "n_feats": 8, "n_resblocks": 2}


def save_tiny_checkpoint(path: Path, scale: int = 2, *, step: int = 0, kind: str = "weights",
                         dataset_id: str = "test", **model: object) -> Path:
    """A tiny WDSR (random weights, 8 features, 2 blocks unless overridden) saved with the
    metadata wdsr train writes."""
    from wdsr_cli.core.checkpoints import save_checkpoint
    from wdsr_cli.core.config import Config, ModelConfig
    from wdsr_cli.core.model import build_model

    cfg = Config(model=ModelConfig(**{**TINY_MODEL, "scale": scale, **model}))
    return save_checkpoint(build_model(cfg.model), path, meta={
        "model": cfg.to_dict()["model"], "scale": scale, "step": step, "kind": kind,
        "dataset_id": dataset_id})


def rank_table_dict(servers: list[tuple[str, list[tuple[int, int]]]], **overrides) -> dict:
    """servers: [(server_id, [(device_id, rank_id), ...]), ...] -> HCCL v1.0 rank table JSON
    (documentation addresses only)."""
    data = {
        "version": "1.0",
        "server_count": str(len(servers)),
        "server_list": [
            {
                "server_id": sid,
                "device": [
                    {
                        "device_id": str(dev),
                        "device_ip": f"198.51.100.{s_index * 10 + dev + 1}",
                        "rank_id": str(rank),
                    }
                    for dev, rank in devices
                ],
                "host_nic_ip": "reserve",
            }
            for s_index, (sid, devices) in enumerate(servers)
        ],
        "status": "completed",
    }
    data.update(overrides)
    return data


def write_rank_table(path: Path, servers: list[tuple[str, list[tuple[int, int]]]]) -> Path:
    path.write_text(json.dumps(rank_table_dict(servers)))
    return path

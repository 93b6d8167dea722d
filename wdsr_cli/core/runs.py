"""Run folders: naming and claiming them, one training at a time, finding them again.

A run lives in ``runs/<name>/`` (what the trainer writes there: see train.py). A new run
claims ``runs/<name>``, or ``<name>-2``, ``-3``, ... if taken, with an atomic ``mkdir``; the
process training it holds the folder's lock (``.wdsr.lock``, :func:`fileio.lock_folder`);
``config.yaml`` holds its resolved config, which ``--resume`` reads back together with the
newest usable checkpoint (:func:`open_resume`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config, dump_yaml, load_config
from .errors import WdsrError
from .fileio import atomic_write


def run_name(name: str | None, cfg: Config) -> str:
    """The folder name of a run: --name, else the recipe's name, made filesystem-safe."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name or cfg.name).strip("-") or "run"


def _candidates(root: Path, name: str):
    """runs/<name>, runs/<name>-2, -3, ... (the folder names a new run tries in turn)."""
    yield root / name
    n = 2
    while True:
        yield root / f"{name}-{n}"
        n += 1


def next_run_dir(root: Path, name: str) -> Path:
    """The folder new_run_dir would create now (for --dry-run, which creates nothing)."""
    return next(c for c in _candidates(Path(root), name) if not c.exists())


def new_run_dir(root: Path, name: str) -> Path:
    """runs/<name>, or runs/<name>-2, -3, ... if taken. Checked writable before any work.

    mkdir without exist_ok claims a name atomically: two launchers on shared storage that
    race for the same name get different folders instead of one dying."""
    from .fileio import probe_writable

    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe_writable(root)
    except OSError as exc:
        raise WdsrError(f"cannot write run folder under '{root}': {exc.strerror or exc}",
                        "pass --runs-dir with a writable folder") from None
    for candidate in _candidates(root, name):
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")  # pragma: no cover - _candidates never ends


def _in_use(run_dir: Path, pid: int | None) -> WdsrError:
    who = f"wdsr process {pid}" if pid else "another wdsr process"
    return WdsrError(f"run folder '{run_dir}' is in use by {who}",
                     "one process trains a run at a time: wait for it to end"
                     + (f", or stop it (kill {pid})" if pid else ""))


def check_run_free(run_dir: Path) -> None:
    """Refuse a run folder that a live training holds (creates nothing)."""
    from .fileio import lock_holder

    pid = lock_holder(run_dir)
    if pid is not None:
        raise _in_use(run_dir, pid)


def claim_run(run_dir: Path) -> int:
    """Lock the run folder for this process's life (fileio.lock_folder); returns the lock's
    descriptor (closing it releases the lock)."""
    from .fileio import lock_folder, lock_holder

    try:
        fd = lock_folder(run_dir)
    except OSError as exc:
        raise WdsrError(f"cannot lock run folder '{run_dir}': {exc.strerror or exc}",
                        "check the folder's permissions") from None
    if fd is None:
        raise _in_use(run_dir, lock_holder(run_dir))
    return fd


def latest_run_dir(root: Path) -> Path:
    runs = [p for p in Path(root).glob("*/config.yaml")] if Path(root).is_dir() else []
    if not runs:
        raise WdsrError(f"no run to resume under '{root}'",
                        "start one with wdsr train, or pass --resume RUN_DIR")
    return max(runs, key=lambda p: p.stat().st_mtime).parent


def run_checkpoints(run_dir: Path) -> list[Path]:
    """Resume candidates, best first: last.ckpt, then periodic ones newest first."""
    periodic = sorted((run_dir / "ckpt").glob("step_*.ckpt"), reverse=True)
    last = run_dir / "last.ckpt"
    return ([last] if last.exists() else []) + periodic


@dataclass
class ResumeState:
    run_dir: Path
    config: Config
    checkpoint: Path | None
    params: dict[str, Any] | None
    meta: dict[str, Any] | None
    skipped: list[str] = field(default_factory=list)  # corrupt checkpoints passed over


def open_resume(run_dir: Path, overrides: list[str] | None = None) -> ResumeState:
    from .checkpoints import read_checkpoint

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise WdsrError(f"'{run_dir}' is not a wdsr run folder (no config.yaml)",
                        "pass the folder wdsr train created, e.g. runs/demo")
    cfg = load_config(str(cfg_path), overrides)
    skipped = []
    for ckpt in run_checkpoints(run_dir):
        try:
            params, meta = read_checkpoint(ckpt)
        except WdsrError as exc:
            skipped.append(f"{ckpt.name}: {exc.message}")
            continue
        if meta.get("kind") not in ("last", "periodic"):
            continue
        done = int(meta.get("step", 0))
        if done >= cfg.train.steps:
            raise WdsrError(f"'{run_dir}' has already trained {done} steps and train.steps is "
                            f"{cfg.train.steps}",
                            f"pass --steps N with N > {done} to train it further")
        return ResumeState(run_dir, cfg, ckpt, params, meta, skipped)
    if skipped:
        raise WdsrError(f"no usable checkpoint in '{run_dir}': " + "; ".join(skipped),
                        "start a new run, or --init from a good checkpoint")
    # A run that stopped before its first checkpoint: start it again from step 0, from the
    # same --init weights if it had some (train.init in its config.yaml).
    if cfg.train.init and not Path(cfg.train.init).is_file():
        raise WdsrError(f"this run started from --init '{cfg.train.init}', which no longer "
                        "exists", "put the file back, or start a new run")
    return ResumeState(run_dir, cfg, None, None, None, skipped)


def record_config(run_dir: Path, cfg: Config) -> None:
    """Write the run's resolved config (its plan: a resume with --steps N rewrites it, so the
    next bare --resume keeps N and the same learning-rate schedule)."""
    text = dump_yaml(cfg)
    path = Path(run_dir) / "config.yaml"
    if not path.is_file() or path.read_text() != text:
        atomic_write(path, text)


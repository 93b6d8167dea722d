"""One rank of ``wdsr train``, or the dynamic cluster's scheduler.

    python -m wdsr_cli.core.launch.worker RUN_DIR/launch/worker_node0.json

The launcher starts this once per process of a :class:`~.plan.LaunchPlan`; the JSON file (see
:func:`write_spec`) holds the resolved config, the run folder and the resume/init choices. Who
this process is comes from the plan's environment: ``WDSR_ROLE`` (worker | scheduler),
``WDSR_RANK``, ``WDSR_WORLD_SIZE``, ``WDSR_DEVICE_ID``, plus MindSpore's own variables.

A worker:

1. ``runtime.init_mindspore`` with the run's seed, the same on every rank (data parallel does
   not broadcast the initial weights; equal seeds make them equal);
2. when the world is larger than one: ``mindspore.communication.init()`` (HCCL from the rank
   table, or the dynamic cluster) and ``set_auto_parallel_context(parallel_mode=DATA_PARALLEL,
   gradients_mean=True)`` before any network exists, so the train step averages gradients
   over all ranks;
3. runs the :class:`~..train.Trainer`, which shards the data by rank and lets only rank 0
   validate and write the run folder.

It never draws: events go as JSON lines to ``WDSR_EVENTS_FILE`` and everything else (MindSpore's
output, tracebacks) to stdout/stderr, which the launcher sends to this rank's log file.
A :class:`~..errors.WdsrError` becomes an ``error`` event and exit code 2; any other exception an
``error`` event, the traceback in the log, and exit code 1. ``SIGUSR1`` raises
``KeyboardInterrupt`` (the launcher's "stop and save", see launcher.py).

The scheduler (``MS_ROLE=MS_SCHED``) only calls ``mindspore.communication.init()``: that call
runs the cluster's bookkeeping until every worker has finished and then ends the process.

Test hook: ``WDSR_DUMP_WEIGHTS=/some/path_{rank}.npz`` makes each rank save its final network
weights there (numpy ``.npz``), so tests can compare ranks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from .. import events
from ..errors import WdsrError
from ..fileio import atomic_write

SPEC_VERSION = 1
DUMP_ENV = "WDSR_DUMP_WEIGHTS"


# ------------------------------------------------------------------------------ the spec


def write_spec(run_dir: Path | str, config: dict[str, Any], *, device_target: str,
               resume: bool = False, resume_checkpoint: Path | str | None = None,
               init_checkpoint: Path | str | None = None, allow_data_change: bool = False,
               stop_after: int | None = None, node_rank: int = 0) -> Path:
    """Write the worker spec into the run folder (atomically) and return its path.

    One per node, so several nodes can share a run folder on common storage (resume)."""
    run_dir = Path(run_dir).resolve()
    spec = {
        "version": SPEC_VERSION,
        "run_dir": str(run_dir),
        "config": config,
        "device_target": device_target,
        "resume": bool(resume),
        "resume_checkpoint": str(Path(resume_checkpoint).resolve()) if resume_checkpoint else None,
        "init_checkpoint": str(Path(init_checkpoint).resolve()) if init_checkpoint else None,
        "allow_data_change": bool(allow_data_change),
        "stop_after": stop_after,
    }
    path = spec_path(run_dir, node_rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(spec, indent=2))
    return path


def spec_path(run_dir: Path | str, node_rank: int = 0) -> Path:
    return Path(run_dir).resolve() / "launch" / f"worker_node{node_rank}.json"


def worker_argv(spec_file: Path | str) -> list[str]:
    """The command line of every process of a launch (workers and scheduler alike)."""
    return [sys.executable, "-m", "wdsr_cli.core.launch.worker", str(spec_file)]


def read_spec(path: Path | str) -> dict[str, Any]:
    p = Path(path)
    try:
        spec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WdsrError(f"cannot read worker spec '{p}': {exc}",
                        "start training with wdsr train, which writes it") from None
    if not isinstance(spec, dict) or spec.get("version") != SPEC_VERSION:
        raise WdsrError(f"worker spec '{p}' has an unknown format",
                        "start training with this version of wdsr train")
    return spec


# ------------------------------------------------------------------------------ process setup


def _die_with_launcher() -> None:
    """SIGKILL this process when the launcher dies (even by SIGKILL)."""
    from ..runtime import die_with_parent

    pid = os.environ.get("WDSR_LAUNCHER_PID")
    if pid:
        die_with_parent(int(pid))


def _install_signal_handlers() -> None:
    # The launcher's "stop and save" (SIGINT is taken over by MindSpore's cluster code).
    signal.signal(signal.SIGUSR1, signal.default_int_handler)
    # Started from a non-interactive shell, SIGINT may be ignored; a direct run should stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _identity() -> tuple[int, int, int | None]:
    rank = int(os.environ.get("WDSR_RANK", "0"))
    world = int(os.environ.get("WDSR_WORLD_SIZE", "1"))
    device = os.environ.get("WDSR_DEVICE_ID")
    return rank, world, int(device) if device not in (None, "") else None


def _open_events(spec: dict[str, Any], rank: int):
    path = os.environ.get("WDSR_EVENTS_FILE") or str(
        Path(spec["run_dir"]) / "events" / f"rank_{rank}.jsonl")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a", encoding="utf-8")


# ------------------------------------------------------------------------------ roles


def run_scheduler(spec: dict[str, Any]) -> int:
    from .. import runtime

    # The scheduler computes nothing: MindSpore on the CPU whatever the workers use.
    runtime.init_mindspore("CPU", 0, "graph", None)
    from mindspore.communication import init

    init()  # returns (or rather, ends the process) when every worker has finished
    return 0


def setup_distributed(rank: int, world: int) -> None:
    """Join the cluster and make the train step average gradients over ``world`` ranks."""
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    init()
    got_rank, got_world = get_rank(), get_group_size()
    if (got_rank, got_world) != (rank, world):
        raise WdsrError(f"MindSpore placed this process as rank {got_rank} of {got_world}, the "
                        f"launch plan says rank {rank} of {world}",
                        "check RANK_ID/MS_NODE_ID in the environment (wdsr train --dry-run)")
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL,
                                 gradients_mean=True, device_num=world)


def run_worker(spec: dict[str, Any], emit: events.Emit, rank: int, world: int,
               device_id: int | None) -> dict[str, Any]:
    from .. import runtime
    from ..config import config_from_dict, validate
    from ..runs import ResumeState
    from ..train import Trainer, TrainOptions

    cfg = config_from_dict(spec["config"], source="worker spec")
    validate(cfg)
    target = spec.get("device_target") or cfg.runtime.device_target
    dev = device_id if device_id is not None else cfg.runtime.device_id
    # Same seed on every rank: identical initial weights without a broadcast.
    runtime.init_mindspore(target, dev, "graph", cfg.train.seed)
    if world > 1:
        setup_distributed(rank, world)
    run_dir = Path(spec["run_dir"])
    resume = None
    if spec.get("resume"):
        resume = ResumeState(run_dir, cfg, None, None, None)
        if spec.get("resume_checkpoint"):
            from ..checkpoints import read_checkpoint

            ckpt = Path(spec["resume_checkpoint"])
            params, meta = read_checkpoint(ckpt)
            resume = ResumeState(run_dir, cfg, ckpt, params, meta)
    init = Path(spec["init_checkpoint"]) if spec.get("init_checkpoint") else None
    opts = TrainOptions(run_dir=run_dir, resume=resume, init_checkpoint=init,
                        allow_data_change=bool(spec.get("allow_data_change")),
                        stop_after=spec.get("stop_after"), rank=rank, world_size=world)
    trainer = Trainer(cfg, opts, emit)
    result = trainer.run()
    dump = os.environ.get(DUMP_ENV)
    if dump:
        import numpy as np

        weights = {p.name: p.asnumpy() for p in trainer.net.get_parameters()}
        np.savez(dump.format(rank=rank), **weights)
    return result


def _exit_now(code: int) -> None:
    """Leave without MindSpore's exit-time cluster handshakes (they can wait on dead peers)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    _die_with_launcher()
    _install_signal_handlers()
    if len(args) != 1:
        print("usage: python -m wdsr_cli.core.launch.worker SPEC.json", file=sys.stderr)
        return 2
    rank, world, device_id = _identity()
    role = os.environ.get("WDSR_ROLE", "worker")
    if role == "scheduler" or os.environ.get("MS_ROLE") == "MS_SCHED":
        try:
            return run_scheduler(read_spec(args[0]))
        except KeyboardInterrupt:
            return 130
    stream = None
    try:
        spec = read_spec(args[0])
        stream = _open_events(spec, rank)
        emit = events.JsonLinesWriter(stream)
        run_worker(spec, emit, rank, world, device_id)
        return 0
    except KeyboardInterrupt:  # stopped before (or after) the training loop
        if stream is not None:
            events.JsonLinesWriter(stream)(events.make("done", rank, step=None, best_psnr=None,
                                                       interrupted=True))
        _exit_now(130)
    except WdsrError as exc:
        print(f"error: {exc.message}" + (f" - {exc.hint}" if exc.hint else ""), file=sys.stderr)
        if stream is not None:
            events.JsonLinesWriter(stream)(events.make("error", rank, message=exc.message,
                                                       hint=exc.hint))
        _exit_now(2)
    except Exception as exc:
        traceback.print_exc()
        if stream is not None:
            events.JsonLinesWriter(stream)(events.make(
                "error", rank, message=f"{type(exc).__name__}: {exc}",
                hint="the full traceback is in this rank's log"))
        _exit_now(1)
    return 1  # pragma: no cover - every branch above returns or exits


if __name__ == "__main__":
    sys.exit(main())

"""Start the processes of a :class:`~.plan.LaunchPlan` and supervise them until they finish.

Used for every ``wdsr train``, one device included, so there is one code path.

Each process gets ``spec.full_env()`` (the inherited environment minus ``unset_env`` plus the
plan's variables), its own log file (stdout and stderr, appended, so a resumed run keeps the
earlier output) and its own session (``start_new_session``), so a signal to its process group
reaches anything it starts. Workers never draw: they append JSON-line events (see
``core/events.py``) to ``run_dir/events/rank_<r>.jsonl`` (the path is in ``WDSR_EVENTS_FILE``).
The launcher tails those files and hands every event to ``on_event`` (the CLI passes the live
table's ``handle``). The files stay for post-mortem; ``launch/processes_node<k>.json`` records
what was started (pids, commands, logs) and how each process ended.

Supervision, checked every ``poll_interval`` seconds:

- a process that exits non-zero (a worker or the dynamic cluster's scheduler) is a failure,
  noticed at the next poll (MindSpore itself would leave the survivors blocked in an all-reduce
  until its heartbeat timeout, and then some);
- no event and no log output from any local process for ``stall_timeout`` seconds is a failure
  too, blamed on the quietest worker. The timeout is job-wide on purpose: while rank 0 validates
  (documented rank-0 validation) the other ranks legitimately wait in the next all-reduce and say
  nothing; a real hang silences everybody;
- on a failure every other process is stopped: SIGTERM to its process group, SIGKILL after
  ``grace`` seconds. The result names the failed rank and carries the tail of its log.

Ctrl-C (SIGINT to the launcher): the children live in their own sessions, so the terminal's
SIGINT reaches the launcher only. It asks rank 0, the rank that saves, to stop by sending it
``SIGUSR1``, which ``worker.py`` turns into ``KeyboardInterrupt`` (SIGINT cannot be used: once
``mindspore.communication.init()`` has run, MindSpore's own SIGINT handler kills the process with
SIGTERM). The trainer catches it at a step boundary, saves ``last`` and exits; the other ranks
are then stopped as above (they are waiting in an all-reduce that can no longer complete). A
second Ctrl-C, or ``interrupt_timeout`` seconds without rank 0 finishing, kills everything.
On a node without rank 0 (``--node-rank`` > 0) Ctrl-C just stops the local ranks.
SIGTERM or SIGHUP to the launcher stop every process at once.

Nothing is left behind: whatever happens, including an exception in the launcher itself, every
process group started here is killed before :meth:`Launcher.run` returns or raises. Workers also
ask the kernel to kill them if the launcher dies (``PR_SET_PDEATHSIG``, see worker.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import events
from ..runtime import proc_stat
from .plan import SCHEDULER, WORKER, LaunchPlan, ProcessSpec

#: Seconds without any event or log output (from every local process) before the job is
#: declared hung. Generous: a first GRAPH compile, or rank 0 validating on a CPU, can be slow.
DEFAULT_STALL_TIMEOUT = 300.0
#: Seconds between SIGTERM and SIGKILL when stopping processes.
DEFAULT_GRACE = 5.0
#: Seconds rank 0 gets to save ``last`` after Ctrl-C before everything is killed.
DEFAULT_INTERRUPT_TIMEOUT = 120.0
#: Seconds the scheduler gets to exit by itself once every worker has finished.
SCHEDULER_EXIT_TIMEOUT = 30.0
#: The signal that asks a worker to stop cleanly (see worker.py).
STOP_SIGNAL = signal.SIGUSR1
LOG_TAIL_LINES = 20

EVENTS_ENV = "WDSR_EVENTS_FILE"
LAUNCHER_PID_ENV = "WDSR_LAUNCHER_PID"


def events_path(run_dir: Path | str, rank: int) -> Path:
    return Path(run_dir) / "events" / f"rank_{rank}.jsonl"


def attach_event_files(plan: LaunchPlan) -> LaunchPlan:
    """Give every worker of ``plan`` its events file (``WDSR_EVENTS_FILE``) and unbuffered
    output (``PYTHONUNBUFFERED=1``, so its log shows lines as they are written), in place.

    Done before a dry run too, so the printed environment is what would be started; the
    launcher adds only ``WDSR_LAUNCHER_PID`` (its own pid) when it starts the processes.
    """
    for spec in plan.processes:
        spec.env.setdefault("PYTHONUNBUFFERED", "1")
        if spec.role == WORKER:
            spec.env.setdefault(EVENTS_ENV, str(events_path(plan.run_dir, spec.rank or 0)))
    return plan


def record_path(run_dir: Path | str, node: int = 0) -> Path:
    """Where a launch on node ``node`` records its processes (one file per node, so nodes can
    share a run folder)."""
    return Path(run_dir) / "launch" / f"processes_node{node}.json"


def process_label(spec: ProcessSpec) -> str:
    return "scheduler" if spec.role == SCHEDULER else f"rank {spec.rank}"


# ------------------------------------------------------------------------------ results


@dataclass
class Failure:
    """Why a launch failed: which process, how, and the end of its log."""

    role: str  # WORKER | SCHEDULER
    rank: int | None
    reason: str  # e.g. "exited with code 1", "was killed by SIGKILL", "stopped reporting ..."
    exit_code: int | None
    log_path: Path
    log_tail: list[str]
    error: dict[str, Any] | None = None  # the rank's own `error` event, if it sent one

    @property
    def label(self) -> str:
        return "scheduler" if self.role == SCHEDULER else f"rank {self.rank}"

    @property
    def user_error(self) -> bool:
        """The rank reported a WdsrError (bad input, exit code 2), not a crash."""
        return self.error is not None and self.exit_code == 2


@dataclass
class LaunchResult:
    status: str  # "ok" | "failed" | "interrupted" | "terminated"
    exit_code: int  # what the CLI should exit with: 0, 1, 2, 130, 128+signal
    failure: Failure | None = None
    returncodes: dict[str, int | None] = field(default_factory=dict)  # by process label
    done: dict[int, dict[str, Any]] = field(default_factory=dict)  # each rank's `done` event
    seconds: float = 0.0


# ------------------------------------------------------------------------------ plumbing


class _Tail:
    """Follow one append-only JSON-lines file from a byte offset; yields whole lines only."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.partial = b""

    def read(self) -> list[events.Event]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        if not data:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()  # b"" after a complete line
        out = []
        for line in lines:
            event = events.decode(line.decode("utf-8", errors="replace"))
            if event is not None:
                out.append(event)
        return out


@dataclass
class _Proc:
    spec: ProcessSpec
    popen: subprocess.Popen
    log_size: int
    tail: _Tail | None
    started: float
    last_activity: float
    returncode: int | None = None
    spoke: bool = False  # has sent an event (so it is past start-up and handles STOP_SIGNAL)

    @property
    def label(self) -> str:
        return process_label(self.spec)

    @property
    def alive(self) -> bool:
        return self.returncode is None


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a log file (decoded leniently); [] when it does not exist."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").rstrip("\n")
    return text.splitlines()[-lines:] if text else []


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def _signal_group(pid: int, sig: int) -> None:
    """Signal the whole process group of a child started with ``start_new_session``."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (psutil when present, else /proc); best effort."""
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:  # psutil missing, or the process is gone
        pass
    children: dict[int, list[int]] = {}
    try:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                ppid = int(proc_stat(entry)[1])
            except (TypeError, ValueError, IndexError):  # gone meanwhile, or no ppid field
                continue
            children.setdefault(ppid, []).append(int(entry))
    except OSError:
        return []
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


# ------------------------------------------------------------------------------ launcher


class Launcher:
    """Run a :class:`LaunchPlan` to the end; see the module docstring for the rules.

    ``on_event(event)`` gets every event of every local worker, in arrival order.
    ``on_status(label, rank, state)`` hears the launcher's own view of a process ("running",
    "exited", "failed", "stopping", "stopped"); ``on_note(text)`` gets one-line messages.
    Callbacks run in the launcher's thread; an exception in one stops the launch (and every
    process) and is re-raised.
    """

    def __init__(
        self,
        plan: LaunchPlan,
        on_event: Callable[[events.Event], None] | None = None,
        *,
        on_status: Callable[[str, int | None, str], None] | None = None,
        on_note: Callable[[str], None] | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        grace: float = DEFAULT_GRACE,
        interrupt_timeout: float = DEFAULT_INTERRUPT_TIMEOUT,
        scheduler_exit_timeout: float = SCHEDULER_EXIT_TIMEOUT,
        poll_interval: float = 0.2,
        handle_signals: bool = True,
        record: Path | None = None,
    ) -> None:
        self.plan = attach_event_files(plan)
        self.on_event = on_event or (lambda event: None)
        self.on_status = on_status or (lambda label, rank, state: None)
        self.on_note = on_note or (lambda text: None)
        self.stall_timeout = stall_timeout if stall_timeout and stall_timeout > 0 else None
        self.grace = grace
        self.interrupt_timeout = interrupt_timeout
        self.scheduler_exit_timeout = scheduler_exit_timeout
        self.poll_interval = poll_interval
        self.handle_signals = handle_signals
        self.procs: list[_Proc] = []
        self.done: dict[int, dict[str, Any]] = {}
        self.errors: dict[int, dict[str, Any]] = {}
        self._interrupts = 0
        self._terminate_signal: int | None = None
        self._stop_requested_at: float | None = None
        self._record_path = record or record_path(plan.run_dir)

    # -- public
    def interrupt(self) -> None:
        """What Ctrl-C does (also callable from another thread or a test)."""
        self._interrupts += 1

    def run(self) -> LaunchResult:
        started = time.monotonic()
        old_handlers = self._install_signal_handlers()
        try:
            self._start_all()
            result = self._supervise()
        except BaseException:
            self._stop_all(0.0, reason="launcher error")  # SIGKILL at once, then re-raise
            raise
        finally:
            try:
                self._stop_all(self.grace, reason="cleanup")
                self._reap_stragglers()
            finally:
                self._restore_signal_handlers(old_handlers)
        result.seconds = time.monotonic() - started
        result.returncodes = {p.label: p.returncode for p in self.procs}
        result.done = dict(self.done)
        self._write_record(result)
        return result

    # -- signals
    def _install_signal_handlers(self) -> dict[int, Any]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return {}
        old = {}

        def on_int(signum, _frame):
            self._interrupts += 1

        def on_term(signum, _frame):
            self._terminate_signal = signum

        for sig, handler in ((signal.SIGINT, on_int), (signal.SIGTERM, on_term),
                             (signal.SIGHUP, on_term)):
            try:
                old[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):  # pragma: no cover - not the main thread
                pass
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict[int, Any]) -> None:
        for sig, handler in old.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError, TypeError):  # pragma: no cover
                pass

    # -- start
    def _start_all(self) -> None:
        for spec in self.plan.processes:
            self._start(spec)
            self.on_status(process_label(spec), spec.rank, "starting")
        self._write_record(None)

    def _start(self, spec: ProcessSpec) -> None:
        log_path = Path(spec.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = spec.full_env()
        env[LAUNCHER_PID_ENV] = str(os.getpid())
        tail = None
        if spec.role == WORKER:
            ev_path = Path(env.get(EVENTS_ENV) or events_path(self.plan.run_dir, spec.rank or 0))
            ev_path.parent.mkdir(parents=True, exist_ok=True)
            tail = _Tail(ev_path, _file_size(ev_path))  # a resumed run appends: skip the old
        with open(log_path, "ab") as log:
            header = (f"===== {time.strftime('%Y-%m-%d %H:%M:%S')} wdsr launcher (pid "
                      f"{os.getpid()}): {process_label(spec)} of a {self.plan.mode} launch, "
                      f"world size {self.plan.world_size} =====\n")
            log.write(header.encode())
            log.flush()
            popen = subprocess.Popen(
                [str(a) for a in spec.argv], env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        now = time.monotonic()
        self.procs.append(_Proc(spec=spec, popen=popen, log_size=_file_size(log_path), tail=tail,
                                started=now, last_activity=now))

    # -- the loop
    def _supervise(self) -> LaunchResult:
        workers = [p for p in self.procs if p.spec.role == WORKER]
        all_done_at: float | None = None
        while True:
            now = time.monotonic()
            self._pump(now)

            if self._terminate_signal is not None:
                sig = self._terminate_signal
                self.on_note(f"received {signal.Signals(sig).name}: stopping every process")
                self._stop_all(self.grace, reason="terminated")
                return LaunchResult("terminated", 128 + sig)

            if self._interrupts:
                result = self._handle_interrupt(now)
                if result is not None:
                    return result
            else:
                failure = self._check_exits(now)
                if failure is not None:
                    return self._fail(failure)

            if all(not p.alive for p in workers):
                if all(p.returncode == 0 for p in workers) and not self._interrupts:
                    # Workers finished; the scheduler exits by itself shortly after.
                    all_done_at = all_done_at or now
                    scheduler = [p for p in self.procs if p.spec.role == SCHEDULER and p.alive]
                    if not scheduler:
                        self._pump(time.monotonic())
                        return LaunchResult("ok", 0)
                    if now - all_done_at > self.scheduler_exit_timeout:
                        self.on_note("the scheduler did not exit after the workers; stopping it")
                        self._stop_all(self.grace, reason="finished")
                        return LaunchResult("ok", 0)

            if self.stall_timeout is not None and not self._interrupts:
                quiet = now - max(p.last_activity for p in self.procs)
                if quiet > self.stall_timeout:
                    return self._fail(self._stall_failure(now))
            time.sleep(self.poll_interval)

    def _pump(self, now: float) -> None:
        """Forward new events; note which processes showed signs of life."""
        for p in self.procs:
            if p.tail is not None:
                batch = p.tail.read()
                if batch:
                    p.last_activity = now
                    p.spoke = True
                for event in batch:
                    rank = int(event.get("rank", p.spec.rank or 0))
                    if event.get("type") == "done":
                        self.done[rank] = event
                    elif event.get("type") == "error":
                        self.errors[rank] = event
                    self.on_event(event)
            size = _file_size(Path(p.spec.log_path))
            if size != p.log_size:
                p.log_size = size
                p.last_activity = now

    def _poll(self, p: _Proc) -> bool:
        """Update ``p.returncode``; True when it has just exited."""
        if p.returncode is not None:
            return False
        code = p.popen.poll()
        if code is None:
            return False
        p.returncode = code
        return True

    def _check_exits(self, now: float) -> Failure | None:
        exited = [p for p in self.procs if self._poll(p)]
        if exited:
            self._pump(now)  # the last events (an `error` with its message) before judging
        bad = []
        for p in exited:
            if p.returncode == 0:
                self.on_status(p.label, p.spec.rank, "exited")
            else:
                bad.append(p)
        if not bad:
            return None
        # Several at once: the one that explains itself first, then workers by rank.
        bad.sort(key=lambda p: (p.spec.rank not in self.errors, p.spec.role == SCHEDULER,
                                p.spec.rank if p.spec.rank is not None else 1 << 30))
        p = bad[0]
        return self._failure(p, describe_exit(p.returncode))

    def _failure(self, p: _Proc, reason: str) -> Failure:
        return Failure(role=p.spec.role, rank=p.spec.rank, reason=reason,
                       exit_code=p.returncode, log_path=Path(p.spec.log_path),
                       log_tail=log_tail(Path(p.spec.log_path)),
                       error=self.errors.get(p.spec.rank) if p.spec.role == WORKER else None)

    def _stall_failure(self, now: float) -> Failure:
        candidates = [p for p in self.procs if p.alive and p.spec.role == WORKER] or \
            [p for p in self.procs if p.alive] or self.procs
        p = min(candidates, key=lambda q: (q.last_activity, q.spec.rank or 0))
        quiet = now - max(q.last_activity for q in self.procs)
        return self._failure(p, f"stopped reporting: no event or log output from any process "
                                f"for {quiet:.0f} s (stall timeout {self.stall_timeout:.0f} s)")

    def _fail(self, failure: Failure) -> LaunchResult:
        self.on_status(failure.label, failure.rank, "failed")
        others = [p for p in self.procs if p.alive]
        if others:
            self.on_note(f"{failure.label} {failure.reason}; stopping "
                         + ", ".join(p.label for p in others))
        self._stop_all(self.grace, reason="failure")
        code = 2 if failure.user_error else 1
        return LaunchResult("failed", code, failure=failure)

    # -- Ctrl-C
    def _handle_interrupt(self, now: float) -> LaunchResult | None:
        saver = next((p for p in self.procs if p.spec.role == WORKER and p.spec.rank == 0), None)
        for p in self.procs:
            self._poll(p)
        if self._stop_requested_at is None:
            self._stop_requested_at = now
            if saver is not None and saver.alive and saver.spoke:
                self.on_note("stopping: rank 0 saves last.ckpt (Ctrl-C again to kill at once)")
                self.on_status(saver.label, 0, "stopping")
                try:
                    os.kill(saver.popen.pid, STOP_SIGNAL)
                except ProcessLookupError:
                    pass
            else:
                if saver is None:
                    self.on_note("stopping the ranks of this node (rank 0 runs elsewhere and "
                                 "decides about last.ckpt)")
                else:  # no event yet: still starting up, nothing to save
                    self.on_note("stopping before training started")
                self._stop_all(self.grace, reason="interrupted")
                return LaunchResult("interrupted", 130)
        if self._interrupts >= 2:
            self.on_note("second Ctrl-C: killing every process")
            self._stop_all(0.0, reason="interrupted")
            return LaunchResult("interrupted", 130)
        if saver is not None and (not saver.alive or 0 in self.done):
            # Rank 0 has saved (or died); the others wait in an all-reduce: stop them.
            if saver.alive:
                self._wait(saver, self.grace)
            self._stop_all(self.grace, reason="interrupted")
            return LaunchResult("interrupted", 130)
        if now - self._stop_requested_at > self.interrupt_timeout:
            self.on_note(f"rank 0 did not stop within {self.interrupt_timeout:.0f} s; killing")
            self._stop_all(0.0, reason="interrupted")
            return LaunchResult("interrupted", 130)
        return None

    # -- stopping
    def _wait(self, p: _Proc, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._poll(p)
            if not p.alive:
                return
            time.sleep(0.05)

    def _stop_all(self, grace: float, reason: str) -> None:
        """SIGTERM every live process group, SIGKILL what is left after ``grace`` seconds."""
        for p in self.procs:
            self._poll(p)
        alive = [p for p in self.procs if p.alive]
        for p in alive:
            self.on_status(p.label, p.spec.rank, "stopping")
            _signal_group(p.popen.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        end = time.monotonic() + grace
        while any(p.alive for p in alive) and time.monotonic() < end:
            time.sleep(0.05)
            for p in alive:
                self._poll(p)
        for p in self.procs:
            # The whole group, even when its leader is gone: grandchildren die too.
            _signal_group(p.popen.pid, signal.SIGKILL)
        for p in alive:
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
                pass
            self._poll(p)
            self.on_status(p.label, p.spec.rank, "stopped")
        self._pump(time.monotonic())

    def _reap_stragglers(self) -> None:
        """Anything a child started in a session of its own escapes killpg: find and kill it."""
        for p in self.procs:
            for pid in _descendants(p.popen.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                p.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass

    # -- record
    def _write_record(self, result: LaunchResult | None) -> None:
        record = {
            "mode": self.plan.mode,
            "world_size": self.plan.world_size,
            "device_target": self.plan.device_target,
            "launcher_pid": os.getpid(),
            "processes": [
                {"role": p.spec.role, "rank": p.spec.rank, "device": p.spec.device_id,
                 "pid": p.popen.pid, "argv": [str(a) for a in p.spec.argv],
                 "log": str(p.spec.log_path), "events": (str(p.tail.path) if p.tail else None),
                 "returncode": p.returncode}
                for p in self.procs
            ],
        }
        if result is not None:
            record["status"] = result.status
            record["exit_code"] = result.exit_code
            if result.failure is not None:
                record["failure"] = {"process": result.failure.label,
                                     "reason": result.failure.reason}
        try:
            self._record_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._record_path.with_name(f".{self._record_path.name}.tmp")
            tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
            os.replace(tmp, self._record_path)
        except OSError:
            pass  # a record is a convenience; never fail a launch over it

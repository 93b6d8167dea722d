"""Every process-wide MindSpore setting lives here, and only here.

Order matters: the environment variables below are read by MindSpore (glog) and its bundled
oneDNN when they load, so ``prepare_environment`` must run before the first
``import mindspore``. ``init_mindspore`` then imports it and sets device, mode and seeds.
"""

from __future__ import annotations

import glob
import os
import platform
import random
import shutil
import sys
from dataclasses import dataclass

from .errors import WdsrError

_STATE: dict[str, object] = {}


@dataclass(frozen=True)
class RuntimeInfo:
    device_target: str  # "CPU" | "GPU" | "Ascend"
    device_id: int
    mode: str  # "graph" | "pynative"


def detect_device_target() -> str:
    """Ascend, then GPU, then CPU, judged from device nodes so mindspore need not be imported."""
    if glob.glob("/dev/davinci[0-9]*"):
        return "Ascend"
    if glob.glob("/dev/nvidia[0-9]*") or shutil.which("nvidia-smi"):
        return "GPU"
    return "CPU"


_DEVICE_NODES = {"Ascend": "/dev/davinci[0-9]*", "GPU": "/dev/nvidia[0-9]*"}


def check_device_present(target: str) -> None:
    """A GPU or Ascend target needs such a device on this machine (judged from device nodes,
    without importing mindspore, so a launch can check before it creates anything)."""
    pattern = _DEVICE_NODES.get(target)
    if pattern is None or glob.glob(pattern) or (target == "GPU" and shutil.which("nvidia-smi")):
        return
    raise WdsrError(f"device target {target} was asked for, but this machine has no {target} "
                    f"device ({pattern.rstrip('[0-9]*')}N not found)",
                    "pass --device-target CPU (or auto), or run on a machine with that device")


_CANONICAL = {"auto": "auto", "cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}


def normalise_device_target(name: str, allow_auto: bool = True) -> str:
    """``name`` in MindSpore's spelling ("CPU", "GPU", "Ascend", or "auto" when ``allow_auto``),
    whatever its case and surrounding spaces; anything else is a WdsrError."""
    key = _CANONICAL.get(str(name).strip().lower())
    if key is None or (key == "auto" and not allow_auto):
        choices = "auto, CPU, GPU or Ascend" if allow_auto else "CPU, GPU or Ascend"
        raise WdsrError(f"unknown device target {str(name)!r}", f"choose {choices}")
    return key


def resolve_device_target(requested: str) -> str:
    """The concrete target: ``requested`` normalised, "auto" detected on this machine."""
    key = normalise_device_target(requested)
    return detect_device_target() if key == "auto" else key


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


# oneDNN ISA caps on x86 CPUs (see prepare_environment).
CPU_ISA = {"train": "AVX2", "inference": "AVX2"}


def prepare_environment(device_target: str, purpose: str = "train") -> dict[str, str]:
    """Set process-wide variables that must exist before mindspore is imported.

    - GLOG_v=3: MindSpore logs only errors (its INFO/WARNING lines drown the progress UI).
    - ONEDNN_MAX_CPU_ISA=AVX2 on x86 CPU targets: the bundled oneDNN picks a reference
      (~10-20x slower) 3x3/5x5 convolution kernel on AVX-512 machines; capping the ISA selects
      the jit kernels (measured: a 256x256 x2 WDSR forward 15 s -> 0.64 s). Inference used to be
      capped at AVX (no FMA) so that tiles and whole images happened to compute a pixel alike;
      the Predictor's fixed window grid makes that exact by construction, so inference takes
      the fastest correct setting too (AVX2, measured in
      docs/upscale.md "The window side and the AVX2 cap"). ``purpose`` stays so the two can
      differ again if a measurement says so.
    A value the user set is always kept.
    """
    if purpose not in CPU_ISA:
        raise ValueError(f"purpose must be one of {sorted(CPU_ISA)}, not {purpose!r}")
    wanted = {"GLOG_v": "3"}
    if device_target == "CPU" and _is_x86():
        wanted["ONEDNN_MAX_CPU_ISA"] = CPU_ISA[purpose]
    applied = {}
    for key, value in wanted.items():
        if key not in os.environ:
            if "mindspore" in sys.modules and key == "ONEDNN_MAX_CPU_ISA":
                continue  # too late to matter; do not pretend it was applied
            os.environ[key] = value
            applied[key] = value
    return applied


def init_mindspore(device_target: str = "auto", device_id: int = 0, mode: str = "graph",
                   seed: int | None = 0, purpose: str = "train") -> RuntimeInfo:
    """Import mindspore and configure it once per process (later calls must agree).

    ``purpose`` ("train" or "inference") picks the oneDNN ISA cap, see prepare_environment.
    """
    target = resolve_device_target(device_target)
    if "info" in _STATE:
        info = _STATE["info"]
        assert isinstance(info, RuntimeInfo)
        if info.device_target != target or info.mode != mode:
            raise WdsrError(
                f"MindSpore is already set up for {info.device_target}/{info.mode} in this process",
                "run one device target per process",
            )
        if seed is not None:
            seed_everything(seed)
        return info
    prepare_environment(target, purpose)
    import mindspore as ms

    if target != "CPU" and not ms.hal.is_available(target):
        raise WdsrError(
            f"device target {target} is not available on this machine",
            "pass --device-target CPU (or install the MindSpore build for your accelerator)",
        )
    ms.set_device(target, device_id if target != "CPU" else None)
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    info = RuntimeInfo(device_target=target, device_id=device_id, mode=mode)
    _STATE["info"] = info
    if seed is not None:
        seed_everything(seed)
    return info


def current_info() -> RuntimeInfo | None:
    """What :func:`init_mindspore` set up in this process (None before it ran)."""
    info = _STATE.get("info")
    return info if isinstance(info, RuntimeInfo) else None


def seed_everything(seed: int) -> None:
    """Seed every random source a run touches: mindspore, its dataset engine, numpy, random."""
    import mindspore as ms
    import numpy as np

    ms.set_seed(seed)
    ms.dataset.config.set_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _raise_stopped(signum: int, frame: object) -> None:
    from .errors import Stopped

    _STATE["stopped_by"] = signum
    raise Stopped(signum)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop a command the way Ctrl-C does: they raise
    :class:`~.errors.Stopped` (a KeyboardInterrupt) in the main thread, so every cleanup that
    runs on Ctrl-C runs (temporary files and folders removed, finished files kept, a line
    saying what was finished), and the command exits with 128 + the signal's number (143,
    129: :func:`interruption`). A signal the user ignores (``nohup``) stays ignored; one with a
    handler of someone else's is left alone. Main thread only; call it early (the CLI does, for
    every command). Processes started later with ``exec`` get the default handlers back;
    ``fork`` children inherit these (``multiprocessing`` here uses ``spawn``)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _raise_stopped)


def interruption() -> tuple[str, int]:
    """(the one-line message, the exit code) for a command that was stopped: ``interrupted``
    and 130 after Ctrl-C; ``interrupted by SIGTERM`` and 143 (SIGHUP: 129) after those."""
    import signal

    signum = _STATE.get("stopped_by")
    if not isinstance(signum, int):
        return "interrupted", 130
    return f"interrupted by {signal.Signals(signum).name}", 128 + signum


def ctrl_c_stays_with_python() -> None:
    """Make Ctrl-C a KeyboardInterrupt (and SIGTERM, SIGHUP a :class:`~.errors.Stopped`, see
    :func:`stop_on_signals`) in the main thread even while MindSpore runs a graph.

    Each MindSpore graph run installs a native SIGINT handler that ends the process with
    SIGTERM (exit 143: no message, no cleanup) and leaves it installed, and a SIGTERM handler
    of its own. So these signals are blocked in this thread before any other thread exists
    (numpy's OpenBLAS and MindSpore start theirs on import and they inherit the mask), and one
    thread of ours takes them with ``sigwait`` and interrupts the main thread with the
    signal, which raises as soon as it runs Python again (between tiles, or when a network
    call returns). Call before importing numpy or MindSpore; only in commands that start no
    subprocesses (they would inherit the blocked signals). A signal that is ignored (SIGINT in
    a background job, SIGHUP under nohup) stays ignored; nothing happens if this was done
    already."""
    import _thread
    import signal
    import threading

    if _STATE.get("ctrl_c") or threading.current_thread() is not threading.main_thread():
        return
    stop_on_signals()
    relayed = {sig for sig, handler in ((signal.SIGINT, signal.default_int_handler),
                                        (signal.SIGTERM, _raise_stopped),
                                        (signal.SIGHUP, _raise_stopped))
               if signal.getsignal(sig) is handler}
    if not relayed:
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, relayed)

    def relay() -> None:
        while True:
            signum = signal.sigwait(relayed)
            if signum != signal.SIGINT:
                _STATE["stopped_by"] = signum
            _thread.interrupt_main(signum)

    threading.Thread(target=relay, name="wdsr-ctrl-c", daemon=True).start()
    _STATE["ctrl_c"] = True


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, ...), or None
    where there is no such file (the process is gone, or not Linux). The name stands in
    parentheses and may itself hold spaces and ')', hence the split at the last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().decode(errors="replace").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def die_with_parent(parent_pid: int | None = None) -> bool:
    """Ask Linux to SIGKILL this process when its parent dies (even by SIGKILL), so helper
    processes never outlive the command (orphans would print tracebacks into the user's
    terminal). ``parent_pid``: the parent expected; if it is already gone, exit now. Returns
    False where this is not available (not Linux/glibc)."""
    import signal

    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    if parent_pid is not None and os.getppid() != parent_pid:  # died before prctl took effect
        os._exit(1)
    return True

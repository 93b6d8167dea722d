"""The one door into a training launch: ``wdsr train``'s flags -> a checked plan -> a run.

    job = plan_train(TrainRequest(...))   # every check; creates nothing, starts nothing
    job.summary()                         # what --dry-run prints (real paths)
    outcome = job.run(on_event, ...)      # creates the folder, writes the spec, runs the ranks

Who writes what: the machine that holds rank 0 (node 0 of a dynamic cluster, or the rank-table
server whose devices include rank 0) creates ``runs/NAME/`` with its config, checkpoints and
metrics. Every other machine writes only its logs, events and launch record, in
``runs/NAME-node<k>/`` (k = its node index: the dynamic ``--node-rank``, or the server's place
when the table's servers are ordered by rank). Names are claimed with an atomic ``mkdir``, so
machines sharing storage never write into the same folder by accident, and ``--resume`` (which
looks for ``config.yaml``) never picks a logs-only folder.

Everything a user can get wrong is checked in :func:`plan_train`, before any folder exists:
flags, rank table, device (present on this machine, id), precision for the device, the
prepared data, and the ``--init`` checkpoint (read and matched against the model).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WdsrError

LATEST = "latest"  # --resume without a folder


@dataclass
class TrainRequest:
    """What the user asked ``wdsr train`` for (flags as given, nothing resolved yet)."""

    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    device_target: str | None = None
    steps: int | None = None
    resume: str | None = None  # a run folder, or LATEST
    init: Path | None = None
    name: str | None = None
    runs_dir: Path = Path("runs")
    allow_data_change: bool = False
    devices: int | None = None
    rank_table: Path | None = None
    server_id: str | None = None
    nodes: int = 1
    node_rank: int = 0
    master: str | None = None
    device_id: int | None = None
    dry_run: bool = False
    stall_timeout: float = 300.0
    environ: Mapping[str, str] | None = None  # default os.environ (DEVICE_ID, HCCL_*, ...)
    #: Lists this machine's Ascend cards (/dev/davinciN); replaceable in tests.
    list_devices: Callable[[], list[int] | None] | None = None
    #: This machine's addresses, to find its server in a rank table; replaceable in tests.
    local_addresses: set[str] | None = None

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any]) -> TrainRequest:
        """The request for ``wdsr train``'s flags (its parameters by name): ``data`` becomes
        ``--set data.prepared=DIR``; ``json_out`` (the plan as JSON) needs ``dry_run``."""
        from .. import jsonout

        if flags["json_out"] is not None and not flags["dry_run"]:
            raise WdsrError("--json goes with --dry-run", "add --dry-run to print the launch plan")
        jsonout.check(flags["json_out"])
        names = {f.name for f in dataclasses.fields(cls)} - {"overrides"}
        data = [] if flags.get("data") is None else [f"data.prepared={flags['data']}"]
        return cls(overrides=list(flags["overrides"] or []) + data,
                   **{k: v for k, v in flags.items() if k in names})


@dataclass
class Outcome:
    """How a run ended, for the CLI to render."""

    exit_code: int
    run_dir: Path
    failure: Any = None  # launcher.Failure of a crash (not a user error)
    error: WdsrError | None = None  # a rank's own one-line error
    messages: list[str] = field(default_factory=list)


def load_config(request: TrainRequest):
    """(config, resume state or None) for the request; --resume reads the run's config."""
    from .. import runs as R
    from ..config import load_config as load

    sets = list(request.overrides) + (
        [f"train.steps={request.steps}"] if request.steps is not None else [])
    if request.device_target is not None:
        sets.append(f"runtime.device_target={request.device_target}")
    if request.resume is None:
        return load(request.config, sets), None
    run = R.latest_run_dir(request.runs_dir) if request.resume == LATEST else Path(request.resume)
    state = R.open_resume(run, sets)
    return state.config, state


# ------------------------------------------------------------------------------ the mode


@dataclass
class _Mode:
    """The launch flags, checked: which mode, and what it needs."""

    kind: str  # "single" | "ranktable" | "dynamic"
    target: str
    devices: int | None
    table: Any = None
    server: str | None = None
    master: tuple[str, int] | None = None
    device_id: int | None = None
    device_source: str = ""
    node_rank: int = 0  # dynamic cluster: --node-rank

    @property
    def node(self) -> int:
        """This machine's index: names its files; 0 = the machine with rank 0."""
        return self.table.node_index(self.server) if self.table is not None else self.node_rank


def _device_id(request: TrainRequest, cfg, env: Mapping[str, str]) -> tuple[int, str]:
    """One card: --device-id, then --set runtime.device_id, then DEVICE_ID from the
    environment (the model zoo's way), then the recipe's runtime.device_id."""
    from ..config import overridden

    if request.device_id is not None:
        return request.device_id, "--device-id"
    if overridden(request.overrides, "runtime.device_id"):
        return cfg.runtime.device_id, "--set runtime.device_id"
    text = env.get("DEVICE_ID", "").strip()
    if text:
        if not text.isdigit():
            raise WdsrError(f"DEVICE_ID in the environment is {text!r}, not a card number",
                            "export DEVICE_ID=N (0, 1, ...) or pass --device-id N")
        return int(text), "DEVICE_ID from the environment"
    return cfg.runtime.device_id, "runtime.device_id"


def _mode(request: TrainRequest, cfg, target: str, env: Mapping[str, str]) -> _Mode:
    from . import plan as P

    r = request
    if r.device_id is not None and r.device_id < 0:
        raise WdsrError(f"--device-id must be 0 or more, got {r.device_id}")
    if r.rank_table is not None:
        if r.nodes != 1 or r.node_rank != 0 or r.master is not None:
            raise WdsrError("--nodes/--node-rank/--master are for the dynamic cluster",
                            "a rank table already lists every server: run the same command "
                            "with --rank-table on each of them")
        if r.device_id is not None:
            raise WdsrError("--device-id is for one device; a rank table names the devices",
                            "edit the rank table's device_id entries instead")
        from .ranktable import check_table_target, load_rank_table, select_server

        check_table_target(target)
        table = load_rank_table(r.rank_table)
        server = select_server(table, r.server_id, r.local_addresses)
        return _Mode("ranktable", target, r.devices, table=table, server=server)
    if r.server_id is not None:
        raise WdsrError("--server-id needs --rank-table",
                        "it names this machine's entry in an Ascend rank table")
    if (r.devices or 1) * r.nodes == 1:
        if r.node_rank != 0 or r.master is not None:
            raise WdsrError("--node-rank and --master need several processes",
                            "pass --nodes K (several machines) and/or --devices N")
        if target == "CPU":
            return _Mode("single", target, r.devices)
        device_id, source = _device_id(r, cfg, env)
        return _Mode("single", target, r.devices, device_id=device_id, device_source=source)
    if r.device_id is not None:
        raise WdsrError("--device-id is for one device",
                        "with --devices N the ranks use devices 0..N-1; choose others with "
                        "ASCEND_RT_VISIBLE_DEVICES (Ascend) or CUDA_VISIBLE_DEVICES (GPU)")
    return _Mode("dynamic", target, r.devices, master=P.resolve_master(r.master, r.nodes),
                 node_rank=r.node_rank)


def _plan(mode: _Mode, request: TrainRequest, run_dir: Path, env: Mapping[str, str]):
    from . import plan as P
    from .launcher import attach_event_files
    from .worker import spec_path, worker_argv

    argv = worker_argv(spec_path(run_dir, mode.node))
    if mode.kind == "ranktable":
        plan = P.plan_ranktable(mode.table, mode.server, mode.devices, argv, run_dir,
                                mode.target, base_env=env)
    elif mode.kind == "single":
        plan = P.plan_single(argv, run_dir, mode.device_id, mode.device_source)
        plan.device_target = mode.target
    else:
        host, port = mode.master
        plan = P.plan_dynamic(mode.devices or 1, request.nodes, request.node_rank, host, port,
                              argv, run_dir, mode.target, base_env=env)
    return attach_event_files(plan)


def _check_devices(mode: _Mode, request: TrainRequest, env: Mapping[str, str]) -> None:
    """The Ascend cards the plan uses must exist here (when /dev/davinci* can be listed)."""
    if mode.target != "Ascend":
        return
    from .ranktable import check_devices_present, list_ascend_devices

    listed = (request.list_devices or list_ascend_devices)()
    if mode.kind == "ranktable":
        check_devices_present(mode.table, mode.server, listed)
    elif mode.kind == "single" and listed:
        # DEVICE_ID counts the cards this process sees: all of them, or those in
        # ASCEND_RT_VISIBLE_DEVICES (then it is an index into that list).
        visible = [v for v in env.get("ASCEND_RT_VISIBLE_DEVICES", "").split(",") if v.strip()]
        count = len(visible) if visible else len(listed)
        if mode.device_id is not None and mode.device_id >= count:
            seen = (f"ASCEND_RT_VISIBLE_DEVICES={env['ASCEND_RT_VISIBLE_DEVICES']}" if visible
                    else f"{count} card(s) (/dev/davinci*)")
            raise WdsrError(f"device {mode.device_id} ({mode.device_source}) does not exist: "
                            f"this process sees {seen}",
                            f"use a device id from 0 to {count - 1}")


# ------------------------------------------------------------------------------ the job


@dataclass
class TrainJob:
    """A checked launch: what will run, where it writes, and how to start it."""

    request: TrainRequest
    cfg: Any
    resume: Any  # runs.ResumeState or None
    mode: _Mode
    plan: Any  # launch.plan.LaunchPlan, for run_dir below
    run_dir: Path  # the folder it would write now (created by run())
    holds_rank0: bool
    init: Path | None = None
    notes: list[str] = field(default_factory=list)  # to show before the start
    warnings: list[str] = field(default_factory=list)
    prepared: Path | None = None  # the folder prepare_folder() created
    _lock: int | None = field(default=None, repr=False)  # the run folder's lock (fileio)

    @property
    def batch_note(self) -> str:
        b, world = self.cfg.data.batch_size, self.plan.world_size
        return (f"global batch {b * world} = {b} per device x {world} ranks"
                if world > 1 else f"batch {b}")

    def summary(self) -> dict[str, Any]:
        """The plan as data (``--dry-run``, also as JSON)."""
        from .plan import render_plan

        p = self.plan
        where = (f"this machine holds rank 0 and creates the run folder {p.run_dir}"
                 if self.holds_rank0 and self.resume is None else
                 f"continues the run in {p.run_dir}" if self.resume is not None else
                 f"this machine writes its logs only, to {p.run_dir} (the machine with rank 0 "
                 "creates the run folder)")
        return {"mode": p.mode, "world_size": p.world_size, "device_target": p.device_target,
                "run_dir": str(p.run_dir), "creates_run_folder": self.holds_rank0,
                "node": self.mode.node, "batch_size": self.cfg.data.batch_size,
                "global_batch": self.cfg.data.batch_size * p.world_size,
                "description": p.description + [where] + self.notes, "warnings": self.warnings,
                "processes": render_plan(p)}

    def resume_command(self, run_dir: Path) -> str:
        """The command that continues this run (the launch flags repeated)."""
        m, r = self.mode, self.request
        flags = ""
        if m.kind == "ranktable":
            flags = f" --rank-table {m.table.path}"
            if r.server_id is not None:
                flags += f" --server-id {m.server}"
        elif m.kind == "single":
            if m.device_id is not None and m.device_source in ("--device-id",
                                                               "DEVICE_ID from the environment"):
                flags = f" --device-id {m.device_id}"
        else:
            flags = f" --devices {m.devices or 1}"
            if r.nodes > 1:
                flags += (f" --nodes {r.nodes} --node-rank {r.node_rank} "
                          f"--master {m.master[0]}:{m.master[1]}")
        return f"wdsr train --resume {run_dir}{flags}"

    # -- running
    def prepare_folder(self) -> Path:
        """Create what this machine writes (once): the run folder (rank 0's machine), or a
        logs-only folder (the others); a resumed run continues in its folder."""
        from .. import runs as R

        if self.prepared is None:
            if self.resume is not None:
                if self.holds_rank0:  # one training per run folder, then --steps/--set on
                    self._lock = R.claim_run(self.resume.run_dir)  # resume become its plan
                    R.record_config(self.resume.run_dir, self.cfg)
                self.prepared = self.resume.run_dir
            elif self.holds_rank0:
                run_dir = R.new_run_dir(self.request.runs_dir,
                                        R.run_name(self.request.name, self.cfg))
                self._lock = R.claim_run(run_dir)
                R.record_config(run_dir, self.cfg)
                self.prepared = run_dir
            else:
                name = f"{R.run_name(self.request.name, self.cfg)}-node{self.mode.node}"
                self.prepared = R.new_run_dir(self.request.runs_dir, name)
        return self.prepared

    def run(self, on_event=None, on_status=None, on_note=None) -> Outcome:
        """Create the run (or logs) folder, write the worker spec, run the ranks to the end."""
        from .launcher import Launcher, record_path
        from .worker import write_spec

        run_dir = self.prepare_folder()
        env = os.environ if self.request.environ is None else self.request.environ
        plan = _plan(self.mode, self.request, run_dir.absolute(), env)
        r = self.resume
        write_spec(run_dir, self.cfg.to_dict(), device_target=plan.device_target,
                   resume=r is not None, resume_checkpoint=r.checkpoint if r else None,
                   init_checkpoint=self.init, allow_data_change=self.request.allow_data_change,
                   node_rank=self.mode.node)
        try:
            result = Launcher(plan, on_event, on_status=on_status, on_note=on_note,
                              stall_timeout=self.request.stall_timeout,
                              record=record_path(run_dir, self.mode.node)).run()
        finally:
            self.release()
        return self._outcome(result, run_dir)

    def release(self) -> None:
        """Give up the run folder's lock (the end of the process does it too)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _outcome(self, result, run_dir: Path) -> Outcome:
        failure = result.failure
        if failure is not None:
            if failure.user_error:
                prefix = f"{failure.label}: " if self.plan.world_size > 1 else ""
                error = WdsrError(prefix + str(failure.error.get("message")),
                                  failure.error.get("hint"))
                return Outcome(2, run_dir, error=error)
            return Outcome(result.exit_code, run_dir, failure=failure,
                           messages=[f"all logs: {run_dir / 'logs'}"])
        if result.status == "terminated":
            return Outcome(result.exit_code, run_dir)
        if self.holds_rank0:
            # what is there: a run stopped before its first validation has no best.ckpt yet
            names = [n for n in ("best.ckpt", "last.ckpt", "log.txt", "metrics.jsonl",
                                 "plot.svg", "report/index.html", "logs/")
                     if (run_dir / n).exists()]
            messages = [f"run folder: {run_dir} ({', '.join(names)})"]
        else:
            messages = [f"this machine's logs: {run_dir / 'logs'} (the machine with rank 0 "
                        "writes the run folder)"]
        ranks = [p.rank for p in self.plan.workers]
        lead = result.done.get(min(ranks)) if ranks else None
        if result.status == "interrupted" or (lead and lead.get("interrupted")):
            step = lead.get("step") if lead else None
            where = f" at step {step}" if step else ""
            target = run_dir if self.holds_rank0 or self.resume else Path("RUN_DIR")
            hint = self.resume_command(target)
            if not (self.holds_rank0 or self.resume):
                hint += " (RUN_DIR: the run folder on the machine with rank 0, on every machine)"
            messages.append(f"interrupted{where}; continue with: {hint}")
            return Outcome(130, run_dir, messages=messages)
        return Outcome(0, run_dir, messages=messages)


def _check_world_change(resume, world: int, batch: int) -> list[str]:
    if resume is None or not resume.meta:
        return []
    before = int(resume.meta.get("world_size", 1) or 1)
    if before == world:
        return []
    return [f"this run was trained on {before} rank(s) (global batch {batch * before}); "
            f"continuing on {world} changes the global batch to {batch * world} and the data "
            "order"]


def plan_train(request: TrainRequest) -> TrainJob:
    """Check everything about a training launch and plan it; create and start nothing.

    With ``request.dry_run`` the data and the --init checkpoint are not opened (no MindSpore,
    no data) and a missing device is a warning, so a plan can be shown on any machine.
    """
    from .. import runs as R
    from .. import runtime
    from .. import train as T
    from ..ema import short_run_warning
    from ..inference.weights import named_checkpoint

    r = request
    env = os.environ if r.environ is None else r.environ
    if r.init is not None and r.resume is not None:
        raise WdsrError("--init and --resume do not go together",
                        "--resume continues a run; --init starts a new one from weights")
    cfg, resume = load_config(r)
    _check_runs_dir(r.runs_dir, cfg)
    notes = [f"skipped unusable checkpoint {s}" for s in (resume.skipped if resume else [])]
    warnings: list[str] = []
    # "bundled" fine-tunes the shipped weights of the config's scale
    init = named_checkpoint(r.init, cfg.model.scale, what="--init checkpoint", hint="pass a "
                            ".ckpt written by wdsr train, a model-zoo WDSR .ckpt, or bundled")
    if init is not None:  # recorded in config.yaml: a --resume before the first checkpoint keeps it
        init = init.resolve()
        cfg.train.init = str(init)
    if resume is not None:
        notes.append(f"resuming {resume.run_dir} from step {resume.meta['step']} "
                     f"({resume.checkpoint.name})" if resume.checkpoint else
                     f"resuming {resume.run_dir} from step 0 (it stopped before its first "
                     "checkpoint)" + (f", from --init {cfg.train.init}" if cfg.train.init else ""))
    target = runtime.resolve_device_target(cfg.runtime.device_target)
    mode = _mode(r, cfg, target, env)  # the flags and the rank table first
    T.resolve_precision(cfg, target)  # fp16 on a CPU: stop here, not in a rank
    if resume is not None:
        run_dir = resume.run_dir
    else:
        run_dir = R.next_run_dir(r.runs_dir, R.run_name(r.name, cfg))
    plan = _plan(mode, r, run_dir.absolute(), env)
    holds_rank0 = any(p.rank == 0 for p in plan.workers)
    if not holds_rank0 and resume is None:
        name = f"{R.run_name(r.name, cfg)}-node{mode.node}"
        plan = _plan(mode, r, R.next_run_dir(r.runs_dir, name).absolute(), env)
    try:  # the devices last: a plan can be checked (--dry-run) on a machine without them
        runtime.check_device_present(target)
    except WdsrError as exc:
        if not r.dry_run:
            raise
        warnings.append(f"{exc.message} (a real run would stop here)")
    _check_devices(mode, r, env)
    warnings = plan.warnings + warnings
    average = short_run_warning(cfg.train.ema_decay, cfg.train.steps)
    warnings += [average] if average else []
    warnings += _check_world_change(resume, plan.world_size, cfg.data.batch_size)
    if resume is not None:
        R.check_run_free(resume.run_dir)  # another training in it: refused before anything
        if resume.meta is not None:
            T.check_resume_compatible(cfg, resume.meta, None, r.allow_data_change)
    if not r.dry_run:  # before a run folder is made or changed: the --init file, the data
        if init is not None:
            notes.append(_check_init(init, cfg, target))
        patches = T.open_patches(cfg)
        if holds_rank0:  # rank 0 validates
            from ..data.pipeline import validation_entries

            validation_entries(cfg.data.prepared, cfg.model.scale, cfg.train.val_images)
        if resume is not None and resume.meta is not None:
            T.check_resume_compatible(cfg, resume.meta, patches.dataset_id,
                                      r.allow_data_change)
    return TrainJob(r, cfg, resume, mode, plan, plan.run_dir, holds_rank0, init, notes,
                    warnings)


def _check_runs_dir(runs_dir: Path, cfg) -> None:
    """Run folders never go into the prepared data (its files would gain a runs/ of strangers)
    nor onto a file."""
    runs = Path(os.path.realpath(runs_dir))
    if runs.exists() and not runs.is_dir():
        raise WdsrError(f"--runs-dir '{runs_dir}' is a file, not a folder",
                        "pass a folder for run folders, e.g. --runs-dir runs")
    prepared = Path(os.path.realpath(cfg.data.prepared))
    if runs.is_relative_to(prepared):
        raise WdsrError(f"--runs-dir '{runs_dir}' is inside the prepared data "
                        f"'{cfg.data.prepared}' this training reads",
                        "pass a --runs-dir outside it, e.g. --runs-dir runs")


def _check_init(path: Path, cfg, target: str) -> str:
    """Read --init now (a garbage or foreign file stops here) and say what it brings."""
    from .. import runtime
    from ..checkpoints import check_init

    runtime.prepare_environment(target)  # quiet MindSpore before its import
    fits, total, meta = check_init(path, cfg.model)
    text = f"--init {path}: {fits} of {total} parameters fit this model"
    if meta.get("mapping"):
        text += f" ({meta['mapping']})"
    return text

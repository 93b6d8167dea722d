"""Which processes ``wdsr train --devices N`` starts on this machine, and with what environment.

Pure planning: nothing here imports MindSpore or starts a process, so ``--dry-run`` and the
tests are instant. The launcher runs each :class:`ProcessSpec` as
``os.environ`` minus ``spec.unset_env`` plus ``spec.env``.

Three modes:

``single``
    One worker, no cluster variables. ``WDSR_WORLD_SIZE=1``.

``ranktable`` (Ascend, HCCL; MindSpore tutorial "rank table Startup", ``parallel/rank_table``)
    One worker per device this server lists in the rank table, each with
    ``RANK_TABLE_FILE`` (absolute), ``RANK_SIZE`` (ranks over all servers), ``RANK_ID`` (global
    rank) and ``DEVICE_ID`` (the physical card): the four variables that tutorial's launch
    scripts export. Not set, on purpose: ``MS_NODE_ID``/``MS_ROLE`` and the other dynamic-cluster
    variables (``MS_ROLE`` in the environment makes ``mindspore.communication.init`` take the
    dynamic-cluster path instead of the table, see ``_host_distribute`` in
    ``mindspore/communication/management.py``), and ``SERVER_ID`` (some model-zoo scripts
    export it, but MindSpore 2.10 reads no such variable). Stale ``MS_ROLE``-family variables
    and ``MINDSPORE_HCCL_CONFIG_PATH`` (an older name for the table path that MindSpore also
    reads) are removed from the inherited environment. A table of several servers also gets
    ``HCCL_CONNECT_TIMEOUT`` (HCCL's default is 120 s; the user starts the servers one by one, so
    600 s as for a dynamic multi-node job) unless the user's environment sets it.

``dynamic`` (GPU, CPU, or Ascend without a table; MindSpore tutorial "Dynamic Cluster Startup",
``parallel/dynamic_cluster``)
    On node 0 one scheduler (``MS_ROLE=MS_SCHED``) and on every node ``devices`` workers
    (``MS_ROLE=MS_WORKER``, ``MS_NODE_ID`` = global rank), all with ``MS_WORKER_NUM``,
    ``MS_SCHED_HOST``, ``MS_SCHED_PORT``. Also, as MindSpore's own ``msrun`` does in 2.10
    (``mindspore/parallel/cluster/process_entity/_api.py``): ``MS_TOPO_TIMEOUT`` on every process,
    ``RANK_SIZE`` everywhere, ``RANK_ID`` (the global rank; 0 for the scheduler) and, on GPU and
    Ascend, ``DEVICE_ID`` = local index. ``MS_NODE_TIMEOUT`` (heartbeat timeout, documented
    default 30 s) is set explicitly so the dry run shows how fast a dead rank is noticed.
    ``MS_TOPO_TIMEOUT`` and ``MS_NODE_TIMEOUT`` are left alone when the user's environment
    already sets them, unless a value is passed explicitly.

Every mode removes ``OMPI_*`` and ``PMIX_RANK`` from the inherited environment: when MindSpore is
imported it rewrites ``RANK_ID``/``DEVICE_ID`` from Open MPI's variables (``_set_rank_from_mpi``
in ``communication/management.py``), which would undo the plan in a shell started by ``mpirun``.

Every worker also gets the project's own variables, so the training code never needs
backend-specific names: ``WDSR_ROLE`` (worker | scheduler), ``WDSR_LAUNCH_MODE``,
``WDSR_RANK``, ``WDSR_WORLD_SIZE``, ``WDSR_LOCAL_RANK``, ``WDSR_LOCAL_WORLD_SIZE`` and, when a
device applies, ``WDSR_DEVICE_ID``. The scheduler gets ``WDSR_ROLE=scheduler`` and
``WDSR_LAUNCH_MODE`` only.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WdsrError
from ..runtime import normalise_device_target
from .ranktable import RankDevice, RankTable, check_table_target, format_ranges, select_server

WORKER = "worker"
SCHEDULER = "scheduler"

#: Cluster formation timeout (``MS_TOPO_TIMEOUT``, seconds) when nothing else is said.
#: One machine: everything starts within seconds, so fail fast. Several machines: the user
#: starts the other nodes by hand, so allow 10 minutes (msrun's own default, too).
DEFAULT_TOPO_TIMEOUT_SINGLE_NODE = 120
DEFAULT_TOPO_TIMEOUT_MULTI_NODE = 600
#: Heartbeat timeout (``MS_NODE_TIMEOUT``); MindSpore's documented default.
DEFAULT_NODE_TIMEOUT = 30
#: ``HCCL_CONNECT_TIMEOUT`` (seconds) for rank tables of several servers (HCCL's own default: 120).
DEFAULT_HCCL_CONNECT_TIMEOUT = 600
#: MindSpore's documented default for ``MS_HEARTBEAT_RETRY_TIMEOUT``; the docs require
#: ``MS_NODE_TIMEOUT`` to be greater.
_DEFAULT_HEARTBEAT_RETRY_TIMEOUT = 20
#: The port range the dynamic-cluster docs allow for ``MS_SCHED_PORT``.
MIN_PORT, MAX_PORT = 1024, 65535

# Variables that make a process join (or pick) a cluster. Each mode removes the ones it does not
# set from the inherited environment, so a stale export in the user's shell cannot turn a
# single run into a half-formed cluster member or point HCCL at the wrong table.
_DYNAMIC_VARS = ("MS_ROLE", "MS_NODE_ID", "MS_WORKER_NUM", "MS_SCHED_HOST", "MS_SCHED_PORT")
_TABLE_VARS = ("RANK_TABLE_FILE", "MINDSPORE_HCCL_CONFIG_PATH")
_RANK_VARS = ("RANK_ID", "RANK_SIZE")
# Open MPI's variables: MindSpore copies them over RANK_ID/DEVICE_ID/RANK_SIZE on import.
# A trailing * removes every variable with that prefix.
_MPI_VARS = ("OMPI_*", "PMIX_RANK")


@dataclass
class ProcessSpec:
    """One process to start. ``env`` holds only what the launcher adds or overrides."""

    role: str  # WORKER | SCHEDULER
    rank: int | None  # global rank; None for the scheduler
    local_index: int | None  # index among this machine's workers; None for the scheduler
    device_id: int | None  # physical device (DEVICE_ID); None on CPU and for the scheduler
    env: dict[str, str]
    argv: list[str]
    log_path: Path
    unset_env: list[str] = field(default_factory=list)  # remove these from the inherited env

    def full_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment the process should get: ``base`` (default ``os.environ``) minus
        ``unset_env`` plus ``env``."""
        merged = dict(os.environ if base is None else base)
        for name in self.unset_env:
            if name.endswith("*"):
                for key in [k for k in merged if k.startswith(name[:-1])]:
                    del merged[key]
            merged.pop(name, None)
        merged.update(self.env)
        return merged


@dataclass
class LaunchPlan:
    mode: str  # "single" | "ranktable" | "dynamic"
    world_size: int
    processes: list[ProcessSpec]
    description: list[str] = field(default_factory=list)  # human-readable summary lines
    warnings: list[str] = field(default_factory=list)  # worth showing before the start
    device_target: str = "CPU"
    run_dir: Path = Path(".")

    @property
    def workers(self) -> list[ProcessSpec]:
        return [p for p in self.processes if p.role == WORKER]

    @property
    def scheduler(self) -> ProcessSpec | None:
        return next((p for p in self.processes if p.role == SCHEDULER), None)


# --------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it).

    Another program could take it before the scheduler binds it; the window is short and a
    clash fails loudly at cluster formation.
    """
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((_strip_brackets(host), 0))
            port = int(sock.getsockname()[1])
    except OSError as exc:
        raise WdsrError(
            f"cannot find a free port on {host}: {exc.strerror or exc}",
            "pass --master HOST:PORT with a port you know is free",
        ) from exc
    if port < MIN_PORT:  # pragma: no cover - ephemeral ports are far above 1024
        raise WdsrError(f"the OS offered port {port}, below {MIN_PORT}", "pass --master HOST:PORT")
    return port


def parse_master(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[IPv6]:PORT``) -> ``(host, port)``; the port must be 1024-65535."""
    hint = "write it as HOST:PORT, e.g. --master 192.0.2.10:8118 (IPv6: [2001:db8::1]:8118)"
    raw = (text or "").strip()
    if not raw:
        raise WdsrError("--master is empty", hint)
    if "://" in raw:
        raise WdsrError(f"--master {text!r} must not contain a scheme such as tcp://", hint)
    if raw.startswith("["):
        end = raw.find("]")
        if end == -1 or not raw[end + 1 :].startswith(":"):
            raise WdsrError(f"--master {text!r} is not [IPv6]:PORT", hint)
        host, port_text = raw[1:end], raw[end + 2 :]
        if not _is_ipv6(host):
            raise WdsrError(f"--master {text!r}: {host!r} is not an IPv6 address", hint)
    else:
        if raw.count(":") > 1:
            raise WdsrError(
                f"--master {text!r} looks like a bare IPv6 address; put it in brackets", hint
            )
        if ":" not in raw:
            raise WdsrError(f"--master {text!r} has no port", hint)
        host, port_text = raw.rsplit(":", 1)
    host = host.strip()
    if not host:
        raise WdsrError(f"--master {text!r} has no host", hint)
    if any(c.isspace() for c in host) or "/" in host:
        raise WdsrError(f"--master {text!r}: {host!r} is not a host name or address", hint)
    port_text = port_text.strip()
    if not port_text.isdigit():
        raise WdsrError(f"--master {text!r}: port {port_text!r} is not a number", hint)
    port = int(port_text)
    _check_port(port, f"--master {text!r}", hint)
    return host, port


def resolve_master(master: str | None, nodes: int) -> tuple[str, int]:
    """The scheduler address for a dynamic launch: ``--master`` when given (required for
    several nodes), else ``127.0.0.1`` and a free port."""
    if master is None or not str(master).strip():
        if nodes > 1:
            raise WdsrError(
                f"--nodes {nodes} needs --master HOST:PORT",
                "give the address of node 0 (where the scheduler runs) that every node can "
                "reach, and the same value on every node, e.g. --master 192.0.2.10:8118",
            )
        return "127.0.0.1", free_port("127.0.0.1")
    return parse_master(master)


def resolve_host(host: str) -> str:
    """An IP literal for ``MS_SCHED_HOST`` (MindSpore wants an address, not a name)."""
    h = _strip_brackets(host.strip())
    try:
        return str(ipaddress.ip_address(h))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(h, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WdsrError(
            f"cannot resolve master host {host!r}", "pass node 0's IP address in --master"
        ) from exc
    v4 = [i[4][0] for i in infos if i[0] == socket.AF_INET]
    return str(v4[0] if v4 else infos[0][4][0])


def _check_port(port: int, what: str, hint: str = "") -> None:
    if not MIN_PORT <= port <= MAX_PORT:
        raise WdsrError(
            f"{what}: port {port} is outside {MIN_PORT}-{MAX_PORT}",
            f"MindSpore's scheduler port must be between {MIN_PORT} and {MAX_PORT}"
            + (f"; {hint}" if hint else ""),
        )


def _check_count(value: Any, flag: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WdsrError(f"{flag} must be a whole number of at least 1, got {value!r}")
    return value


def _check_argv(worker_argv: Sequence[str]) -> list[str]:
    argv = [str(a) for a in worker_argv]
    if not argv:
        raise WdsrError("internal: empty worker command line")  # a bug, not a user error
    return argv


def _check_timeout(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WdsrError(f"{name} must be a whole number of seconds >= 1, got {value!r}")
    return value


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(_strip_brackets(host)).version == 6
    except ValueError:
        return False


def _is_loopback(host: str) -> bool:
    h = _strip_brackets(host)
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _wdsr_env(
    mode: str, rank: int, world: int, local: int, local_world: int, device_id: int | None
) -> dict[str, str]:
    env = {
        "WDSR_ROLE": WORKER,
        "WDSR_LAUNCH_MODE": mode,
        "WDSR_RANK": str(rank),
        "WDSR_WORLD_SIZE": str(world),
        "WDSR_LOCAL_RANK": str(local),
        "WDSR_LOCAL_WORLD_SIZE": str(local_world),
    }
    if device_id is not None:
        env["WDSR_DEVICE_ID"] = str(device_id)
    return env


def _log_dir(run_dir: Path | str) -> Path:
    return Path(run_dir) / "logs"


# --------------------------------------------------------------------------- plans


def plan_single(
    worker_argv: Sequence[str], run_dir: Path | str, device_id: int | None = None,
    device_source: str = "",
) -> LaunchPlan:
    """One worker, no cluster. ``device_id`` (GPU/Ascend card) sets ``DEVICE_ID`` when given;
    ``device_source`` says where it came from (shown in the plan)."""
    argv = _check_argv(worker_argv)
    if device_id is not None and (isinstance(device_id, bool) or device_id < 0):
        raise WdsrError(f"device id must be >= 0, got {device_id!r}")
    env = _wdsr_env("single", 0, 1, 0, 1, device_id)
    unset = [*_DYNAMIC_VARS, *_TABLE_VARS, *_RANK_VARS, *_MPI_VARS]
    if device_id is not None:
        env["DEVICE_ID"] = str(device_id)
    spec = ProcessSpec(
        role=WORKER,
        rank=0,
        local_index=0,
        device_id=device_id,
        env=env,
        argv=argv,
        log_path=_log_dir(run_dir) / "rank_0.log",
        unset_env=unset,
    )
    where = f" on device {device_id}" if device_id is not None else ""
    if device_source:
        where += f" ({device_source})"
    return LaunchPlan(
        mode="single",
        world_size=1,
        processes=[spec],
        description=[f"single process{where}, no cluster"],
        run_dir=Path(run_dir),
    )


def plan_ranktable(
    table: RankTable,
    server_id: str,
    devices: int | None,
    worker_argv: Sequence[str],
    run_dir: Path | str,
    device_target: str = "Ascend",
    *,
    base_env: Mapping[str, str] | None = None,
) -> LaunchPlan:
    """One worker per device that ``table`` lists for ``server_id`` (this machine).

    ``devices`` must equal that count (``None`` takes it from the table): HCCL waits for every
    rank in the table, so starting fewer would hang and more cannot exist. ``base_env``
    (default ``os.environ``) tells whether the user already set ``HCCL_CONNECT_TIMEOUT``.
    """
    target = normalise_device_target(device_target, allow_auto=False)
    check_table_target(target)
    argv = _check_argv(worker_argv)
    server_id = select_server(table, server_id)
    local = _table_devices(table, server_id, devices)
    table_path = str(Path(table.path).resolve())
    shared, notes = _hccl_timeout(table, os.environ if base_env is None else base_env)
    processes = _table_workers(local, table_path, table.world_size, shared, argv,
                               _log_dir(run_dir))
    ranks = [d.rank_id for d in local]
    description = [
        f"rank table {table_path}: {len(table.servers)} server(s), {table.world_size} rank(s)",
        f"this server {server_id} starts rank(s) {format_ranges(ranks)} on device(s) "
        f"{', '.join(str(d.device_id) for d in local)}",
    ]
    if len(table.servers) > 1:
        description.append(
            "run the same command on every other server listed in the table: "
            + ", ".join(s for s in table.server_ids() if s != server_id)
        )
    description.extend(notes)
    return LaunchPlan(
        mode="ranktable",
        world_size=table.world_size,
        processes=processes,
        description=description,
        warnings=list(table.warnings),
        device_target=target,
        run_dir=Path(run_dir),
    )


def _table_devices(table: RankTable, server_id: str, devices: int | None) -> list[RankDevice]:
    """The devices the table lists for this server; ``--devices`` (None: the table's count)
    must be that count."""
    local = table.devices_for(server_id)
    if devices is None:
        devices = len(local)
    _check_count(devices, "--devices")
    if devices != len(local):
        raise WdsrError(
            f"--devices {devices} does not match the rank table: server {server_id} lists "
            f"{len(local)} device(s) ({table.path})",
            f"pass --devices {len(local)}, or edit the rank table so it lists exactly the "
            "devices to use (HCCL waits for every rank it lists)",
        )
    return local


def _hccl_timeout(table: RankTable, env_in: Mapping[str, str]
                  ) -> tuple[dict[str, str], list[str]]:
    """(variables every worker gets, notes): ``HCCL_CONNECT_TIMEOUT`` for a table of several
    servers, unless the user's environment sets it."""
    if len(table.servers) == 1:
        return {}, []
    if "HCCL_CONNECT_TIMEOUT" in env_in:
        return {}, [f"HCCL_CONNECT_TIMEOUT={env_in['HCCL_CONNECT_TIMEOUT']} (from your "
                    "environment)"]
    return ({"HCCL_CONNECT_TIMEOUT": str(DEFAULT_HCCL_CONNECT_TIMEOUT)},
            [f"HCCL_CONNECT_TIMEOUT={DEFAULT_HCCL_CONNECT_TIMEOUT} s: every server must start "
             "its ranks within that time (set it yourself to change it)"])


def _table_workers(local: list[RankDevice], table_path: str, world: int, shared: dict[str, str],
                   argv: list[str], log_dir: Path) -> list[ProcessSpec]:
    """One worker per device of this server, with the four variables HCCL's launch needs."""
    workers = []
    for local_index, dev in enumerate(local):
        env = {
            "RANK_TABLE_FILE": table_path,
            "RANK_SIZE": str(world),
            "RANK_ID": str(dev.rank_id),
            "DEVICE_ID": str(dev.device_id),
            **shared,
            **_wdsr_env("ranktable", dev.rank_id, world, local_index, len(local), dev.device_id),
        }
        workers.append(ProcessSpec(role=WORKER, rank=dev.rank_id, local_index=local_index,
                                   device_id=dev.device_id, env=env, argv=list(argv),
                                   log_path=log_dir / f"rank_{dev.rank_id}.log",
                                   unset_env=[*_DYNAMIC_VARS, "MINDSPORE_HCCL_CONFIG_PATH",
                                              *_MPI_VARS]))
    return workers


def plan_dynamic(
    devices: int,
    nodes: int,
    node_rank: int,
    master_host: str,
    master_port: int,
    worker_argv: Sequence[str],
    run_dir: Path | str,
    device_target: str,
    *,
    topo_timeout: int | None = None,
    node_timeout: int | None = None,
    base_env: Mapping[str, str] | None = None,
) -> LaunchPlan:
    """MindSpore dynamic cluster: a scheduler on node 0, ``devices`` workers on every node.

    Global rank of a worker = ``node_rank * devices + local_index``; ``MS_WORKER_NUM`` =
    ``nodes * devices``. ``topo_timeout``/``node_timeout`` (seconds) override
    ``MS_TOPO_TIMEOUT``/``MS_NODE_TIMEOUT``; when ``None`` a value already in ``base_env``
    (default ``os.environ``) is inherited, else the defaults above are set.
    """
    target = normalise_device_target(device_target, allow_auto=False)
    argv = _check_argv(worker_argv)
    env_in = os.environ if base_env is None else base_env
    sched_host, warnings = _check_dynamic(devices, nodes, node_rank, master_host, master_port,
                                          target, env_in)
    world = nodes * devices
    common, timeout_notes = _cluster_env(world, sched_host, master_port, nodes, topo_timeout,
                                         node_timeout, env_in)
    log_dir = _log_dir(run_dir)
    processes = [_scheduler_spec(common, world, argv, log_dir)] if node_rank == 0 else []
    processes += _dynamic_workers(common, devices, node_rank, world, target, argv, log_dir)

    first = node_rank * devices
    description = [
        f"dynamic cluster on {target}: {nodes} node(s) x {devices} worker(s) = {world} rank(s), "
        f"scheduler at {sched_host}:{master_port}",
        f"node {node_rank} starts "
        + ("the scheduler and " if node_rank == 0 else "")
        + f"rank(s) {format_ranges(range(first, first + devices))}",
        *timeout_notes,
    ]
    if nodes > 1:
        description.append(
            f"start the same command with --node-rank 0..{nodes - 1} on the {nodes} machines, "
            "each with its own host name"
        )
    return LaunchPlan(
        mode="dynamic",
        world_size=world,
        processes=processes,
        description=description,
        warnings=warnings,
        device_target=target,
        run_dir=Path(run_dir),
    )


def _check_dynamic(devices: int, nodes: int, node_rank: int, master_host: str,
                   master_port: int, target: str, env_in: Mapping[str, str]
                   ) -> tuple[str, list[str]]:
    """Validate the dynamic-cluster flags: (scheduler IP, warnings)."""
    _check_count(devices, "--devices")
    _check_count(nodes, "--nodes")
    if isinstance(node_rank, bool) or not isinstance(node_rank, int):
        raise WdsrError(f"--node-rank must be a whole number, got {node_rank!r}")
    if not 0 <= node_rank < nodes:
        raise WdsrError(
            f"--node-rank {node_rank} is out of range for --nodes {nodes}",
            f"use 0 on the machine that runs the scheduler and 1..{nodes - 1} on the others"
            if nodes > 1
            else "with one node, --node-rank must be 0 (or left out)",
        )
    host = (master_host or "").strip()
    if not host:
        raise WdsrError(
            "no scheduler host for the dynamic cluster",
            "pass --master HOST:PORT (node 0's address)",
        )
    if isinstance(master_port, bool) or not isinstance(master_port, int):
        raise WdsrError(f"scheduler port must be a number, got {master_port!r}")
    _check_port(master_port, "scheduler")
    warnings: list[str] = []
    if nodes > 1 and _is_loopback(host):
        # Fine for several "nodes" on one machine (tests, trying it out); other machines
        # cannot reach it and would wait for the scheduler until MS_TOPO_TIMEOUT.
        warnings.append(
            f"--master {host}:{master_port} is a loopback address: only nodes on this machine "
            "can join; give node 0's network address for several machines"
        )
    sched_host = resolve_host(host)
    if _is_ipv6(sched_host) and target != "Ascend":
        raise WdsrError(
            f"--master {host} is IPv6; MindSpore's dynamic cluster supports IPv6 on Ascend only",
            "use node 0's IPv4 address",
        )
    if _is_ipv6(sched_host) and not _is_loopback(sched_host) and "MS_WORKER_IP" not in env_in:
        warnings.append(
            "the scheduler address is IPv6: MindSpore needs MS_WORKER_IP (this node's IPv6 "
            "address) in the environment of every process"
        )
    cpus = os.cpu_count() or 1
    if target == "CPU" and devices > cpus:
        warnings.append(
            f"{devices} CPU workers on a machine with {cpus} CPU(s): they will share cores and "
            "run slower than fewer workers"
        )
    return sched_host, warnings


def _cluster_env(world: int, sched_host: str, port: int, nodes: int, topo_timeout: int | None,
                 node_timeout: int | None, env_in: Mapping[str, str]
                 ) -> tuple[dict[str, str], list[str]]:
    """The variables every process of the cluster shares, and notes on inherited timeouts."""
    common = {"MS_WORKER_NUM": str(world), "MS_SCHED_HOST": sched_host,
              "MS_SCHED_PORT": str(port)}
    notes: list[str] = []
    topo_default = (
        DEFAULT_TOPO_TIMEOUT_MULTI_NODE if nodes > 1 else DEFAULT_TOPO_TIMEOUT_SINGLE_NODE
    )
    for name, value, default in (
        ("MS_TOPO_TIMEOUT", topo_timeout, topo_default),
        ("MS_NODE_TIMEOUT", node_timeout, DEFAULT_NODE_TIMEOUT),
    ):
        if value is not None:
            common[name] = str(_check_timeout(value, name))
        elif name in env_in:
            notes.append(f"{name}={env_in[name]} (from your environment)")
        else:
            common[name] = str(default)
    retry = _int_or(env_in.get("MS_HEARTBEAT_RETRY_TIMEOUT"), _DEFAULT_HEARTBEAT_RETRY_TIMEOUT)
    if node_timeout is not None and node_timeout <= retry:
        # MindSpore's docs: MS_NODE_TIMEOUT must exceed MS_HEARTBEAT_RETRY_TIMEOUT, or a worker
        # that is merely reconnecting is declared dead.
        raise WdsrError(
            f"a node timeout of {node_timeout}s must be greater than the heartbeat retry "
            f"timeout ({retry}s, MS_HEARTBEAT_RETRY_TIMEOUT)",
            f"use at least {retry + 1} seconds",
        )
    return common, notes


def _scheduler_spec(common: dict[str, str], world: int, argv: list[str],
                    log_dir: Path) -> ProcessSpec:
    return ProcessSpec(
        role=SCHEDULER,
        rank=None,
        local_index=None,
        device_id=None,
        env={
            "MS_ROLE": "MS_SCHED",
            **common,
            "RANK_ID": "0",  # as msrun: the scheduler always gets RANK_ID=0
            "RANK_SIZE": str(world),
            "WDSR_ROLE": SCHEDULER,
            "WDSR_LAUNCH_MODE": "dynamic",
        },
        argv=list(argv),
        log_path=log_dir / "scheduler.log",
        unset_env=["MS_NODE_ID", *_TABLE_VARS, *_MPI_VARS],
    )


def _dynamic_workers(common: dict[str, str], devices: int, node_rank: int, world: int,
                     target: str, argv: list[str], log_dir: Path) -> list[ProcessSpec]:
    workers = []
    for local_index in range(devices):
        rank = node_rank * devices + local_index
        device_id = local_index if target in ("GPU", "Ascend") else None
        env = {"MS_ROLE": "MS_WORKER", "MS_NODE_ID": str(rank), **common,
               "RANK_ID": str(rank), "RANK_SIZE": str(world)}
        if device_id is not None:
            env["DEVICE_ID"] = str(device_id)
        env.update(_wdsr_env("dynamic", rank, world, local_index, devices, device_id))
        workers.append(ProcessSpec(role=WORKER, rank=rank, local_index=local_index,
                                   device_id=device_id, env=env, argv=list(argv),
                                   log_path=log_dir / f"rank_{rank}.log",
                                   unset_env=[*_TABLE_VARS, *_MPI_VARS]))
    return workers


def _int_or(text: str | None, default: int) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return default


# --------------------------------------------------------------------------- dry run


def render_plan(plan: LaunchPlan) -> list[dict[str, Any]]:
    """JSON-able rows, one per process, in start order (for ``--dry-run``)."""
    rows: list[dict[str, Any]] = []
    for p in plan.processes:
        rows.append(
            {
                "mode": plan.mode,
                "role": p.role,
                "rank": p.rank,
                "local_index": p.local_index,
                "device": p.device_id,
                "env": dict(sorted(p.env.items())),
                "unset_env": list(p.unset_env),
                "argv": list(p.argv),
                "log": str(p.log_path),
            }
        )
    return rows

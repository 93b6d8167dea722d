"""Ascend HCCL rank tables: load, validate, and pick this machine's server.

A rank table is the JSON file HCCL reads to learn every rank of the job. The format used
here (``"version": "1.0"``) is the one in MindSpore's "rank table Startup" tutorial::

    {"version": "1.0", "server_count": "1",
     "server_list": [{"server_id": "192.0.2.10",
                      "device": [{"device_id": "0", "device_ip": "198.51.100.1", "rank_id": "0"},
                                 ...],
                      "host_nic_ip": "reserve"}],
     "status": "completed"}

Every value is a string. ``device_id`` is the physical card on that server, ``rank_id`` the
global rank (0..N-1 over all servers). Version 1.2 (Atlas A3, super-pods) and cross-cluster
tables add fields (``host_ip``, ``server_ip``, ``container_ip``, ``super_device_id``,
``super_pod_list``, ...) and may leave out ``server_count`` and ``device_ip``: both are optional
here, and a server is recognised by its ``server_id`` or by any of those addresses. The older
layout written by the model zoo's first ``hccl_tools.py`` (``group_list[0].instance_list[*]``
with one ``devices`` entry per rank) is read too and converted to the same :class:`RankTable`.

Nothing here imports MindSpore: loading a table is instant and testable anywhere.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WdsrError
from ..fileio import read_small_text

_INT_RE = re.compile(r"[0-9]+")
_RANK_TABLE_HINT = ("print the expected layout with 'wdsr train --rank-table-example' (an 8-device "
                    "table to edit)")
#: Fields of a server entry that can name this machine besides ``server_id``.
_ADDRESS_FIELDS = ("host_ip", "server_ip", "container_ip")


@dataclass(frozen=True)
class RankDevice:
    """One rank of the job: which card of which server runs it."""

    rank_id: int  # global rank, 0..world_size-1
    device_id: int  # physical card on its server (what DEVICE_ID must be)
    device_ip: str  # the card's NIC address (from /etc/hccn.conf); informational here
    server_id: str


@dataclass(frozen=True)
class RankTable:
    """A validated rank table.

    ``servers`` keeps the servers in file order; each server's devices are sorted by rank id,
    so a device's position in its list is its local index on that server.
    ``warnings`` holds problems that do not stop loading but may stop HCCL (shown to the user).
    """

    path: Path  # absolute
    servers: dict[str, list[RankDevice]] = field(hash=False)
    world_size: int
    layout: str = "server_list"  # or "group_list" (older hccl_tools.py output)
    warnings: tuple[str, ...] = field(default=())
    version: str = "1.0"
    #: server_id -> its other addresses (host_ip, server_ip, container_ip) when the table has them
    addresses: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def server_ids(self) -> list[str]:
        return list(self.servers)

    def devices_for(self, server_id: str) -> list[RankDevice]:
        return list(self.servers[server_id])

    def node_index(self, server_id: str) -> int:
        """The server's place when servers are ordered by their ranks: 0 for the server holding
        rank 0 (it creates the run folder), 1, 2, ... for the others (their log folders)."""
        order = sorted(self.servers, key=lambda s: min(d.rank_id for d in self.servers[s]))
        return order.index(server_id)


# --------------------------------------------------------------------------- loading


RANK_TABLE_MAX_BYTES = 16 << 20  # a 4,096-device table is about 1 MiB


def load_rank_table(path: str | Path) -> RankTable:
    """Read and validate an HCCL rank table; raise :class:`WdsrError` on anything wrong."""
    p = Path(path).expanduser()
    try:
        p = p.resolve()
    except OSError:  # pragma: no cover - resolve() only fails on odd filesystems
        p = p.absolute()
    if not p.exists():
        raise WdsrError(
            f"rank table not found: {p}",
            "pass the HCCL JSON for this job with --rank-table (generate it with the Ascend "
            "tooling, e.g. hccl_tools.py); " + _RANK_TABLE_HINT,
        )
    text = read_small_text(p, "rank table", RANK_TABLE_MAX_BYTES, _RANK_TABLE_HINT)
    if not text.strip():
        raise WdsrError(f"rank table {p} is empty", _RANK_TABLE_HINT)
    try:
        data = json.loads(text)
    except RecursionError:
        raise WdsrError(f"rank table {p} is nested too deeply to be a rank table",
                        _RANK_TABLE_HINT) from None
    except json.JSONDecodeError as exc:
        raise WdsrError(
            f"rank table {p} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            "fix the file (JSON allows no comments and no trailing commas); " + _RANK_TABLE_HINT,
        ) from exc
    return parse_rank_table(data, p)


def parse_rank_table(data: Any, path: Path) -> RankTable:
    """Validate already-decoded rank-table JSON (``path`` is only used in messages)."""
    where = f"rank table {path}"
    if not isinstance(data, dict):
        raise WdsrError(
            f"{where} must hold a JSON object, found {_json_kind(data)}", _RANK_TABLE_HINT
        )
    _require_keys(data, ("status",), where, "")
    status = data["status"]
    if status != "completed":
        raise WdsrError(
            f'{where} has status {json.dumps(status)}, not "completed"',
            "HCCL only uses a finished table; regenerate it or wait until the tool writing it "
            "has finished",
        )
    addresses: dict[str, tuple[str, ...]] = {}
    if "server_list" in data:
        servers, warnings, addresses = _parse_server_list(data, where)
        layout = "server_list"
    elif "group_list" in data:
        servers, warnings = _parse_group_list(data, where)
        layout = "group_list"
    else:
        raise WdsrError(
            f'{where} has neither "server_list" nor "group_list"; keys found: '
            f"{', '.join(sorted(map(str, data))) or 'none'}",
            _RANK_TABLE_HINT,
        )
    world_size = _check_ranks(servers, where)
    _check_blocks(servers, where)
    _check_device_ips(servers, where)
    warnings.extend(_order_warnings(servers))
    for devices in servers.values():
        devices.sort(key=lambda d: d.rank_id)
    return RankTable(
        path=path, servers=servers, world_size=world_size, layout=layout, warnings=tuple(warnings),
        version=str(data.get("version", "1.0")), addresses=addresses,
    )


def _parse_server_list(
    data: dict[str, Any], where: str
) -> tuple[dict[str, list[RankDevice]], list[str], dict[str, tuple[str, ...]]]:
    warnings: list[str] = []
    _require_keys(data, ("version", "server_list"), where, "")
    version = data["version"]
    if version not in ("1.0", "1.2"):
        warnings.append(
            f"rank table version is {json.dumps(version)}; wdsr checks the 1.0 and 1.2 layouts "
            "only, extra fields are passed to HCCL untouched"
        )
    server_list = data["server_list"]
    if not isinstance(server_list, list) or not server_list:
        raise WdsrError(
            f'{where}: "server_list" must be a non-empty list, found {_json_kind(server_list)}',
            _RANK_TABLE_HINT,
        )
    if "server_count" in data:  # optional in v1.2 and cross-cluster tables
        server_count = _int_field(data, "server_count", where, "")
        if server_count != len(server_list):
            raise WdsrError(
                f'{where}: "server_count" says {server_count} but "server_list" has '
                f"{len(server_list)} server(s)",
                "make server_count the number of entries in server_list",
            )
    servers: dict[str, list[RankDevice]] = {}
    addresses: dict[str, tuple[str, ...]] = {}
    for s_index, server in enumerate(server_list):
        loc = f"server_list[{s_index}]"
        if not isinstance(server, dict):
            raise WdsrError(
                f"{where}: {loc} must be an object, found {_json_kind(server)}", _RANK_TABLE_HINT
            )
        _require_keys(server, ("server_id", "device"), where, loc)
        server_id = _str_field(server, "server_id", where, loc)
        if server_id in servers:
            raise WdsrError(
                f"{where}: server_id {server_id!r} is listed twice ({loc} repeats an earlier "
                "server)",
                "each server must appear once; merge its devices into one entry",
            )
        addresses[server_id] = tuple(
            _str_field(server, key, where, loc) for key in _ADDRESS_FIELDS if key in server
        )
        device_list = server["device"]
        if not isinstance(device_list, list) or not device_list:
            raise WdsrError(
                f"{where}: server {server_id!r} ({loc}) has an empty or missing device list",
                "list at least one device for every server, or remove the server and lower "
                "server_count",
            )
        devices: list[RankDevice] = []
        for d_index, dev in enumerate(device_list):
            dloc = f"{loc}.device[{d_index}]"
            if not isinstance(dev, dict):
                raise WdsrError(
                    f"{where}: {dloc} must be an object, found {_json_kind(dev)}",
                    _RANK_TABLE_HINT,
                )
            _require_keys(dev, ("device_id", "rank_id"), where, dloc)
            devices.append(
                RankDevice(
                    rank_id=_int_field(dev, "rank_id", where, dloc),
                    device_id=_int_field(dev, "device_id", where, dloc),
                    device_ip=(_str_field(dev, "device_ip", where, dloc, allow_empty=True)
                               if "device_ip" in dev else ""),  # optional in v1.2
                    server_id=server_id,
                )
            )
        _check_device_ids(devices, server_id, where)
        servers[server_id] = devices
    return servers, warnings, addresses


def _parse_group_list(
    data: dict[str, Any], where: str
) -> tuple[dict[str, list[RankDevice]], list[str]]:
    """The older layout: ``group_list[0].instance_list[i] = {rank_id, server_id, devices}``."""
    groups = data["group_list"]
    if not isinstance(groups, list) or not groups:
        raise WdsrError(
            f'{where}: "group_list" must be a non-empty list, found {_json_kind(groups)}',
            _RANK_TABLE_HINT,
        )
    if len(groups) != 1:
        raise WdsrError(
            f'{where}: "group_list" has {len(groups)} groups; wdsr supports exactly one',
            "write the table in the server_list layout (version 1.0); " + _RANK_TABLE_HINT,
        )
    group = groups[0]
    if not isinstance(group, dict):
        raise WdsrError(
            f"{where}: group_list[0] must be an object, found {_json_kind(group)}",
            _RANK_TABLE_HINT,
        )
    _require_keys(group, ("instance_list",), where, "group_list[0]")
    instances = group["instance_list"]
    if not isinstance(instances, list) or not instances:
        raise WdsrError(
            f"{where}: group_list[0].instance_list must be a non-empty list, found "
            f"{_json_kind(instances)}",
            _RANK_TABLE_HINT,
        )
    servers: dict[str, list[RankDevice]] = {}
    for i, inst in enumerate(instances):
        loc = f"group_list[0].instance_list[{i}]"
        if not isinstance(inst, dict):
            raise WdsrError(
                f"{where}: {loc} must be an object, found {_json_kind(inst)}", _RANK_TABLE_HINT
            )
        _require_keys(inst, ("rank_id", "server_id", "devices"), where, loc)
        server_id = _str_field(inst, "server_id", where, loc)
        devs = inst["devices"]
        if not isinstance(devs, list) or len(devs) != 1 or not isinstance(devs[0], dict):
            count = len(devs) if isinstance(devs, list) else _json_kind(devs)
            raise WdsrError(
                f"{where}: {loc}.devices must list exactly one device per rank, found {count}",
                "write the table in the server_list layout (version 1.0); " + _RANK_TABLE_HINT,
            )
        dloc = f"{loc}.devices[0]"
        _require_keys(devs[0], ("device_id", "device_ip"), where, dloc)
        servers.setdefault(server_id, []).append(
            RankDevice(
                rank_id=_int_field(inst, "rank_id", where, loc),
                device_id=_int_field(devs[0], "device_id", where, dloc),
                device_ip=_str_field(devs[0], "device_ip", where, dloc, allow_empty=True),
                server_id=server_id,
            )
        )
    for key, expected in (("server_num", len(servers)), ("instance_count", len(instances))):
        if key in group:
            declared = _int_field(group, key, where, "group_list[0]")
            if declared != expected:
                raise WdsrError(
                    f"{where}: group_list[0].{key} says {declared} but the instance_list "
                    f"gives {expected}",
                    f"make {key} match the instances listed",
                )
    for server_id, devices in servers.items():
        _check_device_ids(devices, server_id, where)
    return servers, []


def _check_device_ids(devices: list[RankDevice], server_id: str, where: str) -> None:
    seen: dict[int, int] = {}
    for dev in devices:
        if dev.device_id in seen:
            raise WdsrError(
                f"{where}: server {server_id!r} lists device_id {dev.device_id} twice "
                f"(ranks {seen[dev.device_id]} and {dev.rank_id})",
                "each physical card of a server can run one rank only",
            )
        seen[dev.device_id] = dev.rank_id


def _check_ranks(servers: Mapping[str, list[RankDevice]], where: str) -> int:
    owner: dict[int, str] = {}
    for server_id, devices in servers.items():
        for dev in devices:
            if dev.rank_id in owner:
                other = owner[dev.rank_id]
                place = f"on server {other!r}" if other != server_id else "on the same server"
                raise WdsrError(
                    f"{where}: rank_id {dev.rank_id} is used twice (server {server_id!r} device "
                    f"{dev.device_id}, and {place})",
                    "every rank_id must be unique across all servers",
                )
            owner[dev.rank_id] = server_id
    world_size = len(owner)
    missing = sorted(set(range(world_size)) - set(owner))
    if missing:
        extra = sorted(r for r in owner if r >= world_size)
        raise WdsrError(
            f"{where}: rank ids must be 0..{world_size - 1} with no gaps for {world_size} "
            f"devices; missing {format_ranges(missing)}, out of range {format_ranges(extra)}",
            "renumber rank_id so the ranks are 0, 1, 2, ... across all servers",
        )
    return world_size


def _check_blocks(servers: Mapping[str, list[RankDevice]], where: str) -> None:
    """Each server must hold one contiguous block of ranks: CANN does not support ranks
    interleaved across servers (e.g. server A 0, 2, 4 and server B 1, 3, 5)."""
    if len(servers) < 2:
        return
    for sid, devices in servers.items():
        ranks = sorted(d.rank_id for d in devices)
        if ranks[-1] - ranks[0] + 1 != len(ranks):
            raise WdsrError(
                f"{where}: the ranks of server {sid!r} ({format_ranges(ranks)}) are not one "
                "contiguous block; HCCL does not support ranks interleaved across servers",
                "number the ranks server by server: the first server 0..n-1, the next n..2n-1, ...",
            )


def _check_device_ips(servers: Mapping[str, list[RankDevice]], where: str) -> None:
    seen: dict[str, RankDevice] = {}
    for devices in servers.values():
        for dev in devices:
            if not dev.device_ip:
                continue
            first = seen.setdefault(dev.device_ip, dev)
            if first is not dev:
                raise WdsrError(
                    f"{where}: device_ip {dev.device_ip} is given to two devices (rank "
                    f"{first.rank_id} and rank {dev.rank_id})",
                    "each card has its own NIC address: take them from /etc/hccn.conf on each "
                    "server (hccn_tool -i N -ip -g)",
                )


def _order_warnings(servers: Mapping[str, list[RankDevice]]) -> list[str]:
    """Orderings that MindSpore's rank-table tutorial asks for but that do not stop loading."""
    if len(servers) < 2:
        return []
    warnings: list[str] = []
    first = {sid: min(d.rank_id for d in devs) for sid, devs in servers.items()}
    file_order = list(servers)
    by_rank = sorted(servers, key=lambda s: first[s])
    by_name = sorted(servers)
    if by_rank != file_order:
        warnings.append(
            "server_list is not in rank order (the first server should hold the lowest ranks)"
        )
    if by_rank != by_name:
        warnings.append(
            "rank ids do not follow the dictionary (string) order of server_id "
            f"({', '.join(by_name)}); MindSpore's rank-table guide requires it for multi-server "
            "tables, and HCCL may fail to initialise"
        )
    return warnings


# --------------------------------------------------------------------------- field helpers


def _require_keys(obj: Mapping[str, Any], keys: Iterable[str], where: str, loc: str) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        at = f" {loc}" if loc else ""
        raise WdsrError(
            f"{where}:{at} is missing {', '.join(json.dumps(k) for k in missing)}",
            _RANK_TABLE_HINT,
        )


def _int_field(obj: Mapping[str, Any], key: str, where: str, loc: str) -> int:
    value = obj[key]
    name = f"{loc}.{key}" if loc else key
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        raise WdsrError(
            f"{where}: {name} is the number {value}; HCCL rank tables quote every value",
            f'write it as "{key}": "{value}"',
        )
    raise WdsrError(
        f"{where}: {name} must be a string holding a non-negative integer, got {json.dumps(value)}",
        _RANK_TABLE_HINT,
    )


def _str_field(
    obj: Mapping[str, Any], key: str, where: str, loc: str, *, allow_empty: bool = False
) -> str:
    value = obj[key]
    name = f"{loc}.{key}" if loc else key
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise WdsrError(
            f"{where}: {name} must be a non-empty string, got {json.dumps(value)}",
            _RANK_TABLE_HINT,
        )
    return value.strip()


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, str):
        return "a string"
    return "a number"


def format_ranges(values: Iterable[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    vals = sorted(set(values))
    if not vals:
        return "none"
    parts: list[str] = []
    start = prev = vals[0]
    for v in vals[1:]:
        if v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}-{prev}" if prev != start else str(start))
        start = prev = v
    parts.append(f"{start}-{prev}" if prev != start else str(start))
    return ", ".join(parts)


# --------------------------------------------------------------------------- this server


def check_table_target(target: str) -> None:
    """A rank table is HCCL's, so Ascend's: the one check that refuses it for another target."""
    if target != "Ascend":
        raise WdsrError(
            f"--rank-table is for Ascend (HCCL); the device target is {target}",
            "drop --rank-table: GPU and CPU use MindSpore's dynamic cluster (--devices N), "
            "or pass --device-target Ascend on an Ascend server")


def select_server(
    table: RankTable, server_id: str | None, local_addresses: set[str] | None = None
) -> str:
    """Which server of ``table`` this machine is.

    In order: the explicit ``--server-id``; else the one server whose ``server_id`` or
    ``host_ip``/``server_ip``/``container_ip`` is one of this machine's addresses or host names
    (``local_addresses``, or :func:`local_ip_addresses` plus the host name when ``None``); else
    the only server of a one-server table.
    """
    ids = table.server_ids()
    listed = ", ".join(ids)
    if server_id is not None:
        wanted = server_id.strip()
        if wanted in table.servers:
            return wanted
        raise WdsrError(
            f"--server-id {server_id!r} is not in rank table {table.path}; it lists: {listed}",
            "pass one of the listed server ids",
        )
    if local_addresses is None:
        local_addresses = local_ip_addresses() | _local_host_names()
    matches = [sid for sid in ids
               if any(_normalise_addr(a) in local_addresses
                      for a in (sid, *table.addresses.get(sid, ())))]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise WdsrError(
            f"this machine matches several servers of rank table {table.path}: "
            f"{', '.join(matches)}",
            "pass --server-id to say which one to start here",
        )
    if len(ids) == 1:
        return ids[0]
    shown = ", ".join(sorted(local_addresses)) or "none found"
    raise WdsrError(
        f"none of the {len(ids)} servers in rank table {table.path} ({listed}) is this machine "
        f"(its addresses: {shown})",
        "run the same command on every server and pass --server-id SERVER_ID on each",
    )


def example_table_text() -> str:
    """The 8-device example rank table shipped with wdsr (``wdsr train --rank-table-example``)."""
    from ..config import builtin_config_dir

    return (builtin_config_dir() / "hccl_8p.example.json").read_text(encoding="utf-8")


def list_ascend_devices() -> list[int] | None:
    """The Ascend cards this machine shows as /dev/davinciN (their numbers), or None when
    there are none to list (not an Ascend machine, or a container without device nodes)."""
    import glob

    found = sorted(int(p[len("/dev/davinci"):]) for p in glob.glob("/dev/davinci[0-9]*")
                   if p[len("/dev/davinci"):].isdigit())
    return found or None


def check_devices_present(table: RankTable, server_id: str, listed: list[int] | None) -> None:
    """Every device_id the table gives this server must be a card this machine has (when the
    cards can be listed): HCCL would otherwise fail, or hang waiting for a rank."""
    if not listed:
        return
    missing = [d.device_id for d in table.devices_for(server_id) if d.device_id not in listed]
    if missing:
        raise WdsrError(
            f"rank table {table.path} gives server {server_id!r} device_id "
            f"{format_ranges(missing)}, but this machine has "
            f"/dev/davinci{{{format_ranges(listed)}}}",
            "use this server's physical card numbers in the table (hccl_tools.py "
            "--visible_devices), or pass --server-id if this is another server's entry",
        )


def local_ip_addresses() -> set[str]:
    """This machine's IP addresses (IPv4 and IPv6, loopback included), best effort.

    Sources, all optional: ``getaddrinfo`` of the host name and FQDN, the address the kernel
    would use for an outgoing route (a UDP ``connect``, which sends nothing), and
    ``hostname -I``. Never raises.
    """
    found: set[str] = {"127.0.0.1", "::1"}
    names = _local_host_names()
    for name in names:
        try:
            for info in socket.getaddrinfo(name, None):
                found.add(_normalise_addr(str(info[4][0])))
        except (OSError, UnicodeError):
            continue
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))
                found.add(_normalise_addr(str(sock.getsockname()[0])))
        except OSError:
            continue
    hostname_bin = shutil.which("hostname")
    if hostname_bin:
        try:
            out = subprocess.run(
                [hostname_bin, "-I"], capture_output=True, text=True, timeout=2, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        found.update(_normalise_addr(tok) for tok in out.split())
    return {a for a in found if _is_ip(a)}


def _local_host_names() -> set[str]:
    names: set[str] = set()
    try:
        names.add(socket.gethostname())
        names.add(socket.getfqdn())
    except OSError:  # pragma: no cover
        pass
    names.discard("")
    return names


def _normalise_addr(addr: str) -> str:
    addr = addr.strip()
    if addr.startswith("[") and addr.endswith("]"):
        addr = addr[1:-1]
    return addr.split("%", 1)[0]  # drop an IPv6 zone id (fe80::1%eth0)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

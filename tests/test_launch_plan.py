"""Launch plans: which processes start where, with exactly which environment."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import write_rank_table

from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.launch.plan import (
    DEFAULT_NODE_TIMEOUT,
    DEFAULT_TOPO_TIMEOUT_MULTI_NODE,
    DEFAULT_TOPO_TIMEOUT_SINGLE_NODE,
    SCHEDULER,
    WORKER,
    free_port,
    parse_master,
    plan_dynamic,
    plan_ranktable,
    plan_single,
    render_plan,
    resolve_master,
)
from wdsr_cli.core.launch.ranktable import load_rank_table

SERVER_A = "192.0.2.10"
SERVER_B = "192.0.2.11"
ARGV = ["/usr/bin/python3", "-m", "wdsr_cli.worker", "--config", "run.yaml"]


@pytest.fixture
def table_8p(tmp_path: Path):
    return load_rank_table(
        write_rank_table(tmp_path / "hccl_8p.json", [(SERVER_A, [(i, i) for i in range(8)])])
    )


@pytest.fixture
def table_16p(tmp_path: Path):
    return load_rank_table(
        write_rank_table(
            tmp_path / "hccl_16p.json",
            [(SERVER_A, [(i, i) for i in range(8)]), (SERVER_B, [(i, 8 + i) for i in range(8)])],
        )
    )


# --------------------------------------------------------------------------- rank table


def ranktable_env(table_path: Path, rank: int, device: int, local: int, world: int) -> dict:
    return {
        "RANK_TABLE_FILE": str(table_path),
        "RANK_SIZE": str(world),
        "RANK_ID": str(rank),
        "DEVICE_ID": str(device),
        "WDSR_ROLE": "worker",
        "WDSR_LAUNCH_MODE": "ranktable",
        "WDSR_RANK": str(rank),
        "WDSR_WORLD_SIZE": str(world),
        "WDSR_LOCAL_RANK": str(local),
        "WDSR_LOCAL_WORLD_SIZE": "8",
        "WDSR_DEVICE_ID": str(device),
    }


def test_ranktable_8p(table_8p, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    plan = plan_ranktable(table_8p, SERVER_A, 8, ARGV, run_dir)
    assert plan.mode == "ranktable" and plan.world_size == 8
    assert plan.scheduler is None
    assert [p.rank for p in plan.processes] == list(range(8))
    for i, p in enumerate(plan.processes):
        assert p.role == WORKER
        assert (p.local_index, p.device_id) == (i, i)
        assert p.env == ranktable_env(table_8p.path, i, i, i, 8)
        assert p.argv == ARGV and p.argv is not ARGV
        assert p.log_path == run_dir / "logs" / f"rank_{i}.log"


@pytest.mark.parametrize(("server", "ranks"), [(SERVER_A, range(0, 8)), (SERVER_B, range(8, 16))])
def test_ranktable_16p_each_server_starts_its_own_ranks(table_16p, tmp_path, server, ranks):
    plan = plan_ranktable(table_16p, server, 8, ARGV, tmp_path / "run", base_env={})
    assert plan.world_size == 16
    assert [p.rank for p in plan.processes] == list(ranks)
    table_file = Path(plan.processes[0].env["RANK_TABLE_FILE"])
    assert table_file.is_absolute() and table_file == (tmp_path / "hccl_16p.json").resolve()
    for local, (p, rank) in enumerate(zip(plan.processes, ranks, strict=True)):
        assert p.device_id == local  # physical cards 0..7 on both servers
        # several servers: HCCL_CONNECT_TIMEOUT too (HCCL's 120 s default is short for them)
        assert p.env == {**ranktable_env(table_file, rank, local, local, 16),
                         "HCCL_CONNECT_TIMEOUT": "600"}
        assert p.log_path == tmp_path / "run" / "logs" / f"rank_{rank}.log"
    assert any("run the same command on every other server" in d for d in plan.description)


def test_ranktable_mode_sets_no_dynamic_cluster_variables(table_16p, tmp_path) -> None:
    plan = plan_ranktable(table_16p, SERVER_B, 8, ARGV, tmp_path)
    for p in plan.processes:
        assert not any(k.startswith("MS_") for k in p.env)
        assert "SERVER_ID" not in p.env
        assert {"MS_ROLE", "MS_NODE_ID", "MS_SCHED_HOST", "MINDSPORE_HCCL_CONFIG_PATH"} <= set(
            p.unset_env
        )
    stale = {"MS_ROLE": "MS_WORKER", "MINDSPORE_HCCL_CONFIG_PATH": "/old.json", "HOME": "/h"}
    full = plan.processes[0].full_env(stale)
    assert "MS_ROLE" not in full and "MINDSPORE_HCCL_CONFIG_PATH" not in full
    assert full["HOME"] == "/h" and full["RANK_ID"] == "8"


def test_ranktable_relative_path_becomes_absolute(tmp_path, monkeypatch) -> None:
    write_rank_table(tmp_path / "t.json", [(SERVER_A, [(0, 0), (1, 1)])])
    monkeypatch.chdir(tmp_path)
    table = load_rank_table("t.json")
    plan = plan_ranktable(table, SERVER_A, 2, ARGV, "run")
    assert plan.processes[1].env["RANK_TABLE_FILE"] == str((tmp_path / "t.json").resolve())


def test_ranktable_physical_device_ids_are_kept(tmp_path) -> None:
    # A 4-card table on cards 4-7: DEVICE_ID is the physical card, WDSR_LOCAL_RANK the index.
    table = load_rank_table(
        write_rank_table(tmp_path / "t.json", [(SERVER_A, [(4 + i, i) for i in range(4)])])
    )
    plan = plan_ranktable(table, SERVER_A, 4, ARGV, tmp_path)
    assert [p.env["DEVICE_ID"] for p in plan.processes] == ["4", "5", "6", "7"]
    assert [p.env["WDSR_LOCAL_RANK"] for p in plan.processes] == ["0", "1", "2", "3"]
    assert [p.env["RANK_ID"] for p in plan.processes] == ["0", "1", "2", "3"]


def test_ranktable_devices_none_takes_the_table_count(table_16p, tmp_path) -> None:
    assert len(plan_ranktable(table_16p, SERVER_A, None, ARGV, tmp_path).processes) == 8


def test_ranktable_device_count_mismatch(table_16p, tmp_path) -> None:
    with pytest.raises(WdsrError) as info:
        plan_ranktable(table_16p, SERVER_B, 4, ARGV, tmp_path)
    err = info.value
    assert f"--devices 4 does not match the rank table: server {SERVER_B} lists 8" in err.message
    assert "--devices 8" in (err.hint or "")


def test_ranktable_server_missing(table_16p, tmp_path) -> None:
    with pytest.raises(WdsrError) as info:
        plan_ranktable(table_16p, "203.0.113.1", 8, ARGV, tmp_path)
    msg = info.value.message
    assert "'203.0.113.1' is not in rank table" in msg
    assert SERVER_A in msg and SERVER_B in msg


def test_ranktable_needs_ascend(table_8p, tmp_path) -> None:
    with pytest.raises(WdsrError) as info:
        plan_ranktable(table_8p, SERVER_A, 8, ARGV, tmp_path, device_target="GPU")
    assert "--rank-table is for Ascend" in info.value.message
    assert "drop --rank-table" in (info.value.hint or "")


def test_ranktable_zero_devices(table_8p, tmp_path) -> None:
    with pytest.raises(WdsrError, match="--devices must be a whole number of at least 1"):
        plan_ranktable(table_8p, SERVER_A, 0, ARGV, tmp_path)


# --------------------------------------------------------------------------- dynamic


def test_dynamic_single_node_cpu_two_devices(tmp_path) -> None:
    run = tmp_path / "run"
    plan = plan_dynamic(2, 1, 0, "127.0.0.1", 23456, ARGV, run, "CPU", base_env={})
    assert plan.mode == "dynamic" and plan.world_size == 2
    assert [p.role for p in plan.processes] == [SCHEDULER, WORKER, WORKER]
    common = {
        "MS_WORKER_NUM": "2",
        "MS_SCHED_HOST": "127.0.0.1",
        "MS_SCHED_PORT": "23456",
        "MS_TOPO_TIMEOUT": str(DEFAULT_TOPO_TIMEOUT_SINGLE_NODE),
        "MS_NODE_TIMEOUT": str(DEFAULT_NODE_TIMEOUT),
        "RANK_SIZE": "2",
    }
    sched = plan.scheduler
    assert sched is plan.processes[0]
    assert (sched.rank, sched.local_index, sched.device_id) == (None, None, None)
    assert sched.env == {
        **common,
        "MS_ROLE": "MS_SCHED",
        "RANK_ID": "0",
        "WDSR_ROLE": "scheduler",
        "WDSR_LAUNCH_MODE": "dynamic",
    }
    assert sched.argv == ARGV
    assert sched.log_path == run / "logs" / "scheduler.log"
    for i, w in enumerate(plan.workers):
        assert (w.rank, w.local_index, w.device_id) == (i, i, None)
        assert w.env == {
            **common,
            "MS_ROLE": "MS_WORKER",
            "MS_NODE_ID": str(i),
            "RANK_ID": str(i),
            "WDSR_ROLE": "worker",
            "WDSR_LAUNCH_MODE": "dynamic",
            "WDSR_RANK": str(i),
            "WDSR_WORLD_SIZE": "2",
            "WDSR_LOCAL_RANK": str(i),
            "WDSR_LOCAL_WORLD_SIZE": "2",
        }
        assert "DEVICE_ID" not in w.env  # CPU
        assert w.argv == ARGV
        assert w.log_path == run / "logs" / f"rank_{i}.log"
        assert "RANK_TABLE_FILE" in w.unset_env


def test_dynamic_two_nodes_second_node(tmp_path) -> None:
    plan = plan_dynamic(2, 2, 1, SERVER_A, 8118, ARGV, tmp_path, "CPU", base_env={})
    assert plan.world_size == 4
    assert plan.scheduler is None
    assert [p.role for p in plan.processes] == [WORKER, WORKER]
    assert [p.env["MS_NODE_ID"] for p in plan.processes] == ["2", "3"]
    assert [p.rank for p in plan.processes] == [2, 3]
    assert [p.local_index for p in plan.processes] == [0, 1]
    for p in plan.processes:
        assert p.env["MS_WORKER_NUM"] == "4"
        assert p.env["MS_SCHED_HOST"] == SERVER_A and p.env["MS_SCHED_PORT"] == "8118"
        assert p.env["MS_TOPO_TIMEOUT"] == str(DEFAULT_TOPO_TIMEOUT_MULTI_NODE)
        assert p.env["WDSR_WORLD_SIZE"] == "4"
    assert [p.log_path.name for p in plan.processes] == ["rank_2.log", "rank_3.log"]


def test_dynamic_two_nodes_first_node(tmp_path) -> None:
    plan = plan_dynamic(2, 2, 0, SERVER_A, 8118, ARGV, tmp_path, "CPU", base_env={})
    assert [(p.role, p.rank) for p in plan.processes] == [
        (SCHEDULER, None),
        (WORKER, 0),
        (WORKER, 1),
    ]
    assert plan.scheduler.env["MS_WORKER_NUM"] == "4"


def test_dynamic_gpu_sets_device_id_to_local_index(tmp_path) -> None:
    plan = plan_dynamic(4, 2, 1, SERVER_A, 8118, ARGV, tmp_path, "gpu", base_env={})
    assert plan.device_target == "GPU"
    assert [p.env["DEVICE_ID"] for p in plan.workers] == ["0", "1", "2", "3"]
    assert [p.device_id for p in plan.workers] == [0, 1, 2, 3]
    assert [p.env["WDSR_DEVICE_ID"] for p in plan.workers] == ["0", "1", "2", "3"]
    assert [p.env["MS_NODE_ID"] for p in plan.workers] == ["4", "5", "6", "7"]


def test_dynamic_scheduler_has_no_device(tmp_path) -> None:
    plan = plan_dynamic(2, 1, 0, "127.0.0.1", 8118, ARGV, tmp_path, "Ascend", base_env={})
    assert "DEVICE_ID" not in plan.scheduler.env and "MS_NODE_ID" not in plan.scheduler.env
    assert "MS_NODE_ID" in plan.scheduler.unset_env


@pytest.mark.parametrize(("nodes", "node_rank"), [(2, 2), (2, -1), (1, 1), (3, 5)])
def test_dynamic_bad_node_rank(tmp_path, nodes, node_rank) -> None:
    with pytest.raises(WdsrError) as info:
        plan_dynamic(2, nodes, node_rank, SERVER_A, 8118, ARGV, tmp_path, "CPU")
    assert f"--node-rank {node_rank} is out of range for --nodes {nodes}" in info.value.message


@pytest.mark.parametrize(("devices", "nodes", "flag"), [(0, 1, "--devices"), (2, 0, "--nodes")])
def test_dynamic_bad_counts(tmp_path, devices, nodes, flag) -> None:
    with pytest.raises(WdsrError, match=f"{flag} must be a whole number of at least 1"):
        plan_dynamic(devices, nodes, 0, SERVER_A, 8118, ARGV, tmp_path, "CPU")


def test_dynamic_multi_node_loopback_master_is_a_warning(tmp_path) -> None:
    # Several "nodes" on one machine work on loopback; other machines could not reach it.
    plan = plan_dynamic(2, 2, 0, "127.0.0.1", 8118, ARGV, tmp_path, "CPU")
    assert any("loopback address: only nodes on this machine can join" in w
               for w in plan.warnings)


def test_dynamic_bad_port(tmp_path) -> None:
    with pytest.raises(WdsrError, match="port 80 is outside 1024-65535"):
        plan_dynamic(2, 1, 0, "127.0.0.1", 80, ARGV, tmp_path, "CPU")


def test_dynamic_unknown_device_target(tmp_path) -> None:
    with pytest.raises(WdsrError, match="unknown device target 'TPU'"):
        plan_dynamic(2, 1, 0, "127.0.0.1", 8118, ARGV, tmp_path, "TPU")


def test_device_target_is_normalised_in_one_place(tmp_path) -> None:
    from wdsr_cli.core import runtime

    assert runtime.normalise_device_target(" ascend ") == "Ascend"
    assert runtime.normalise_device_target("AUTO") == "auto"
    # a plan needs a concrete target: "auto" was resolved before (runtime.resolve_device_target)
    with pytest.raises(WdsrError, match="unknown device target 'auto'") as info:
        plan_dynamic(2, 1, 0, "127.0.0.1", 8118, ARGV, tmp_path, "auto")
    assert info.value.hint == "choose CPU, GPU or Ascend"
    assert plan_dynamic(1, 1, 0, "127.0.0.1", 8118, ARGV, tmp_path, " Cpu ",
                        base_env={}).device_target == "CPU"


def test_dynamic_ipv6_master_needs_ascend(tmp_path) -> None:
    with pytest.raises(WdsrError, match="IPv6 on Ascend only"):
        plan_dynamic(2, 2, 1, "2001:db8::1", 8118, ARGV, tmp_path, "CPU")


def test_dynamic_host_name_is_resolved_to_an_address(tmp_path) -> None:
    plan = plan_dynamic(1, 1, 0, "localhost", 8118, ARGV, tmp_path, "CPU", base_env={})
    assert plan.workers[0].env["MS_SCHED_HOST"] in ("127.0.0.1", "::1")


def test_dynamic_timeouts_from_user_environment_are_inherited(tmp_path) -> None:
    env = {"MS_TOPO_TIMEOUT": "999", "MS_NODE_TIMEOUT": "77"}
    plan = plan_dynamic(2, 1, 0, "127.0.0.1", 8118, ARGV, tmp_path, "CPU", base_env=env)
    for p in plan.processes:
        assert "MS_TOPO_TIMEOUT" not in p.env and "MS_NODE_TIMEOUT" not in p.env
        assert p.full_env(env)["MS_TOPO_TIMEOUT"] == "999"
    assert any("MS_TOPO_TIMEOUT=999 (from your environment)" in d for d in plan.description)


def test_dynamic_explicit_timeouts_win(tmp_path) -> None:
    env = {"MS_TOPO_TIMEOUT": "999"}
    plan = plan_dynamic(
        2,
        1,
        0,
        "127.0.0.1",
        8118,
        ARGV,
        tmp_path,
        "CPU",
        topo_timeout=45,
        node_timeout=25,
        base_env=env,
    )
    for p in plan.processes:
        assert p.env["MS_TOPO_TIMEOUT"] == "45" and p.env["MS_NODE_TIMEOUT"] == "25"


@pytest.mark.parametrize("value", [0, -3, 20, 5])
def test_dynamic_node_timeout_too_small(tmp_path, value) -> None:
    with pytest.raises(WdsrError, match="MS_NODE_TIMEOUT must be|node timeout of"):
        plan_dynamic(
            2, 1, 0, "127.0.0.1", 8118, ARGV, tmp_path, "CPU", node_timeout=value, base_env={}
        )


def test_dynamic_one_device_one_node_is_still_a_cluster(tmp_path) -> None:
    plan = plan_dynamic(1, 1, 0, "127.0.0.1", 8118, ARGV, tmp_path, "CPU", base_env={})
    assert [p.role for p in plan.processes] == [SCHEDULER, WORKER]
    assert plan.workers[0].env["MS_WORKER_NUM"] == "1"


# --------------------------------------------------------------------------- single


def test_single(tmp_path) -> None:
    plan = plan_single(ARGV, tmp_path / "run", None)
    assert plan.mode == "single" and plan.world_size == 1
    (p,) = plan.processes
    assert (p.role, p.rank, p.local_index, p.device_id) == (WORKER, 0, 0, None)
    assert p.env == {
        "WDSR_ROLE": "worker",
        "WDSR_LAUNCH_MODE": "single",
        "WDSR_RANK": "0",
        "WDSR_WORLD_SIZE": "1",
        "WDSR_LOCAL_RANK": "0",
        "WDSR_LOCAL_WORLD_SIZE": "1",
    }
    assert p.log_path == tmp_path / "run" / "logs" / "rank_0.log"
    stale = {"MS_ROLE": "MS_WORKER", "RANK_TABLE_FILE": "/x.json", "RANK_ID": "3", "PATH": "/b"}
    full = p.full_env(stale)
    assert full == {"PATH": "/b", **p.env}


def test_single_with_device(tmp_path) -> None:
    (p,) = plan_single(ARGV, tmp_path, 3).processes
    assert p.device_id == 3
    assert p.env["DEVICE_ID"] == "3" and p.env["WDSR_DEVICE_ID"] == "3"


# --------------------------------------------------------------------------- master / port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.10:8118", ("192.0.2.10", 8118)),
        (" node0.example.org:29500 ", ("node0.example.org", 29500)),
        ("[2001:db8::1]:8118", ("2001:db8::1", 8118)),
        ("localhost:65535", ("localhost", 65535)),
        ("10.0.0.1:1024", ("10.0.0.1", 1024)),
    ],
)
def test_parse_master_good(text, expected) -> None:
    assert parse_master(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "--master is empty"),
        ("192.0.2.10", "has no port"),
        ("192.0.2.10:", "is not a number"),
        (":8118", "has no host"),
        ("host:abc", "port 'abc' is not a number"),
        ("host:-1", "is not a number"),
        ("host:80", "port 80 is outside 1024-65535"),
        ("host:70000", "port 70000 is outside 1024-65535"),
        ("2001:db8::1:8118", "bare IPv6 address"),
        ("[2001:db8::1]8118", "is not [IPv6]:PORT"),
        ("[node0]:8118", "is not an IPv6 address"),
        ("tcp://192.0.2.10:8118", "scheme"),
        ("my host:8118", "is not a host name or address"),
    ],
)
def test_parse_master_bad(text, fragment) -> None:
    with pytest.raises(WdsrError) as info:
        parse_master(text)
    assert fragment in info.value.message
    assert "HOST:PORT" in (info.value.hint or "")


def test_resolve_master_multi_node_requires_master() -> None:
    with pytest.raises(WdsrError) as info:
        resolve_master(None, 2)
    assert "--nodes 2 needs --master HOST:PORT" in info.value.message


def test_resolve_master_single_node_picks_a_free_local_port() -> None:
    host, port = resolve_master(None, 1)
    assert host == "127.0.0.1" and 1024 <= port <= 65535
    assert resolve_master("192.0.2.10:8118", 3) == ("192.0.2.10", 8118)


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))


# --------------------------------------------------------------------------- dry run


def test_render_plan_is_json(tmp_path, table_16p) -> None:
    plan = plan_dynamic(2, 1, 0, "127.0.0.1", 8118, ARGV, tmp_path, "CPU", base_env={})
    rows = render_plan(plan)
    assert json.loads(json.dumps(rows)) == rows
    assert [(r["role"], r["rank"], r["device"]) for r in rows] == [
        ("scheduler", None, None),
        ("worker", 0, None),
        ("worker", 1, None),
    ]
    assert rows[1]["env"]["MS_NODE_ID"] == "0"
    assert rows[1]["log"] == str(tmp_path / "logs" / "rank_0.log")
    assert rows[0]["argv"] == ARGV

    rows = render_plan(plan_ranktable(table_16p, SERVER_B, 8, ARGV, tmp_path))
    json.dumps(rows)
    assert [(r["rank"], r["device"]) for r in rows] == [(8 + i, i) for i in range(8)]
    assert all(r["mode"] == "ranktable" for r in rows)

"""Rank tables: loading, validation messages, and choosing this machine's server."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from conftest import rank_table_dict

from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.launch.ranktable import (
    RankDevice,
    load_rank_table,
    local_ip_addresses,
    select_server,
)

REPO = Path(__file__).resolve().parents[1]
SERVER_A = "192.0.2.10"
SERVER_B = "192.0.2.11"




def write(tmp_path: Path, data, name: str = "hccl.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


@pytest.fixture
def table_8p(tmp_path: Path) -> Path:
    table = rank_table_dict([(SERVER_A, [(i, i) for i in range(8)])])
    return write(tmp_path, table, "hccl_8p.json")


@pytest.fixture
def table_16p(tmp_path: Path) -> Path:
    data = rank_table_dict(
        [
            (SERVER_A, [(i, i) for i in range(8)]),
            (SERVER_B, [(i, 8 + i) for i in range(8)]),
        ]
    )
    return write(tmp_path, data, "hccl_16p.json")


def error_of(path: Path) -> WdsrError:
    with pytest.raises(WdsrError) as info:
        load_rank_table(path)
    return info.value


# --------------------------------------------------------------------------- good tables


def test_8p_one_server(table_8p: Path) -> None:
    table = load_rank_table(table_8p)
    assert table.world_size == 8
    assert table.path == table_8p.resolve() and table.path.is_absolute()
    assert table.server_ids() == [SERVER_A]
    devices = table.devices_for(SERVER_A)
    assert [(d.rank_id, d.device_id) for d in devices] == [(i, i) for i in range(8)]
    assert devices[3] == RankDevice(
        rank_id=3, device_id=3, device_ip="198.51.100.4", server_id=SERVER_A
    )
    assert table.warnings == ()
    assert table.layout == "server_list"


def test_16p_two_servers(table_16p: Path) -> None:
    table = load_rank_table(table_16p)
    assert table.world_size == 16
    assert table.server_ids() == [SERVER_A, SERVER_B]
    a, b = table.devices_for(SERVER_A), table.devices_for(SERVER_B)
    assert [d.rank_id for d in a] == list(range(8))
    assert [d.rank_id for d in b] == list(range(8, 16))
    assert [d.device_id for d in a] == [d.device_id for d in b] == list(range(8))
    assert {d.server_id for d in b} == {SERVER_B}
    assert table.warnings == ()


def test_relative_path_becomes_absolute(table_8p: Path, monkeypatch) -> None:
    monkeypatch.chdir(table_8p.parent)
    table = load_rank_table("hccl_8p.json")
    assert table.path == table_8p.resolve()


def test_devices_sorted_by_rank_within_server(tmp_path: Path) -> None:
    path = write(tmp_path, rank_table_dict([(SERVER_A, [(1, 1), (0, 0), (3, 3), (2, 2)])]))
    table = load_rank_table(path)
    assert [d.rank_id for d in table.devices_for(SERVER_A)] == [0, 1, 2, 3]


def test_shipped_example_loads() -> None:
    table = load_rank_table(REPO / "configs" / "hccl_8p.example.json")
    assert table.world_size == 8
    assert table.server_ids() == ["192.0.2.10"]
    devices = table.devices_for("192.0.2.10")
    assert [d.device_id for d in devices] == list(range(8))
    for d in devices:  # documentation addresses only (RFC 5737 TEST-NET ranges)
        assert ipaddress.ip_address(d.device_ip) in ipaddress.ip_network("198.51.100.0/24")
    assert table.warnings == ()


def test_older_group_list_layout(tmp_path: Path) -> None:
    data = {
        "board_id": "0x0000",
        "chip_info": "910",
        "deploy_mode": "lab",
        "group_count": "1",
        "group_list": [
            {
                "device_num": "4",
                "server_num": "1",
                "group_name": "",
                "instance_count": "4",
                "instance_list": [
                    {
                        "devices": [{"device_id": str(i), "device_ip": f"198.51.100.{i + 1}"}],
                        "rank_id": str(i),
                        "server_id": SERVER_A,
                    }
                    for i in range(4)
                ],
            }
        ],
        "para_plane_nic_location": "device",
        "status": "completed",
    }
    table = load_rank_table(write(tmp_path, data))
    assert table.layout == "group_list"
    assert table.world_size == 4
    assert [(d.rank_id, d.device_id) for d in table.devices_for(SERVER_A)] == [
        (i, i) for i in range(4)
    ]


def test_group_list_with_several_devices_per_rank_is_rejected(tmp_path: Path) -> None:
    data = {
        "status": "completed",
        "group_list": [
            {
                "instance_list": [
                    {
                        "rank_id": "0",
                        "server_id": SERVER_A,
                        "devices": [
                            {"device_id": "0", "device_ip": "198.51.100.1"},
                            {"device_id": "1", "device_ip": "198.51.100.2"},
                        ],
                    }
                ]
            }
        ],
    }
    err = error_of(write(tmp_path, data))
    assert "exactly one device per rank" in err.message
    assert "server_list layout" in (err.hint or "")


def test_server_order_against_server_id_dictionary_order_is_a_warning(tmp_path: Path) -> None:
    # "10.0.0.10" sorts before "10.0.0.9" as a string, but holds the higher ranks here.
    data = rank_table_dict(
        [("10.0.0.9", [(i, i) for i in range(2)]), ("10.0.0.10", [(i, 2 + i) for i in range(2)])]
    )
    table = load_rank_table(write(tmp_path, data))
    assert table.world_size == 4
    assert any("dictionary (string) order of server_id" in w for w in table.warnings)


# --------------------------------------------------------------------------- bad tables


def test_missing_file(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.json")
    assert "rank table not found" in err.message
    assert "nope.json" in err.message
    assert "--rank-table" in (err.hint or "")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "is a folder" in error_of(tmp_path).message


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    text = '{\n  "version": "1.0",\n  "server_count": "1",,\n}\n'
    err = error_of(write(tmp_path, text))
    assert "is not valid JSON" in err.message
    assert "line 3" in err.message and "column" in err.message


def test_trailing_comma_is_malformed(tmp_path: Path) -> None:
    text = json.dumps(rank_table_dict([(SERVER_A, [(0, 0)])]), indent=2)
    text = text.replace('"status": "completed"', '"status": "completed",')
    err = error_of(write(tmp_path, text))
    assert "not valid JSON" in err.message
    assert "trailing commas" in (err.hint or "")


def test_empty_file(tmp_path: Path) -> None:
    assert "is empty" in error_of(write(tmp_path, "  \n")).message


def test_top_level_not_an_object(tmp_path: Path) -> None:
    assert "must hold a JSON object, found an empty list" in error_of(write(tmp_path, "[]")).message
    assert "found a string" in error_of(write(tmp_path, '"x"')).message


def test_duplicate_rank_ids(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0), (1, 1)]), (SERVER_B, [(0, 1), (1, 2)])])
    err = error_of(write(tmp_path, data))
    assert "rank_id 1 is used twice" in err.message
    assert SERVER_A in err.message and SERVER_B in err.message
    assert "unique" in (err.hint or "")


def test_non_contiguous_ranks(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0), (1, 1), (2, 2), (3, 4)])])
    err = error_of(write(tmp_path, data))
    assert "rank ids must be 0..3 with no gaps" in err.message
    assert "missing 3" in err.message
    assert "out of range 4" in err.message


def test_ranks_not_starting_at_zero(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 1), (1, 2)])])
    err = error_of(write(tmp_path, data))
    assert "missing 0" in err.message


@pytest.mark.parametrize("status", ["initializing", "", None])
def test_status_not_completed(tmp_path: Path, status) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0)])], status=status)
    err = error_of(write(tmp_path, data))
    assert f"has status {json.dumps(status)}" in err.message
    assert 'not "completed"' in err.message


def test_missing_status(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0)])])
    del data["status"]
    assert 'is missing "status"' in error_of(write(tmp_path, data)).message


def test_missing_device_key_names_the_place(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0), (1, 1)])])
    del data["server_list"][0]["device"][1]["rank_id"]
    err = error_of(write(tmp_path, data))
    assert 'server_list[0].device[1] is missing "rank_id"' in err.message


def test_missing_top_level_keys(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0)])])
    del data["server_count"]  # optional (v1.2 and cross-cluster tables leave it out)
    del data["version"]
    err = error_of(write(tmp_path, data))
    assert '"version"' in err.message and '"server_count"' not in err.message


def test_neither_layout(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, {"status": "completed", "servers": []}))
    assert 'neither "server_list" nor "group_list"' in err.message
    assert "servers" in err.message


def test_non_integer_string(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0)])])
    data["server_list"][0]["device"][0]["device_id"] = "card0"
    err = error_of(write(tmp_path, data))
    assert "server_list[0].device[0].device_id must be a string holding a non-negative integer" in (
        err.message
    )
    assert '"card0"' in err.message


def test_negative_rank_is_not_an_integer_string(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0)])])
    data["server_list"][0]["device"][0]["rank_id"] = "-1"
    assert "non-negative integer" in error_of(write(tmp_path, data)).message


def test_unquoted_number_is_explained(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0)])])
    data["server_list"][0]["device"][0]["rank_id"] = 0
    err = error_of(write(tmp_path, data))
    assert "is the number 0" in err.message and "quote every value" in err.message
    assert '"rank_id": "0"' in (err.hint or "")


def test_server_count_mismatch(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0)])], server_count="2")
    err = error_of(write(tmp_path, data))
    assert '"server_count" says 2 but "server_list" has 1 server(s)' in err.message


def test_duplicate_device_id_within_a_server(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0), (0, 1)])])
    err = error_of(write(tmp_path, data))
    assert f"server '{SERVER_A}' lists device_id 0 twice" in err.message
    assert "ranks 0 and 1" in err.message


def test_same_device_id_on_two_servers_is_fine(table_16p: Path) -> None:
    assert load_rank_table(table_16p).world_size == 16


def test_duplicate_server_id(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0)]), (SERVER_A, [(1, 1)])])
    err = error_of(write(tmp_path, data))
    assert f"server_id '{SERVER_A}' is listed twice" in err.message


def test_empty_device_list(tmp_path: Path) -> None:
    data = rank_table_dict([(SERVER_A, [(0, 0)]), (SERVER_B, [])])
    err = error_of(write(tmp_path, data))
    assert f"server '{SERVER_B}' (server_list[1]) has an empty or missing device list" in (
        err.message
    )


def test_empty_server_list(tmp_path: Path) -> None:
    data = rank_table_dict([], server_count="0")
    assert '"server_list" must be a non-empty list' in error_of(write(tmp_path, data)).message


# --------------------------------------------------------------------------- select_server


def test_select_explicit(table_16p: Path) -> None:
    table = load_rank_table(table_16p)
    assert select_server(table, SERVER_B, local_addresses=set()) == SERVER_B


def test_select_explicit_not_in_table(table_16p: Path) -> None:
    table = load_rank_table(table_16p)
    with pytest.raises(WdsrError) as info:
        select_server(table, "203.0.113.5", local_addresses={SERVER_A})
    msg = info.value.message
    assert "--server-id '203.0.113.5' is not in rank table" in msg
    assert SERVER_A in msg and SERVER_B in msg


def test_select_by_local_address(table_16p: Path) -> None:
    table = load_rank_table(table_16p)
    assert select_server(table, None, local_addresses={"127.0.0.1", SERVER_B}) == SERVER_B
    assert select_server(table, None, local_addresses={SERVER_A, "10.9.9.9"}) == SERVER_A


def test_select_by_host_name(tmp_path: Path) -> None:
    data = rank_table_dict([("node_0", [(0, 0)]), ("node_1", [(0, 1)])])
    table = load_rank_table(write(tmp_path, data))
    assert select_server(table, None, local_addresses={"node_1", "127.0.0.1"}) == "node_1"


def test_select_single_server_fallback(table_8p: Path) -> None:
    table = load_rank_table(table_8p)
    assert select_server(table, None, local_addresses={"127.0.0.1"}) == SERVER_A


def test_select_no_match_on_several_servers(table_16p: Path) -> None:
    table = load_rank_table(table_16p)
    with pytest.raises(WdsrError) as info:
        select_server(table, None, local_addresses={"127.0.0.1", "203.0.113.9"})
    err = info.value
    assert SERVER_A in err.message and SERVER_B in err.message
    assert "203.0.113.9" in err.message
    assert "--server-id" in (err.hint or "")


def test_select_several_matches(table_16p: Path) -> None:
    table = load_rank_table(table_16p)
    with pytest.raises(WdsrError) as info:
        select_server(table, None, local_addresses={SERVER_A, SERVER_B})
    assert "matches several servers" in info.value.message
    assert "--server-id" in (info.value.hint or "")


def test_local_ip_addresses_are_ips() -> None:
    found = local_ip_addresses()
    assert "127.0.0.1" in found
    for addr in found:
        ipaddress.ip_address(addr)  # every entry parses


def test_a_fifo_rank_table_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "hccl.json"
    os.mkfifo(fifo)  # no writer: a plain open() would wait for one forever
    assert "is not a regular file" in error_of(fifo).message


def test_a_rank_table_nested_too_deep_is_one_clear_error(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "[" * 200_000 + "]" * 200_000))
    assert "nested too deeply" in err.message


def test_a_huge_or_non_utf8_rank_table_is_refused(tmp_path: Path) -> None:
    from wdsr_cli.core.launch.ranktable import RANK_TABLE_MAX_BYTES

    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(RANK_TABLE_MAX_BYTES + 1)  # sparse: no disk used
    assert "one is at most 16 MiB" in error_of(big).message
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"x": "caf\xe9"}'.encode("latin-1"))
    assert "not UTF-8 text" in error_of(latin1).message

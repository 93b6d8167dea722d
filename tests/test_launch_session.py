"""The launch door (core/launch/session.py): who creates the run folder, rank tables from
every server, v1.2 tables, device ids, HCCL timeout, foreign launcher variables, and every
check done before anything is created. Pure planning, no MindSpore, except where noted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import one_line_error, rank_table_dict, run_wdsr

from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.launch.session import TrainRequest, plan_train

SERVER_A, SERVER_B = "192.0.2.10", "192.0.2.11"


def _table(tmp_path: Path, data: dict, name: str = "hccl.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def table_16p(tmp_path: Path) -> Path:
    return _table(tmp_path, rank_table_dict([(SERVER_A, [(i, i) for i in range(8)]),
                                             (SERVER_B, [(i, 8 + i) for i in range(8)])]))


def _request(tmp_path: Path, **kw) -> TrainRequest:
    kw.setdefault("environ", {})
    kw.setdefault("list_devices", lambda: None)
    return TrainRequest(config="demo", runs_dir=tmp_path / "runs", dry_run=True, **kw)


def _ascend(tmp_path: Path, table: Path, addresses: set[str], **kw) -> TrainRequest:
    return _request(tmp_path, device_target="Ascend", rank_table=table,
                    local_addresses=addresses, **kw)


# ----------------------------------------------------------------- two servers, one run folder


def test_16_devices_two_servers_only_the_rank0_server_creates_the_run(tmp_path, table_16p):
    runs = tmp_path / "runs"
    first = plan_train(_ascend(tmp_path, table_16p, {SERVER_A}))
    second = plan_train(_ascend(tmp_path, table_16p, {SERVER_B}))
    assert first.holds_rank0 and not second.holds_rank0
    assert [p.rank for p in first.plan.workers] == list(range(8))
    assert [p.rank for p in second.plan.workers] == list(range(8, 16))
    # The dry run shows the real paths: the second server's logs go to a folder of its own.
    assert first.run_dir == (runs / "demo").absolute()
    assert second.run_dir == (runs / "demo-node1").absolute()
    assert second.plan.workers[0].log_path == runs.absolute() / "demo-node1" / "logs" / "rank_8.log"
    assert second.summary()["creates_run_folder"] is False
    assert not runs.exists()  # planning created nothing

    # Starting: the rank-0 server writes config.yaml; the other only a logs folder, which
    # --resume (it looks for config.yaml) can never pick.
    from wdsr_cli.core.runs import latest_run_dir

    made = second.prepare_folder(), first.prepare_folder()
    assert made == (runs / "demo-node1", runs / "demo")
    assert not (runs / "demo-node1" / "config.yaml").exists()
    assert (runs / "demo" / "config.yaml").is_file()
    assert latest_run_dir(runs) == runs / "demo"


def test_rank0_server_need_not_be_first_in_the_file(tmp_path):
    data = rank_table_dict([(SERVER_B, [(i, 8 + i) for i in range(8)]),
                            (SERVER_A, [(i, i) for i in range(8)])])
    table = _table(tmp_path, data)
    job = plan_train(_ascend(tmp_path, table, {SERVER_A}))
    assert job.holds_rank0 and job.mode.node == 0
    other = plan_train(_ascend(tmp_path, table, {SERVER_B}))
    assert not other.holds_rank0 and other.mode.node == 1


def test_two_launchers_racing_for_a_name_get_two_folders(tmp_path):
    from wdsr_cli.core.runs import new_run_dir

    runs = tmp_path / "runs"
    (runs / "demo").mkdir(parents=True)  # the other machine got there first
    assert new_run_dir(runs, "demo") == runs / "demo-2"


def test_hccl_connect_timeout_for_several_servers_unless_set(tmp_path, table_16p):
    job = plan_train(_ascend(tmp_path, table_16p, {SERVER_A}))
    assert {p.env["HCCL_CONNECT_TIMEOUT"] for p in job.plan.workers} == {"600"}
    assert any("HCCL_CONNECT_TIMEOUT=600" in d for d in job.summary()["description"])
    mine = plan_train(_ascend(tmp_path, table_16p, {SERVER_A},
                              environ={"HCCL_CONNECT_TIMEOUT": "1800"}))
    assert not any("HCCL_CONNECT_TIMEOUT" in p.env for p in mine.plan.workers)
    assert any("HCCL_CONNECT_TIMEOUT=1800 (from your environment)" in d
               for d in mine.summary()["description"])
    one = _table(tmp_path, rank_table_dict([(SERVER_A, [(0, 0), (1, 1)])]), "one.json")
    single = plan_train(_ascend(tmp_path, one, set()))
    assert not any("HCCL_CONNECT_TIMEOUT" in p.env for p in single.plan.workers)


def test_resume_hint_keeps_the_server_id(tmp_path, table_16p):
    job = plan_train(_ascend(tmp_path, table_16p, set(), server_id=SERVER_B))
    hint = job.resume_command(Path("runs/demo"))
    assert hint == f"wdsr train --resume runs/demo --rank-table {table_16p.resolve()} " \
                   f"--server-id {SERVER_B}"


# ----------------------------------------------------------------------- rank table v1.2


def _v12(with_count: bool, with_ips: bool) -> dict:
    data = {"version": "1.2", "status": "completed", "server_list": [], "super_pod_list": [
        {"super_pod_id": "0", "server_list": [{"server_id": "node_0"}, {"server_id": "node_1"}]}]}
    for s, host in enumerate(("10.1.0.1", "10.1.0.2")):
        devices = []
        for d in range(4):
            dev = {"device_id": str(d), "super_device_id": str(s * 4 + d),
                   "rank_id": str(s * 4 + d)}
            if with_ips:
                dev["device_ip"] = f"10.2.{s}.{d + 1}"
            devices.append(dev)
        data["server_list"].append({"server_id": f"node_{s}", "host_ip": host,
                                    "device": devices})
    if with_count:
        data["server_count"] = "2"
    return data


@pytest.mark.parametrize("with_count", [True, False])
@pytest.mark.parametrize("with_ips", [True, False])
def test_v12_table_matched_by_host_ip(tmp_path, with_count, with_ips):
    table = _table(tmp_path, _v12(with_count, with_ips))
    job = plan_train(_ascend(tmp_path, table, {"127.0.0.1", "10.1.0.2"}))
    assert job.mode.server == "node_1"  # server_id is a name: found by its host_ip
    assert [p.rank for p in job.plan.workers] == [4, 5, 6, 7]
    assert [p.env["DEVICE_ID"] for p in job.plan.workers] == ["0", "1", "2", "3"]
    assert not job.holds_rank0 and job.plan.world_size == 8


def test_interleaved_ranks_are_an_error(tmp_path):
    data = rank_table_dict([(SERVER_A, [(0, 0), (1, 2)]), (SERVER_B, [(0, 1), (1, 3)])])
    with pytest.raises(WdsrError, match="not one contiguous block; HCCL does not support"):
        plan_train(_ascend(tmp_path, _table(tmp_path, data), {SERVER_A}))


def test_duplicate_device_ip_is_an_error(tmp_path):
    data = rank_table_dict([(SERVER_A, [(0, 0), (1, 1)])])
    data["server_list"][0]["device"][1]["device_ip"] = data["server_list"][0]["device"][0][
        "device_ip"]
    with pytest.raises(WdsrError, match="is given to two devices"):
        plan_train(_ascend(tmp_path, _table(tmp_path, data), {SERVER_A}))


def test_device_id_the_machine_does_not_have(tmp_path):
    data = rank_table_dict([(SERVER_A, [(4 + i, i) for i in range(4)])])
    table = _table(tmp_path, data)
    with pytest.raises(WdsrError, match=r"device_id 6-7, but this machine has /dev/davinci\{0-5\}"):
        plan_train(_ascend(tmp_path, table, {SERVER_A}, list_devices=lambda: list(range(6))))
    plan_train(_ascend(tmp_path, table, {SERVER_A}, list_devices=lambda: list(range(8))))
    plan_train(_ascend(tmp_path, table, {SERVER_A}))  # nothing to list: not checked


# ----------------------------------------------------------------------- one card, env


def test_device_id_from_the_environment_on_one_card(tmp_path):
    job = plan_train(_request(tmp_path, device_target="Ascend", environ={"DEVICE_ID": "3"}))
    (p,) = job.plan.workers
    assert p.env["DEVICE_ID"] == "3" and p.device_id == 3
    assert "device 3 (DEVICE_ID from the environment)" in job.plan.description[0]
    flag = plan_train(_request(tmp_path, device_target="Ascend", device_id=5,
                               environ={"DEVICE_ID": "3"}))
    assert flag.plan.workers[0].env["DEVICE_ID"] == "5"
    assert flag.resume_command(Path("r")).endswith("--device-id 5")
    sets = plan_train(_request(tmp_path, device_target="Ascend", environ={"DEVICE_ID": "3"},
                               overrides=["runtime.device_id=1"]))
    assert sets.plan.workers[0].env["DEVICE_ID"] == "1"
    with pytest.raises(WdsrError, match="does not exist: this process sees 2 card"):
        plan_train(_request(tmp_path, device_target="Ascend", environ={"DEVICE_ID": "3"},
                            list_devices=lambda: [0, 1]))
    with pytest.raises(WdsrError, match="DEVICE_ID in the environment is 'x'"):
        plan_train(_request(tmp_path, device_target="Ascend", environ={"DEVICE_ID": "x"}))
    with pytest.raises(WdsrError, match="--device-id is for one device"):
        plan_train(_request(tmp_path, device_target="CPU", devices=2, device_id=1))


def test_open_mpi_variables_are_removed_from_every_process(tmp_path, table_16p):
    inherited = {"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_LOCAL_RANK": "5",
                 "OMPI_COMMAND": "x", "PMIX_RANK": "5", "HOME": "/h"}
    jobs = [plan_train(_ascend(tmp_path, table_16p, {SERVER_A})),
            plan_train(_request(tmp_path, device_target="CPU", devices=2)),
            plan_train(_request(tmp_path, device_target="CPU"))]
    for job in jobs:
        for p in job.plan.processes:
            env = p.full_env(inherited)
            assert not any(k.startswith(("OMPI_", "PMIX_")) for k in env), job.plan.mode
            assert env["HOME"] == "/h"


def test_dynamic_second_node_dry_run_shows_its_own_folder(tmp_path):
    job = plan_train(_request(tmp_path, device_target="CPU", nodes=2, node_rank=1,
                              master="127.0.0.1:29871"))
    assert not job.holds_rank0
    assert job.plan.workers[0].log_path == \
        (tmp_path / "runs" / "demo-node1" / "logs" / "rank_1.log").absolute()
    assert any("loopback" in w for w in job.warnings)


# ------------------------------------------------------------- through the real CLI


def test_cli_dry_run_second_server_and_device_id_env(tmp_path, table_16p):
    res = run_wdsr("train", "-c", "demo", "--device-target", "Ascend", "--rank-table",
                   str(table_16p), "--server-id", SERVER_B, "--dry-run", "--json", "-",
                   cwd=tmp_path, env={"HCCL_CONNECT_TIMEOUT": None})  # `import mindspore` in
    assert res.returncode == 0, res.stderr                    # this process sets it (to 600)
    plan = json.loads(res.stdout)
    assert plan["creates_run_folder"] is False and plan["run_dir"].endswith("demo-node1")
    assert {p["env"]["HCCL_CONNECT_TIMEOUT"] for p in plan["processes"]} == {"600"}
    assert all("OMPI_*" in p["unset_env"] for p in plan["processes"])
    res = run_wdsr("train", "-c", "demo", "--device-target", "Ascend", "--dry-run", "--json", "-",
                   cwd=tmp_path, env={"DEVICE_ID": "3"})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["processes"][0]["env"]["DEVICE_ID"] == "3"
    assert not (tmp_path / "runs").exists()


def test_cli_prints_the_example_rank_table(tmp_path):
    res = run_wdsr("train", "--rank-table-example")
    assert res.returncode == 0, res.stderr
    table = tmp_path / "t.json"
    table.write_text(res.stdout)
    from wdsr_cli.core.launch.ranktable import load_rank_table

    assert load_rank_table(table).world_size == 8


@pytest.mark.parametrize(("args", "needle"), [
    (["--device-target", "CPU", "--set", "train.precision=fp16"],
     "fp16 training is not supported on the CPU"),
    (["--device-target", "GPU"], "device target GPU was asked for, but this machine has no GPU"),
])
def test_device_errors_come_before_any_folder(tmp_path, args, needle):
    if needle.startswith("device target GPU") and \
            any(Path("/dev").glob("nvidia[0-9]*")):  # pragma: no cover - a GPU machine
        pytest.skip("this machine has a GPU")
    line = one_line_error(run_wdsr("train", "-c", "demo", *args, cwd=tmp_path))
    assert needle in line
    assert not (tmp_path / "runs").exists()


def test_bad_init_checkpoints_stop_before_any_folder(ms_cpu, tmp_path):
    """A garbage file and another network's MindSpore checkpoint: one line, no run folder."""
    import mindspore as ms
    import numpy as np

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(os.urandom(2000))
    foreign = tmp_path / "resnet.ckpt"
    ms.save_checkpoint([{"name": "fc.weight", "data": ms.Tensor(np.ones((2, 2), np.float32))}],
                       str(foreign))
    for init, needle in ((garbage, "truncated or corrupted"),
                         (foreign, "nor a MindSpore model-zoo WDSR one")):
        line = one_line_error(run_wdsr("train", "-c", "demo", "--device-target", "CPU",
                                       "--init", str(init), cwd=tmp_path))
        assert needle in line, line
        assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------- non-interactive progress


def test_plain_progress_lines_at_a_steady_interval():
    """Output that is not a terminal (CI, nohup) gets one plain line per interval: step, loss,
    lr, patches/s, ETA and the last validation."""
    import io

    from rich.console import Console

    from wdsr_cli.ui import LaunchView

    buf, now = io.StringIO(), [100.0]
    console = Console(file=buf, force_terminal=False, width=200)
    view = LaunchView("run", [0, 1], console=console, line_interval=30.0, clock=lambda: now[0])
    view.handle({"type": "start", "rank": 0, "total_steps": 100, "start_step": 0, "time": 0.0})

    def step(s: int, t: float) -> None:
        now[0] = 100.0 + t
        for rank in (0, 1):
            view.handle({"type": "step", "rank": rank, "step": s, "epoch": 1, "loss": 2.0,
                         "loss_avg": 1.5, "lr": 1e-3, "patches_per_s": 40.0, "data_wait": 0.0,
                         "time": t, "total_steps": 100})

    step(1, 1.0)  # the first step at once
    step(2, 20.0)  # within the interval: nothing
    view.handle({"type": "validation", "rank": 0, "step": 2, "psnr": 30.5, "ssim": 0.9,
                 "best_psnr": 30.5, "is_best": True})
    step(3, 31.0)
    lines = [line for line in buf.getvalue().splitlines() if " step " in f" {line}"]
    assert len(lines) == 2, buf.getvalue()
    assert "step 1/100, loss 1.5000, lr 0.001, 40.0 patches/s, eta" in lines[0]
    assert "step 3/100" in lines[1] and "last val 30.50 dB at step 2 (best 30.50)" in lines[1]


@pytest.mark.parametrize("lead", [0, 2])  # 2: a node without rank 0 (--node-rank 1)
def test_eta_follows_the_recent_pace_not_the_average_since_the_start(lead):
    """A run paused for an hour (Ctrl-Z, a busy machine) shows the ETA of its current pace
    once it trains again, not an average that the pause skews for hours; on every node."""
    import io

    from rich.console import Console

    from wdsr_cli.ui import LaunchView

    buf, now = io.StringIO(), [0.0]
    console = Console(file=buf, force_terminal=False, width=200)
    view = LaunchView("run", [lead, lead + 1], console=console, line_interval=0.0,
                      clock=lambda: now[0])
    view.handle({"type": "start", "rank": lead, "total_steps": 1000, "start_step": 0,
                 "time": 0.0})
    for s in range(1, 81):  # 1 s per step, with a 3,600 s pause after step 10
        t = float(s) if s <= 10 else 3600.0 + s
        now[0] = t
        view.handle({"type": "step", "rank": lead, "step": s, "epoch": 1, "loss": 2.0,
                     "loss_avg": 1.5, "lr": 1e-3, "patches_per_s": 16.0, "data_wait": 0.0,
                     "time": t, "total_steps": 1000})
    last = buf.getvalue().splitlines()[-1]
    assert "step 80/1000" in last and "eta 00:15:20" in last, last  # 920 steps at 1 s


# ------------------------------------------------------------- the weight average of a short run

def test_a_short_run_whose_average_would_stay_its_start_is_warned(tmp_path):
    from wdsr_cli.core.ema import short_run_warning, start_share

    assert start_share(0.999, 750) == pytest.approx(0.472, abs=1e-3)
    job = plan_train(_request(tmp_path, device_target="CPU", steps=750,
                              overrides=["train.ema_decay=0.999"]))
    [warning] = [w for w in job.warnings if "ema_decay" in w]
    assert "47% the starting weights" in warning and "train.ema_decay=0.9933" in warning
    # the suggested decay keeps under 1% of the start: no warning for it, nor for long runs
    assert start_share(0.9933, 750) < 0.01
    assert short_run_warning(0.9933, 750) is None
    assert short_run_warning(0.999, 2995) is None  # 4.996% kept: under the 5% limit
    assert short_run_warning(0.999, 2994) is not None  # 5.001%
    assert short_run_warning(0.0, 10) is None  # average off
    assert "ema_decay=0)" in short_run_warning(0.9, 5)  # too short to suggest a decay
    quiet = plan_train(_request(tmp_path, device_target="CPU", steps=750))
    assert not any("ema_decay" in w for w in quiet.warnings)

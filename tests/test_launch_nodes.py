"""Two "nodes" of a dynamic cluster on this machine (loopback): only the node holding rank 0
writes the run folder; the other writes its logs, events and launch record to a folder of its
own that --resume can never pick. Real MindSpore ranks on the CPU, a tiny model, few steps."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import WDSR, run_wdsr

pytestmark = pytest.mark.slow

STEPS = 4
TINY = ["--config", "demo", "--device-target", "CPU", "--steps", str(STEPS),
        "--set", "model.n_resblocks=1", "--set", "model.n_feats=8",
        "--set", "data.batch_size=2", "--set", "data.patch_size=16",
        "--set", "train.val_images=1", "--set", "train.log_every=1",
        "--set", "train.warmup_steps=0", "--set", "train.val_every=4"]


def test_two_nodes_on_loopback_only_node0_writes_the_run(tmp_path):
    res = run_wdsr("prepare-data", "--sample", "data/sample", "--scales", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    from wdsr_cli.core.launch.plan import free_port

    master = f"127.0.0.1:{free_port('127.0.0.1')}"
    cmd = [WDSR, "train", *TINY, "--nodes", "2", "--master", master, "--name", "nodes"]
    procs = [subprocess.Popen(cmd + ["--node-rank", str(r)], cwd=tmp_path, env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    runs = tmp_path / "runs"
    node0, node1 = runs / "nodes", runs / "nodes-node1"
    assert sorted(p.name for p in runs.iterdir()) == ["nodes", "nodes-node1"]
    for name in ("config.yaml", "last.ckpt", "metrics.jsonl", "logs/scheduler.log",
                 "logs/rank_0.log", "launch/processes_node0.json"):
        assert (node0 / name).is_file(), name
    assert not (node0 / "logs" / "rank_1.log").exists()
    # Node 1: logs, events and its launch record only.
    assert sorted(p.name for p in node1.iterdir()) == ["events", "launch", "logs"]
    assert (node1 / "logs" / "rank_1.log").is_file()
    assert (node1 / "launch" / "processes_node1.json").is_file()
    events = [json.loads(line) for line in
              (node1 / "events" / "rank_1.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "done" and events[-1]["step"] == STEPS
    assert "the machine with rank 0 writes the run folder" in " ".join(outs[1][1].split())
    # stderr is not a terminal here: plain progress lines show the run is alive.
    assert "step 1/4, loss" in outs[0][1]
    assert "run folder:" in outs[0][1]

"""Training through the real `wdsr` entry point on the bundled sample, with a tiny model."""

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import WDSR, run_wdsr

TINY = ["--config", "demo", "--set", "model.n_resblocks=2", "--set", "model.n_feats=8",
        "--set", "data.batch_size=4", "--set", "data.patch_size=16",
        "--set", "train.val_images=1", "--set", "train.log_every=1",
        "--set", "train.warmup_steps=0", "--device-target", "CPU"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with the bundled sample prepared under data/sample (the demo recipe's paths)."""
    root = tmp_path_factory.mktemp("train")
    res = run_wdsr("prepare-data", "--sample", "data/sample", "--scales", "2", cwd=root)
    assert res.returncode == 0, res.stderr
    return root


def _train(workdir, *args):
    return run_wdsr("train", *TINY, *args, cwd=workdir)


def _weights(run_dir):
    """The network weights of a run's last.ckpt as numpy arrays."""
    from wdsr_cli.core.checkpoints import network_parameters, read_checkpoint

    params, _ = read_checkpoint(Path(run_dir) / "last.ckpt")
    return {k: v.asnumpy() for k, v in network_parameters(params).items()}


def _events(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_contents_and_validation(workdir):
    res = _train(workdir, "--steps", "6", "--set", "train.val_every=3",
                 "--set", "train.ckpt_every=2", "--set", "train.keep_checkpoints=2",
                 "--name", "basic")
    assert res.returncode == 0, res.stderr
    run = workdir / "runs" / "basic"
    for name in ("config.yaml", "log.txt", "metrics.jsonl", "plot.svg", "last.ckpt", "best.ckpt"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["step_0000004.ckpt",
                                                               "step_0000006.ckpt"]
    ev = _events(run)
    vals = [e for e in ev if e["type"] == "validation"]
    assert [v["step"] for v in vals] == [3, 6]
    assert all(np.isfinite(v["psnr"]) for v in vals)
    assert [e["step"] for e in ev if e["type"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert ev[-1]["type"] == "done" and ev[-1]["step"] == 6
    assert "<svg" in (run / "plot.svg").read_text()
    from wdsr_cli.core.checkpoints import read_checkpoint

    _, meta = read_checkpoint(run / "last.ckpt")
    assert meta["step"] == 6 and meta["kind"] == "last" and meta["model"]["n_feats"] == 8
    _, best = read_checkpoint(run / "best.ckpt")
    assert best["kind"] == "best" and best["metrics"]["psnr"] == max(v["psnr"] for v in vals)


def test_sigkill_then_resume_gives_identical_weights(workdir):
    common = ["--steps", "8", "--set", "train.ckpt_every=2", "--set", "train.val_every=100"]
    res = _train(workdir, *common, "--name", "straight")
    assert res.returncode == 0, res.stderr
    reference = _weights(workdir / "runs" / "straight")

    run = workdir / "runs" / "killed"
    proc = subprocess.Popen([WDSR, "train", *TINY, *common, "--name", "killed"], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        # Wait (bounded) until a periodic checkpoint past step 2 exists, then kill everything.
        for _ in range(6000):
            if proc.poll() is not None:
                break
            ckpts = list((run / "ckpt").glob("step_*.ckpt")) if (run / "ckpt").exists() else []
            if any(int(p.stem.split("_")[1]) >= 4 for p in ckpts):
                break
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = [e for e in _events(run) if e["type"] == "done"]
    assert not done, "the run finished before it could be killed; the test proves nothing"
    res = _train(workdir, "--resume", str(run))
    assert res.returncode == 0, res.stderr
    resumed = _weights(run)
    assert reference.keys() == resumed.keys()
    for name in reference:
        np.testing.assert_array_equal(reference[name], resumed[name], err_msg=name)
    starts = [e for e in _events(run) if e["type"] == "start"]
    assert len(starts) == 2 and starts[1]["start_step"] >= 4


def test_corrupt_last_falls_back_to_previous_periodic(workdir):
    res = _train(workdir, "--steps", "4", "--set", "train.ckpt_every=2", "--name", "corrupt")
    assert res.returncode == 0, res.stderr
    run = workdir / "runs" / "corrupt"
    last = run / "last.ckpt"
    last.write_bytes(last.read_bytes()[:-100])  # truncated
    (run / "ckpt" / "step_0000004.ckpt").write_bytes(b"garbage")
    res = _train(workdir, "--resume", str(run), "--steps", "6")
    assert res.returncode == 0, res.stderr
    assert "skipped unusable checkpoint last.ckpt" in res.stderr
    starts = [e for e in _events(run) if e["type"] == "start"]
    assert starts[-1]["start_step"] == 2


def test_all_checkpoints_corrupt_is_a_clear_error(workdir):
    res = _train(workdir, "--steps", "2", "--set", "train.ckpt_every=2", "--name", "allbad")
    assert res.returncode == 0, res.stderr
    run = workdir / "runs" / "allbad"
    for p in [run / "last.ckpt", *(run / "ckpt").glob("*.ckpt")]:
        p.write_bytes(b"\0" * 64)
    res = _train(workdir, "--resume", str(run))
    assert res.returncode == 2
    assert "no usable checkpoint" in res.stderr and "Traceback" not in res.stderr


def test_resume_with_another_model_is_refused(workdir):
    res = _train(workdir, "--steps", "2", "--set", "train.ckpt_every=2", "--name", "model")
    assert res.returncode == 0, res.stderr
    res = run_wdsr("train", "--resume", str(workdir / "runs" / "model"), "--steps", "4",
                   "--set", "model.n_feats=16", cwd=workdir)
    assert res.returncode == 2 and "model config differs" in res.stderr


def test_init_from_other_weights(workdir):
    res = _train(workdir, "--steps", "2", "--name", "src")
    assert res.returncode == 0, res.stderr
    src = workdir / "runs" / "src" / "last.ckpt"
    res = _train(workdir, "--steps", "1", "--init", str(src), "--name", "fromsrc",
                 "--set", "train.lr=1e-12", "--set", "train.schedule=constant")
    assert res.returncode == 0, res.stderr
    a, b = _weights(workdir / "runs" / "src"), _weights(workdir / "runs" / "fromsrc")
    for name in a:  # lr ~ 0: one step barely moves the loaded weights
        np.testing.assert_allclose(a[name], b[name], atol=1e-6, err_msg=name)


@pytest.mark.parametrize("args,needle", [
    (["--set", "data.prepared=nowhere"], "prepare-data"),
    (["--set", "model.scale=4"], "x4"),
    (["--set", "data.batch_size=100000"], "batch"),
    (["--runs-dir", "not-a-dir.txt/runs"], "run folder"),
])
def test_bad_training_inputs(workdir, args, needle):
    (workdir / "not-a-dir.txt").write_text("a file, not a folder")
    res = _train(workdir, "--steps", "1", *args)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.stderr


def test_resume_from_a_folder_that_is_not_a_run(workdir, tmp_path):
    res = run_wdsr("train", "--resume", str(tmp_path), cwd=workdir)
    assert res.returncode == 2 and "not a wdsr run folder" in res.stderr


def test_init_bundled_resolves_to_the_shipped_weights(workdir):
    res = _train(workdir, "--steps", "1", "--init", "bundled", "--name", "initbundled")
    assert res.returncode == 0, res.stderr
    start = [e for e in _events(workdir / "runs" / "initbundled") if e["type"] == "start"][0]
    assert start["init_from"].endswith("assets/weights/wdsr_x2.ckpt")
    # The tiny model shares these shapes with WDSR-B 32x16 x2: the 5x5 skip convolution
    # (kernel, g, bias) and the tail's g and bias (its kernel has 8, not 32, input channels).
    assert start["init_loaded"] == 5

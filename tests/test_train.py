"""Training through the real `wdsr` entry point on the bundled sample, with a tiny model.

One 8-step run (`straight`) is shared: tests that only need a finished run folder use it or a
copy of it. Interruptions happen at a named step (the WDSR_TEST_HOLD hook of core/testpoint.py),
so no test depends on how fast this machine trains.
"""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import WDSR, one_line_error, run_wdsr, wait_for_marker

pytestmark = pytest.mark.slow

TINY = ["--config", "demo", "--set", "model.n_resblocks=2", "--set", "model.n_feats=8",
        "--set", "data.batch_size=4", "--set", "data.patch_size=16",
        "--set", "train.val_images=1", "--set", "train.log_every=1",
        "--set", "train.warmup_steps=0", "--device-target", "CPU"]
STRAIGHT = ["--steps", "8", "--set", "train.ckpt_every=2", "--set", "train.val_every=4",
            "--set", "train.keep_checkpoints=2"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with the bundled sample prepared under data/sample (the demo recipe's paths)."""
    root = tmp_path_factory.mktemp("train")
    res = run_wdsr("prepare-data", "--sample", "data/sample", "--scales", "2", cwd=root)
    assert res.returncode == 0, res.stderr
    return root


@pytest.fixture(scope="module")
def straight(workdir):
    """8 uninterrupted steps (cosine schedule), checkpoints at 6 and 8, validation at 4 and 8."""
    res = _train(workdir, *STRAIGHT, "--name", "straight")
    assert res.returncode == 0, res.stderr
    return workdir / "runs" / "straight"


def _train(workdir, *args, env=None):
    return run_wdsr("train", *TINY, *args, cwd=workdir, env=env)


def _weights(path):
    """Network weights of a run folder (its last.ckpt) or of one checkpoint file."""
    from wdsr_cli.core.checkpoints import network_parameters, read_checkpoint

    path = Path(path)
    params, _ = read_checkpoint(path / "last.ckpt" if path.is_dir() else path)
    return {k: v.asnumpy() for k, v in network_parameters(params).items()}


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _events(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _rank_error(res):
    """A usage error found inside the training process: exit 2, no traceback, the one-line
    `error:` message last (after the launch table)."""
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error:"), res.stderr
    return last


def _copy(run, dest):
    shutil.copytree(run, dest)
    return dest


def _held_train(workdir, args, point, marker):
    """Start `wdsr train` (own session) held at `point`; return it once it got there."""
    env = {**os.environ, "WDSR_TEST_HOLD": f"{point}={marker}"}
    proc = subprocess.Popen([WDSR, "train", *TINY, *args], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    wait_for_marker(proc, marker)
    return proc


def test_run_folder_contents_and_validation(workdir, straight):
    run = straight
    for name in ("config.yaml", "log.txt", "metrics.jsonl", "plot.svg", "last.ckpt", "best.ckpt"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["step_0000006.ckpt",
                                                               "step_0000008.ckpt"]
    ev = _events(run)
    vals = [e for e in ev if e["type"] == "validation"]
    assert [v["step"] for v in vals] == [4, 8]
    assert all(np.isfinite(v["psnr"]) for v in vals)
    steps = [e for e in ev if e["type"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 9))
    assert ev[-1]["type"] == "done" and ev[-1]["step"] == 8
    assert "<svg" in (run / "plot.svg").read_text()

    # The lr reported for step s is lrs[s - 1] of the run's schedule (cosine over 8 steps).
    from wdsr_cli.core.config import load_config
    from wdsr_cli.core.schedule import learning_rates

    lrs = learning_rates(load_config(str(run / "config.yaml")).train)
    assert [e["lr"] for e in steps] == [float(x) for x in lrs]
    assert lrs[0] > lrs[-1] > 0

    # The bicubic baseline is the PSNR of the MATLAB-bicubic upscale of the validation image.
    from wdsr_cli.core.data.resize import bicubic_upscale
    from wdsr_cli.core.metrics import psnr

    prepared = workdir / "data/sample/prepared"
    manifest = json.loads((prepared / "manifest.json").read_text())
    first = sorted(manifest["valid"], key=lambda e: e["name"])[0]["outputs"]
    lr, hr = (np.load(prepared / first[k]["file"]) for k in ("x2", "hr"))
    expected = psnr(bicubic_upscale(lr, 2), hr, 2, "y")
    start = ev[0]
    assert start["type"] == "start" and start["bicubic_psnr"] == pytest.approx(expected, abs=1e-9)
    assert 20 < expected < 50 and all(v["bicubic_psnr"] == start["bicubic_psnr"] for v in vals)

    from wdsr_cli.core.checkpoints import read_checkpoint

    _, meta = read_checkpoint(run / "last.ckpt")
    assert meta["step"] == 8 and meta["kind"] == "last" and meta["model"]["n_feats"] == 8
    _, best = read_checkpoint(run / "best.ckpt")
    assert best["kind"] == "best" and best["metrics"]["psnr"] == max(v["psnr"] for v in vals)


def test_step_s_trains_with_lrs_s_and_steps_can_grow_on_resume(workdir, tmp_path):
    """Cosine to min_lr 0 ends each schedule with lr exactly 0: that step leaves the weights
    bit-identical, every other step changes them. Two steps (lrs [lr, 0]), then resumed with
    --steps 4 (lrs recomputed: [lr, .75 lr, .25 lr, 0]). Step s using lrs[s +- 1], or Adam's
    step counter not restored on resume, breaks one of the equalities below."""
    common = ["--set", "train.min_lr=0", "--set", "train.ckpt_every=1",
              "--set", "train.keep_checkpoints=10", "--set", "train.val_every=100"]
    res = _train(workdir, "--steps", "2", *common, "--name", "lrs")
    assert res.returncode == 0, res.stderr
    run = workdir / "runs" / "lrs"
    res = run_wdsr("train", "--resume", str(run), "--steps", "4", cwd=workdir)
    assert res.returncode == 0, res.stderr
    w = {s: _weights(run / "ckpt" / f"step_{s:07d}.ckpt") for s in (1, 2, 3, 4)}

    def moved(a, b):
        return any(not np.array_equal(a[k], b[k]) for k in a)

    assert not moved(w[1], w[2])  # step 2 of 2: lrs[1] = 0
    assert moved(w[2], w[3])  # step 3 of 4: lrs[2] = 0.25 lr
    assert not moved(w[3], w[4])  # step 4 of 4: lrs[3] = 0
    ev = _events(run)
    assert [e["start_step"] for e in ev if e["type"] == "start"] == [0, 2]
    assert [e["total_steps"] for e in ev if e["type"] == "start"] == [2, 4]
    lr = [e["lr"] for e in ev if e["type"] == "step"]
    assert lr[1] == 0 and lr[2] == pytest.approx(lr[0] / 4) and lr[3] == 0
    assert ev[-1]["type"] == "done" and ev[-1]["step"] == 4
    # --steps on resume is recorded: a later bare --resume plans the same schedule
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 4


def test_sigkill_then_resume_gives_identical_weights(workdir, straight, tmp_path):
    marker = tmp_path / "held"
    proc = _held_train(workdir, [*STRAIGHT, "--name", "killed"], "train-step-4", marker)
    os.killpg(proc.pid, signal.SIGKILL)  # launcher and worker, as `kill -9` of the job
    proc.wait()
    run = workdir / "runs" / "killed"
    assert not [e for e in _events(run) if e["type"] == "done"]
    res = run_wdsr("train", "--resume", str(run), cwd=workdir)
    assert res.returncode == 0, res.stderr
    _assert_same_weights(_weights(straight), _weights(run))
    starts = [e for e in _events(run) if e["type"] == "start"]
    assert [s["start_step"] for s in starts] == [0, 4]


EMA = ["--steps", "8", "--set", "train.ckpt_every=1", "--set", "train.keep_checkpoints=8",
       "--set", "train.val_every=8", "--set", "train.ema_decay=0.5"]


def _entries(path):
    from wdsr_cli.core.checkpoints import read_checkpoint

    params, _ = read_checkpoint(path)
    return {k: v.asnumpy() for k, v in params.items()}


def test_weight_average_is_exact_validated_and_resumed_exactly(workdir, tmp_path):
    """train.ema_decay: every periodic checkpoint holds the raw weights w_s and the average
    a_s = d a_(s-1) + (1 - d) w_s (float32, bit-exact); the one validation (step 8) validates
    the average, so best.ckpt holds it; evaluate/upscale read the average from any training
    checkpoint; a run killed at step 4 and resumed ends with the same raw weights, Adam state
    and average, bit for bit."""
    res = _train(workdir, *EMA, "--name", "ema")
    assert res.returncode == 0, res.stderr
    run = workdir / "runs" / "ema"
    state = {s: _entries(run / "ckpt" / f"step_{s:07d}.ckpt") for s in range(1, 9)}
    d = np.float32(0.5)
    for s in range(2, 9):
        for name in (k for k in state[s] if k.startswith("ema.")):
            expected = d * state[s - 1][name] + (np.float32(1) - d) * state[s][name[4:]]
            np.testing.assert_array_equal(state[s][name], expected, err_msg=f"{name} step {s}")
    average = {k[4:]: v for k, v in state[8].items() if k.startswith("ema.")}
    raw = {k: state[8][k] for k in average}
    assert any(not np.array_equal(average[k], raw[k]) for k in average)
    best = _weights(run / "best.ckpt")
    _assert_same_weights({k: best[k] for k in average}, average)
    _assert_same_weights({k: v for k, v in _weights(run).items() if k in average}, average)

    marker = tmp_path / "held"
    proc = _held_train(workdir, [*EMA, "--name", "ema-killed"], "train-step-4", marker)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = workdir / "runs" / "ema-killed"
    res = run_wdsr("train", "--resume", str(killed), cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert [e["start_step"] for e in _events(killed) if e["type"] == "start"] == [0, 4]
    _assert_same_weights(_entries(killed / "last.ckpt"), state[8])


def test_stall_timeout_stops_a_silent_run(workdir, tmp_path):
    """A worker that stops reporting (held after step 1) is declared hung after
    --stall-timeout seconds; the launcher stops it and exits 1."""
    marker = tmp_path / "held"
    env = {"WDSR_TEST_HOLD": f"train-step-1={marker}"}
    res = _train(workdir, "--steps", "3", "--stall-timeout", "3", "--name", "stall", env=env)
    assert res.returncode == 1, res.stderr
    err = " ".join(res.stderr.split())
    assert "stopped reporting" in err and "stall timeout 3 s" in err, res.stderr
    record = json.loads((workdir / "runs/stall/launch/processes_node0.json").read_text())
    assert record["status"] == "failed" and "stopped reporting" in record["failure"]["reason"]
    import psutil

    for p in record["processes"]:  # the silent worker was stopped
        assert not psutil.pid_exists(p["pid"]) \
            or psutil.Process(p["pid"]).status() == psutil.STATUS_ZOMBIE


def test_corrupt_last_falls_back_to_previous_periodic(workdir, straight, tmp_path):
    run = _copy(straight, workdir / "runs" / "corrupt")
    last = run / "last.ckpt"
    last.write_bytes(last.read_bytes()[:-100])  # truncated
    (run / "ckpt" / "step_0000008.ckpt").write_bytes(b"garbage")
    res = run_wdsr("train", "--resume", str(run), cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert "skipped unusable checkpoint last.ckpt" in res.stderr
    starts = [e for e in _events(run) if e["type"] == "start"]
    assert starts[-1]["start_step"] == 6
    _assert_same_weights(_weights(straight), _weights(run))  # steps 7-8 again, exactly


def test_checkpoint_torn_mid_write_keeps_the_previous_one(straight, tmp_path, monkeypatch):
    """A crash while last.ckpt is being written leaves the old last.ckpt whole and no
    temporary file (the write goes to a temporary name, then os.replace)."""
    import mindspore as ms

    from wdsr_cli.core import checkpoints
    from wdsr_cli.core.errors import WdsrError

    target = _copy(straight, tmp_path / "run") / "last.ckpt"
    before = target.read_bytes()
    real_save = ms.save_checkpoint

    def torn(obj, name, **kwargs):
        real_save(obj, name, **kwargs)
        with open(name, "r+b") as f:  # half the file, then the disk is full
            f.truncate(os.path.getsize(name) // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ms, "save_checkpoint", torn)
    params, meta = checkpoints.read_checkpoint(target)
    cells = [{"name": k, "data": v} for k, v in params.items()]
    with pytest.raises(WdsrError, match="cannot write checkpoint .*No space left on device"):
        checkpoints.save_checkpoint(cells, target, meta)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir() if "tmp" in p.name) == []


def test_all_checkpoints_corrupt_is_a_clear_error(workdir, straight):
    run = _copy(straight, workdir / "runs" / "allbad")
    for p in [run / "last.ckpt", *(run / "ckpt").glob("*.ckpt")]:
        p.write_bytes(b"\0" * 64)
    line = one_line_error(run_wdsr("train", "--resume", str(run), cwd=workdir))
    assert "no usable checkpoint" in line


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_refused_resume_changes_nothing(workdir, straight):
    """The model check happens before the run's config.yaml takes --steps/--set (it used to
    be rewritten first, so a plain --resume failed afterwards too)."""
    run = _copy(straight, workdir / "runs" / "model")
    before = _snapshot(run)
    for dry in ([], ["--dry-run"]):
        line = one_line_error(run_wdsr("train", "--resume", str(run), "--steps", "30", *dry,
                                       "--set", "model.n_feats=16", cwd=workdir))
        assert "model config differs" in line
    assert _snapshot(run) == before


def test_a_new_run_on_data_without_validation_is_refused_before_its_folder(workdir, tmp_path):
    import wdsr_cli

    photos = tmp_path / "photos"  # a plain folder: no validation split unless --valid-count
    photos.mkdir()
    for p in sorted((Path(wdsr_cli.__file__).parent / "assets" / "sample").glob("*.png"))[:3]:
        shutil.copy(p, photos)
    res = run_wdsr("prepare-data", str(photos), "--out", str(tmp_path / "noval"), "--scales",
                   "2", cwd=workdir)
    assert res.returncode == 0, res.stderr
    runs = tmp_path / "runs"
    line = one_line_error(_train(workdir, "--steps", "2", "--runs-dir", str(runs), "--set",
                                 f"data.prepared={tmp_path / 'noval'}"))
    assert "has no validation images" in line
    assert not runs.exists()  # no runs/NAME left behind (the next run would be NAME-2)


def test_resume_on_changed_data_needs_allow_data_change(workdir, straight):
    """Another preparation (another dataset id) under the same path refuses --resume unless
    --allow-data-change."""
    other = workdir / "data" / "other"
    res = run_wdsr("prepare-data", "--sample", str(other), "--scales", "2", "--crop-step", "144",
                   "--json", cwd=workdir)
    assert res.returncode == 0, res.stderr
    new_id = json.loads(res.stdout)["dataset_id"]
    old_id = _events(straight)[0]["dataset_id"]
    assert new_id != old_id
    run = _copy(straight, workdir / "runs" / "newdata")
    resume = ["train", "--resume", str(run), "--set", f"data.prepared={other / 'prepared'}",
              "--steps", "9"]
    before = _snapshot(run)
    line = one_line_error(run_wdsr(*resume, cwd=workdir))
    assert f"trained on dataset {old_id}" in line and new_id in line
    assert _snapshot(run) == before
    assert "--allow-data-change" in line
    res = run_wdsr(*resume, "--allow-data-change", cwd=workdir)
    assert res.returncode == 0, res.stderr
    start = [e for e in _events(run) if e["type"] == "start"][-1]
    assert (start["start_step"], start["dataset_id"]) == (8, new_id)


def test_bare_resume_picks_the_latest_run(workdir, straight, tmp_path):
    runs = tmp_path / "runs"
    old, new = _copy(straight, runs / "old"), _copy(straight, runs / "new")
    os.utime(old / "config.yaml", (1, 1))
    res = run_wdsr("train", "--resume", "--runs-dir", str(runs), "--steps", "9", "--dry-run",
                   "--json", "-", cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert str(new.absolute()) in json.loads(res.stdout)["run_dir"]
    line = one_line_error(run_wdsr("train", "--resume", "--runs-dir", str(tmp_path / "none"),
                                   cwd=workdir))
    assert "no run to resume" in line


def test_init_from_other_weights(workdir, straight):
    res = _train(workdir, "--steps", "1", "--init", str(straight / "last.ckpt"),
                 "--name", "fromsrc", "--set", "train.lr=1e-12", "--set", "train.schedule=constant")
    assert res.returncode == 0, res.stderr
    a, b = _weights(straight), _weights(workdir / "runs" / "fromsrc")
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
    line = one_line_error(_train(workdir, "--steps", "1", *args))
    assert needle in line


def test_resume_from_a_folder_that_is_not_a_run(workdir, tmp_path):
    line = one_line_error(run_wdsr("train", "--resume", str(tmp_path), cwd=workdir))
    assert "not a wdsr run folder" in line


def test_init_bundled_resolves_to_the_shipped_weights(workdir):
    res = _train(workdir, "--steps", "1", "--init", "bundled", "--name", "initbundled")
    assert res.returncode == 0, res.stderr
    start = [e for e in _events(workdir / "runs" / "initbundled") if e["type"] == "start"][0]
    assert start["init_from"].endswith("assets/weights/wdsr_x2.ckpt")
    # The tiny model shares these shapes with WDSR-B 32x16 x2: the 5x5 skip convolution
    # (kernel, g, bias) and the tail's g and bias (its kernel has 8, not 32, input channels).
    assert start["init_loaded"] == 5


def test_one_training_per_run_folder(workdir, straight, tmp_path):
    """A second resume of a run that is training is refused with the holder's PID and changes
    nothing; once the holder is dead (kill -9: no chance to clean up) the run is free."""
    run = _copy(straight, workdir / "runs" / "locked")
    marker = tmp_path / "held"
    held = _held_train(workdir, ["--resume", str(run), "--steps", "12"], "train-step-9", marker)
    try:
        before = _snapshot(run)
        for dry in ([], ["--dry-run"]):
            line = one_line_error(run_wdsr("train", "--resume", str(run), "--steps", "14", *dry,
                                           cwd=workdir))
            assert f"in use by wdsr process {held.pid}" in line
        assert _snapshot(run) == before
    finally:
        os.killpg(held.pid, signal.SIGKILL)
        held.wait()
    res = run_wdsr("train", "--resume", str(run), "--steps", "14", "--dry-run", cwd=workdir)
    assert res.returncode == 0, res.stderr

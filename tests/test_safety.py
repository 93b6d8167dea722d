"""What wdsr promises about files (docs/promises.md "What wdsr promises"): an input is never
written over, no folder's mode is changed, no temporary file survives, nothing is created or
computed before the inputs are checked, Ctrl-C says what finished and exits 130. One test per way
it broke."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import WDSR, one_line_error, run_wdsr, save_tiny_checkpoint
from prep_helpers import photo, plain_folder

from wdsr_cli.core.data.images import Image, read_image, write_image
from wdsr_cli.core.errors import WdsrError


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _hidden(folder: Path) -> list[str]:
    """Dot files anywhere below ``folder``: where temporary files would be."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


@pytest.fixture(scope="module")
def tiny(ms_cpu, tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_x2.ckpt", 2)


# ------------------------------------------------------------------------------ fileio


def test_atomic_write_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    from wdsr_cli.core import fileio

    target = tmp_path / "a.json"
    target.write_text("old")

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", full_disk)
    with pytest.raises(WdsrError, match="No space left") as e:
        fileio.atomic_write(target, "new")
    assert e.value.hint
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


def test_stale_temps_of_dead_writers_go_live_ones_stay(tmp_path):
    from wdsr_cli.core import fileio

    dead = fileio.temp_path(tmp_path / "last.ckpt", ".tmp").name.replace(
        f".tmp{os.getpid()}-", f".tmp{_dead_pid()}-")
    live = fileio.temp_path(tmp_path / "best.ckpt", ".ckpt")
    for name in (dead, live.name, "photo.png", ".hidden-but-not-ours"):
        (tmp_path / name).write_bytes(b"x")
    removed = fileio.remove_stale_temps(tmp_path)
    assert [p.name for p in removed] == [dead]
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, "photo.png", ".hidden-but-not-ours"])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_temps_of_an_exited_but_unreaped_writer_are_stale(tmp_path):
    """kill -9 of prepare-data: its orphaned pool workers die at once but stay zombies until
    init reaps them (kill -0 still finds them); a rerun in between must not keep their temps
    (a fresh-clone make test failed on that once)."""
    from wdsr_cli.core import fileio

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
        os.kill(proc.pid, 0)  # still there for kill -0
        zombie = fileio.temp_path(tmp_path / "img.npy").name.replace(
            f".tmp{os.getpid()}-", f".tmp{proc.pid}-")
        (tmp_path / zombie).write_bytes(b"half an array")
        assert [p.name for p in fileio.remove_stale_temps(tmp_path)] == [zombie]
    finally:
        proc.wait()


# ----------------------------------------------------------------- defect 4: checkpoint temps


def test_checkpoint_save_failure_and_killed_savers_leave_no_temp(ms_cpu, tmp_path, monkeypatch):
    """MindSpore writes NAME.tmp (not the .ckpt name it was given) and leaves it on ENOSPC;
    a saver killed with -9 leaves its temp too. Neither may survive."""
    import mindspore as ms

    from wdsr_cli.core.checkpoints import save_checkpoint
    from wdsr_cli.core.config import ModelConfig
    from wdsr_cli.core.model import build_model

    net = build_model(ModelConfig(n_feats=8, n_resblocks=1))
    stale = tmp_path / f".last.tmp{_dead_pid()}-0123abcd.tmp"  # left by a killed saver
    stale.write_bytes(b"partial")
    real_save = ms.save_checkpoint

    def enospc(obj, name, **kw):
        Path(name).with_suffix(".tmp").write_bytes(b"61 KB of a partial checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ms, "save_checkpoint", enospc)
    with pytest.raises(WdsrError, match="No space left"):
        save_checkpoint(net, tmp_path / "last.ckpt", {"step": 1})
    assert os.listdir(tmp_path) == []  # its own partial file and the stale one are gone

    monkeypatch.setattr(ms, "save_checkpoint", real_save)
    stale.write_bytes(b"partial")
    save_checkpoint(net, tmp_path / "last.ckpt", {"step": 2})
    assert os.listdir(tmp_path) == ["last.ckpt"]
    assert stat.S_IMODE((tmp_path / "last.ckpt").stat().st_mode) == 0o666 & ~_umask()


# ------------------------------------------------------------- defect 2: export folder mode


def test_onnx_export_changes_no_folder_mode(tiny, tmp_path):
    pytest.importorskip("onnx")
    out = tmp_path / "d"
    out.mkdir()
    out.chmod(0o775)
    res = run_wdsr("export", "--checkpoint", str(tiny), "--format", "onnx", "--no-check",
                   "-o", str(out / "m.onnx"))
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o775
    assert sorted(os.listdir(out)) == ["m.onnx", "m.onnx.json"]
    # -o NAME: the current folder
    tmp_path.chmod(0o755)
    res = run_wdsr("export", "--checkpoint", str(tiny), "--format", "onnx", "--no-check",
                   "-o", "m2.onnx", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755 and (tmp_path / "m2.onnx").is_file()


# ---------------------------------------------------------- defect 1: inputs never overwritten


def _pic(h: int = 12, w: int = 14) -> Image:
    return Image(pixels=photo(h, w, h * w))


def test_an_input_is_never_written_over(tmp_path):
    photo_file = tmp_path / "good.png"
    write_image(photo_file, _pic())
    before = photo_file.read_bytes()
    line = one_line_error(run_wdsr("upscale", str(photo_file), "-o", str(photo_file),
                                   "--overwrite", "--scale", "2"))
    assert "is the input itself" in line
    assert photo_file.read_bytes() == before


def test_folder_reruns_never_feed_on_their_outputs(tiny, tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    for name in ("a.png", "b.png"):
        write_image(src / name, _pic())
    for _ in range(2):  # default: a sibling folder photos_x2/
        res = run_wdsr("upscale", str(src), "--checkpoint", str(tiny), "--overwrite")
        assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(src)) == ["a.png", "b.png"]
    assert sorted(os.listdir(tmp_path / "photos_x2")) == ["a_x2.png", "b_x2.png"]
    for _ in range(2):  # outputs into the input folder: the earlier outputs are left out
        res = run_wdsr("upscale", str(src), "-o", str(src), "--checkpoint", str(tiny),
                       "--overwrite")
        assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(src)) == ["a.png", "a_x2.png", "b.png", "b_x2.png"]
    assert "left out" in res.stderr and "a_x2.png" in res.stderr


# ------------------------------------------------------ defect 7: checks before any computing


def test_problems_found_before_the_model_is_loaded(tmp_path):
    img = tmp_path / "x.png"
    write_image(img, _pic())
    rgba = tmp_path / "t.png"
    write_image(rgba, Image(pixels=photo(8, 8, 1), alpha=np.full((8, 8), 128, np.uint8)))
    cases = [
        (["upscale", str(img), "--json", str(tmp_path / "no" / "s.json")], "does not exist"),
        (["upscale", str(rgba), "-o", str(tmp_path / "t.jpg")], "transparency"),
        (["upscale", str(img), "-o", str(img / "sub") + "/"], "is a file"),
        (["evaluate", "--hr", str(tmp_path), "--json", str(tmp_path / "no" / "e.json")],
         "does not exist"),
        (["export", "--format", "mindir", "--json", str(tmp_path / "no" / "x.json")],
         "does not exist"),
    ]
    for args, needle in cases:
        res = run_wdsr(*args, "--scale", "2")
        assert needle in one_line_error(res), args
        assert "checkpoint:" not in res.stderr  # nothing was loaded or computed
    assert sorted(os.listdir(tmp_path)) == ["t.png", "x.png"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_unwritable_output_folder_is_refused_first(tmp_path):
    img = tmp_path / "x.png"
    write_image(img, _pic())
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        res = run_wdsr("upscale", str(img), "-o", str(locked / "out") + "/", "--scale", "2")
        assert "cannot write" in one_line_error(res) and "checkpoint:" not in res.stderr
    finally:
        locked.chmod(0o755)


# ------------------------------------------------------------------------- defect 8: Ctrl-C


class _StopAt:
    """A stand-in predictor (x2 nearest) that is "interrupted" at its n-th image."""

    scale, receptive_radius = 2, 1

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def predict(self, rgb, on_tile=None):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)

    predict_uint8 = predict  # plain 8-bit photos take the uint8 path

    def windows_for(self, height: int, width: int) -> int:  # recorded as network_calls
        return 1


class _LazyFuture:
    def __init__(self, fn, args) -> None:
        self.fn, self.args, self.state, self.value = fn, args, "pending", None

    def run(self) -> None:
        if self.state == "pending":
            self.value, self.state = self.fn(*self.args), "done"

    def result(self):
        self.run()
        return self.value

    def cancel(self) -> bool:
        if self.state == "pending":
            self.state = "cancelled"
        return self.state == "cancelled"


class _LazyPool:
    """The slowest legal thread pool: a task runs only when its result is asked for or at
    shutdown (unless cancelled), i.e. no worker ever picks up a queued task by itself."""

    def __init__(self, *args, **kwargs) -> None:
        self.queued: list[_LazyFuture] = []

    def submit(self, fn, *args) -> _LazyFuture:
        self.queued.append(_LazyFuture(fn, args))
        return self.queued[-1]

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        for future in self.queued:
            if cancel_futures:
                future.cancel()
            future.run()


@pytest.mark.parametrize("pool", ["threads", "lazy"])
def test_interrupted_batch_keeps_finished_files_and_nothing_partial(tmp_path, monkeypatch, pool):
    """Ctrl-C during the 3rd image: the 2nd, computed but maybe not yet picked up by a writer
    thread, is still written ("lazy": the worst scheduling, where it certainly is not)."""
    import concurrent.futures

    from wdsr_cli.core.inference import upscale as U

    if pool == "lazy":
        monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", _LazyPool)
    jobs = []
    for i in range(5):
        write_image(tmp_path / f"in{i}.png", _pic(6 + i, 7))
        jobs.append(U.Job(tmp_path / f"in{i}.png", tmp_path / "out" / f"in{i}_x2.png"))
    summary = U.upscale_batch(_StopAt(3), jobs)
    assert summary["interrupted"] and len(summary["images"]) == 2
    assert sorted(os.listdir(tmp_path / "out")) == ["in0_x2.png", "in1_x2.png"]
    assert read_image(tmp_path / "out" / "in1_x2.png").pixels.shape == (14, 14, 3)
    assert _hidden(tmp_path) == []


def test_ctrl_c_during_a_folder_says_what_finished_and_exits_130(tiny, tmp_path):
    """A real SIGINT once the first result exists (60 images remain: the margin is minutes
    of work, not milliseconds). MindSpore's own SIGINT handler used to end the process with
    SIGTERM: exit 143, no message."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(60):
        write_image(src / f"p{i:02d}.png", Image(pixels=photo(160, 160, i)))
    out = tmp_path / "out"
    proc = subprocess.Popen([WDSR, "upscale", str(src), "-o", str(out), "--checkpoint",
                             str(tiny)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        while proc.poll() is None and not (out.is_dir() and any(out.glob("*.png"))):
            os.sched_yield()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    written = sorted(out.glob("*.png"))
    assert 0 < len(written) < 60
    assert f"interrupted: {len(written)} of 60 images were written" in stderr
    assert "Traceback" not in stderr
    for f in written:
        assert read_image(f).pixels.shape == (320, 320, 3)
    assert _hidden(tmp_path) == []


# -------------------------------------------------------- defect 5: --out = the source folder


def test_prepare_data_into_its_own_source_folder_reruns(tmp_path):
    src = plain_folder(tmp_path / "d", [(96, 96), (96, 120), (120, 96)])
    args = ["prepare-data", str(src), "--out", str(src), "--scales", "2", "--crop-size", "48",
            "--crop-step", "48", "--valid-count", "1", "-j", "1"]
    for extra in ([], [], ["--force"]):
        res = run_wdsr(*args, *extra)
        assert res.returncode == 0, res.stderr
    assert "already prepared" in run_wdsr(*args).stderr


# ---------------------------------------------------- defect 9: orphans of a killed prepare


def test_killed_prepare_data_leaves_no_orphan_tracebacks(tmp_path):
    src = plain_folder(tmp_path / "d", [(480, 480)] * 40)
    out = tmp_path / "out"
    proc = subprocess.Popen([WDSR, "prepare-data", str(src), "--out", str(out), "--scales",
                             "2,3,4", "--crop-size", "48", "--crop-step", "24", "-j", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    journal = out / ".journal.jsonl"
    while proc.poll() is None and not (journal.is_file() and journal.read_text().count("\n") > 1):
        os.sched_yield()
    proc.kill()  # kill -9 of the parent only; its pool workers are not signalled
    stderr = proc.stderr.read()  # EOF once every process holding the pipe has gone
    proc.wait()
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    res = run_wdsr("prepare-data", str(src), "--out", str(out), "--scales", "2,3,4",
                   "--crop-size", "48", "--crop-step", "24", "-j", "2")
    assert res.returncode == 0, res.stderr
    assert _hidden(out) == [".journal.jsonl"]


# ------------------------------------------------------------------------ defect 10: smaller


def test_small_input_mistakes_get_a_clear_line(tiny, tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    img = tmp_path / "x.png"
    write_image(img, _pic())
    for args, needles in [
        (["upscale", str(img), "--checkpoint", str(folder)], ["is a folder", "best.ckpt"]),
        (["evaluate", "--checkpoint", str(folder)], ["is a folder"]),
        (["train", "-c", str(folder), "--print-config"], ["is a folder"]),
        (["train", "--set", "train.lr=inf", "--print-config"], ["train.lr"]),
        (["train", "--set", "train.lr=-1", "--print-config"], ["must be positive", "--set"]),
        (["export", "--scale", "5"], ["unsupported scale 5"]),
    ]:
        line = one_line_error(run_wdsr(*args))
        for needle in needles:
            assert needle in line, (args, line)


def test_corrupt_checkpoint_is_one_line_without_mindspore_logs(tiny, tmp_path):
    img = tmp_path / "x.png"
    write_image(img, _pic())
    data = bytearray(tiny.read_bytes())
    for where in (len(data) // 3, len(data) - 20):
        data[where:where + 8] = b"\xff" * 8
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(bytes(data))
    for args in (["upscale", str(img)], ["export", "-o", str(tmp_path / "m.mindir")]):
        line = one_line_error(run_wdsr(*args, "--checkpoint", str(bad)))
        assert "bad.ckpt" in line and "corrupted" in line


def _nan_checkpoint(path: Path) -> Path:
    """The tiny model with one NaN weight, as a diverged training would save it."""
    import mindspore as ms
    from conftest import TINY_MODEL

    from wdsr_cli.core.checkpoints import save_checkpoint
    from wdsr_cli.core.config import Config, ModelConfig
    from wdsr_cli.core.model import build_model

    cfg = Config(model=ModelConfig(**{**TINY_MODEL, "scale": 2}))
    net = build_model(cfg.model)
    param = net.parameters_and_names().__next__()[1]
    values = param.asnumpy().copy()
    values.flat[0] = np.nan
    param.set_data(ms.Tensor(values))
    return save_checkpoint(net, path, meta={"model": cfg.to_dict()["model"], "scale": 2,
                                            "step": 5, "kind": "weights", "dataset_id": "x"})


def test_non_finite_weights_are_refused_by_every_command_that_loads_them(ms_cpu, tmp_path):
    img = tmp_path / "x.png"
    write_image(img, _pic())
    bad = _nan_checkpoint(tmp_path / "nan.ckpt")
    hr = tmp_path / "hr"
    hr.mkdir()
    write_image(hr / "h.png", Image(pixels=photo(32, 32, 1)))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for args in (["upscale", str(img), "--checkpoint", str(bad)],
                 ["evaluate", "--hr", str(hr), "--checkpoint", str(bad)],
                 ["export", "--checkpoint", str(bad), "-f", "onnx", "-o", str(tmp_path / "m.onnx")],
                 ["train", *TINY_TRAIN, "--init", str(bad)]):
        line = one_line_error(run_wdsr(*args, cwd=tmp_path))
        assert "nan.ckpt" in line and "NaN or infinite" in line, (args[0], line)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


# ------------------------------------------------------------- defect 3: --resume keeps --init

TINY_TRAIN = ["--config", "demo", "--set", "model.n_resblocks=2", "--set", "model.n_feats=8",
              "--set", "data.batch_size=2", "--set", "data.patch_size=16",
              "--set", "train.val_images=1", "--set", "train.val_every=1000",
              "--set", "train.ckpt_every=1000", "--set", "train.warmup_steps=0",
              "--set", "train.log_every=1", "--device-target", "CPU"]


def test_resume_before_the_first_checkpoint_keeps_init_weights(tiny, tmp_path):
    """A run that stopped before its first checkpoint (here: its loss blew up at step 2, a
    deterministic stand-in for kill -9) resumes from its --init weights, not random ones."""
    res = run_wdsr("prepare-data", "--sample", "data/sample", "--scales", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = run_wdsr("train", *TINY_TRAIN, "--init", str(tiny), "--steps", "3", "--name", "r",
                   "--set", "train.lr=1e30", cwd=tmp_path)
    assert res.returncode == 2 and "error: the loss became" in res.stderr, res.stderr
    run = tmp_path / "runs" / "r"
    assert not list(run.rglob("*.ckpt"))
    res = run_wdsr("train", "--resume", str(run), "--steps", "2", "--set", "train.lr=1e-4",
                   cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stderr and "from step 0" in res.stderr
    starts = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
              if '"start"' in line]
    assert [s["init_from"] for s in starts] == [str(tiny.resolve())] * 2
    assert starts[-1]["init_loaded"] > 0
    # resuming with fewer steps than done is refused, a longer resume says where it starts
    line = one_line_error(run_wdsr("train", "--resume", str(run), "--steps", "1", cwd=tmp_path))
    assert "already trained 2 steps" in line and "--steps" in line
    res = run_wdsr("train", "--resume", str(run), "--steps", "3", "--set", "train.lr=1e-4",
                   cwd=tmp_path)
    assert res.returncode == 0 and "from step 2" in res.stderr, res.stderr


@pytest.mark.parametrize("umask, mode", [(0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(umask, mode, tmp_path):
    """Every file wdsr writes gets 0666 & ~umask, as open() would: checked in a fresh process
    (the mode is read once per process) for a JSON summary, an image and a checkpoint (which
    MindSpore writes itself)."""
    code = (
        "import os, sys\n"
        f"os.umask({umask})\n"
        "import numpy as np\n"
        "from wdsr_cli.core import fileio\n"
        "from wdsr_cli.core.checkpoints import save_checkpoint\n"
        "from wdsr_cli.core.data.images import Image, write_image\n"
        "fileio.atomic_write(sys.argv[1], '{}')\n"
        "write_image(sys.argv[2], Image(pixels=np.zeros((4, 4, 3), np.uint8)))\n"
        "import mindspore as ms\n"
        "save_checkpoint([{'name': 'w', 'data': ms.Tensor(np.zeros(2, np.float32))}], "
        "sys.argv[3], {'step': 1})\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.json"),
                          str(tmp_path / "b.png"), str(tmp_path / "c.ckpt")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.png", "c.ckpt"]  # no temporaries
    for name in ("a.json", "b.png", "c.ckpt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


@pytest.mark.parametrize("hard_links", [True, False])
def test_an_exclusive_write_never_replaces_a_file_that_appeared(tmp_path, monkeypatch,
                                                                hard_links):
    from wdsr_cli.core import fileio

    if not hard_links:  # file systems without hard links take the O_EXCL path
        def no_link(*args, **kwargs):
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(fileio.os, "link", no_link)
    target = tmp_path / "out.png"
    with fileio.replacing(target, exclusive=True) as tmp:
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(WdsrError, match="appeared while wdsr was working"):
        with fileio.replacing(target, exclusive=True) as tmp:
            tmp.write_bytes(b"second")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary file left
    with fileio.replacing(target) as tmp:  # not exclusive: replaced
        tmp.write_bytes(b"third")
    assert target.read_bytes() == b"third"

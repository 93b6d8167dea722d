"""runs.py in-process: naming and claiming run folders, the run lock, finding the run and the
checkpoint a --resume continues from, and train.check_resume_compatible. Fast tests (tiny
checkpoints, no training, no `wdsr` process): the ones that kill the mutants of the resume
modules (docs/mutation.md); resume end to end is in test_train.py (slow)."""

from __future__ import annotations

import os

import pytest
from conftest import save_tiny_checkpoint

from wdsr_cli.core import runs as R
from wdsr_cli.core.config import Config, ModelConfig, dump_yaml, load_config
from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.fileio import LOCK_NAME, lock_holder

# ------------------------------------------------------------------ names and new folders


def test_run_name_is_the_name_or_the_recipes_made_filesystem_safe():
    cfg = Config(name="wdsr-b-x2")
    assert R.run_name(None, cfg) == "wdsr-b-x2"
    assert R.run_name("", cfg) == "wdsr-b-x2"
    assert R.run_name("my run/v1", cfg) == "my-run-v1"
    assert R.run_name("a_b.c-D9", cfg) == "a_b.c-D9"  # the safe characters stay
    assert R.run_name("  x é?y  ", cfg) == "x-y"  # runs collapse to one dash, ends stripped
    assert R.run_name("--a--", cfg) == "a"
    assert R.run_name("Xa-X", cfg) == "Xa-X"  # only dashes are stripped
    assert R.run_name("///", cfg) == "run"
    assert R.run_name(None, Config(name="!!")) == "run"


def test_next_run_dir_is_the_first_free_name_and_creates_nothing(tmp_path):
    runs = tmp_path / "runs"
    assert R.next_run_dir(runs, "demo") == runs / "demo"
    assert not runs.exists()
    (runs / "demo").mkdir(parents=True)
    assert R.next_run_dir(str(runs), "demo") == runs / "demo-2"
    (runs / "demo-2").mkdir()
    (runs / "demo-4").mkdir()
    assert R.next_run_dir(runs, "demo") == runs / "demo-3"
    assert sorted(p.name for p in runs.iterdir()) == ["demo", "demo-2", "demo-4"]


def test_new_run_dir_claims_the_first_free_name(tmp_path):
    runs = tmp_path / "deep" / "runs"  # parents made
    assert R.new_run_dir(runs, "demo") == runs / "demo"
    assert (runs / "demo").is_dir()
    assert R.new_run_dir(str(runs), "demo") == runs / "demo-2"  # the root exists now
    assert R.new_run_dir(runs, "demo") == runs / "demo-3"
    (runs / "other-2").mkdir()
    assert R.new_run_dir(runs, "other") == runs / "other"
    assert R.new_run_dir(runs, "other") == runs / "other-3"
    assert [p.name for p in runs.iterdir() if p.name.startswith(".")] == []  # probe removed


def test_new_run_dir_refuses_an_unwritable_root(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WdsrError) as e:
        R.new_run_dir(blocker / "runs", "demo")
    assert e.value.message == (f"cannot write run folder under '{blocker / 'runs'}': Not a "
                               "directory")  # the reason, not the exception's repr
    assert e.value.hint == "pass --runs-dir with a writable folder"


# ------------------------------------------------------------------ the run lock


def test_a_claimed_run_is_refused_and_freed_when_its_lock_closes(tmp_path):
    run = tmp_path / "demo"
    run.mkdir()
    R.check_run_free(run)  # free: nothing raised, nothing created
    assert not (run / LOCK_NAME).exists()
    fd = R.claim_run(run)
    assert isinstance(fd, int) and fd >= 0
    try:
        assert lock_holder(run) == os.getpid()
        with pytest.raises(WdsrError) as e:
            R.check_run_free(run)
        assert e.value.message == f"run folder '{run}' is in use by wdsr process {os.getpid()}"
        assert e.value.hint == ("one process trains a run at a time: wait for it to end, or "
                                f"stop it (kill {os.getpid()})")
        with pytest.raises(WdsrError) as e2:
            R.claim_run(run)
        assert e2.value.message == e.value.message and e2.value.hint == e.value.hint
    finally:
        os.close(fd)
    R.check_run_free(run)
    os.close(R.claim_run(run))


def test_in_use_without_a_readable_pid_names_no_process(tmp_path):
    err = R._in_use(tmp_path, 0)
    assert err.message == f"run folder '{tmp_path}' is in use by another wdsr process"
    assert err.hint == "one process trains a run at a time: wait for it to end"
    assert R._in_use(tmp_path, None).message == err.message
    err = R._in_use(tmp_path, 1)
    assert err.message.endswith("in use by wdsr process 1")
    assert err.hint.endswith(", or stop it (kill 1)")


def test_claim_run_of_a_missing_folder_is_one_error(tmp_path):
    with pytest.raises(WdsrError) as e:
        R.claim_run(tmp_path / "gone")
    assert e.value.message == (f"cannot lock run folder '{tmp_path / 'gone'}': No such file "
                               "or directory")
    assert e.value.hint == "check the folder's permissions"


# ------------------------------------------------------------------ finding a run to resume


def test_latest_run_dir_is_the_newest_config(tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(WdsrError, match="no run to resume under") as e:
        R.latest_run_dir(runs)  # no folder
    assert e.value.hint == "start one with wdsr train, or pass --resume RUN_DIR"
    runs.mkdir()
    (runs / "logs-only").mkdir()  # a folder without config.yaml is no run
    with pytest.raises(WdsrError, match="no run to resume"):
        R.latest_run_dir(runs)
    for name, when in (("old", 1_000), ("new", 3_000), ("mid", 2_000)):
        (runs / name).mkdir()
        (runs / name / "config.yaml").write_text("{}")
        os.utime(runs / name / "config.yaml", (when, when))
    (runs / "stray.yaml").write_text("{}")
    assert R.latest_run_dir(runs) == runs / "new"
    assert R.latest_run_dir(str(runs)) == runs / "new"


def test_run_checkpoints_are_last_then_periodic_newest_first(tmp_path):
    assert R.run_checkpoints(tmp_path) == []
    (tmp_path / "ckpt").mkdir()
    for step in ("step_0000100", "step_0000300", "step_0000200"):
        (tmp_path / "ckpt" / f"{step}.ckpt").write_bytes(b"")
    (tmp_path / "ckpt" / "other.ckpt").write_bytes(b"")
    (tmp_path / "best.ckpt").write_bytes(b"")
    periodic = [tmp_path / "ckpt" / f"step_0000{n}.ckpt" for n in (300, 200, 100)]
    assert R.run_checkpoints(tmp_path) == periodic
    (tmp_path / "last.ckpt").write_bytes(b"")
    assert R.run_checkpoints(tmp_path) == [tmp_path / "last.ckpt", *periodic]


# ------------------------------------------------------------------ open_resume


def _run(tmp_path, steps: int = 50, init: str = ""):
    run = tmp_path / "run"
    (run / "ckpt").mkdir(parents=True)
    cfg = Config(name="demo")
    cfg.model.n_feats, cfg.model.n_resblocks = 8, 2
    cfg.train.steps, cfg.train.init = steps, init
    (run / "config.yaml").write_text(dump_yaml(cfg))
    return run


def test_open_resume_reads_the_config_and_the_newest_usable_checkpoint(ms_cpu, tmp_path):
    from wdsr_cli.core.checkpoints import read_checkpoint

    run = _run(tmp_path)
    save_tiny_checkpoint(run / "ckpt" / "step_0000010.ckpt", step=10, kind="periodic")
    save_tiny_checkpoint(run / "ckpt" / "step_0000020.ckpt", step=20, kind="periodic")
    (run / "last.ckpt").write_bytes(b"torn")  # a crash during the save: passed over, noted
    state = R.open_resume(str(run))
    assert state.run_dir == run and state.config.name == "demo"
    assert state.config.train.steps == 50 and state.config.model.n_feats == 8
    assert state.checkpoint == run / "ckpt" / "step_0000020.ckpt"
    assert state.meta["step"] == 20 and state.meta["kind"] == "periodic"
    assert set(state.params) == set(read_checkpoint(state.checkpoint)[0])
    assert len(state.skipped) == 1 and state.skipped[0].startswith("last.ckpt: ")
    # a checkpoint of another kind (weights only) is no resume point; last.ckpt is
    save_tiny_checkpoint(run / "last.ckpt", step=30, kind="weights")
    assert R.open_resume(run).checkpoint == run / "ckpt" / "step_0000020.ckpt"
    assert R.open_resume(run).skipped == []
    save_tiny_checkpoint(run / "last.ckpt", step=30, kind="last")
    state = R.open_resume(run)
    assert state.checkpoint == run / "last.ckpt" and state.meta["step"] == 30


def test_a_resume_state_made_without_skipped_checkpoints_has_none(tmp_path):
    """The training worker builds its ResumeState from the spec, without the list."""
    state = R.ResumeState(tmp_path, Config(), None, None, None)
    assert state.skipped == []
    assert R.ResumeState(tmp_path, Config(), None, None, None).skipped is not state.skipped


def test_open_resume_takes_overrides_and_refuses_a_finished_run(ms_cpu, tmp_path):
    run = _run(tmp_path, steps=20)
    save_tiny_checkpoint(run / "last.ckpt", step=20, kind="last")
    with pytest.raises(WdsrError) as e:
        R.open_resume(run)  # done == steps
    assert e.value.message == f"'{run}' has already trained 20 steps and train.steps is 20"
    assert e.value.hint == "pass --steps N with N > 20 to train it further"
    with pytest.raises(WdsrError, match="already trained 20 steps and train.steps is 10"):
        R.open_resume(run, ["train.steps=10"])
    state = R.open_resume(run, ["train.steps=21", "train.lr=0.5"])
    assert state.config.train.steps == 21 and state.config.train.lr == 0.5
    assert state.checkpoint == run / "last.ckpt"
    with pytest.raises(WdsrError, match="no_such"):
        R.open_resume(run, ["train.no_such=1"])  # a bad override: the config's own error


def test_open_resume_of_a_checkpoint_without_a_step_starts_at_zero(ms_cpu, tmp_path):
    from wdsr_cli.core.checkpoints import save_checkpoint
    from wdsr_cli.core.model import build_model

    run = _run(tmp_path, steps=1)
    save_checkpoint(build_model(ModelConfig(n_feats=8, n_resblocks=2)),
                    run / "last.ckpt", meta={"kind": "last"})
    assert R.open_resume(run).checkpoint == run / "last.ckpt"  # 0 < 1 steps: resumable


def test_open_resume_refusals(ms_cpu, tmp_path):
    with pytest.raises(WdsrError) as e:
        R.open_resume(tmp_path)
    assert e.value.message == f"'{tmp_path}' is not a wdsr run folder (no config.yaml)"
    (tmp_path / "config.yaml").mkdir()  # not a file
    with pytest.raises(WdsrError, match="not a wdsr run folder"):
        R.open_resume(tmp_path)
    run = _run(tmp_path)
    (run / "last.ckpt").write_bytes(b"torn")
    (run / "ckpt" / "step_0000010.ckpt").write_bytes(b"also torn")
    with pytest.raises(WdsrError) as e:
        R.open_resume(run)
    assert e.value.message.startswith(f"no usable checkpoint in '{run}': last.ckpt: ")
    assert "; step_0000010.ckpt: " in e.value.message
    assert e.value.hint == "start a new run, or --init from a good checkpoint"


def test_open_resume_before_the_first_checkpoint_starts_again(ms_cpu, tmp_path):
    state = R.open_resume(_run(tmp_path / "a"))
    assert (state.checkpoint, state.params, state.meta, state.skipped) == (None, None, None, [])
    assert state.config.train.steps == 50
    init = save_tiny_checkpoint(tmp_path / "init.ckpt")
    state = R.open_resume(_run(tmp_path / "b", init=str(init)))
    assert state.checkpoint is None and state.config.train.init == str(init)
    init.unlink()
    with pytest.raises(WdsrError) as e:
        R.open_resume(tmp_path / "b" / "run")
    assert e.value.message == (f"this run started from --init '{init}', which no longer exists")
    assert e.value.hint == "put the file back, or start a new run"


# ------------------------------------------------------------------ record_config


def test_record_config_writes_the_plan_and_leaves_an_equal_one(tmp_path):
    cfg = Config(name="demo")
    R.record_config(str(tmp_path), cfg)
    path = tmp_path / "config.yaml"
    assert path.read_text() == dump_yaml(cfg)
    assert load_config(str(path)).to_dict() == cfg.to_dict()
    before = path.stat().st_ino
    R.record_config(tmp_path, cfg)  # the same plan: the file is not rewritten
    assert path.stat().st_ino == before
    cfg.train.steps = 99
    R.record_config(tmp_path, cfg)
    assert load_config(str(path)).train.steps == 99


# ------------------------------------------------------------------ check_resume_compatible


def test_check_resume_compatible(ms_cpu):
    from wdsr_cli.core.train import check_resume_compatible as check

    cfg = Config()
    meta = {"config": cfg.to_dict(), "dataset_id": "abc"}
    check(cfg, meta, "abc", False)
    check(cfg, meta, None, False)  # a plan that does not open the data: the model only
    check(cfg, meta, "new", True)  # --allow-data-change
    with pytest.raises(WdsrError) as e:
        check(cfg, meta, "new", False)
    assert e.value.message == ("the run was trained on dataset abc, the prepared data is now "
                               "new")
    assert e.value.hint == "pass --allow-data-change to continue on the new data"
    other = Config()
    other.model.n_feats = 16  # --set model.n_feats=16 on a resume
    for data, allow in (("abc", False), (None, False), ("abc", True)):
        with pytest.raises(WdsrError, match="model config differs") as e:
            check(other, meta, data, allow)
        assert e.value.hint == ("resume with the original model settings, or use --init for "
                                "new ones")
    changed = Config()
    changed.train.lr = 0.5  # the training settings may change
    check(changed, meta, "abc", False)
    with pytest.raises(WdsrError, match="model config differs"):
        check(cfg, {"dataset_id": "abc"}, "abc", False)  # a checkpoint without its config

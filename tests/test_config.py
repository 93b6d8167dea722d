from pathlib import Path

import pytest

from wdsr_cli.core import config as C
from wdsr_cli.core.errors import WdsrError


def test_builtin_recipes_load_by_name_from_the_installed_package(tmp_path, monkeypatch):
    from pathlib import Path

    import wdsr_cli

    monkeypatch.chdir(tmp_path)  # not found through the current folder
    names = C.builtin_config_names()
    for expected in ("demo", "wdsr-a-x2", "wdsr-b-x2", "wdsr-b-x3", "wdsr-b-x4",
                     "modelzoo-wdsr-b-x2"):
        assert expected in names
    # From the imported package: wdsr_cli/configs when installed, ./configs beside it in a
    # source checkout or an editable install.
    package = Path(wdsr_cli.__file__).resolve().parent
    assert C.builtin_config_dir() in (package / "configs", package.parent / "configs")
    for name in names:
        cfg = C.load_config(name)
        assert cfg.name == name


def test_every_recipe_named_for_a_scale_trains_that_scale():
    """bundled-x4-stage3 once said scale 3: its run would have trained x3 again under an x4
    name (and --init bundled would have loaded the x3 weights)."""
    import re

    named = 0
    for name in C.builtin_config_names():
        m = re.search(r"-x(\d)(?:-|$)", name)
        if m:
            named += 1
            assert C.load_config(name).model.scale == int(m.group(1)), name
    assert named >= 9


@pytest.mark.parametrize("scale,patch", [(2, 48), (3, 32), (4, 24)])
def test_paper_recipes_use_hr_patch_96(scale, patch):
    cfg = C.load_config(f"wdsr-b-x{scale}")
    assert cfg.model.scale == scale and cfg.data.patch_size == patch
    assert cfg.data.patch_size * scale == 96
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.data.batch_size == 16


def test_load_by_path_and_overrides(tmp_path):
    p = tmp_path / "mine.yml"
    p.write_text("model:\n  n_resblocks: 4\ntrain:\n  milestones: [10, 20]\n")
    cfg = C.load_config(str(p), ["train.lr=5e-4", "model.variant=a", "data.augment=false",
                                 "train.schedule=multistep"])
    assert cfg.name == "mine"
    assert cfg.model.n_resblocks == 4 and cfg.model.variant == "a"
    assert cfg.train.lr == pytest.approx(5e-4) and isinstance(cfg.train.lr, float)
    assert cfg.train.milestones == [10, 20]
    assert cfg.data.augment is False


def test_int_accepted_for_float_but_not_bool_for_int():
    cfg = C.load_config(None, ["train.lr=1"])
    assert cfg.train.lr == 1.0
    with pytest.raises(WdsrError, match="must be int"):
        C.load_config(None, ["model.n_feats=true"])


@pytest.mark.parametrize("override,needle", [
    ("model.scale=5", "model.scale"),
    ("model.variant=c", "model.variant"),
    ("train.schedule=linear", "train.schedule"),
    ("train.loss=l3", "train.loss"),
    ("train.ema_decay=1", "train.ema_decay"),
    ("train.ema_decay=-0.1", "train.ema_decay"),
    ("eval.protocol=ycbcr", "eval.protocol"),
    ("eval.tile=-1", "eval.tile"),
    ("train.steps=0", "train.steps"),
    ("nosection.key=1", "must be section.key"),
    ("train.lr", "section.key=value"),
    ("model.rgb_mean=[1, 2]", "model.rgb_mean"),
])
def test_bad_overrides_name_the_key(override, needle):
    with pytest.raises(WdsrError) as exc:
        C.load_config(None, [override])
    assert needle in str(exc.value)


def test_unknown_section_and_key_in_yaml(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("modle:\n  n_feats: 3\n")
    with pytest.raises(WdsrError, match="unknown section 'modle'"):
        C.load_config(str(p))
    p.write_text("model:\n  nfeats: 3\n")
    with pytest.raises(WdsrError, match="valid keys in 'model'.*n_feats"):
        C.load_config(str(p))


def test_a_bare_recipe_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    # `make demo` leaves ./demo/, and README.md "Set up and try it" then runs
    # `wdsr train --config demo` next to it.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    (tmp_path / "mine").mkdir()
    assert C.resolve_config_path("demo") == C.builtin_config_dir() / "demo.yaml"
    assert C.load_config("demo").name == "demo"
    with pytest.raises(WdsrError, match="is a folder"):
        C.resolve_config_path("mine")  # no recipe of that name: the folder is what was meant
    with pytest.raises(WdsrError, match="is a folder"):
        C.resolve_config_path("./demo/")  # a path is a path


def test_missing_config_path():
    with pytest.raises(WdsrError, match="does not exist"):
        C.load_config("nowhere/x.yaml")


def test_model_config_round_trip_through_dict():
    cfg = C.load_config("wdsr-a-x3")
    again = C.model_config_from_dict(cfg.to_dict()["model"])
    assert again == cfg.model
    assert Path(C.builtin_config_dir()).is_dir()


@pytest.mark.parametrize("name, content, needle", [
    # eight lines of aliases expand to 9^8 items in a plain YAML loader
    ("bomb.yaml", "train: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n",
     "aliases (*name) are not allowed"),
    ("deep.yaml", "train: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 16"),
    ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), "is not UTF-8 text (byte 9, line 1)"),
    ("big.yaml", "#" * (C.CONFIG_MAX_BYTES + 1), "one is at most 1 MiB"),
])
def test_a_hostile_config_file_is_one_clear_error(tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(WdsrError) as err:
        C.load_config(str(path))
    assert needle in err.value.message


def test_a_fifo_config_is_refused_without_reading_it(tmp_path):
    import os

    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)  # no writer: opening it for reading the usual way would block forever
    with pytest.raises(WdsrError) as err:
        C.load_config(str(fifo))
    assert "is not a regular file" in err.value.message


def test_an_alias_in_a_set_value_is_not_expanded():
    with pytest.raises(WdsrError) as err:
        C.load_config(None, ["train.lr=[&a [1, 1], *a]"])
    assert "must be float" in err.value.message


def test_overridden_names_a_key_the_command_line_set():
    sets = [" data.crop_size = 96", "train.lr=1e-3"]
    assert C.overridden(sets, "data.crop_size")
    assert C.overridden(sets, "data.crop_step", "train.lr")
    assert not C.overridden(sets, "data.crop_step")
    assert not C.overridden(["train.lr_x=1"], "train.lr")  # a key, not a prefix
    assert not C.overridden(None, "train.lr")


def test_check_scale_is_the_one_scale_check():
    assert C.check_scale(4) == 4 and C.check_scale(3, supported=False) == 3
    assert C.check_scale(5, supported=False) == 5  # measuring works at any factor
    for bad in (5, 1, 16, "2", 2.0, True):
        with pytest.raises(WdsrError, match="unsupported scale") as info:
            C.check_scale(bad)
        assert "2, 3, 4, 8" in info.value.hint
    for bad in (0, -2, 2.5, True):
        with pytest.raises(WdsrError, match="must be a positive integer"):
            C.check_scale(bad, supported=False)

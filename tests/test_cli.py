import subprocess
import sys

import pytest
from conftest import one_line_error, run_wdsr

SUBCOMMANDS = ["prepare-data", "train", "evaluate", "export", "upscale"]


def test_help_lists_every_subcommand():
    res = run_wdsr("--help")
    assert res.returncode == 0, res.stderr
    for name in SUBCOMMANDS:
        assert name in res.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help_has_an_example(name):
    res = run_wdsr(name, "--help")
    assert res.returncode == 0, res.stderr
    assert "Example:" in res.stdout and f"wdsr {name}" in res.stdout


def test_version():
    from importlib.metadata import version

    import wdsr_cli

    res = run_wdsr("--version")
    assert res.returncode == 0
    assert res.stdout == f"wdsr {wdsr_cli.__version__}\n"
    assert version("wdsr-cli") == wdsr_cli.__version__  # what pip installed says the same


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"],
                                  ["train", "--no-such-flag"], ["upscale"],
                                  ["train", "--config", "no-such-recipe"]])
def test_help_version_and_usage_errors_do_not_import_mindspore(argv):
    code = (
        "import sys\n"
        "from wdsr_cli.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('MINDSPORE_LOADED' if 'mindspore' in sys.modules else 'MINDSPORE_ABSENT')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "MINDSPORE_ABSENT" in res.stdout, res.stdout + res.stderr


def test_unknown_flag_is_one_line_exit_2():
    line = one_line_error(run_wdsr("train", "--no-such-flag"))
    assert "--no-such-flag" in line and "wdsr train --help" in line


def test_unknown_config_name():
    line = one_line_error(run_wdsr("train", "--config", "no-such-recipe", "--print-config"))
    assert "unknown config 'no-such-recipe'" in line and "wdsr-b-x2" in line


def test_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  n_feats: [1, 2\n")
    line = one_line_error(run_wdsr("train", "--config", str(bad), "--print-config"))
    assert "not valid YAML" in line and "line" in line


def test_unknown_override_key():
    line = one_line_error(run_wdsr("train", "--set", "train.learning_rate=1", "--print-config"))
    assert "unknown key 'train.learning_rate'" in line and "lr" in line


def test_wrong_override_type():
    line = one_line_error(run_wdsr("train", "--set", "model.n_feats=wide", "--print-config"))
    assert "'model.n_feats' must be int" in line


def test_unknown_device_target():
    line = one_line_error(run_wdsr("train", "--device-target", "TPU", "--print-config"))
    assert "runtime.device_target" in line and "Ascend" in line


def test_print_config_shows_model_summary():
    res = run_wdsr("train", "--config", "wdsr-a-x2", "--print-config")
    assert res.returncode == 0, res.stderr
    assert "1,190,100" in res.stdout  # the published WDSR-A baseline parameter count
    assert "WDSR-A" in res.stdout and "receptive field" in res.stdout
    assert "lr: 0.001" in res.stdout


def test_python_dash_m_works():
    res = subprocess.run([sys.executable, "-m", "wdsr_cli", "--version"], capture_output=True,
                         text=True)
    assert res.returncode == 0 and res.stdout.startswith("wdsr ")


def test_debug_shows_the_traceback():
    args = ["train", "--set", "train.learning_rate=1", "--print-config"]
    plain = run_wdsr(*args)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    res = run_wdsr("--debug", *args)
    assert res.returncode != 0
    assert "Traceback (most recent call last)" in res.stderr
    assert "WdsrError" in res.stderr and "unknown key 'train.learning_rate'" in res.stderr


def test_data_points_train_at_prepared_data_like_set(tmp_path):
    """--data DIR is --set data.prepared=DIR for train (and wins over a --set before it)."""
    res = run_wdsr("train", "--config", "demo", "--set", "data.prepared=elsewhere", "--data",
                   "my-shards", "--print-config", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "prepared: my-shards" in res.stdout
    assert "elsewhere" not in res.stdout


def test_data_points_evaluate_at_a_div2k_tree(tmp_path):
    line = one_line_error(run_wdsr("evaluate", "--checkpoint", "bundled", "--data",
                                    str(tmp_path / "missing")))
    assert f"no DIV2K data at '{tmp_path / 'missing'}'" in line and "--data" in line


def test_obsolete_tile_is_accepted_with_a_warning(tmp_path):
    """--tile still parses (old scripts run) and says it changes nothing."""
    res = run_wdsr("upscale", str(tmp_path / "missing.png"), "--tile", "64")
    assert res.returncode == 2
    assert "--tile has no effect any more" in res.stderr
    assert "does not exist" in res.stderr and "Traceback" not in res.stderr

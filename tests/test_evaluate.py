"""`wdsr evaluate` through the real entry point, and the evaluate_pairs engine."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, run_wdsr, save_tiny_checkpoint

from wdsr_cli.core import metrics
from wdsr_cli.core.data.images import Image, read_rgb_uint8, write_image
from wdsr_cli.core.data.resize import bicubic_downscale, bicubic_upscale
from wdsr_cli.core.evaluate import evaluate_pairs, result_to_json
from wdsr_cli.core.inference import WINDOW, Predictor
from wdsr_cli.core.inference.backends import OnnxBackend

RNG = np.random.default_rng(11)


def _photo(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = [(np.sin(x / 5 + k) * np.cos(y / 4 - k) + 1) / 2 for k in range(3)]
    a = np.stack(chans, axis=2) * 200 + 20 + RNG.normal(0, 6, (h, w, 3))
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data(ms_cpu, tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    hr = d / "hr"
    hr.mkdir()
    # odd sizes: evaluate crops HR to a multiple of the scale before making the LR image
    for name, (h, w) in {"0801": (41, 50), "0802": (36, 33), "zebra": (30, 45)}.items():
        write_image(hr / f"{name}.png", Image(pixels=_photo(h, w)))
    corrupt = d / "corrupt.ckpt"
    x2 = save_tiny_checkpoint(d / "tiny_x2.ckpt", 2)
    corrupt.write_bytes(x2.read_bytes()[:200])
    return {"dir": d, "hr": hr, "x2": x2, "x3": save_tiny_checkpoint(d / "tiny_x3.ckpt", 3),
            "corrupt": corrupt}


def _expected(hr_path: Path, ckpt: Path, scale: int, protocol: str, self_ensemble=False):
    """PSNR/SSIM of model and MATLAB bicubic, computed here step by step."""
    hr = read_rgb_uint8(hr_path)
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    lr = bicubic_downscale(hr, scale)
    bic = bicubic_upscale(lr, scale)
    sr = Predictor.from_checkpoint(ckpt, self_ensemble=self_ensemble).predict_uint8(lr)
    return (metrics.psnr(sr, hr, scale, protocol), metrics.ssim(sr, hr, scale, protocol),
            metrics.psnr(bic, hr, scale, protocol), metrics.ssim(bic, hr, scale, protocol))


# ------------------------------------------------------------------------------ must show


def test_self_ensemble_scores_the_averaged_output(data):
    res = run_wdsr("evaluate", "--scale", "2", "--hr", str(data["hr"]), "--self-ensemble",
                   "--json", "-", "--checkpoint", str(data["x2"]))
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)["images"]}
    for name, row in rows.items():
        psnr, ssim, _, _ = _expected(data["hr"] / f"{name}.png", data["x2"], 2, "y",
                                     self_ensemble=True)
        plain = _expected(data["hr"] / f"{name}.png", data["x2"], 2, "y")[0]
        assert abs(psnr - plain) > 0.01  # the ensemble changes the score of these weights
        assert row["psnr"] == pytest.approx(psnr, abs=1e-3)
        assert row["ssim"] == pytest.approx(ssim, abs=1e-4)


def test_hr_folder_bicubic_column_is_the_matlab_baseline(data):
    out = data["dir"] / "out.json"
    res = run_wdsr("evaluate", "--scale", "2", "--hr", str(data["hr"]), "--bicubic",
                   "--json", str(out), "--checkpoint", str(data["x2"]), env={"COLUMNS": "200"})
    assert res.returncode == 0, res.stderr
    result = json.loads(out.read_text())
    assert result["scale"] == 2 and result["protocol"] == "y" and result["count"] == 3
    assert result["checkpoint"] == str(data["x2"])
    assert "MATLAB bicubic" in result["dataset"]
    by_name = {r["name"]: r for r in result["images"]}
    assert sorted(by_name) == ["0801", "0802", "zebra"]
    for name, row in by_name.items():
        psnr, ssim, bic_psnr, bic_ssim = _expected(data["hr"] / f"{name}.png", data["x2"], 2, "y")
        assert row["bicubic_psnr"] == bic_psnr  # exactly the MATLAB-bicubic baseline
        assert row["bicubic_ssim"] == pytest.approx(bic_ssim, abs=1e-12)
        assert row["psnr"] == pytest.approx(psnr, abs=1e-3)
        assert row["ssim"] == pytest.approx(ssim, abs=1e-4)
    mean = result["mean"]
    assert mean["bicubic_psnr"] == pytest.approx(
        np.mean([r["bicubic_psnr"] for r in result["images"]]), abs=1e-12)
    # the Rich table: title with scale, protocol and checkpoint, one row per image + mean
    assert "x2, protocol y (border 2)" in res.stdout and "tiny_x2.ckpt" in res.stdout
    assert "bicubic PSNR" in res.stdout and "mean of 3" in res.stdout and "zebra" in res.stdout
    assert f"checkpoint: {data['x2']}" in res.stderr


# -------------------------------------------------------------------------- HR + LR folders


def test_hr_and_lr_folders_matched_by_name(data, tmp_path):
    hr, lr = tmp_path / "hr", tmp_path / "lr"
    hr.mkdir()
    lr.mkdir()
    for name, renamed in (("0801", "0801x2"), ("zebra", "zebra")):
        src = read_rgb_uint8(data["hr"] / f"{name}.png")
        src = src[: src.shape[0] // 2 * 2, : src.shape[1] // 2 * 2]
        write_image(hr / f"{name}.png", Image(pixels=src))
        write_image(lr / f"{renamed}.png", Image(pixels=bicubic_downscale(src, 2)))
    saved = tmp_path / "saved"
    res = run_wdsr("evaluate", "--hr", str(hr), "--lr", str(lr), "--checkpoint", str(data["x2"]),
                   "--protocol", "rgb", "--save-images", str(saved), "--limit", "1",
                   "--tile", "32", "--json", "-")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["protocol"] == "rgb" and result["border"] == 8
    window = OnnxBackend.window if result["backend"].startswith("ONNX") else WINDOW
    assert result["window"] == [window, window] and "--tile has no effect" in res.stderr
    assert [r["name"] for r in result["images"]] == ["0801"]
    assert "bicubic_psnr" not in result["mean"]
    psnr, _, _, _ = _expected(hr / "0801.png", data["x2"], 2, "rgb")
    assert result["images"][0]["psnr"] == pytest.approx(psnr, abs=1e-2)
    assert os.listdir(saved) == ["0801_x2.png"]
    assert read_rgb_uint8(saved / "0801_x2.png").shape == (40, 50, 3)


def test_lr_of_the_wrong_size_names_the_file(data, tmp_path):
    hr, lr = tmp_path / "hr", tmp_path / "lr"
    hr.mkdir()
    lr.mkdir()
    shutil.copy(data["hr"] / "0802.png", hr / "0802.png")  # 33x36
    write_image(lr / "0802x2.png", Image(pixels=_photo(18, 17)))  # needs 16x18
    line = one_line_error(run_wdsr("evaluate", "--hr", str(hr), "--lr", str(lr),
                                    "--checkpoint", str(data["x2"])))
    assert "0802x2.png" in line and "needs 16x18" in line


def test_missing_lr_names_the_hr_file(data, tmp_path):
    lr = tmp_path / "lr"
    lr.mkdir()
    write_image(lr / "other.png", Image(pixels=_photo(8, 8)))
    line = one_line_error(run_wdsr("evaluate", "--hr", str(data["hr"]), "--lr", str(lr),
                                    "--checkpoint", str(data["x2"])))
    assert "0801.png" in line and "no LR image" in line


# -------------------------------------------------------------- DIV2K and default checkpoint


def test_div2k_validation_and_the_newest_matching_run_checkpoint(data, tmp_path):
    root = tmp_path / "DIV2K"
    (root / "DIV2K_valid_HR").mkdir(parents=True)
    (root / "DIV2K_valid_LR_bicubic" / "X2").mkdir(parents=True)
    for name in ("0801", "0802"):
        src = read_rgb_uint8(data["hr"] / f"{name}.png")
        src = src[: src.shape[0] // 2 * 2, : src.shape[1] // 2 * 2]
        write_image(root / "DIV2K_valid_HR" / f"{name}.png", Image(pixels=src))
        write_image(root / "DIV2K_valid_LR_bicubic" / "X2" / f"{name}x2.png",
                    Image(pixels=bicubic_downscale(src, 2)))
    work = tmp_path / "work"
    for run, ckpt in (("old-x2", data["x2"]), ("new-x3", data["x3"]), ("newest-x2", data["x2"])):
        (work / "runs" / run).mkdir(parents=True)
        shutil.copy(ckpt, work / "runs" / run / "best.ckpt")
    stamp = 1_700_000_000
    for i, run in enumerate(("old-x2", "new-x3", "newest-x2")):
        os.utime(work / "runs" / run / "best.ckpt", (stamp + i, stamp + i))
    res = run_wdsr("evaluate", "--data", str(root), "--json", "-", cwd=work)  # = data.root
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["checkpoint"] == os.path.join("runs", "newest-x2", "best.ckpt")
    assert "DIV2K validation" in result["dataset"] and "DIV2K_valid_LR_bicubic/X2" in \
        result["dataset"]
    assert [r["name"] for r in result["images"]] == ["0801", "0802"]

    # x8: neither a run nor bundled weights (x2/x3/x4 are bundled)
    line = one_line_error(run_wdsr("evaluate", "--scale", "8", "--hr", str(data["hr"]),
                                    cwd=work))
    assert "no x8 checkpoint" in line and "x2, x3" in line and "--checkpoint" in line


def test_no_div2k_under_the_data_root(data, tmp_path):
    line = one_line_error(run_wdsr("evaluate", "--checkpoint", str(data["x2"]), "--set",
                                    f"data.root={tmp_path / 'missing'}"))
    assert "no DIV2K data" in line and "--hr" in line


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("args,needle", [
    (["--protocol", "psnr"], "unknown protocol 'psnr'"),
    (["--lr", "somewhere"], "--lr needs --hr"),
    (["--scale", "5"], "unsupported scale 5"),
    (["--limit", "-1"], "--limit must be 0 or more"),
    (["--checkpoint", "nope.ckpt"], "nope.ckpt' does not exist"),
    (["--hr", "no-such-folder"], "no-such-folder"),
])
def test_argument_errors_are_one_line(args, needle, tmp_path):
    line = one_line_error(run_wdsr("evaluate", *args, cwd=tmp_path))
    assert needle in line


def test_checkpoint_scale_mismatch_and_corrupt_checkpoint(data):
    line = one_line_error(run_wdsr("evaluate", "--scale", "3", "--hr", str(data["hr"]),
                                    "--checkpoint", str(data["x2"])))
    assert "x2 model" in line and "x3" in line
    line = one_line_error(run_wdsr("evaluate", "--hr", str(data["hr"]),
                                    "--checkpoint", str(data["corrupt"])))
    assert "corrupt.ckpt" in line


# ---------------------------------------------------------------------- the engine itself


class _Nearest:
    """A stand-in model: nearest-neighbour upscaling (no MindSpore needed)."""

    name = "nearest"

    def __call__(self, x):
        return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)


def test_evaluate_pairs_rows_mean_and_progress():
    pairs = []
    for name in ("a", "b"):
        hr = _photo(20, 24)
        pairs.append((name, bicubic_downscale(hr, 2), hr))
    flat = np.full((20, 20, 3), 90, np.uint8)
    pairs.append(("flat", flat[::2, ::2], flat))  # nearest upscaling is exact: PSNR inf
    seen = []
    result = evaluate_pairs(Predictor(_Nearest(), 2, 0), iter(pairs), 2, "y", bicubic=True,
                            on_image=lambda d, t, row: seen.append((d, t, row["name"])))
    assert seen == [(1, None, "a"), (2, None, "b"), (3, None, "flat")]
    rows = result["images"]
    assert [r["name"] for r in rows] == ["a", "b", "flat"] and result["count"] == 3
    nearest = np.repeat(np.repeat(pairs[0][1], 2, axis=0), 2, axis=1)
    assert rows[0]["psnr"] == metrics.psnr(nearest, pairs[0][2], 2, "y")
    assert rows[0]["bicubic_psnr"] == metrics.psnr(bicubic_upscale(pairs[0][1], 2),
                                                   pairs[0][2], 2, "y")
    assert math.isinf(rows[2]["psnr"]) and math.isinf(result["mean"]["psnr"])
    clean = result_to_json(result)
    assert clean["images"][2]["psnr"] is None
    json.dumps(clean, allow_nan=False)


def test_evaluate_pairs_crops_hr_to_scale_times_lr():
    hr = _photo(41, 43)
    lr = bicubic_downscale(hr[:40, :42], 2)
    result = evaluate_pairs(Predictor(_Nearest(), 2, 0), [("odd", lr, hr)], 2, "rgb")
    assert result["border"] == 8 and result["images"][0]["lr_size"] == [21, 20]


def test_an_image_too_small_to_score_is_named():
    from wdsr_cli.core.errors import WdsrError

    hr = _photo(12, 12)
    with pytest.raises(WdsrError, match="'tiny'.*SSIM needs"):
        evaluate_pairs(Predictor(_Nearest(), 2, 0), [("tiny", hr[::2, ::2], hr)], 2, "y")


# ------------------------------------------------------------------------------ nothing lost


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


def test_save_images_never_writes_into_the_folders_it_reads(data, tmp_path):
    hr = tmp_path / "hr"
    shutil.copytree(data["hr"], hr)
    (hr / "0801_x2.png").write_bytes((hr / "0802.png").read_bytes())  # unrelated, same name
    before = _snapshot(hr)
    base = ["evaluate", "--checkpoint", str(data["x2"]), "--hr", str(hr)]
    line = one_line_error(run_wdsr(*base, "--save-images", str(hr)))
    assert "--save-images" in line and "--hr images" in line
    lr = tmp_path / "lr"
    lr.mkdir()
    for p in data["hr"].iterdir():
        write_image(lr / p.name, Image(pixels=bicubic_downscale(read_rgb_uint8(p)[:36, :32], 2)))
    small = tmp_path / "hr36"
    small.mkdir()
    for p in data["hr"].iterdir():
        write_image(small / p.name, Image(pixels=read_rgb_uint8(p)[:36, :32]))
    line = one_line_error(run_wdsr("evaluate", "--checkpoint", str(data["x2"]), "--hr",
                                   str(small), "--lr", str(lr), "--save-images", str(lr)))
    assert "--lr images" in line
    afile = tmp_path / "afile"
    afile.write_text("notes")
    assert "is a file" in one_line_error(run_wdsr(*base, "--save-images", str(afile)))
    assert _snapshot(hr) == before and afile.read_text() == "notes"


def test_save_images_refuses_earlier_results_unless_overwrite(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "zebra_x2.png").write_bytes(b"an earlier result")
    base = ["evaluate", "--checkpoint", str(data["x2"]), "--hr", str(data["hr"]),
            "--save-images", str(out)]
    assert "zebra_x2.png' already exists" in one_line_error(run_wdsr(*base))
    assert sorted(p.name for p in out.iterdir()) == ["zebra_x2.png"]  # nothing written
    res = run_wdsr(*base, "--overwrite")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["0801_x2.png", "0802_x2.png",
                                                     "zebra_x2.png"]
    assert read_rgb_uint8(out / "zebra_x2.png").shape == (30, 44, 3)


def test_tiny_or_broken_hr_image_is_refused_before_any_scoring(data, tmp_path):
    hr = tmp_path / "hr"
    shutil.copytree(data["hr"], hr)
    write_image(hr / "zz_dot.png", Image(pixels=_photo(1, 1)))
    base = ["evaluate", "--checkpoint", str(data["x2"]), "--hr", str(hr), "--json", "-"]
    res = run_wdsr(*base)
    line = one_line_error(res)  # no info line: refused before the model is loaded
    assert "zz_dot.png' is only 1x1 pixels" in line and res.stdout == ""
    (hr / "zz_dot.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    res = run_wdsr(*base)
    assert "zz_dot.png" in one_line_error(res) and res.stdout == ""


def test_report_overwrite_replaces_only_an_earlier_wdsr_report(data, tmp_path):
    hr = tmp_path / "hr"
    shutil.copytree(data["hr"], hr)
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    ckpt = Path(shutil.copy(data["x2"], run / "best.ckpt"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    before = {d: _snapshot(d) for d in (hr, run, mine)}
    base = ["evaluate", "--checkpoint", str(ckpt), "--hr", str(hr), "--limit", "1"]
    for report, needle in ((hr, "would hold the --hr folder"),
                           (run, "would hold the checkpoint"),
                           (tmp_path, "would hold the --hr folder"),
                           (mine, "not a wdsr report folder")):
        res = run_wdsr(*base, "--report", str(report), "--overwrite", cwd=tmp_path)
        assert needle in one_line_error(res), report
    res = run_wdsr(*base, "--report", ".", "--overwrite", cwd=hr)
    assert "would hold the --hr folder" in one_line_error(res)
    assert {d: _snapshot(d) for d in (hr, run, mine)} == before
    rep = tmp_path / "rep"
    for _ in range(2):  # the second run replaces the first run's report
        res = run_wdsr(*base, "--report", str(rep), "--overwrite")
        assert res.returncode == 0, res.stderr
    assert (rep / "index.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left

"""The evaluation report: crop choice, the folder's safety, `wdsr evaluate --report`, and the
report of a training run."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, run_wdsr, save_tiny_checkpoint

from wdsr_cli.core import fileio, metrics
from wdsr_cli.core import report as R
from wdsr_cli.core.data.images import Image, write_image
from wdsr_cli.core.errors import WdsrError

RNG = np.random.default_rng(5)


def _texture(h: int, w: int) -> np.ndarray:
    return RNG.integers(30, 220, (h, w, 3), dtype=np.uint8)


class _Page(HTMLParser):
    """The parts of index.html the tests read: image sources and table cells."""

    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self._row: str | None = None
        self.text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a["src"])
        if tag == "tr" and "data-name" in a:
            self._row = a["data-name"]
            self.rows[self._row] = []
        if tag == "td" and self._row is not None:
            self.rows[self._row].append(a.get("data-v", ""))

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        self.text += data


def _page(folder: Path) -> _Page:
    page = _Page()
    page.feed((folder / "index.html").read_text(encoding="utf-8"))
    return page


# ------------------------------------------------------------------------------ crop choice


def _constructed(protocol: str):
    """HR texture; bicubic off by 6 everywhere; the model off by 1 in a 16x16 square at
    (y 20, x 40) (the most gain), off by 14 in one at (y 44, x 8) (the least), and equal to
    bicubic elsewhere."""
    hr = _texture(72, 80)
    bic = hr + np.uint8(6)
    sr = bic.copy()
    sr[20:36, 40:56] = hr[20:36, 40:56] + np.uint8(1)
    sr[44:60, 8:24] = hr[44:60, 8:24] + np.uint8(14)
    return sr, bic, hr


@pytest.mark.parametrize("protocol", ["y", "rgb"])
def test_crops_land_where_the_gain_is(protocol):
    sr, bic, hr = _constructed(protocol)
    most, least = R.choose_crops(sr, bic, hr, protocol, border=2, size=16)
    assert (most.kind, most.y, most.x, most.size) == ("most", 20, 40, 16)
    assert (least.kind, least.y, least.x) == ("least", 44, 8)
    box = (slice(20, 36), slice(40, 56))
    assert most.psnr == metrics.region_psnr(sr[box], hr[box], protocol)
    assert most.bicubic_psnr == metrics.region_psnr(bic[box], hr[box], protocol)
    assert most.gain > 10 and least.gain < -5
    # the same answer every time, and from a copy (nothing depends on memory layout)
    again = R.choose_crops(sr.copy(), bic.copy(), hr.copy(), protocol, border=2, size=16)
    assert again == [most, least]


def test_the_y_protocol_ranks_errors_by_luma_weight_and_rgb_by_channel_sum():
    """Bicubic is off by 30 in blue in one square (top left) and by 15 in red in another
    (bottom right); the model is exact in both. Luma weighs red 66 and blue 25, so under y the
    red square gains more; summed over RGB the blue one does."""
    hr = _texture(60, 60)
    bic = hr.copy()
    bic[4:16, 4:16, 2] += np.uint8(30)
    bic[40:52, 40:52, 0] += np.uint8(15)
    sr = hr.copy()
    y_most = R.choose_crops(sr, bic, hr, "y", border=2, size=12)[0]
    rgb_most = R.choose_crops(sr, bic, hr, "rgb", border=2, size=12)[0]
    assert (y_most.y, y_most.x) == (40, 40) and (rgb_most.y, rgb_most.x) == (4, 4)


def test_crop_ties_go_to_the_first_window_and_never_into_the_border():
    hr = _texture(40, 50)
    bic = hr + np.uint8(3)
    most, least = R.choose_crops(bic.copy(), bic, hr, "y", border=4, size=10)  # gain 0 everywhere
    assert (most.y, most.x) == (4, 4)
    assert (least.y, least.x) == (4, 14)  # the first window that does not overlap "most"
    # the best spot is in the border: the crop stays inside the shaved image
    sr = bic.copy()
    sr[:10, :10] = hr[:10, :10]
    most, _ = R.choose_crops(sr, bic, hr, "y", border=4, size=10)
    assert (most.y, most.x) == (4, 4)


def test_small_images_get_no_crops_and_crop_size_follows_the_image():
    assert R.crop_size(600, 400, 2) == R.CROP
    assert R.crop_size(30, 40, 2) == 26
    assert R.crop_size(20, 40, 6) == 8 and R.crop_size(19, 40, 6) == 0
    img = _texture(16, 16)
    assert R.choose_crops(img, img, img, "rgb", border=8) == []


# ------------------------------------------------------------------------------ the folder


def test_report_destination_checks(tmp_path):
    (tmp_path / "old").mkdir()
    with pytest.raises(WdsrError, match="already exists"):
        R.check_report_dest(tmp_path / "old", overwrite=False)
    assert R.check_report_dest(tmp_path / "old", overwrite=True) == tmp_path / "old"
    (tmp_path / "file").write_text("x")
    with pytest.raises(WdsrError, match="not a folder"):
        R.check_report_dest(tmp_path / "file", overwrite=True)
    with pytest.raises(WdsrError, match="does not exist"):
        R.check_report_dest(tmp_path / "missing" / "rep", overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "old"]  # no probe left


def test_unwritable_parent_is_refused(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(R, "_new_hidden_folder", refuse)
    with pytest.raises(WdsrError, match="cannot write a report under .*Permission denied"):
        R.check_report_dest(tmp_path / "rep", overwrite=False)


def _collector(n: int = 2) -> R.ReportCollector:
    c = R.ReportCollector(2, "y")
    for i in range(n):
        hr = _texture(40, 44)
        c.add(f"im{i}", hr[::2, ::2], hr, hr + np.uint8(2), hr + np.uint8(5))
    return c


def _result(names: list[str]) -> dict:
    rows = [{"name": n, "psnr": 40.0 + i, "ssim": 0.9, "bicubic_psnr": 30.0, "bicubic_ssim": 0.8,
             "seconds": 0.1, "lr_size": [22, 20]} for i, n in enumerate(names)]
    mean = {k: float(np.mean([r[k] for r in rows]))
            for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "seconds")}
    return {"scale": 2, "protocol": "y", "border": 2, "self_ensemble": False, "tile": 0,
            "count": len(rows), "images": rows, "mean": mean}


def test_an_interrupted_write_leaves_no_half_report_and_keeps_the_old_one(tmp_path,
                                                                          monkeypatch):
    from wdsr_cli.core.data import images

    collector, result = _collector(), _result(["im0", "im1"])
    old = R.write_report(tmp_path / "rep", collector, result, [("weights", "w")]).parent
    before = {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()}
    calls = []
    real = images.write_rgb_uint8

    def fail_on_third(path, arr):
        calls.append(path)
        if len(calls) % 3 == 0:
            raise KeyboardInterrupt  # Ctrl-C in the middle of writing the images
        real(path, arr)

    monkeypatch.setattr(images, "write_rgb_uint8", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        R.write_report(tmp_path / "rep", collector, result, [("weights", "w")], overwrite=True)
    with pytest.raises(KeyboardInterrupt):
        R.write_report(tmp_path / "new", collector, result, [("weights", "w")])
    assert len(calls) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no staging folder left
    after = {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()}
    assert after == before


# ------------------------------------------------------------------------------ wdsr evaluate


@pytest.fixture(scope="module")
def two_images(ms_cpu, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    hr = d / "hr"
    hr.mkdir()
    y, x = np.mgrid[0:60, 0:72].astype(np.float64)
    for k, name in enumerate(("alpha", "beta")):
        img = np.stack([(np.sin(x / (3 + k) + c) * np.cos(y / 4 - c) + 1) * 100 + 20
                        for c in range(3)], axis=2)
        write_image(hr / f"{name}.png", Image(pixels=np.rint(img).astype(np.uint8)))
    return {"dir": d, "hr": hr, "ckpt": save_tiny_checkpoint(d / "tiny.ckpt", 2, step=7,
                                                             dataset_id="ds-123")}


def _evaluate(data, report: Path, *extra: str):
    return run_wdsr("evaluate", "--hr", str(data["hr"]), "--checkpoint", str(data["ckpt"]),
                    "--report", str(report), *extra)


def test_evaluate_report_structure_and_numbers(two_images):
    d = two_images["dir"]
    rep, out = d / "rep", d / "scores.json"
    res = _evaluate(two_images, rep, "--json", str(out))
    assert res.returncode == 0, res.stderr
    assert f"report: {rep / 'index.html'}" in res.stderr
    scores = json.loads(out.read_text())
    assert json.loads((rep / "results.json").read_text()) == scores
    page = _page(rep)
    # every image the page references exists, and every image written is referenced
    assert page.srcs and all((rep / s).is_file() for s in page.srcs)
    assert set(page.srcs) == {str(p.relative_to(rep)) for p in (rep / "img").iterdir()}
    assert len(set(page.srcs)) == 2 * (1 + 2 * 3)  # per image: overview + 2 crops x 3 panels
    # the table holds exactly the JSON's numbers (data-v is the exact value)
    assert sorted(page.rows) == ["alpha", "beta"]
    for row in scores["images"]:
        cells = page.rows[row["name"]]
        assert cells[0] == row["name"]
        assert float(cells[1]) == row["psnr"] and float(cells[2]) == row["bicubic_psnr"]
        assert float(cells[3]) == row["psnr"] - row["bicubic_psnr"]
        assert float(cells[4]) == row["ssim"] and float(cells[5]) == row["bicubic_ssim"]
    # the summary names the weights, their step and dataset, and the means
    for needle in (str(two_images["ckpt"]), "step7", "dataset idds-123",
                   f"{scores['mean']['psnr']:.2f}", f"{scores['mean']['bicubic_psnr']:.2f}"):
        assert needle in page.text, needle
    assert [p.name for p in d.iterdir() if p.name.startswith(".")] == []


def test_evaluate_report_is_deterministic_and_refused_when_it_exists(two_images):
    d = two_images["dir"]
    first, second = d / "det1", d / "det2"
    assert _evaluate(two_images, first).returncode == 0
    assert _evaluate(two_images, second).returncode == 0
    images = sorted(p.name for p in (first / "img").iterdir())
    assert images == sorted(p.name for p in (second / "img").iterdir())
    for name in images:
        assert (first / "img" / name).read_bytes() == (second / "img" / name).read_bytes()
    line = one_line_error(_evaluate(two_images, first))
    assert "already exists" in line and "--overwrite" in line
    # --overwrite replaces an earlier report whole, but never a folder holding other files
    stale = first / "img" / "stale.png"
    stale.write_bytes((first / "img" / images[0]).read_bytes())
    res = _evaluate(two_images, first, "--overwrite")
    assert res.returncode == 0, res.stderr
    assert not stale.exists() and (first / "index.html").is_file()
    marker = first / "mine.txt"
    marker.write_text("keep")
    line = one_line_error(_evaluate(two_images, first, "--overwrite"))
    assert "not a wdsr report" in line
    assert marker.read_text() == "keep" and (first / "index.html").is_file()


@pytest.mark.parametrize("where, needle", [
    ("missing/rep", "does not exist"),
    ("afile/rep", "not a folder"),
    ("afile", "not a folder"),
])
def test_evaluate_report_bad_destination(two_images, where, needle):
    d = two_images["dir"]
    (d / "afile").write_text("x")
    line = one_line_error(_evaluate(two_images, d / where, "--overwrite"))
    assert needle in line
    assert (d / "afile").read_text() == "x"


# ------------------------------------------------------------------------------ wdsr train


def test_training_run_links_a_report_of_its_last_validation(ms_cpu, tmp_path):
    assert run_wdsr("prepare-data", "--sample", "data/sample", "--scales", "2",
                    cwd=tmp_path).returncode == 0
    res = run_wdsr("train", "--config", "demo", "--set", "model.n_resblocks=2", "--set",
                   "model.n_feats=8", "--set", "data.batch_size=2", "--set",
                   "data.patch_size=16", "--set", "train.val_images=1", "--set",
                   "train.val_every=1", "--set", "train.warmup_steps=0", "--steps", "2", "--name",
                   "r", "--device-target", "CPU",
                   cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    run = tmp_path / "runs" / "r"
    page = _page(run / "report")
    assert "validation at step 2" in page.text and "Training curve" in page.text
    html = (run / "report" / "index.html").read_text()
    assert "<svg" in html and (run / "plot.svg").read_text() in html
    assert page.srcs and all((run / "report" / s).is_file() for s in page.srcs)
    # nothing hidden is left but the run folder's lock file, which no process holds any more
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == [".wdsr.lock"]
    assert fileio.lock_holder(run) is None
    assert not math.isnan(json.loads((run / "report" / "results.json").read_text())
                          ["mean"]["psnr"])

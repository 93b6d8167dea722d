"""The prepare-data engine: geometry, LR/HR alignment, resume, determinism, verify."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from prep_helpers import div2k_tree, plain_folder, save, truncate

from wdsr_cli.core.data import prepare as prep
from wdsr_cli.core.data.resize import bicubic_downscale
from wdsr_cli.core.errors import WdsrError


def _opts(root, out, **kw):
    kw.setdefault("scales", (2, 3, 4))
    kw.setdefault("crop_size", 24)
    kw.setdefault("crop_step", 12)
    kw.setdefault("workers", 1)
    return prep.PrepareOptions(root=Path(root), out=Path(out), **kw)


def _run(root, out, events=None, **kw):
    return prep.prepare(_opts(root, out, **kw), on_event=events)


def _load(path):
    return np.load(path, allow_pickle=False)


def _rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


# ------------------------------------------------------------------------------ geometry


def test_window_positions_are_stepped_and_flush_with_the_border():
    assert prep.window_positions(480, 480, 240) == [0]
    assert prep.window_positions(1356, 480, 240) == [0, 240, 480, 720, 876]
    assert prep.window_positions(2040, 480, 240) == [0, 240, 480, 720, 960, 1200, 1440, 1560]
    assert prep.window_positions(479, 480, 240) == []


@pytest.mark.parametrize("kw, message", [
    ({"crop_size": 100}, "not divisible by scale 3"),
    ({"crop_step": 18}, "not a positive multiple of 12"),
    ({"scales": (5,)}, "unsupported scale 5"),
    ({"scales": (2, 8), "crop_size": 36}, "not divisible by scale 8"),
    ({"workers": -1}, "--workers"),
])
def test_bad_options(tmp_path, kw, message):
    with pytest.raises(WdsrError, match=message):
        prep.check_options(_opts(tmp_path, tmp_path / "out", **kw))


def test_unwritable_output_folder(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(WdsrError, match="file.txt' is a file, not a folder"):
        prep.check_output_dir(tmp_path / "file.txt" / "sub")
    prep.check_output_dir(tmp_path / "n1" / "n2" / "n3")  # checked, and nothing made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    with pytest.raises(WdsrError, match="is a file"):
        prep.check_output_dir(tmp_path / "file.txt")


# ----------------------------------------------------------------------------- alignment


def test_generated_lr_is_the_matlab_bicubic_of_the_cropped_hr(tmp_path):
    """Every LR sub-image equals the matching region of imresize(mod-cropped HR, 1/s)."""
    root = plain_folder(tmp_path / "src", [(50, 61), (37, 40), (40, 40)])
    summary = _run(root, tmp_path / "out", valid_count=1)
    out = tmp_path / "out"
    m = json.loads((out / "manifest.json").read_text())
    assert summary["train_images"] == 2 and summary["valid_images"] == 1
    for entry in m["train"]:
        hr_full = _rgb(root / entry["sources"][0]["file"])
        h, w = entry["hr_size"]
        assert (h, w) == (hr_full.shape[0] // 12 * 12, hr_full.shape[1] // 12 * 12)
        hr = hr_full[:h, :w]
        corners = [(y, x) for y in prep.window_positions(h, 24, 12)
                   for x in prep.window_positions(w, 24, 12)]
        hr_shard = _load(out / entry["outputs"]["hr"]["file"])
        assert hr_shard.shape == (len(corners), 24, 24, 3) == tuple(entry["outputs"]["hr"]["shape"])
        assert entry["subimages"] == len(corners)
        for s in (2, 3, 4):
            lr_full = bicubic_downscale(hr, s)
            lr_shard = _load(out / entry["outputs"][f"x{s}"]["file"])
            assert lr_shard.shape == (len(corners), 24 // s, 24 // s, 3)
            for j, (y, x) in enumerate(corners):
                np.testing.assert_array_equal(hr_shard[j], hr[y:y + 24, x:x + 24])
                np.testing.assert_array_equal(
                    lr_shard[j], lr_full[y // s:(y + 24) // s, x // s:(x + 24) // s])
            assert entry["lr"][str(s)] == "generated"
    [v] = m["valid"]
    hr = _rgb(root / v["sources"][0]["file"])[:36, :36]
    np.testing.assert_array_equal(_load(out / "valid/hr/img02.npy"), hr)
    for s in (2, 3, 4):
        np.testing.assert_array_equal(_load(out / f"valid/x{s}/img02.npy"),
                                      bicubic_downscale(hr, s))


def test_given_lr_is_used_as_is(tmp_path):
    """Given LR images (deliberately unrelated pixels) appear exactly, region by region."""
    root = div2k_tree(tmp_path / "src", {"0001": (50, 74)}, {"0801": (26, 30)},
                      lr_scales=(2, 4))
    _run(root, tmp_path / "out", scales=(2, 4), crop_size=24, crop_step=8)
    out = tmp_path / "out"
    m = json.loads((out / "manifest.json").read_text())
    [entry] = m["train"]
    h, w = entry["hr_size"]
    assert (h, w) == (48, 72)
    corners = [(y, x) for y in prep.window_positions(h, 24, 8)
               for x in prep.window_positions(w, 24, 8)]
    for s in (2, 4):
        lr_img = _rgb(root / f"DIV2K_train_LR_bicubic/X{s}/0001x{s}.png")
        shard = _load(out / f"train/x{s}/0001.npy")
        for j, (y, x) in enumerate(corners):
            np.testing.assert_array_equal(
                shard[j], lr_img[y // s:(y + 24) // s, x // s:(x + 24) // s])
        roles = {src["role"]: src for src in entry["sources"]}
        lr_file = root / f"DIV2K_train_LR_bicubic/X{s}/0001x{s}.png"
        assert roles[f"x{s}"]["sha256"] == hashlib.sha256(lr_file.read_bytes()).hexdigest()
        assert entry["lr"][str(s)] == "given"
        v_lr = _rgb(root / f"DIV2K_valid_LR_bicubic/X{s}/0801x{s}.png")
        np.testing.assert_array_equal(_load(out / f"valid/x{s}/0801.npy"),
                                      v_lr[:24 // s, :28 // s])


# ---------------------------------------------------------------------- manifest & resume


def test_manifest_is_deterministic_and_has_no_absolute_paths(tmp_path):
    root = plain_folder(tmp_path / "src", [(40, 52), (36, 36), (48, 30)])
    a = _run(root, tmp_path / "a", workers=1)
    b = _run(root, tmp_path / "b", workers=2)
    text_a = (tmp_path / "a/manifest.json").read_text()
    assert text_a == (tmp_path / "b/manifest.json").read_text()
    assert a["dataset_id"] == b["dataset_id"] and len(a["dataset_id"]) == 16
    assert str(tmp_path) not in text_a
    m = json.loads(text_a)
    body = {k: v for k, v in m.items() if k != "dataset_id"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert m["dataset_id"] == hashlib.sha256(canon.encode()).hexdigest()[:16]
    src = m["train"][0]["sources"][0]
    data = (root / src["file"]).read_bytes()
    assert src["size"] == len(data) and src["sha256"] == hashlib.sha256(data).hexdigest()
    out = m["train"][0]["outputs"]["hr"]
    data = (tmp_path / "a" / out["file"]).read_bytes()
    assert out["size"] == len(data) and out["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["counts"]["patches"] == {"x2": m["counts"]["train_subimages"]} | {
        "x3": m["counts"]["train_subimages"], "x4": m["counts"]["train_subimages"]}


def test_finished_run_rerun_does_nothing(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36), (40, 40)])
    first = _run(root, tmp_path / "out")
    assert first["status"] == "prepared" and first["processed"] == 2
    files = sorted((tmp_path / "out").rglob("*"))
    before = {p: p.stat().st_mtime_ns for p in files}
    again = _run(root, tmp_path / "out")
    assert again["status"] == "already-prepared" and again["processed"] == 0
    assert again["dataset_id"] == first["dataset_id"]
    assert {p: p.stat().st_mtime_ns for p in sorted((tmp_path / "out").rglob("*"))} == before


def test_interrupted_run_resumes_to_the_same_manifest(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36), (40, 40), (48, 36), (36, 60)])
    _run(root, tmp_path / "ref")

    seen = []

    def stop_after_two(event):
        if event.kind == "image":
            seen.append(event.name)
            if len(seen) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(root, tmp_path / "out", events=stop_after_two)
    out = tmp_path / "out"
    assert not (out / "manifest.json").exists()
    lines = (out / ".journal.jsonl").read_text().splitlines()
    assert len(lines) == 3  # header + 2 images
    # a torn last line (killed mid-append) and a stray temporary file are both harmless
    with open(out / ".journal.jsonl", "a") as f:
        f.write('{"type": "image", "split": "tr')
    (out / "train/hr/.img03.npy.tmp4194305-deadbeef").write_bytes(b"partial")  # dead pid
    summary = _run(root, out)
    assert summary["processed"] == 2 and summary["reused"] == 2
    assert (out / "manifest.json").read_bytes() == (tmp_path / "ref/manifest.json").read_bytes()
    assert not list(out.rglob("*.tmp*"))  # the dead writer's temp file was removed


def test_changed_or_missing_outputs_are_redone(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36), (40, 40)])
    ref = _run(root, tmp_path / "out")
    (tmp_path / "out/manifest.json").unlink()
    (tmp_path / "out/train/x3/img01.npy").write_bytes(b"short")
    summary = _run(root, tmp_path / "out")
    assert summary["processed"] == 1 and summary["dataset_id"] == ref["dataset_id"]


def test_other_options_need_force(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36)])
    _run(root, tmp_path / "out")
    with pytest.raises(WdsrError, match="other options.*crop_step") as e:
        _run(root, tmp_path / "out", crop_step=24)
    assert "--force" in e.value.hint
    (tmp_path / "out/manifest.json").unlink()  # unfinished run: the journal says the same
    with pytest.raises(WdsrError, match="preparation .journal. made with other options"):
        _run(root, tmp_path / "out", crop_step=24)
    summary = _run(root, tmp_path / "out", crop_step=24, force=True)
    assert summary["status"] == "prepared" and summary["crop_step"] == 24
    (tmp_path / "out/notes.txt").write_text("mine")  # --force removes only its own files
    _run(root, tmp_path / "out", force=True)
    assert (tmp_path / "out/notes.txt").read_text() == "mine"


def test_removed_source_image_disappears_from_the_output(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36), (40, 40)])
    _run(root, tmp_path / "out")
    (root / "img01.png").unlink()
    summary = _run(root, tmp_path / "out")
    assert summary["train_images"] == 1
    assert sorted(p.name for p in (tmp_path / "out/train/hr").iterdir()) == ["img00.npy"]


# ------------------------------------------------------------------------------ problems


def test_small_images_are_skipped_with_a_warning(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36), (20, 60)])
    events = []
    summary = _run(root, tmp_path / "out", events=events.append)
    assert summary["train_images"] == 1
    assert summary["skipped"] == [{"file": "img01.png", "reason": "smaller than the crop"}]
    assert any(e.kind == "warning" and "img01.png" in e.message for e in events)
    root2 = plain_folder(tmp_path / "src2", [(20, 20)])
    with pytest.raises(WdsrError, match="no training images left"):
        _run(root2, tmp_path / "out2")


def test_bad_files_stop_the_run_or_are_skipped(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36), (36, 36), (36, 36)])
    (root / "notes.txt").write_text("hi")
    truncate(root / "img01.png")
    with pytest.raises(WdsrError, match="'notes.txt' is not an image file.*1 more") as e:
        _run(root, tmp_path / "out")
    assert "--skip-bad" in e.value.hint
    summary = _run(root, tmp_path / "out", skip_bad=True)
    assert summary["train_images"] == 2
    assert {s["file"] for s in summary["skipped"]} == {"notes.txt", "img01.png"}


def test_a_file_that_fails_to_decode_in_a_worker(tmp_path):
    """A damaged JPEG passes the header probe; the worker's decode error names it."""
    root = plain_folder(tmp_path / "src", [(36, 36), (36, 36)])
    save(root / "img02.jpg", np.full((36, 36, 3), 100, np.uint8))
    truncate(root / "img02.jpg", 0.5)
    with pytest.raises(WdsrError, match="img02.jpg"):
        _run(root, tmp_path / "out")
    summary = _run(root, tmp_path / "out", skip_bad=True)
    assert summary["train_images"] == 2
    assert summary["skipped"] == [{"file": "img02.jpg", "reason": "unreadable"}]


# -------------------------------------------------------------------------------- verify


def test_verify_finds_changed_shards_and_sources(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36), (40, 40)])
    _run(root, tmp_path / "out")
    report = prep.verify(tmp_path / "out", root)
    assert report["mismatches"] == [] and report["checked"] == 2 * 4 + 2
    shard = tmp_path / "out/train/x2/img00.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    os.remove(root / "img01.png")
    report = prep.verify(tmp_path / "out", root)
    assert {(m["file"], m["problem"]) for m in report["mismatches"]} == {
        ("train/x2/img00.npy", "sha256 differs"), ("img01.png", "missing")}


# -------------------------------------------------------------------------------- sample


def test_sample_layout_and_crop_choice(tmp_path):
    root = prep.lay_out_sample(tmp_path / "sample")
    spec = json.loads((prep.sample_dir() / "sample.json").read_text())
    assert sorted(p.name for p in (root / "DIV2K_train_HR").iterdir()) == sorted(spec["train"])
    assert sorted(p.name for p in (root / "DIV2K_valid_HR").iterdir()) == sorted(spec["valid"])
    mtimes = [p.stat().st_mtime_ns for p in sorted(root.rglob("*.png"))]
    prep.lay_out_sample(tmp_path / "sample")  # identical files are not rewritten
    assert [p.stat().st_mtime_ns for p in sorted(root.rglob("*.png"))] == mtimes
    opts = _opts(root, tmp_path / "out", crop_size=480, crop_step=240)
    crop, step, note = prep.choose_sample_crop(prep.discover(opts), opts)
    assert (crop, step) == prep.SAMPLE_CROP and "bundled sample" in note


def test_a_source_edited_in_place_to_the_same_size_is_redone(tmp_path):
    """Only the modification time tells: a BMP edited in place keeps its byte size."""
    root = tmp_path / "src"
    save(root / "img00.bmp", np.full((36, 36, 3), 90, np.uint8))
    save(root / "img01.bmp", np.full((40, 40, 3), 140, np.uint8))
    first = _run(root, tmp_path / "out")
    path = root / "img01.bmp"
    size, mtime = path.stat().st_size, path.stat().st_mtime_ns
    save(path, np.full((40, 40, 3), 200, np.uint8))
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    assert path.stat().st_size == size
    again = _run(root, tmp_path / "out")
    assert again["status"] != "already-prepared" and again["processed"] == 1
    assert again["dataset_id"] != first["dataset_id"]
    shards = [p for p in (tmp_path / "out").rglob("img01.npy") if "/hr/" in str(p)]
    assert shards and all(int(_load(p).max()) == 200 for p in shards)


# ------------------------------------------------- edges found by mutation testing (issue 34)

def _plan(root, out, **kw):
    opts = prep.check_options(_opts(root, out, **kw))
    return prep.make_plan(prep.discover(opts), opts)


def test_the_plan_keeps_an_exact_crop_and_skips_what_is_smaller_in_any_order(tmp_path):
    """HR is first cut to a multiple of lcm(scales) = 12; a training image needs the crop
    (24) both ways; a validation image needs one lcm both ways. Small images first: the ones
    after them still count."""
    root = div2k_tree(tmp_path / "d", train={"0001": (23, 40), "0002": (40, 23),
                                             "0003": (24, 24), "0004": (35, 47)},
                      valid={"0801": (11, 30), "0802": (30, 11), "0803": (12, 12)})
    plan = _plan(root, tmp_path / "out")
    assert sorted((t["split"], t["name"]) for t in plan.tasks) == [
        ("train", "0003"), ("train", "0004"), ("valid", "0803")]
    assert [s["file"] for s in plan.skipped] == [
        "DIV2K_train_HR/0001.png", "DIV2K_train_HR/0002.png", "DIV2K_valid_HR/0801.png",
        "DIV2K_valid_HR/0802.png"]
    assert plan.warnings[0] == "skipped DIV2K_train_HR/0001.png: 40x23 is smaller than the " \
        "crop size 24"


def test_one_bad_file_is_named_alone_and_the_rest_is_planned(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36), (36, 36), (36, 36)])
    (root / "a-notes.txt").write_text("hi")
    with pytest.raises(WdsrError) as e:
        _plan(root, tmp_path / "out")
    assert "a-notes.txt" in e.value.message and "more problems" not in e.value.message
    plan = _plan(root, tmp_path / "out", skip_bad=True)
    assert len(plan.tasks) == 3
    assert plan.warnings == [f"skipped a-notes.txt: {e.value.message}"]


def test_a_rerun_reuses_given_lr_records_and_only_those_that_match(tmp_path):
    root = div2k_tree(tmp_path / "src", {"0001": (48, 48), "0002": (48, 48)}, {"0801": (24, 24)},
                      lr_scales=(2,))
    out = tmp_path / "out"
    _run(root, out, scales=(2,), crop_size=24)
    keys = {("train", "0001"), ("train", "0002"), ("valid", "0801")}
    assert set(_plan(root, out, scales=(2,), crop_size=24).done) == keys
    journal = out / prep.JOURNAL
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    for item in lines:  # a record that names other sources (or LR kinds) is not reused
        if item.get("name") == "0002":
            item["sources"] = [src for src in item["sources"] if src["role"] != "x2"]
        if item.get("name") == "0801":
            item["lr"] = {"2": "generated"}
    journal.write_text("".join(json.dumps(item) + "\n" for item in lines))
    assert set(_plan(root, out, scales=(2,), crop_size=24).done) == {("train", "0001")}


def test_a_journal_without_options_is_refused_and_the_manifest_alone_is_checked(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36)])
    out = tmp_path / "out"
    _run(root, out)
    journal = out / prep.JOURNAL
    journal.write_text(json.dumps({"type": "header"}) + "\n")
    (out / prep.MANIFEST).unlink()
    with pytest.raises(WdsrError, match="journal. made with other options"):
        _plan(root, out)
    _run(root, out, force=True)
    journal.unlink()  # a finished run whose journal is gone: the manifest still says
    with pytest.raises(WdsrError, match="already holds data prepared with other options"):
        _plan(root, out, crop_step=24)


def test_a_record_whose_outputs_differ_or_are_gone_is_redone(tmp_path):
    root = plain_folder(tmp_path / "src", [(36, 36), (36, 36), (36, 36)])
    out = tmp_path / "out"
    _run(root, out, scales=(2,), crop_size=24)
    journal = out / prep.JOURNAL
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    for item in lines:
        if item.get("name") == "img00":  # the record lists other outputs
            del item["outputs"]["x2"]
    journal.write_text("".join(json.dumps(item) + "\n" for item in lines))
    (out / "train" / "x2" / "img01.npy").unlink()  # an output is gone
    assert set(_plan(root, out, scales=(2,), crop_size=24).done) == {("train", "img02")}


def test_bad_pairs_first_leave_the_rest_planned_and_problems_are_counted(tmp_path):
    from prep_helpers import truncate

    root = div2k_tree(tmp_path / "src", {"0001": (48, 48), "0002": (48, 48), "0003": (48, 48)},
                      {"0801": (24, 24)}, lr_scales=(2,))
    truncate(root / "DIV2K_train_LR_bicubic/X2/0001x2.png")
    truncate(root / "DIV2K_train_LR_bicubic/X2/0002x2.png")
    with pytest.raises(WdsrError) as e:
        _plan(root, tmp_path / "out", scales=(2,), crop_size=24)
    assert e.value.message.endswith(" (and 1 more problems)")
    plan = _plan(root, tmp_path / "out", scales=(2,), crop_size=24, skip_bad=True)
    assert sorted(t["name"] for t in plan.tasks) == ["0003", "0801"]

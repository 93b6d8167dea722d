"""The training data reader: determinism, ranks, resume, augmentation, alignment, errors."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from prep_helpers import plain_folder

from wdsr_cli.core.data import prepare as prep
from wdsr_cli.core.data.pipeline import TrainPatches, dihedral, load_validation, read_manifest
from wdsr_cli.core.data.resize import bicubic_downscale
from wdsr_cli.core.errors import WdsrError

CROP = 48


def synthetic(root: Path, counts=(5, 3, 4), scales=(2, 3), valid=2, seed=0) -> Path:
    """A prepared folder by construction: HR = LR with every pixel repeated s x s times, so
    alignment is checkable as ``hr == repeat(lr, s)`` under any dihedral transform."""
    rng = np.random.default_rng(seed)
    m = 6
    entries = []
    for i, n in enumerate(counts):
        base = rng.integers(0, 256, (n, CROP // m, CROP // m, 3), dtype=np.uint8)
        outputs = {"hr": _save(root, f"train/hr/im{i}.npy", _up(base, m, axes=(1, 2)))}
        for s in scales:
            outputs[f"x{s}"] = _save(root, f"train/x{s}/im{i}.npy", _up(base, m // s, (1, 2)))
        entries.append({"name": f"im{i}", "subimages": n, "outputs": outputs})
    vals = []
    for i in range(valid):
        base = rng.integers(0, 256, (4 + i, 5, 3), dtype=np.uint8)
        outputs = {"hr": _save(root, f"valid/hr/v{i}.npy", _up(base, m, (0, 1)))}
        for s in scales:
            outputs[f"x{s}"] = _save(root, f"valid/x{s}/v{i}.npy", _up(base, m // s, (0, 1)))
        vals.append({"name": f"v{i}", "subimages": 0, "outputs": outputs})
    manifest = {"format": "wdsr-prepared", "version": 1, "dataset_id": "synthetic0000000",
                "options": {"crop_size": CROP, "crop_step": CROP, "scales": list(scales)},
                "train": entries, "valid": vals[::-1]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _up(a, k, axes):
    for ax in axes:
        a = np.repeat(a, k, axis=ax)
    return a


def _save(root: Path, rel: str, arr: np.ndarray) -> dict:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    np.save(root / rel, arr)
    return {"file": rel, "shape": list(arr.shape)}


@pytest.fixture()
def data(tmp_path):
    return synthetic(tmp_path / "prep")


def test_shapes_dtype_and_range(data):
    tp = TrainPatches(data, scale=2, patch_size=8, batch_size=4, seed=0)
    assert tp.dataset_id == "synthetic0000000" and tp.num_subimages == 12
    assert tp.steps_per_epoch == 3
    lr, hr = tp.batch(0)
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16)
    assert lr.dtype == hr.dtype == np.float32
    assert lr.flags.c_contiguous and hr.flags.c_contiguous
    assert 0 <= lr.min() and lr.max() <= 255 and lr.max() > 1


@pytest.mark.parametrize("scale", [2, 3])
def test_lr_and_hr_patches_are_aligned(data, scale):
    tp = TrainPatches(data, scale=scale, patch_size=6, batch_size=4, seed=3)
    for step in range(20):
        lr, hr = tp.batch(step)
        np.testing.assert_array_equal(hr, _up(lr, scale, axes=(2, 3)))


def test_same_step_same_batch_other_seed_other_batch(data):
    a = TrainPatches(data, scale=2, patch_size=8, batch_size=4, seed=7)
    b = TrainPatches(data, scale=2, patch_size=8, batch_size=4, seed=7)
    for step in (0, 5, 2, 11, 5):
        np.testing.assert_array_equal(a.batch(step)[0], b.batch(step)[0])
    c = TrainPatches(data, scale=2, patch_size=8, batch_size=4, seed=8)
    assert not np.array_equal(a.batch(5)[0], c.batch(5)[0])


def test_ranks_together_see_exactly_the_single_process_batch(data):
    single = TrainPatches(data, scale=2, patch_size=8, batch_size=6, seed=1)
    ranks = [TrainPatches(data, scale=2, patch_size=8, batch_size=3, seed=1, rank=r,
                          world_size=2) for r in range(2)]
    assert single.steps_per_epoch == ranks[0].steps_per_epoch == 2
    for step in range(7):
        lr, hr = single.batch(step)
        parts = [r.batch(step) for r in ranks]
        np.testing.assert_array_equal(lr, np.concatenate([p[0] for p in parts]))
        np.testing.assert_array_equal(hr, np.concatenate([p[1] for p in parts]))


def test_an_epoch_visits_distinct_subimages(data):
    tp = TrainPatches(data, scale=2, patch_size=8, batch_size=4, seed=2)
    for epoch in range(3):
        used = [s.subimage for step in range(epoch * 3, epoch * 3 + 3) for s in tp.slots(step)]
        assert sorted(used) == list(range(12))


def test_batches_are_the_transformed_shard_regions_and_cover_8_transforms(data):
    tp = TrainPatches(data, scale=3, patch_size=5, batch_size=4, seed=4)
    lr_shards = [np.load(data / f"train/x3/im{i}.npy") for i in range(3)]
    flat = [(f, j) for f, n in enumerate((5, 3, 4)) for j in range(n)]
    seen = set()
    for step in range(40):
        lr, _ = tp.batch(step)
        for i, slot in enumerate(tp.slots(step)):
            f, j = flat[slot.subimage]
            region = lr_shards[f][j, slot.y:slot.y + 5, slot.x:slot.x + 5]
            expect = dihedral(region, slot.transform).transpose(2, 0, 1)
            np.testing.assert_array_equal(lr[i], expect)
            assert 0 <= slot.y <= 16 - 5 and 0 <= slot.x <= 16 - 5
            seen.add(slot.transform)
    assert seen == set(range(8))
    plain = TrainPatches(data, scale=3, patch_size=5, batch_size=4, seed=4, augment=False)
    assert {s.transform for step in range(10) for s in plain.slots(step)} == {0}


def test_dihedral_gives_8_distinct_transforms():
    a = np.arange(2 * 2 * 1).reshape(2, 2, 1)
    outs = {dihedral(a, t).tobytes() for t in range(8)}
    assert len(outs) == 8


def test_iterate_matches_batch_and_resumes_anywhere(data):
    tp = TrainPatches(data, scale=2, patch_size=8, batch_size=4, seed=5)
    full = list(tp.iterate(0, 8, prefetch=2))
    assert [s for s, *_ in full] == list(range(8))
    assert all(w >= 0 for *_, w in full)
    resumed = list(TrainPatches(data, scale=2, patch_size=8, batch_size=4, seed=5)
                   .iterate(5, 8))
    for (s1, lr1, hr1, _), (s2, lr2, hr2, _) in zip(full[5:], resumed, strict=True):
        assert s1 == s2
        np.testing.assert_array_equal(lr1, lr2)
        np.testing.assert_array_equal(hr1, hr2)
    for s, lr, _, _ in full:
        np.testing.assert_array_equal(lr, tp.batch(s)[0])


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "wdsr-prefetch"]


def test_iterate_shuts_down_on_close_and_on_errors(data):
    tp = TrainPatches(data, scale=2, patch_size=8, batch_size=4, seed=5)
    it = tp.iterate(0, 1000, prefetch=2)
    next(it)
    it.close()
    assert not _prefetch_threads()

    def broken(step):
        if step == 2:
            raise RuntimeError("disk on fire")
        return TrainPatches.batch(tp, step)

    tp.batch = broken
    with pytest.raises(RuntimeError, match="disk on fire"):
        for _ in tp.iterate(0, 10):
            pass
    assert not _prefetch_threads()


def test_validation_images(data):
    val = load_validation(data, 2)
    assert [n for n, *_ in val] == ["v0", "v1"]
    for _, lr, hr in val:
        assert lr.dtype == np.uint8 and hr.shape == (lr.shape[0] * 2, lr.shape[1] * 2, 3)
    assert len(load_validation(data, 3, limit=1)) == 1


def test_errors_say_what_to_do(tmp_path, data):
    with pytest.raises(WdsrError, match="does not exist") as e:
        TrainPatches(tmp_path / "nope", 2, 8, 4, 0)
    assert "prepare-data" in e.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(WdsrError, match="no manifest.json"):
        read_manifest(tmp_path / "empty")
    (tmp_path / "empty/manifest.json").write_text("{not json")
    with pytest.raises(WdsrError, match="damaged"):
        read_manifest(tmp_path / "empty")
    with pytest.raises(WdsrError, match="prepared for x2, x3, not x4") as e:
        TrainPatches(data, 4, 8, 4, 0)
    assert "--scales 4" in e.value.hint
    with pytest.raises(WdsrError, match="larger than the prepared sub-images"):
        TrainPatches(data, 2, 25, 4, 0)
    with pytest.raises(WdsrError, match="global batch of 16 .* 12 prepared"):
        TrainPatches(data, 2, 8, 8, 0, rank=1, world_size=2)
    none = synthetic(tmp_path / "noval", valid=0)
    with pytest.raises(WdsrError, match="no validation images"):
        load_validation(none, 2)
    np.save(data / "train/x2/im1.npy", np.zeros((2, 24, 24, 3), np.uint8))
    with pytest.raises(WdsrError, match="im1.npy.*manifest says"):
        TrainPatches(data, 2, 8, 4, 0)


def test_on_real_prepared_data_lr_patches_are_bicubic_of_the_full_image(tmp_path):
    """End to end: a batch's LR patch is the region of imresize(full HR, 1/s) that its slot
    names (compared on the full image, since bicubic of a crop differs near crop borders)."""
    root = plain_folder(tmp_path / "src", [(60, 72), (48, 50)])
    out = tmp_path / "out"
    prep.prepare(prep.PrepareOptions(root=root, out=out, scales=(2, 4), crop_size=24,
                                     crop_step=12, workers=1))
    m = json.loads((out / "manifest.json").read_text())
    corners, fulls = [], {}
    for entry in m["train"]:
        from PIL import Image

        h, w = entry["hr_size"]
        hr = np.asarray(Image.open(root / entry["sources"][0]["file"]).convert("RGB"))[:h, :w]
        fulls[entry["name"]] = (hr, bicubic_downscale(hr, 2))
        corners += [(entry["name"], y, x) for y in prep.window_positions(h, 24, 12)
                    for x in prep.window_positions(w, 24, 12)]
    tp = TrainPatches(out, scale=2, patch_size=5, batch_size=3, seed=0)
    assert tp.num_subimages == len(corners) == m["counts"]["patches"]["x2"]
    for step in range(10):
        lr, hr = tp.batch(step)
        for i, slot in enumerate(tp.slots(step)):
            name, y0, x0 = corners[slot.subimage]
            full_hr, full_lr = fulls[name]
            ly, lx = y0 // 2 + slot.y, x0 // 2 + slot.x
            np.testing.assert_array_equal(
                lr[i], dihedral(full_lr[ly:ly + 5, lx:lx + 5], slot.transform).transpose(2, 0, 1))
            np.testing.assert_array_equal(
                hr[i], dihedral(full_hr[2 * ly:2 * ly + 10, 2 * lx:2 * lx + 10],
                                slot.transform).transpose(2, 0, 1))

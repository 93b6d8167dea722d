"""The degradation model (data/degrade.py): specs, each step really applied, draws that depend on
(seed, step, slot) only, and the training pipeline and evaluate using them."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
from conftest import one_line_error, run_wdsr
from PIL import Image as PILImage
from prep_helpers import div2k_tree, photo

from wdsr_cli.core.config import Config, DegradeConfig, load_config
from wdsr_cli.core.data import degrade as D
from wdsr_cli.core.data.pipeline import TrainPatches, load_validation
from wdsr_cli.core.data.resize import bicubic_downscale, imresize
from wdsr_cli.core.errors import WdsrError

HR = photo(96, 80, seed=3)
CLEAN = bicubic_downscale(HR, 2)
EVERYTHING = DegradeConfig(blur_prob=1.0, kernels=["bilinear"], noise_prob=1.0, jpeg_prob=1.0,
                           jpeg2_prob=1.0)


# ------------------------------------------------------------------------------ specs


@pytest.mark.parametrize("spec", ["jpeg:75", "noise:5,jpeg:50", "blur:1.2,jpeg:90,jpeg:75@4",
                                  "blur:2x0.5@30,down:box,graynoise:3,jpeg:40@3x5", "bicubic",
                                  "down:lanczos3"])
def test_spec_reads_back_to_itself(spec):
    assert D.parse_spec(spec).spec() == spec


@pytest.mark.parametrize("spec, words", [
    ("", "empty"), ("jpeg:0", "quality"), ("jpeg:101", "quality"), ("jpeg:75@8", "0..7"),
    ("noise:-1", "sigma"), ("noise:0", "sigma"), ("jpeg:75,blur:1", "first"),
    ("noise:5,noise:3", "twice"), ("jpeg:50,noise:5", "before JPEG"), ("down:cubic", "kernel"),
    ("sharpen:2", "not a degradation"), ("blur:20", "sigmas"), ("jpeg", "quality")])
def test_bad_specs_say_what_is_wrong(spec, words):
    with pytest.raises(WdsrError) as info:
        D.parse_spec(spec)
    assert words in str(info.value)


# ------------------------------------------------------------------------------ applied


def test_clean_chain_is_the_matlab_bicubic_exactly():
    assert np.array_equal(D.apply_chain(D.Chain(), HR, 2), CLEAN)


def test_each_step_is_really_applied():
    """Each degradation alone changes the LR, and by exactly what its own code computes: a step
    that is silently skipped fails here."""
    blur = D.Blur(1.5, 0.6, 30)
    blurred = D.apply_chain(D.Chain(blur=blur), HR, 2)
    expect = np.clip(np.rint(imresize(D.blur_image(HR, blur), scale=0.5)), 0, 255)
    assert np.array_equal(blurred, expect.astype(np.uint8)) and not np.array_equal(blurred, CLEAN)
    # the blur is a normalised Gaussian: a flat image stays flat, contrast drops
    assert np.allclose(D.blur_image(np.full((20, 20, 3), 77, np.uint8), blur), 77)
    assert D.blur_image(HR, blur).std() < HR.std()

    box = D.apply_chain(D.Chain(kernel="box"), HR, 2)
    assert np.array_equal(box, imresize(HR, scale=0.5, kernel="box"))
    assert not np.array_equal(box, CLEAN)

    noisy = D.apply_chain(D.Chain(noise=D.Noise(5.0, seed=1)), HR, 2).astype(float) - CLEAN
    assert 4.0 < noisy.std() < 6.0
    assert not np.allclose(noisy[..., 0], noisy[..., 1])  # colour noise: channels differ
    gray = D.apply_chain(D.Chain(noise=D.Noise(5.0, gray=True, seed=1)),
                         np.full((96, 80, 3), 128, np.uint8), 2).astype(int)
    assert gray.std() > 3 and np.array_equal(gray[..., 0], gray[..., 2])  # one field for all

    once = D.apply_chain(D.Chain(jpegs=(D.Jpeg(40),)), HR, 2)
    assert np.array_equal(once, D.jpeg_roundtrip(CLEAN, 40)) and not np.array_equal(once, CLEAN)
    twice = D.apply_chain(D.Chain(jpegs=(D.Jpeg(40), D.Jpeg(60, 3, 5))), HR, 2)
    assert np.array_equal(twice, D.jpeg_roundtrip(once, 60, 3, 5))
    assert not np.array_equal(twice, once)


def test_jpeg_is_4_2_0_at_the_quality_and_the_shift_moves_the_grid():
    buf = io.BytesIO()
    PILImage.fromarray(CLEAN).save(buf, format="JPEG", quality=55, subsampling=2)
    buf.seek(0)
    with PILImage.open(buf) as im:
        direct = np.asarray(im.convert("RGB"))
    assert np.array_equal(D.jpeg_roundtrip(CLEAN, 55), direct)
    shifted = D.jpeg_roundtrip(CLEAN, 55, 3, 5)
    assert shifted.shape == CLEAN.shape and not np.array_equal(shifted, direct)
    # blocking sits on the shifted grid: pad by the shift by hand and encode the same way
    pad = np.pad(CLEAN, ((3, 0), (5, 0), (0, 0)), mode="edge")
    assert np.array_equal(shifted, D.jpeg_roundtrip(pad, 55)[3:, 5:])


def test_evaluate_noise_depends_on_spec_and_name_only():
    c = D.parse_spec("noise:5,jpeg:50")
    a, b = D.for_image(c, "0801"), D.for_image(c, "0802")
    assert D.for_image(c, "0801") == a and a.noise.seed != b.noise.seed
    assert np.array_equal(D.apply_chain(a, HR, 2), D.apply_chain(D.for_image(c, "0801"), HR, 2))


# ------------------------------------------------------------------------------ draws


def test_a_draw_depends_on_the_generator_only_and_uses_a_fixed_count():
    a = D.draw(EVERYTHING, np.random.default_rng([4, 7, 1, 1]))
    assert a == D.draw(EVERYTHING, np.random.default_rng([4, 7, 1, 1]))
    assert a != D.draw(EVERYTHING, np.random.default_rng([4, 8, 1, 1]))
    assert a.blur and a.noise and len(a.jpegs) == 2 and a.kernel == "bilinear"
    assert (a.jpegs[0].shift_y, a.jpegs[0].shift_x) != (a.jpegs[1].shift_y, a.jpegs[1].shift_x)
    off = DegradeConfig()
    assert D.draw(off, np.random.default_rng(0)).clean
    # the same numbers are consumed whatever is switched on
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    D.draw(EVERYTHING, r1)
    D.draw(off, r2)
    assert r1.random() == r2.random()


def test_draws_stay_in_their_ranges():
    cfg = DegradeConfig(blur_prob=0.5, noise_prob=0.5, jpeg_prob=0.5, jpeg2_prob=0.5,
                        jpeg_quality=(40, 41), kernels=["bicubic", "box"])
    seen = {"blur": 0, "noise": 0, "jpeg": 0, "box": 0}
    for k in range(400):
        c = D.draw(cfg, np.random.default_rng([0, k]))
        if c.blur:
            seen["blur"] += 1
            assert 0.2 <= c.blur.sigma_x <= 1.5 and 0.2 <= c.blur.sigma_y <= 1.5
        if c.noise:
            seen["noise"] += 1
            assert 1.0 <= c.noise.sigma <= 8.0
        if c.jpegs:
            seen["jpeg"] += 1
            assert c.jpegs[0].quality in (40, 41)
            assert all(60 <= j.quality <= 95 for j in c.jpegs[1:])
        seen["box"] += c.kernel == "box"
    assert all(120 < v < 280 for v in seen.values()), seen


# ------------------------------------------------------------------------------ pipeline


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("deg")
    div2k_tree(root / "DIV2K", {f"{i:04d}": (120, 144) for i in range(1, 4)},
               {f"{i:04d}": (120, 144) for i in range(801, 803)})
    res = run_wdsr("prepare-data", str(root / "DIV2K"), "--out", str(root / "prep"),
                   "--scales", "2", "--crop-size", "96", "--crop-step", "48")
    assert res.returncode == 0, res.stderr
    return root / "prep"


def test_degraded_batches_are_a_function_of_seed_and_step(prepared):
    a = TrainPatches(prepared, 2, 24, 4, seed=5, degrade=EVERYTHING)
    b = TrainPatches(prepared, 2, 24, 4, seed=5, degrade=EVERYTHING)
    clean = TrainPatches(prepared, 2, 24, 4, seed=5)
    for step in (0, 3, 3, 11):  # a resumed run asks for step 11 first: same patches
        lr_a, hr_a = a.batch(step)
        lr_b, hr_b = b.batch(step)
        lr_c, hr_c = clean.batch(step)
        assert np.array_equal(lr_a, lr_b) and np.array_equal(hr_a, hr_b)
        assert np.array_equal(hr_a, hr_c)  # same crops and transforms as clean training
        assert not np.array_equal(lr_a, lr_c)
    assert TrainPatches(prepared, 2, 24, 4, seed=5, degrade=DegradeConfig()).degrade is None


def test_ranks_draw_their_own_slots_of_one_global_batch(prepared):
    whole = TrainPatches(prepared, 2, 24, 4, seed=1, degrade=EVERYTHING)
    ranks = [TrainPatches(prepared, 2, 24, 2, seed=1, degrade=EVERYTHING, rank=r, world_size=2)
             for r in range(2)]
    lr, _ = whole.batch(6)
    parts = [r.batch(6)[0] for r in ranks]
    assert np.array_equal(lr, np.concatenate(parts))
    assert not np.array_equal(parts[0], parts[1])


def test_a_degraded_patch_is_the_chain_applied_to_its_region(prepared):
    tp = TrainPatches(prepared, 2, 24, 1, seed=2, degrade=EVERYTHING, augment=False)
    slot = tp.slots(4)[0]
    chain = tp.chain(4, 0)
    f, j = tp._index[slot.subimage]
    y, x, n = slot.y, slot.x, tp.lr_size
    y0, x0 = max(0, y - 8), max(0, x - 8)
    y1, x1 = min(n, y + 32), min(n, x + 32)
    region = np.ascontiguousarray(tp._hr[f][j, 2 * y0:2 * y1, 2 * x0:2 * x1])
    want = D.apply_chain(chain, region, 2)[y - y0:y - y0 + 24, x - x0:x - x0 + 24]
    lr, _ = tp.batch(4)
    assert np.array_equal(lr[0].transpose(1, 2, 0), want.astype(np.float32))


def test_validation_can_score_degraded_lr(prepared):
    clean = load_validation(prepared, 2)
    jpeg = load_validation(prepared, 2, degrade_spec="jpeg:50")
    for (n1, _, hr1), (n2, lr2, hr2) in zip(clean, jpeg, strict=True):
        assert n1 == n2 and np.array_equal(hr1, hr2)
        assert np.array_equal(lr2, D.jpeg_roundtrip(bicubic_downscale(hr1, 2), 50))


# ------------------------------------------------------------------------------ config and CLI


def test_recipe_section_is_typed_validated_and_printed():
    cfg = load_config("demo", ["degrade.jpeg_prob=0.5", "degrade.jpeg_quality=[40, 80]"])
    assert cfg.degrade.jpeg_prob == 0.5 and cfg.degrade.jpeg_quality == (40, 80)
    assert dataclasses.asdict(Config())["degrade"]["jpeg_prob"] == 0.0
    for bad, key in (("degrade.jpeg_prob=2", "degrade.jpeg_prob"),
                     ("degrade.jpeg_quality=[90, 40]", "degrade.jpeg_quality"),
                     ("degrade.kernels=[cubic]", "degrade.kernels"),
                     ("degrade.val_spec=jpeg:0", "degrade.val_spec")):
        with pytest.raises(WdsrError) as info:
            load_config("demo", [bad])
        assert key in str(info.value)
    res = run_wdsr("train", "-c", "bundled-photo-x2", "--print-config")
    assert res.returncode == 0, res.stderr
    assert "jpeg2_prob: 0.25" in res.stdout and "val_spec: jpeg:75" in res.stdout


def test_train_refuses_a_bad_degrade_value_in_one_line():
    line = one_line_error(run_wdsr("train", "-c", "demo", "--set", "degrade.noise_prob=-1"))
    assert "degrade.noise_prob" in line


@pytest.fixture(scope="module")
def eval_data(ms_cpu, tmp_path_factory):
    from conftest import save_tiny_checkpoint

    from wdsr_cli.core.data.images import Image, write_image

    d = tmp_path_factory.mktemp("evaldeg")
    (d / "hr").mkdir()
    for name in ("a", "b"):
        write_image(d / "hr" / f"{name}.png", Image(pixels=photo(40, 48, seed=4)))
    return d, save_tiny_checkpoint(d / "x2.ckpt", 2)


def test_evaluate_degrade_scores_the_degraded_lr_and_says_so(eval_data, tmp_path):
    from wdsr_cli.core import metrics
    from wdsr_cli.core.data.images import read_rgb_uint8
    from wdsr_cli.core.data.resize import bicubic_upscale

    d, ckpt = eval_data
    res = run_wdsr("evaluate", "--scale", "2", "--hr", str(d / "hr"), "--checkpoint", str(ckpt),
                   "--degrade", "noise:4,jpeg:60", "--bicubic", "--json", "-",
                   "--report", str(tmp_path / "rep"), env={"COLUMNS": "250"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["degrade"] == "noise:4,jpeg:60"
    assert "LR degraded: noise:4,jpeg:60" in out["dataset"]
    assert "LR degraded: noise:4,jpeg:60" in res.stderr  # the table's title
    for row in out["images"]:
        hr = read_rgb_uint8(d / "hr" / f"{row['name']}.png")
        chain = D.for_image(D.parse_spec("noise:4,jpeg:60"), row["name"])
        lr = D.apply_chain(chain, hr, 2)
        assert row["bicubic_psnr"] == pytest.approx(
            metrics.psnr(bicubic_upscale(lr, 2), hr, 2, "y"), abs=1e-6)
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "noise:4,jpeg:60" in page


@pytest.mark.parametrize("args, words", [
    (["--degrade", "jpeg:0"], "quality"),
    (["--degrade", "jpeg:75", "--lr", "."], "--lr"),
    (["--degrade", ""], "empty")])
def test_evaluate_bad_degrade_is_one_line(eval_data, args, words):
    d, ckpt = eval_data
    line = one_line_error(run_wdsr("evaluate", "--scale", "2", "--hr", str(d / "hr"),
                                   "--checkpoint", str(ckpt), *args))
    assert words in line

"""Finding the data: DIV2K (official and model-zoo layouts), plain folders, problems."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from prep_helpers import div2k_tree, photo, plain_folder, save, truncate

from wdsr_cli.core.data import div2k
from wdsr_cli.core.data.images import probe_image
from wdsr_cli.core.errors import WdsrError


def _by_name(inv):
    return {p.name: p for p in inv.pairs}


def _generated_scales(pair) -> list[int]:
    """The scales whose LR image prepare-data makes (no given file: None)."""
    return sorted(s for s, img in pair.lr.items() if img is None)


def test_official_layout_given_and_generated_lr(tmp_path):
    div2k_tree(tmp_path, {"0001": (48, 60), "0002": (60, 48)}, {"0801": (48, 48)},
               lr_scales=(2, 4), lr_splits=("train",))
    inv = div2k.find_dataset(tmp_path, (2, 3, 4))
    assert inv.layout == "div2k" and inv.degradation == "bicubic" and not inv.problems
    pairs = _by_name(inv)
    assert [p.name for p in inv.pairs] == ["0001", "0002", "0801"]
    assert pairs["0001"].split == "train" and pairs["0801"].split == "valid"
    assert pairs["0001"].hr.rel == "DIV2K_train_HR/0001.png"
    assert (pairs["0001"].hr.height, pairs["0001"].hr.width) == (48, 60)
    assert pairs["0001"].lr[2].rel == "DIV2K_train_LR_bicubic/X2/0001x2.png"
    assert pairs["0001"].lr[3] is None  # no X3 folder: generated
    assert _generated_scales(pairs["0801"]) == [2, 3, 4]  # no valid LR folders at all
    assert any("no LR folder" in n for n in inv.notes)
    rows = {(r["split"], r["kind"]): r for r in inv.summary_rows()}
    assert rows[("train", "x2")]["given"] == 2 and rows[("train", "x3")]["generated"] == 2
    assert rows[("valid", "HR")]["images"] == 1


def test_modelzoo_layout_splits_by_number(tmp_path):
    div2k_tree(tmp_path, {"0001": (24, 24), "0800": (24, 24), "0801": (24, 24),
                          "0900": (24, 24)}, {}, lr_scales=(2,))
    inv = div2k.find_dataset(tmp_path, (2,))
    assert inv.layout == "div2k-modelzoo"
    assert {p.name: p.split for p in inv.pairs} == {
        "0001": "train", "0800": "train", "0801": "valid", "0900": "valid"}
    # the LR of a validation image is found in the train LR folder, where the zoo keeps it
    assert _by_name(inv)["0801"].lr[2].rel == "DIV2K_train_LR_bicubic/X2/0801x2.png"


def test_images_in_both_folders_are_validation_only(tmp_path):
    div2k_tree(tmp_path, {"0001": (24, 24), "0801": (24, 24)}, {"0801": (24, 24)})
    inv = div2k.find_dataset(tmp_path, (2,))
    assert inv.layout == "div2k"
    assert [(p.split, p.name) for p in inv.pairs] == [("train", "0001"), ("valid", "0801")]
    assert any("left out of training" in n for n in inv.notes)


def test_plain_folder_and_valid_count(tmp_path):
    plain_folder(tmp_path, [(30, 30)] * 4)
    (tmp_path / "sub").mkdir()  # sub-folders are not searched
    inv = div2k.find_dataset(tmp_path, (2, 3))
    assert inv.layout == "folder" and inv.degradation == "generated"
    assert [p.split for p in inv.pairs] == ["train"] * 4
    assert all(_generated_scales(p) == [2, 3] for p in inv.pairs)
    inv = div2k.find_dataset(tmp_path, (2,), valid_count=1)
    assert [(p.split, p.name) for p in inv.pairs][-1] == ("valid", "img03")
    with pytest.raises(WdsrError, match="leaves no training images"):
        div2k.find_dataset(tmp_path, (2,), valid_count=4)
    with pytest.raises(WdsrError, match="no LR images"):
        div2k.find_dataset(tmp_path, (2,), make_lr=False)


def test_missing_lr_in_an_existing_folder_is_a_problem_unless_make_lr(tmp_path):
    div2k_tree(tmp_path, {"0001": (24, 24), "0002": (24, 24)}, {}, lr_scales=(2,))
    (tmp_path / "DIV2K_train_LR_bicubic/X2/0002x2.png").unlink()
    inv = div2k.find_dataset(tmp_path, (2,))
    [p] = inv.problems
    assert p.kind == div2k.MISSING_LR and p.name == "0002" and p.scale == 2
    assert "DIV2K_train_LR_bicubic/X2/0002x2.png" in p.message
    assert inv.bad_names() == {("train", "0002")}
    inv = div2k.find_dataset(tmp_path, (2,), make_lr=True)
    assert not inv.problems and _by_name(inv)["0002"].lr[2] is None
    # --no-make-lr: a scale without any LR folder is missing everywhere
    inv = div2k.find_dataset(tmp_path, (2, 3), make_lr=False)
    assert {(p.name, p.scale) for p in inv.problems} == {("0002", 2), ("0001", 3), ("0002", 3)}


def test_lr_size_mismatch_names_the_file(tmp_path):
    div2k_tree(tmp_path, {"0001": (24, 36)}, {}, lr_scales=(2,))
    save(tmp_path / "DIV2K_train_LR_bicubic/X2/0001x2.png", photo(12, 17, 0))
    [p] = div2k.find_dataset(tmp_path, (2,)).problems
    assert p.kind == div2k.LR_SIZE
    assert "DIV2K_train_LR_bicubic/X2/0001x2.png" in p.message and "needs 18x12" in p.message


def test_lr_of_ceil_size_is_accepted(tmp_path):
    # MATLAB's imresize gives ceil(H / s) when s does not divide H
    div2k_tree(tmp_path, {"0001": (25, 27)}, {})
    save(tmp_path / "DIV2K_train_LR_bicubic/X2/0001x2.png", photo(13, 14, 0))
    assert not div2k.find_dataset(tmp_path, (2,)).problems


def test_non_image_and_truncated_files_are_problems(tmp_path):
    div2k_tree(tmp_path, {"0001": (24, 24), "0002": (24, 24)}, {})
    (tmp_path / "DIV2K_train_HR/readme.txt").write_text("hello")
    (tmp_path / "DIV2K_train_HR/.hidden").write_text("ignored")
    truncate(tmp_path / "DIV2K_train_HR/0002.png")
    inv = div2k.find_dataset(tmp_path, (2,))
    kinds = {p.file: p.kind for p in inv.problems}
    assert kinds == {"DIV2K_train_HR/readme.txt": div2k.NOT_IMAGE,
                     "DIV2K_train_HR/0002.png": div2k.UNREADABLE}
    assert "truncated" in next(p.message for p in inv.problems if p.kind == div2k.UNREADABLE)
    assert [p.name for p in inv.pairs] == ["0001"]


def test_text_file_named_png_is_unreadable(tmp_path):
    plain_folder(tmp_path, [(24, 24)])
    (tmp_path / "fake.png").write_text("not a png")
    [p] = div2k.find_dataset(tmp_path, (2,)).problems
    assert p.kind == div2k.UNREADABLE and "fake.png" in p.message


def test_unknown_degradation_cannot_be_generated(tmp_path):
    div2k_tree(tmp_path, {"0001": (24, 24)}, {})
    inv = div2k.find_dataset(tmp_path, (2,), degradation="unknown")
    [p] = inv.problems
    assert p.kind == div2k.MISSING_LR and "DIV2K_train_LR_unknown/X2" in p.message


def test_exif_orientation_swaps_the_probed_size(tmp_path):
    im = Image.fromarray(np.zeros((20, 30, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: viewers (and read_image) show it 30 high, 20 wide
    im.save(tmp_path / "r.jpg", exif=exif)
    assert probe_image(tmp_path / "r.jpg") == (30, 20)


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "nope", "does not exist"),
    (lambda p: p, "no images in"),
    (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is not a folder"),
])
def test_root_errors(tmp_path, setup, message):
    with pytest.raises(WdsrError, match=message):
        div2k.find_dataset(setup(tmp_path), (2,))


def test_nested_div2k_root_gets_a_hint(tmp_path):
    div2k_tree(tmp_path / "DIV2K", {"0001": (24, 24)}, {})
    with pytest.raises(WdsrError) as e:
        div2k.find_dataset(tmp_path, (2,))
    assert "DIV2K" in e.value.hint


@pytest.mark.parametrize("scales", [(5,), (2, 16), (), (1,)])
def test_unsupported_scales(tmp_path, scales):
    plain_folder(tmp_path, [(24, 24)])
    with pytest.raises(WdsrError, match="unsupported scale|no scale given"):
        div2k.find_dataset(tmp_path, scales)


def test_valid_count_is_for_plain_folders_only(tmp_path):
    div2k_tree(tmp_path, {"0001": (24, 24)}, {})
    with pytest.raises(WdsrError, match="plain folder"):
        div2k.find_dataset(tmp_path, (2,), valid_count=1)


def test_png_with_bytes_after_iend_is_complete(tmp_path):
    plain_folder(tmp_path, [(24, 24)])
    with open(tmp_path / "img00.png", "ab") as f:
        f.write(b"trailing junk some tools append")
    assert not div2k.find_dataset(tmp_path, (2,)).problems
    truncate(tmp_path / "img00.png", 0.9)
    assert div2k.find_dataset(tmp_path, (2,)).problems[0].kind == div2k.UNREADABLE

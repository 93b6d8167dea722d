"""`wdsr export`: MINDIR/ONNX files that match their checkpoint at any size, the I/O contract,
never a half-written file, bad input; exported models run by `upscale`/`evaluate --model`.

Tolerances (see docs/export.md "The parity check"): MINDIR is run by the same MindSpore kernels
as the checkpoint and must give the same 8-bit image; ONNX Runtime computes in a different
order, so its float output may differ by up to export.PARITY_TOLERANCE (measured ~1e-4) and an
8-bit value can differ by one level where the float result sits on a rounding boundary (~1e-5 of
the values).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import conftest
import numpy as np
import pytest
from conftest import one_line_error, run_wdsr

from wdsr_cli.core.errors import WdsrError

ONNX_8BIT_SHARE = 1e-3  # at most this share of 8-bit values may differ (by one level) for ONNX


def save_tiny_checkpoint(path: Path, scale: int = 2, **overrides) -> Path:
    """A tiny WDSR (random weights) saved as train saves best.ckpt."""
    return conftest.save_tiny_checkpoint(path, scale, step=7, kind="best",
                                         dataset_id="tiny-test", **overrides)


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Real content: a crop of a bundled photo (not the crop the parity check uses)."""
    from wdsr_cli.core.data.images import read_rgb_uint8
    from wdsr_cli.core.data.prepare import sample_dir

    photo = read_rgb_uint8(sample_dir() / "nuthatch.png")
    y0, x0 = 40 + 17 * seed, 90 + 31 * seed
    return np.ascontiguousarray(photo[y0:y0 + h, x0:x0 + w])


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def exported(ms_cpu, tmp_path_factory) -> dict:
    """One tiny checkpoint exported through the real CLI as MINDIR and as ONNX (--json)."""
    d = tmp_path_factory.mktemp("export")
    ckpt = save_tiny_checkpoint(d / "tiny_x2.ckpt")
    out = {"dir": d, "ckpt": ckpt}
    for fmt in ("mindir", "onnx"):
        res = run_wdsr("export", "--checkpoint", str(ckpt), "--format", fmt, "--json")
        assert res.returncode == 0, res.stderr
        out[fmt] = json.loads(res.stdout)
        out[f"{fmt}_stderr"] = res.stderr
    return out


# ------------------------------------------------------------------- exports match the ckpt


@pytest.mark.parametrize("fmt", ["mindir", "onnx"])
def test_export_runs_at_two_sizes_and_matches_the_checkpoint(exported, fmt):
    from wdsr_cli.core.fileio import file_mode
    from wdsr_cli.core.inference import Predictor, to_uint8
    from wdsr_cli.core.inference.export import PARITY_TOLERANCE

    summary = exported[fmt]
    model = Path(summary["output"])
    assert model == exported["ckpt"].with_suffix(f".{fmt}")  # default: next to the checkpoint
    assert summary["written"] and summary["dynamic_shape"]
    assert oct(model.stat().st_mode & 0o777) == oct(file_mode())  # not MindSpore's 0400
    parity = summary["parity"]
    assert parity["checked"] and parity["passed"]
    assert [r["lr_size"] for r in parity["images"]] == [[48, 64], [61, 97]]
    assert "max |diff|" in exported[f"{fmt}_stderr"]  # with --json the tables go to stderr

    reference = Predictor.from_checkpoint(exported["ckpt"])
    predictor = Predictor.from_model(model)
    assert (predictor.scale, predictor.receptive_radius) == (2, reference.receptive_radius)
    for h, w in ((23, 35), (40, 29)):  # two more sizes, neither used by the export's check
        lr = _photo(h, w)
        want, got = reference.predict(lr), predictor.predict(lr)
        assert got.shape == (2 * h, 2 * w, 3)
        assert np.abs(want - got).max() <= PARITY_TOLERANCE
        w8, g8 = to_uint8(want).astype(int), to_uint8(got).astype(int)
        if fmt == "mindir":
            assert (w8 == g8).all()
        else:
            assert np.abs(w8 - g8).max() <= 1 and (w8 != g8).mean() <= ONNX_8BIT_SHARE
    assert _leftovers(exported["dir"]) == []


def test_contract_records_the_io_and_its_source(exported):
    from wdsr_cli.core.fileio import sha256_file as file_sha256

    for fmt in ("mindir", "onnx"):
        model = Path(exported[fmt]["output"])
        contract = json.loads(Path(f"{model}.json").read_text())
        assert contract["format"] == fmt and contract["scale"] == 2
        assert contract["input"]["layout"] == "NCHW" and contract["input"]["dtype"] == "float32"
        assert contract["input"]["range"] == [0.0, 255.0]
        assert "NOT clipped" in contract["output"]["range"]
        assert contract["dynamic_shape"] is True and contract["input_size"] is None
        assert contract["receptive_radius"] == 4  # head 1 + 2 blocks x 1 + tail 1
        assert contract["model"]["n_feats"] == 8 and contract["dataset_id"] == "tiny-test"
        assert contract["checkpoint"]["sha256"] == file_sha256(exported["ckpt"])
        assert contract["checkpoint"]["step"] == 7
        assert contract["sha256"] == file_sha256(model)
        assert contract["parity"]["passed"] and contract["wdsr_version"]


def test_onnx_graph_has_a_crd_depth_to_space_and_symbolic_sizes(exported):
    import onnx

    m = onnx.load(exported["onnx"]["output"])
    ops = [n.op_type for n in m.graph.node]
    assert "Reshape" not in ops and "Transpose" not in ops
    (d2s,) = [n for n in m.graph.node if n.op_type == "DepthToSpace"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in d2s.attribute}
    assert attrs == {"blocksize": 2, "mode": b"CRD"}
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert m.graph.input[0].name == "lr" and m.graph.output[0].name == "sr"


@pytest.mark.parametrize("scale,variant", [(3, "a"), (4, "b")])
def test_onnx_and_mindir_at_other_scales(ms_cpu, tmp_path, scale, variant):
    from wdsr_cli.core.inference.export import export_model

    ckpt = save_tiny_checkpoint(tmp_path / f"x{scale}.ckpt", scale=scale, variant=variant,
                                block_feats=16)
    for fmt in ("mindir", "onnx"):
        result = export_model(ckpt, fmt)
        assert result["parity"]["passed"], result["parity"]


def test_fixed_input_size_mindir(exported, tmp_path):
    from wdsr_cli.core.inference import Predictor, to_uint8
    from wdsr_cli.core.inference.export import PARITY_TOLERANCE

    out = tmp_path / "fixed.mindir"
    res = run_wdsr("export", "--checkpoint", str(exported["ckpt"]), "--input-size", "24x32",
                   "-o", str(out), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["input_size"] == [24, 32] and not summary["dynamic_shape"]
    # checked at its own size and at a larger one (run in exact windows of its size)
    assert [r["lr_size"] for r in summary["parity"]["images"]] == [[24, 32], [37, 65]]
    reference = Predictor.from_checkpoint(exported["ckpt"])
    predictor = Predictor.from_model(out)
    assert predictor.window == (24, 32) and predictor.exact_window  # the fixed size
    for h, w in ((24, 32), (50, 41)):
        lr = _photo(h, w, seed=1)
        want, got = reference.predict(lr), predictor.predict(lr)
        assert np.abs(want - got).max() <= PARITY_TOLERANCE
        assert np.abs(to_uint8(want).astype(int) - to_uint8(got).astype(int)).max() <= 1
    with pytest.raises(WdsrError, match="fixed 24x32"):
        predictor.predict(_photo(20, 40))


# --------------------------------------------------------------------- nothing half-written


def test_a_failing_export_leaves_no_file(ms_cpu, tmp_path, monkeypatch):
    import mindspore as ms

    from wdsr_cli.core.inference.export import export_model

    ckpt = save_tiny_checkpoint(tmp_path / "m.ckpt")

    def broken_export(net, *inputs, file_name, file_format, **kw):
        Path(file_name).write_bytes(b"half a model")  # what a crash mid-write leaves
        raise RuntimeError("simulated failure while writing")

    monkeypatch.setattr(ms, "export", broken_export)
    for fmt in ("mindir", "onnx"):
        with pytest.raises(RuntimeError, match="simulated"):
            export_model(ckpt, fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt"]


def test_interrupt_during_the_check_keeps_the_old_file(ms_cpu, tmp_path, monkeypatch):
    from wdsr_cli.core.inference import export as X

    ckpt = save_tiny_checkpoint(tmp_path / "m.ckpt")
    old = tmp_path / "m.onnx"
    old.write_bytes(b"previous export")
    Path(f"{old}.json").write_text("{}")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(X, "parity_check", interrupted)
    with pytest.raises(KeyboardInterrupt):
        X.export_model(ckpt, "onnx", force=True)
    assert old.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt", "m.onnx", "m.onnx.json"]


def test_a_failed_parity_check_writes_nothing(ms_cpu, tmp_path):
    from wdsr_cli.core.inference.export import ParityError, export_model

    ckpt = save_tiny_checkpoint(tmp_path / "m.ckpt")
    with pytest.raises(ParityError, match="does not match the checkpoint") as info:
        export_model(ckpt, "mindir", tolerance=-1.0)  # nothing can pass
    assert info.value.result["parity"]["checked"] and not info.value.result["written"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt"]


def test_without_onnxruntime_the_check_is_skipped_with_a_hint(ms_cpu, tmp_path, monkeypatch):
    from wdsr_cli.core.inference.export import export_model

    ckpt = save_tiny_checkpoint(tmp_path / "m.ckpt")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, find_spec -> None
    result = export_model(ckpt, "onnx")
    assert result["written"] and not result["parity"]["checked"]
    assert "pip install 'wdsr-cli[onnx]'" in result["parity"]["reason"]
    contract = json.loads(Path(f"{result['output']}.json").read_text())
    assert contract["parity"]["checked"] is False
    with pytest.raises(WdsrError, match="ONNX Runtime is not installed"):
        from wdsr_cli.core.inference import Predictor

        Predictor.from_model(result["output"])


# ---------------------------------------------------------------------------- bad input


def test_air_off_ascend_fails_before_any_work(exported, tmp_path):
    line = one_line_error(run_wdsr("export", "--checkpoint", str(exported["ckpt"]),
                                    "--format", "air", "-o", str(tmp_path / "m.air")))
    assert "AIR export needs an Ascend device" in line
    assert list(tmp_path.iterdir()) == []
    code = ("import sys\nfrom wdsr_cli.cli import main\n"
            f"try:\n    main(['export', '--format', 'air', '--checkpoint', "
            f"{str(exported['ckpt'])!r}])\nexcept SystemExit:\n    pass\n"
            "print('MINDSPORE_LOADED' if 'mindspore' in sys.modules else 'MINDSPORE_ABSENT')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "MINDSPORE_ABSENT" in res.stdout, res.stdout + res.stderr


def _unwritable_folder(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        return Path("/sys")  # root may write anywhere chmod allows; sysfs refuses new files
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


def test_export_argument_errors_are_one_line(exported, tmp_path):
    ckpt = str(exported["ckpt"])
    corrupt = tmp_path / "corrupt.ckpt"
    data = exported["ckpt"].read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    existing = exported["mindir"]["output"]
    cases = [
        (["--format", "tflite", "--checkpoint", ckpt], "unknown export format 'tflite'"),
        (["--checkpoint", str(tmp_path / "nope.ckpt")], "nope.ckpt' does not exist"),
        (["--checkpoint", ckpt, "-o", existing], "already exists"),
        (["--checkpoint", ckpt, "-o", str(_unwritable_folder(tmp_path) / "m.mindir")],
         "cannot write to folder"),
        (["--checkpoint", ckpt, "-o", str(tmp_path / "no" / "m.mindir")], "does not exist"),
        (["--checkpoint", ckpt, "-o", str(tmp_path / "m.onnx")], "must end with .mindir"),
        (["--checkpoint", ckpt, "--input-size", "big"], "--input-size must be HxW"),
    ]
    for args, needle in cases:
        line = one_line_error(run_wdsr("export", *args, cwd=tmp_path))
        assert needle in line, (args, line)
    line = one_line_error(run_wdsr("export", "--checkpoint", str(corrupt), "-o",
                                    str(tmp_path / "c.mindir")))
    assert "truncated or corrupted" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.ckpt"]


def test_model_files_that_are_not_models_or_lack_a_contract(exported, tmp_path):
    from wdsr_cli.core.data.images import Image, write_image

    img = tmp_path / "in.png"
    write_image(img, Image(pixels=_photo(12, 14)))
    onnx = Path(exported["onnx"]["output"])
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"this is not a network" * 10)
    shutil.copy(f"{onnx}.json", f"{fake}.json")  # a valid contract, a garbage model
    bare = tmp_path / "bare.onnx"
    shutil.copy(onnx, bare)  # a real model without its contract
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    fake_mindir = tmp_path / "fake.mindir"
    fake_mindir.write_bytes(b"\x00\x01garbage" * 20)
    shutil.copy(f"{exported['mindir']['output']}.json", f"{fake_mindir}.json")
    cases = [
        ("upscale", fake, "is not an ONNX model"),
        ("upscale", bare, "has no contract file"),
        ("upscale", notes, "is not an exported model"),
        ("evaluate", fake_mindir, "is not a MINDIR model"),
    ]
    for command, model, needle in cases:
        args = [str(img), "-o", str(tmp_path / "out.png")] if command == "upscale" else \
            ["--hr", str(tmp_path)]
        line = one_line_error(run_wdsr(command, *args, "--model", str(model), cwd=tmp_path))
        assert needle in line, (command, model, line)
    assert not (tmp_path / "out.png").exists()


def test_a_contract_for_another_file_is_refused(exported, tmp_path):
    from wdsr_cli.core.inference import Predictor

    model = tmp_path / "m.mindir"
    shutil.copy(exported["mindir"]["output"], model)
    contract = json.loads(Path(f"{exported['mindir']['output']}.json").read_text())
    Path(f"{model}.json").write_text(json.dumps({**contract, "sha256": "0" * 64}))
    with pytest.raises(WdsrError, match="sha256 differs"):
        Predictor.from_model(model)
    Path(f"{model}.json").write_text(json.dumps({**contract, "scale": "two"}))
    with pytest.raises(WdsrError, match="no valid 'scale'"):
        Predictor.from_model(model)


# ------------------------------------------------------------- upscale / evaluate --model


def test_upscale_with_exported_models_equals_the_checkpoint(exported, tmp_path):
    from wdsr_cli.core.data.images import Image, read_image, write_image

    src = tmp_path / "photo.png"
    write_image(src, Image(pixels=_photo(45, 70, seed=2)))
    results = {}
    for flag, path in (("--checkpoint", exported["ckpt"]),
                       ("--model", exported["mindir"]["output"]),
                       ("--model", exported["onnx"]["output"])):
        dst = tmp_path / f"{Path(path).suffix[1:]}.png"
        # the checkpoint on MindSpore (auto would take its ONNX form when one is cached)
        backend = ["--backend", "mindspore"] if flag == "--checkpoint" else []
        res = run_wdsr("upscale", str(src), flag, str(path), *backend, "--precision", "fp32",
                       "-o", str(dst))
        assert res.returncode == 0, res.stderr
        results[dst.stem] = read_image(dst).pixels.astype(int)
    ckpt = results["ckpt"]
    assert ckpt.shape == (90, 140, 3)
    assert (results["mindir"] == ckpt).all()
    diff = np.abs(results["onnx"] - ckpt)
    assert diff.max() <= 1 and (diff > 0).mean() <= ONNX_8BIT_SHARE


def test_evaluate_with_an_exported_model_scores_like_the_checkpoint(exported, tmp_path):
    from wdsr_cli.core.data.images import Image, write_image

    hr = tmp_path / "hr"
    hr.mkdir()
    write_image(hr / "a.png", Image(pixels=_photo(40, 52, seed=3)))
    scores = {}
    for flag, path in (("--checkpoint", exported["ckpt"]),
                       ("--model", exported["mindir"]["output"])):
        res = run_wdsr("evaluate", "--hr", str(hr), flag, str(path), "--backend", "mindspore",
                       "--json", "-")
        assert res.returncode == 0, res.stderr
        scores[flag] = json.loads(res.stdout)["mean"]["psnr"]
    assert scores["--model"] == pytest.approx(scores["--checkpoint"], abs=1e-9)
    line = one_line_error(run_wdsr("evaluate", "--hr", str(hr), "--scale", "3", "--model",
                                    exported["onnx"]["output"]))
    assert "x2 model" in line


def test_default_checkpoint_and_output_and_no_check(ms_cpu, tmp_path):
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    save_tiny_checkpoint(run / "best.ckpt")
    res = run_wdsr("export", "--format", "onnx", "--no-check", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "newest best.ckpt in ./runs" in res.stderr and "parity check skipped" in res.stderr
    contract = json.loads((run / "best.onnx.json").read_text())
    assert contract["parity"] == {"checked": False, "reason": "skipped (--no-check)",
                                  "tolerance_max_abs_diff": contract["parity"][
                                      "tolerance_max_abs_diff"]}
    line = one_line_error(run_wdsr("export", "--format", "onnx", cwd=tmp_path))
    assert "best.onnx' already exists" in line


def test_the_default_parity_tolerance_fails_a_small_real_mismatch(ms_cpu, tmp_path):
    """One skip-convolution weight of the shipped x2 form moved by 0.002: the output moves by
    well under one 8-bit level, and the default tolerance (0.01 on 0..255) still refuses it."""
    import onnx
    from onnx import numpy_helper

    from wdsr_cli.core.checkpoints import bundled_checkpoint
    from wdsr_cli.core.fileio import sha256_file
    from wdsr_cli.core.inference.contract import read_contract
    from wdsr_cli.core.inference.export import PARITY_TOLERANCE, parity_check

    ckpt = bundled_checkpoint(2)
    model = onnx.load(str(ckpt.with_suffix(".onnx")))
    init = next(t for t in model.graph.initializer if list(t.dims[2:]) == [5, 5])
    w = numpy_helper.to_array(init).copy()
    w[0, 0, 2, 2] += 0.002
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    wrong = tmp_path / "wrong.onnx"
    onnx.save(model, str(wrong))
    contract = read_contract(ckpt.with_suffix(".onnx"))
    contract["sha256"] = sha256_file(wrong)
    result = parity_check(wrong, contract, ckpt)
    assert result["checked"] and not result["passed"], result
    assert PARITY_TOLERANCE < result["max_abs_diff"] < 1.0, result
    assert parity_check(ckpt.with_suffix(".onnx"), read_contract(ckpt.with_suffix(".onnx")),
                        ckpt)["passed"]

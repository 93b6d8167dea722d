"""The output cannot depend on a setting: `wdsr upscale` runs every image in the Predictor's
fixed window grid (core/inference/predictor.py), whatever `--tile` says (obsolete, no
effect, a warning).

The grid itself is checked in test_inference.py: bit for bit against the whole image with a
position-exact numpy backend (and a halo one pixel short must fail), and with the real
MindSpore kernels that every pixel is the kept part of its own planned window's call.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from conftest import run_wdsr, save_tiny_checkpoint

pytestmark = pytest.mark.slow  # `wdsr upscale` subprocesses, each importing MindSpore


@pytest.mark.parametrize("scale,variant", [(2, "b"), (3, "a")])
def test_upscale_writes_the_same_bytes_whatever_the_tile(ms_cpu, tmp_path, scale, variant):
    import imageio.v3 as iio

    from wdsr_cli.core.inference import weights as W
    from wdsr_cli.core.inference.upscale import upscale_image

    ckpt = save_tiny_checkpoint(tmp_path / "tiny.ckpt", scale, variant=variant,
                                block_feats=16)
    # the Predictor of the weights, engine and precision that `wdsr upscale` chooses (the
    # engines agree only within one level, and each has its own window side)
    predictor = W.load_predictor(W.resolve(ckpt, device_target="CPU", precision="auto"))
    rng = np.random.default_rng(1)
    # wider than one window, so the image runs as several windows
    img = np.kron(rng.integers(0, 256, (4, 100, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    img = img[:29, :predictor.window[1] + 21]
    assert predictor.windows_for(*img.shape[:2]) == 2
    src = tmp_path / "in.png"
    iio.imwrite(src, img)
    outputs = []
    for tile in (None, "0", "64"):
        out, summary = tmp_path / f"tile{tile}.png", tmp_path / f"tile{tile}.json"
        res = run_wdsr("upscale", str(src), "--checkpoint", str(ckpt), "-o", str(out),
                       "--json", str(summary), *(("--tile", tile) if tile else ()))
        assert res.returncode == 0, res.stderr
        assert ("--tile has no effect" in res.stderr) == (tile is not None), res.stderr
        calls = json.loads(summary.read_text())["images"][0]["network_calls"]
        assert calls == 2
        outputs.append(out.read_bytes())
    assert outputs[1] == outputs[0] and outputs[2] == outputs[0]
    # ...and they are the Predictor's windowed result, not some other path
    assert json.loads(summary.read_text())["backend"] == predictor.backend.name
    upscale_image(predictor, src, tmp_path / "here.png")
    np.testing.assert_array_equal(iio.imread(tmp_path / "tileNone.png"),
                                  iio.imread(tmp_path / "here.png"))


@pytest.mark.parametrize("purpose,isa", [("train", "AVX2"), ("inference", "AVX2")])
def test_each_purpose_gets_its_isa_cap_and_a_user_value_is_kept(monkeypatch, purpose, isa):
    from wdsr_cli.core import runtime

    monkeypatch.setattr(runtime, "_is_x86", lambda: True)
    monkeypatch.delitem(sys.modules, "mindspore", raising=False)  # "not imported yet"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert runtime.prepare_environment("CPU", purpose)["ONEDNN_MAX_CPU_ISA"] == isa
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == isa
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    assert "ONEDNN_MAX_CPU_ISA" not in runtime.prepare_environment("CPU", purpose)
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "SSE41"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert "ONEDNN_MAX_CPU_ISA" not in runtime.prepare_environment("GPU", purpose)
    with pytest.raises(ValueError):
        runtime.prepare_environment("CPU", "serving")

"""Tiled == untiled, bit for bit, with the real MindSpore CPU kernels as `wdsr upscale` and
`wdsr evaluate` run them (inference processes cap oneDNN at AVX, see core/runtime.py).

The arithmetic of tiling is checked position-exactly in test_inference.py; this checks the
kernels. It runs in a fresh process because the ISA cap must be set before mindspore loads
(the test session itself runs with the training cap).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_wdsr

pytestmark = pytest.mark.slow  # a subprocess per tile size, each importing MindSpore

PROBE = r"""
import json, sys
import numpy as np
from wdsr_cli.core.runtime import init_mindspore
init_mindspore("CPU", purpose="inference")
from wdsr_cli.core.checkpoints import bundled_checkpoint
from wdsr_cli.core.config import ModelConfig
from wdsr_cli.core.inference import Predictor, to_uint8
from wdsr_cli.core.model import build_model, fold_weight_norm

rng = np.random.default_rng(0)
# A smooth random photo stand-in (values everywhere in 0..255, some texture).
base = rng.integers(0, 256, (40, 40, 3)).astype(np.float32)
photo = np.kron(base, np.ones((20, 20, 1), np.float32))
photo = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)

nets = [(f"bundled x{s}", Predictor.from_checkpoint(bundled_checkpoint(s)).backend.net)
        for s in (2, 3, 4)]
# The paper's WDSR-A widths (32 features, 128 in the blocks), 3 blocks to keep it quick.
nets += [(f"WDSR-A x{s}", fold_weight_norm(build_model(ModelConfig(
    variant="a", scale=s, n_feats=32, n_resblocks=3, block_feats=128)))) for s in (2, 3, 4)]
report = []
for name, net in nets:
    for h, w in [(151, 121), (23, 701), (797, 17)]:
        img = photo[:h, :w]
        ref = Predictor.from_network(net).predict(img)
        for tile in (32, 45, 70):
            p = Predictor.from_network(net, tile=tile)
            out = p.predict(img)
            report.append({"net": name, "size": [h, w], "tile": tile,
                           "calls": p.tiles_for(h, w),
                           "float_diffs": int((out != ref).sum()),
                           "uint8_diffs": int((to_uint8(out) != to_uint8(ref)).sum())})
print(json.dumps(report))
"""


def _clean_env() -> dict:
    env = dict(os.environ)
    env.pop("ONEDNN_MAX_CPU_ISA", None)  # let the process choose, as `wdsr` does
    return env


def test_tiled_equals_untiled_with_the_real_kernels_bit_for_bit():
    res = subprocess.run([sys.executable, "-c", PROBE], env=_clean_env(), capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(report) == 6 * 3 * 3
    assert all(r["calls"] > 1 for r in report), report  # every case really is tiled
    # The spec: identical 8-bit output. The shipped models are even identical in float; a
    # WDSR-A crop shape here (797x17 image, crops of 435x17) changes ~0.03% of the float values
    # in their last bits (never an 8-bit level), since oneDNN still picks some blockings by shape.
    assert not [r for r in report if r["uint8_diffs"]], report
    assert not [r for r in report if r["float_diffs"] and r["net"].startswith("bundled")], report


@pytest.mark.parametrize("scale", [2, 4])
def test_upscale_writes_the_same_bytes_whatever_the_tile(tmp_path, scale):
    import imageio.v3 as iio

    rng = np.random.default_rng(1)
    img = np.kron(rng.integers(0, 256, (20, 16, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    src = tmp_path / "in.png"
    iio.imwrite(src, img[:157, :121])
    outputs = []
    for tile in (0, 32, 57):
        out = tmp_path / f"tile{tile}.png"
        res = run_wdsr("upscale", str(src), "--scale", str(scale), "--tile", str(tile),
                       "-o", str(out), env={"ONEDNN_MAX_CPU_ISA": None})
        assert res.returncode == 0, res.stderr
        outputs.append(iio.imread(out))
    assert outputs[0].shape == (157 * scale, 121 * scale, 3)
    for other in outputs[1:]:
        np.testing.assert_array_equal(other, outputs[0])


@pytest.mark.parametrize("purpose,isa", [("train", "AVX2"), ("inference", "AVX")])
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

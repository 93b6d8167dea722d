"""The OpenVINO engine and reduced precision: the same checked ONNX forms, a compiled-model
cache that never serves a changed file, bf16 held to its tolerance (a sabotaged form is
refused), engine and precision shown, fixed windows, and a one-line error without OpenVINO."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, run_wdsr

from wdsr_cli.core.checkpoints import bundled_checkpoint
from wdsr_cli.core.data.images import Image, read_rgb_uint8, write_image
from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.fileio import sha256_file
from wdsr_cli.core.inference import Predictor
from wdsr_cli.core.inference import precision as P

ov = pytest.importorskip("openvino")
SHIPPED = bundled_checkpoint(2).with_suffix(".onnx")


def _native_bf16() -> bool:
    from wdsr_cli.core.inference.device import bf16_native

    return bf16_native()


def _photo(path: Path, h: int = 40, w: int = 52) -> Path:
    from wdsr_cli.core.inference.precision import SAMPLE_DIR

    write_image(path, Image(pixels=np.ascontiguousarray(
        read_rgb_uint8(SAMPLE_DIR / "brushes.png")[:h, :w])))
    return path


def _copy_form(dst: Path) -> Path:
    shutil.copy(SHIPPED, dst)
    shutil.copy(f"{SHIPPED}.json", f"{dst}.json")
    return dst


# ------------------------------------------------------------------------------ the engine


def test_openvino_fp32_runs_the_shipped_form_like_onnx_runtime(tmp_path):
    lr = read_rgb_uint8(_photo(tmp_path / "a.png"))
    ort = Predictor.from_model(SHIPPED, engine="onnxruntime").predict(lr)
    got = Predictor.from_model(SHIPPED, engine="openvino", precision="fp32")
    assert got.backend.name.startswith("OpenVINO ") and got.precision == "fp32"
    # fp32 asked for by name: OpenVINO's own default on a bf16 CPU would be bf16
    assert float(np.abs(got.predict(lr) - ort).max()) < 0.01


def test_windows_are_fixed_per_engine_whatever_the_precision():
    from wdsr_cli.core.inference.backends import OnnxBackend, OpenVinoBackend

    assert OpenVinoBackend.window == 768 and OnnxBackend.window == 768
    p = Predictor.from_model(SHIPPED, engine="openvino", precision="fp32")
    assert p.window == (768, 768)


def test_the_compiled_model_cache_hits_and_never_serves_a_changed_file(tmp_path):
    from wdsr_cli.core.inference.backends import OpenVinoBackend

    cache = tmp_path / "cache"
    first = OpenVinoBackend(SHIPPED, "fp32", cache)
    folder = first.cache_folder
    assert folder is not None and folder.parent == cache / "openvino"
    assert folder.name.startswith(sha256_file(SHIPPED) + "-fp32-ov")
    blobs = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert len(blobs) == 1 and not first.loaded_from_cache
    second = OpenVinoBackend(SHIPPED, "fp32", cache)
    assert second.loaded_from_cache and second.cache_folder == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == blobs  # nothing rewritten
    # another precision, and the same name with other bytes: folders of their own, compiled anew
    assert OpenVinoBackend(SHIPPED, "bf16", cache).cache_folder != folder
    import onnx

    changed = tmp_path / "m.onnx"
    model = onnx.load(str(SHIPPED))
    model.doc_string = "changed"
    onnx.save(model, str(changed))
    third = OpenVinoBackend(changed, "fp32", cache)
    assert third.cache_folder != folder and not third.loaded_from_cache
    assert len(list((cache / "openvino").iterdir())) == 3


def test_without_openvino_the_backend_is_a_one_line_error(tmp_path):
    img = _photo(tmp_path / "x.png", 8, 9)
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from wdsr_cli.cli import main; main(sys.argv[1:])")
    for args in (["upscale", str(img)], ["evaluate", "--hr", str(tmp_path)]):
        res = subprocess.run([sys.executable, "-c", code, *args, "--backend", "openvino"],
                             capture_output=True, text=True, timeout=300)
        line = one_line_error(res)
        assert "--backend openvino needs OpenVINO, which is not installed" in line
        assert "pip install 'wdsr-cli[openvino]'" in line
    assert not (tmp_path / "x_x2.png").exists()


# ------------------------------------------------------------------------- the check itself


class _Shifted:
    """A numpy 'engine': nearest-neighbour x2, its first output row ``shift`` levels off."""

    def __init__(self, shift: float) -> None:
        self.shift, self.name = shift, f"shift {shift}"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)
        y[:, :, 0] = np.clip(y[:, :, 0], 10, 240) + self.shift
        return y


def test_the_tolerance_check_passes_within_and_refuses_beyond_and_caches_both(tmp_path):
    ref = Predictor(_Shifted(0), 2, 0)
    ok = P.ensure_checked(tmp_path, "a" * 64, "fake", "bf16", "cpu", 2,
                          lambda: (Predictor(_Shifted(0), 2, 0), Predictor(_Shifted(1.4), 2, 0)))
    assert ok["passed"] and ok["uint8_max_diff"] == 1 and not ok["from_cache"]
    assert P.TOLERANCE == {"uint8_levels": 2, "psnr_db": 0.01}

    def never():
        raise AssertionError("the cached verdict must be used")

    assert P.ensure_checked(tmp_path, "a" * 64, "fake", "bf16", "cpu", 2, never)["from_cache"]
    with pytest.raises(P.PrecisionError, match="outside its tolerance") as e:
        P.ensure_checked(tmp_path, "b" * 64, "fake", "bf16", "cpu", 2,
                         lambda: (ref, Predictor(_Shifted(3), 2, 0)))
    assert e.value.result["uint8_max_diff"] == 3
    with pytest.raises(P.PrecisionError):  # refused again, from the cache, without running
        P.ensure_checked(tmp_path, "b" * 64, "fake", "bf16", "cpu", 2, never)
    with pytest.raises(P.PrecisionError):  # a forced, tighter tolerance refuses the first one
        P.ensure_checked(tmp_path, "a" * 64, "fake", "bf16", "cpu", 2,
                         lambda: (ref, Predictor(_Shifted(1.4), 2, 0)),
                         tolerance={"uint8_levels": 0, "psnr_db": 0.01})


def _sabotaged_form(path: Path) -> Path:
    """A x2 ONNX model that is exact in fp32 and not in bf16: nearest-neighbour x2 computed as
    conv(x + 4096) - 4096, so bf16's 8-bit mantissa rounds the colours to steps of 32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1 = np.zeros((12, 3, 3, 3), np.float32)  # 3x3 kernels, centre tap only
    w2 = np.zeros((12, 12, 3, 3), np.float32)
    for c in range(12):
        w1[c, c // 4, 1, 1] = 1.0
        w2[c, c, 1, 1] = 1.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["lr", "k1", "c1"], ["t1"], pads=[1, 1, 1, 1]),
         helper.make_node("Conv", ["t1", "k2", "c2"], ["t2"], pads=[1, 1, 1, 1]),
         helper.make_node("DepthToSpace", ["t2"], ["sr"], blocksize=2, mode="CRD")],
        "sabotaged",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT,
                                       ["batch", 3, "sr_height", "sr_width"])],
        [numpy_helper.from_array(w1, "k1"),
         numpy_helper.from_array(np.full(12, 4096, np.float32), "c1"),
         numpy_helper.from_array(w2, "k2"),
         numpy_helper.from_array(np.full(12, -4096, np.float32), "c2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.save(model, str(path))
    Path(f"{path}.json").write_text(json.dumps({
        "contract_version": 1, "format": "onnx", "scale": 2, "receptive_radius": 0,
        "input_size": None, "sha256": sha256_file(path)}))  # radius 0: centre taps only
    return path


@pytest.mark.skipif(not _native_bf16(), reason="this CPU has no native bf16")
def test_a_sabotaged_form_is_refused_at_bf16_and_runs_at_fp32(tmp_path):
    form = _sabotaged_form(tmp_path / "sabotaged.onnx")
    img = _photo(tmp_path / "x.png", 20, 24)
    res = run_wdsr("upscale", str(img), "--model", str(form), "--backend", "openvino",
                   "--precision", "bf16", "-o", str(tmp_path / "bf16.png"))
    line = one_line_error(res)
    assert "bf16 on OpenVINO" in line and "outside its tolerance" in line
    assert "--precision fp32" in line and not (tmp_path / "bf16.png").exists()
    # auto falls back to fp32 and says why; fp32 is exact (nearest neighbour)
    res = run_wdsr("upscale", str(img), "--model", str(form), "--backend", "openvino",
                   "-o", str(tmp_path / "auto.png"), "--json", "-")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["precision"] == "fp32" and "bf16 failed its check" in out["precision_why"]
    want = np.repeat(np.repeat(read_rgb_uint8(img), 2, axis=0), 2, axis=1)
    assert np.array_equal(read_rgb_uint8(tmp_path / "auto.png"), want)


# ----------------------------------------------------------------- what the commands show


def test_upscale_shows_engine_and_precision_and_why(tmp_path):
    img = _photo(tmp_path / "x.png")
    res = run_wdsr("upscale", str(img), "--backend", "openvino", "--precision", "fp32",
                   "--json", str(tmp_path / "s.json"))
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / "s.json").read_text())
    assert (out["engine"], out["precision"]) == ("openvino", "fp32")
    assert out["backend"].startswith("OpenVINO") and out["window"] == [768, 768]
    assert out["backend_why"] == "--backend openvino"
    assert out["precision_why"] == "--precision fp32" and out["precision_check"] is None
    assert "precision: fp32 (--precision fp32)" in res.stderr
    assert "upscaled with OpenVINO" in res.stdout and "fp32" in res.stdout
    res = run_wdsr("upscale", str(img), "--json", "-", "-o", str(tmp_path / "d.png"))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["precision"] in ("fp32", "bf16") and out["precision_why"].startswith("auto: ")
    if out["precision"] == "bf16":  # checked once, the numbers are in the summary
        check = out["precision_check"]
        assert check["passed"] and check["uint8_max_diff"] <= 2
        assert abs(check["psnr_change_db"]) <= 0.01


def test_evaluate_defaults_to_fp32_and_keeps_its_numbers(tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    _photo(hr / "a.png", 64, 80)
    scores = {}
    for backend in ("onnxruntime", "openvino", "auto"):
        res = run_wdsr("evaluate", "--hr", str(hr), "--checkpoint", "bundled", "--json", "-",
                       "--backend", backend)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["precision"] == "fp32" and out["precision_why"] == "--precision fp32"
        assert "precision: fp32 (--precision fp32)" in res.stderr
        scores[backend] = out["mean"]["psnr"]
    # fp32 on either engine: today's ONNX Runtime numbers (8-bit outputs within one level)
    assert abs(scores["openvino"] - scores["onnxruntime"]) < 0.002
    assert scores["auto"] in (scores["openvino"], scores["onnxruntime"])


def test_bf16_on_a_cpu_without_it_is_refused(monkeypatch):
    from wdsr_cli.core.inference import device
    from wdsr_cli.core.inference import weights as W

    monkeypatch.setattr(device, "_NATIVE", False)
    with pytest.raises(WdsrError, match="has no native bf16"):
        W.resolve(backend="openvino", precision="bf16")
    w = W.resolve(backend="openvino", precision="auto")
    assert w.precision == "fp32" and w.precision_why == "auto: no native bf16 on this CPU"


# ------------------------------------------------------------------ the backend in process


def test_the_isa_cap_is_hidden_only_for_a_moment(monkeypatch):
    from wdsr_cli.core.inference.backends import ov as O

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with O._without_isa_cap():
        assert "ONEDNN_MAX_CPU_ISA" not in os.environ
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    with pytest.raises(KeyError), O._without_isa_cap():
        raise KeyError("put back after an error too")
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    with O._without_isa_cap():
        assert "ONEDNN_MAX_CPU_ISA" not in os.environ
    assert "ONEDNN_MAX_CPU_ISA" not in os.environ  # none before: none set after


def test_native_bf16_is_openvinos_word_asked_without_the_cap(monkeypatch):
    from wdsr_cli.core.inference.backends import ov as O

    asked, caps = [], [["FP32", "INT8", "BF16"], ["FP32", "FP16", "INT8"]]

    class Core:  # OpenVINO's answer on a bf16 CPU, then on one without
        def get_property(self, device, name):
            asked.append((device, name, os.environ.get("ONEDNN_MAX_CPU_ISA")))
            return caps.pop(0)

    monkeypatch.setattr(ov, "Core", Core)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert O.native_bf16() is True
    assert O.native_bf16() is False
    assert asked == [("CPU", "OPTIMIZATION_CAPABILITIES", None)] * 2
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"


def test_blob_folder_names_content_precision_and_a_clean_version():
    from wdsr_cli.core.inference.backends.ov import blob_folder

    assert blob_folder("c", "ab12", "bf16", "2026.4.1-22982-e213a147257-releases/2026/4") \
        == Path("c/openvino/ab12-bf16-ov2026.4.1")  # the build's tail dropped
    assert blob_folder(Path("c"), "ab12", "fp32", "2024.1.0+cpu dev") \
        == Path("c/openvino/ab12-fp32-ov2024.1.0_cpu_dev")
    assert blob_folder(Path("c"), "ab12", "fp32", "2024/../x").name == "ab12-fp32-ov2024_.._x"


def test_the_backend_names_itself_and_compiles_at_the_precision_asked(tmp_path):
    from wdsr_cli.core.inference.backends import OpenVinoBackend

    b = OpenVinoBackend(str(SHIPPED), "fp32")
    assert re.fullmatch(r"\d+\.\d+(\.\d+)*", b.version)
    assert ov.__version__ == b.version or ov.__version__.startswith(b.version + "-")
    assert b.name == f"OpenVINO {b.version} (CPU, fp32)" and b.precision == "fp32"
    assert b.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert b.cache_folder is None and not b.loaded_from_cache  # no cache asked for
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 5, 7))  # float64: cast
    y = b(x)
    assert y.shape == (2, 3, 10, 14) and y.dtype == np.float32
    want = Predictor.from_model(SHIPPED, engine="onnxruntime").backend(x.astype(np.float32))
    assert float(np.abs(y - want).max()) < 0.01
    half = OpenVinoBackend(SHIPPED, "bf16")
    assert half.name == f"OpenVINO {b.version} (CPU, bf16)" and half.precision == "bf16"
    if _native_bf16():
        assert half.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16


def test_a_known_sha256_names_the_blob_folder_and_an_unwritable_cache_is_no_error(tmp_path):
    from wdsr_cli.core.inference.backends import OpenVinoBackend

    b = OpenVinoBackend(SHIPPED, "fp32", str(tmp_path / "cache"), sha256="f" * 64)
    assert b.cache_folder.name.startswith("f" * 64 + "-fp32-ov") and b.cache_folder.is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    b = OpenVinoBackend(SHIPPED, "fp32", blocker)  # the cache cannot be made: compiled anew
    assert b.cache_folder is None and not b.loaded_from_cache
    assert b(np.zeros((1, 3, 4, 5), np.float32)).shape == (1, 3, 8, 10)


def test_openvino_refuses_what_is_no_wdsr_model(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from wdsr_cli.core.inference.backends import OpenVinoBackend

    with pytest.raises(WdsrError, match="does not exist"):
        OpenVinoBackend(tmp_path / "none.onnx")
    with pytest.raises(WdsrError, match="unknown precision 'fp16'"):
        OpenVinoBackend(SHIPPED, "fp16")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(WdsrError, match="not an ONNX model that OpenVINO can load"):
        OpenVinoBackend(bad)
    # an image in, two out: it compiles and runs, and is still no wdsr model
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 3, None, None])
          for n in ("x", "a", "b")]
    nodes = [helper.make_node("Identity", ["x"], [o.name]) for o in io[1:]]
    two = tmp_path / "two.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", io[:1], io[1:])), str(two))
    with pytest.raises(WdsrError) as e:
        OpenVinoBackend(two)
    assert e.value.message == f"'{two}' has 1 inputs and 2 outputs; a wdsr model has one of each"


def test_import_openvino_without_it_names_the_extra(monkeypatch):
    from wdsr_cli.core.inference.backends import ov as O

    assert O.import_openvino() is ov
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(WdsrError) as e:
        O.import_openvino()
    assert e.value.message == "OpenVINO is not installed"
    assert e.value.hint == "install the OpenVINO extra: pip install 'wdsr-cli[openvino]'"


def test_an_openvino_without_the_cache_property_claims_no_cache_hit(monkeypatch, tmp_path):
    from wdsr_cli.core.inference.backends import OpenVinoBackend

    class Older:  # a compiled model of an OpenVINO that has no LOADED_FROM_CACHE
        def __init__(self, compiled):
            self._compiled = compiled

        def __getattr__(self, name):
            return getattr(self._compiled, name)

        def get_property(self, name):
            raise RuntimeError(f"unsupported property {name}")

    class Core(ov.Core):
        def compile_model(self, *args):
            return Older(super().compile_model(*args))

    OpenVinoBackend(SHIPPED, "fp32", tmp_path)
    monkeypatch.setattr(ov, "Core", Core)
    b = OpenVinoBackend(SHIPPED, "fp32", tmp_path)  # a cached blob, but no word of it
    assert b.loaded_from_cache is False and b._property("ANY", 7) == 7
    assert b(np.zeros((1, 3, 4, 4), np.float32)).shape == (1, 3, 8, 8)

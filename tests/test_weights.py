"""core/inference/weights.py: which weights run and on which backend; the ONNX form of a checkpoint
(tied to it by sha256, parity checked when made, refused when wrong); no MindSpore import on the
ONNX Runtime path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL, one_line_error, run_wdsr, save_tiny_checkpoint

from wdsr_cli.core.checkpoints import bundled_checkpoint
from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.fileio import sha256_file
from wdsr_cli.core.inference import weights as W
from wdsr_cli.core.inference.contract import read_contract


@pytest.fixture(scope="module")
def ckpts(ms_cpu, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("weights")
    return {"x2": save_tiny_checkpoint(d / "tiny_x2.ckpt", 2, step=11),
            "x3": save_tiny_checkpoint(d / "tiny_x3.ckpt", 3, step=5)}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache of ONNX forms for one test."""
    monkeypatch.setenv("WDSR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def _image(path: Path, h: int = 19, w: int = 23) -> Path:
    from wdsr_cli.core.data.images import Image, write_image

    rng = np.random.default_rng(4)
    write_image(path, Image(pixels=rng.integers(0, 256, (h, w, 3)).astype(np.uint8)))
    return path


# ------------------------------------------------------------------- naming the weights


def test_nothing_means_the_bundled_weights_on_onnx_runtime():
    w = W.resolve()
    assert (w.kind, w.path, w.scale, w.why) == ("checkpoint", bundled_checkpoint(2), 2,
                                                 "bundled weights")
    assert w.backend in ("onnxruntime", "openvino") and w.backend_why.startswith("auto: ")
    assert w.precision == "fp32"  # the library's default (upscale asks for auto)
    assert w.onnx_form == bundled_checkpoint(2).with_suffix(".onnx")  # shipped, no cache needed
    assert isinstance(w.step, int) and w.step > 0
    assert W.resolve(scale=4).path == bundled_checkpoint(4)
    assert W.resolve("bundled", scale=3).path == bundled_checkpoint(3)


def test_bundled_alias_and_missing_files_are_named():
    with pytest.raises(WdsrError, match="no bundled x8 weights") as e:
        W.resolve("bundled", scale=8)
    assert "2, 3, 4" in e.value.hint
    with pytest.raises(WdsrError, match="no bundled x8 weights yet") as e:
        W.resolve(scale=8)  # upscale's default
    assert "--checkpoint" in e.value.hint
    with pytest.raises(WdsrError, match="checkpoint 'nope.ckpt' does not exist"):
        W.resolve("nope.ckpt")
    with pytest.raises(WdsrError, match="unknown backend 'tpu'"):
        W.resolve(backend="tpu")


def test_a_checkpoint_knows_its_scale_and_step(ckpts):
    w = W.resolve(ckpts["x3"], backend="mindspore")
    assert (w.scale, w.step, w.why, w.backend, w.onnx_form) == (3, 5, "--checkpoint",
                                                                 "mindspore", None)
    with pytest.raises(WdsrError, match=r"'.*tiny_x2.ckpt' is a x2 model, but the scale asked "
                                        r"for is x3") as e:
        W.resolve(ckpts["x2"], scale=3, backend="mindspore")
    assert e.value.hint == "pass --scale 2 or a x3 checkpoint"


def test_newest_run_of_the_scale_else_bundled(ckpts, tmp_path):
    runs = tmp_path / "runs"
    for i, (run, ckpt) in enumerate((("old-x2", "x2"), ("new-x3", "x3"))):
        (runs / run).mkdir(parents=True)
        shutil.copy(ckpts[ckpt], runs / run / "best.ckpt")
        os.utime(runs / run / "best.ckpt", (1_700_000_000 + i,) * 2)
    w = W.resolve(scale=2, default="newest", runs_dir=runs, backend="mindspore")
    assert (w.path, w.why, w.step) == (runs / "old-x2" / "best.ckpt", W.NEWEST_RUN, 11)
    assert W.resolve(scale=4, default="newest", runs_dir=runs).path == bundled_checkpoint(4)
    with pytest.raises(WdsrError, match=r"no x8 checkpoint found \(runs/ has best.ckpt for x2, "
                                        r"x3\) and no bundled x8 weights"):
        W.resolve(scale=8, default="newest", runs_dir=runs)


def test_exported_models_run_on_their_own_engine(tmp_path):
    shipped = bundled_checkpoint(2).with_suffix(".onnx")
    model = tmp_path / "m.onnx"
    shutil.copy(shipped, model)
    shutil.copy(f"{shipped}.json", f"{model}.json")
    w = W.resolve(model=model, backend="onnxruntime")
    assert (w.kind, w.scale, w.backend, w.why) == ("onnx", 2, "onnxruntime", "--model")
    assert W.resolve(model=model, backend="openvino").backend == "openvino"
    assert W.resolve(model=model).backend in ("onnxruntime", "openvino")
    with pytest.raises(WdsrError, match="is a ONNX model, which runs on ONNX Runtime, not "
                                        "--backend mindspore"):
        W.resolve(model=model, backend="mindspore")
    with pytest.raises(WdsrError, match="is a x2 model, but the scale asked for is x4"):
        W.resolve(model=model, scale=4)
    with pytest.raises(WdsrError, match="give --checkpoint or --model, not both"):
        W.resolve("bundled", model=model)
    with pytest.raises(WdsrError, match="is not an exported model"):
        W.resolve(model=bundled_checkpoint(2))


# ------------------------------------------------------------------------ choosing backends


def _cpu(monkeypatch, flags: str, native_bf16: bool) -> None:
    """Pretend to run on a CPU with these flags (and OpenVINO's word on bf16)."""
    from wdsr_cli.core.inference import device

    monkeypatch.setattr(device, "_FACTS", device.CpuFacts("Test CPU", "25", "17",
                                                          frozenset(flags.split())))
    monkeypatch.setattr(device, "_NATIVE", native_bf16)


# (CPU flags, native bf16) -> (fp32 engine, auto engine, auto precision): the measured rule
# (core/inference/device.py): bf16 where native, OpenVINO fp32 only on AMX CPUs
RULE = {
    "sapphire rapids": ("avx2 avx512f avx512_bf16 amx_bf16", True,
                        ("openvino", "openvino", "bf16")),
    "zen 4": ("avx2 avx512f avx512_bf16", True, ("onnxruntime", "openvino", "bf16")),
    "zen 3": ("avx2", False, ("onnxruntime", "onnxruntime", "fp32")),
}


@pytest.mark.parametrize("cpu", sorted(RULE))
def test_auto_follows_the_measured_rule_per_cpu(monkeypatch, cpu):
    flags, native, (fp32_engine, auto_engine, auto_precision) = RULE[cpu]
    _cpu(monkeypatch, flags, native)
    w = W.resolve(precision="fp32")
    assert (w.backend, w.precision) == (fp32_engine, "fp32")
    w = W.resolve(precision="auto")
    assert (w.backend, w.precision) == (auto_engine, auto_precision)
    assert w.backend_why.startswith("auto: ") and w.precision_why.startswith("auto: ")
    if native:
        assert W.resolve(precision="bf16").backend == "openvino"
    else:
        with pytest.raises(WdsrError, match="has no native bf16"):
            W.resolve(precision="bf16", backend="openvino")


def test_auto_takes_what_is_installed(monkeypatch):
    _cpu(monkeypatch, "avx2 avx512f avx512_bf16", True)
    assert W.resolve(device_target="GPU").backend_why == "auto: GPU device"
    assert W.resolve(device_target="GPU").backend == "mindspore"
    assert W.resolve(backend="mindspore").backend == "mindspore"
    with pytest.raises(WdsrError, match="--precision bf16 runs on OpenVINO only"):
        W.resolve(backend="onnxruntime", precision="bf16")
    monkeypatch.setattr(W, "_installed", lambda module: module != "onnxruntime")
    w = W.resolve()
    assert (w.backend, w.precision) == ("openvino", "fp32")
    monkeypatch.setattr(W, "_installed", lambda module: module not in ("onnxruntime",
                                                                       "openvino"))
    w = W.resolve(precision="auto")
    assert (w.backend, w.precision) == ("mindspore", "fp32")
    assert w.backend_why == "auto: no ONNX engine: ONNX Runtime is not installed"
    assert w.onnx_form is None
    with pytest.raises(WdsrError, match="--backend onnxruntime needs ONNX Runtime, which is "
                                        "not installed") as e:
        W.resolve(backend="onnxruntime")
    assert "pip install 'wdsr-cli[onnx]'" in e.value.hint
    with pytest.raises(WdsrError, match="--backend openvino needs OpenVINO, which is not "
                                        "installed") as e:
        W.resolve(backend="openvino")
    assert "pip install 'wdsr-cli[openvino]'" in e.value.hint


BLOCK_ORT = "import sys; sys.modules['onnxruntime'] = None\n"  # as if it were not installed


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("command", ["upscale", "evaluate"])
def test_onnxruntime_requested_but_missing_is_one_line(command, tmp_path):
    img = _image(tmp_path / "x.png")
    args = [str(img)] if command == "upscale" else ["--hr", str(tmp_path)]
    code = BLOCK_ORT + "from wdsr_cli.cli import main; main(sys.argv[1:])"
    res = _run_python(code, command, *args, "--backend", "onnxruntime")
    line = one_line_error(res)
    assert "--backend onnxruntime needs ONNX Runtime, which is not installed" in line
    assert not (tmp_path / "x_x2.png").exists()


# ------------------------------------------------------------------ no MindSpore with ORT

# Runs `wdsr upscale` in-process and prints whether MindSpore was imported.
NO_MINDSPORE = """
import sys
from wdsr_cli.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print("mindspore" in sys.modules)
"""


def test_the_onnx_runtime_path_never_imports_mindspore(tmp_path):
    img = _image(tmp_path / "x.png")
    res = _run_python(NO_MINDSPORE, "upscale", str(img), "-o", str(tmp_path / "ort.png"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False"
    assert "upscaled with ONNX Runtime" in res.stdout or "upscaled with OpenVINO" in res.stdout
    # the check can fail: the MindSpore backend does import it
    res = _run_python(NO_MINDSPORE, "upscale", str(img), "-o", str(tmp_path / "ms.png"),
                      "--backend", "mindspore")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "True"
    assert "upscaled with MindSpore" in res.stdout


# -------------------------------------------------------------- the ONNX form of a checkpoint


def test_the_onnx_form_is_made_once_checked_and_tied_to_the_checkpoint(ckpts, cache, tmp_path):
    from wdsr_cli.core.inference import Predictor
    from wdsr_cli.core.inference.export import PARITY_TOLERANCE

    w = W.resolve(ckpts["x2"], backend="onnxruntime")
    assert w.onnx_form is None and not cache.exists()
    predictor = W.load_predictor(w)
    form = cache / f"{sha256_file(ckpts['x2'])}.onnx"
    contract = read_contract(form)
    assert contract["checkpoint"]["sha256"] == sha256_file(ckpts["x2"])
    assert contract["parity"]["checked"] and contract["parity"]["passed"]
    assert contract["parity"]["max_abs_diff"] <= PARITY_TOLERANCE
    assert predictor.backend.name.startswith("ONNX Runtime")
    lr = np.random.default_rng(0).uniform(0, 255, (21, 26, 3)).astype(np.float32)
    want = Predictor.from_checkpoint(ckpts["x2"]).predict(lr)
    assert np.abs(predictor.predict(lr) - want).max() <= PARITY_TOLERANCE
    again = W.resolve(ckpts["x2"])  # found in the cache: auto takes it
    assert (again.onnx_form, again.backend, again.step) == (form, "onnxruntime", 11)

    # Another checkpoint (same size, other weights) does not match this form.
    other = save_tiny_checkpoint(tmp_path / "other.ckpt", 2)
    assert W.onnx_form(other) is None
    # The cached form runs later without MindSpore (its contract knows scale and step).
    img = _image(tmp_path / "x.png")
    res = _run_python(NO_MINDSPORE, "upscale", str(img), "--checkpoint", str(ckpts["x2"]))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False"


def _dcr_pixel_shuffle(monkeypatch):
    """Make export write DepthToSpace in DCR order (MindSpore's own op order): wrong for WDSR."""
    from wdsr_cli.core.inference import export

    real = export.make_onnx_dynamic

    def wrong(model, scale, dynamic=True):
        real(model, scale, dynamic)
        for node in model.graph.node:
            if node.op_type == "DepthToSpace":
                for attr in node.attribute:
                    if attr.name == "mode":
                        attr.s = b"DCR"
        return model

    monkeypatch.setattr(export, "make_onnx_dynamic", wrong)


def test_a_wrong_onnx_form_is_refused_and_not_cached(ckpts, cache, monkeypatch):
    from wdsr_cli.core.inference.export import ParityError

    _dcr_pixel_shuffle(monkeypatch)
    w = W.resolve(ckpts["x2"], backend="onnxruntime")
    with pytest.raises(ParityError, match="does not match the checkpoint") as e:
        W.load_predictor(w)
    assert not e.value.result["parity"]["passed"]
    assert not [p for p in cache.iterdir()]  # nothing written, no temporary left
    assert W.onnx_form(ckpts["x2"]) is None


def _perturbed_copy(src: Path, dst: Path) -> None:
    """``src`` (an ONNX form) with one weight (a tap of the 5x5 skip convolution) moved by
    0.01."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    kernels = {t.name: t for t in model.graph.initializer if len(t.dims) == 4}
    init = next(kernels[n.input[1]] for n in model.graph.node
                if n.op_type == "Conv" and list(kernels[n.input[1]].dims[2:]) == [5, 5])
    weights = numpy_helper.to_array(init).copy()
    weights[0, 0, 2, 2] += 0.01
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    onnx.save(model, str(dst))
    contract = json.loads(Path(f"{src}.json").read_text())
    contract["sha256"] = sha256_file(dst)
    Path(f"{dst}.json").write_text(json.dumps(contract))


def test_parity_rejects_one_perturbed_weight_and_accepts_the_shipped_forms(ms_cpu, tmp_path):
    from wdsr_cli.core.inference.export import parity_check

    ckpt = bundled_checkpoint(2)
    shipped = ckpt.with_suffix(".onnx")
    good = parity_check(shipped, read_contract(shipped), ckpt)
    assert good["checked"] and good["passed"], good
    wrong = tmp_path / "wrong.onnx"
    _perturbed_copy(shipped, wrong)
    bad = parity_check(wrong, read_contract(wrong), ckpt)
    assert bad["checked"] and not bad["passed"], bad


@pytest.mark.parametrize("kind", ["clean", "photo", "photo-low"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_shipped_onnx_forms_belong_to_the_bundled_checkpoints(scale, kind):
    ckpt = bundled_checkpoint(scale, kind)
    assert ckpt is not None, f"no bundled x{scale} {kind} weights"
    form = W.onnx_form(ckpt)
    assert form is not None and form[0] == ckpt.with_suffix(".onnx"), \
        "the bundled .ckpt changed: run `make bundled-onnx` (scripts/bundle_onnx.sh)"
    contract = form[1]
    assert contract["sha256"] == sha256_file(form[0])
    assert contract["scale"] == scale and contract["parity"]["passed"]


# ------------------------------------------------------------------------ the commands


def test_evaluate_reports_the_backend_that_ran(ckpts, tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    _image(hr / "a.png", 24, 30)
    res = run_wdsr("evaluate", "--hr", str(hr), "--json", "-", "--backend", "mindspore",
                   "--checkpoint", str(ckpts["x2"]))
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["backend"].startswith("MindSpore") and result["checkpoint_step"] == 11
    assert "backend: MindSpore (--backend mindspore)" in res.stderr


# ------------------------------------------------------------- promises a sabotage must break


def test_the_newest_of_two_runs_of_the_scale_is_the_default(ckpts, ms_cpu, tmp_path):
    runs = tmp_path / "runs"
    newer = save_tiny_checkpoint(tmp_path / "newer.ckpt", 2, step=99)
    for run, src in (("a", ckpts["x2"]), ("b", newer)):
        (runs / run).mkdir(parents=True)
        shutil.copy(src, runs / run / "best.ckpt")
    for order in (("a", "b"), ("b", "a")):  # the later mtime wins, whatever the names say
        for i, run in enumerate(order):
            os.utime(runs / run / "best.ckpt", (1_700_000_000 + i,) * 2)
        w = W.resolve(scale=2, default="newest", runs_dir=runs, backend="mindspore")
        assert w.path == runs / order[1] / "best.ckpt"
        assert w.step == (99 if order[1] == "b" else 11)


def test_a_retrained_checkpoint_never_runs_the_old_form_next_to_it(ckpts, cache, tmp_path):
    """best.onnx beside best.ckpt records the sha256 of the checkpoint it was made from; once
    best.ckpt is replaced by a newer training, that form is not this checkpoint's."""
    shipped = bundled_checkpoint(2)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(shipped, run / "best.ckpt")
    shutil.copy(shipped.with_suffix(".onnx"), run / "best.onnx")
    shutil.copy(f"{shipped.with_suffix('.onnx')}.json", run / "best.onnx.json")
    assert W.onnx_form(run / "best.ckpt")[0] == run / "best.onnx"  # the form fits, for now
    save_tiny_checkpoint(run / "best.ckpt", 2, step=99)  # retrained in place
    assert W.onnx_form(run / "best.ckpt") is None
    w = W.resolve(run / "best.ckpt")
    assert w.onnx_form is None and w.step == 99


# ------------------------------------------------- edges found by mutation testing (issue 34)

def test_the_reasons_of_the_automatic_choice_are_exact():
    """The reason is what the summary and the table show for each input."""
    assert W.bundled_kind("auto", W.PHOTO_MAX_QUALITY + 3, 2) == (
        "clean", f"auto: JPEG q~{W.PHOTO_MAX_QUALITY + 3}; nearly lossless")
    assert W.bundled_kind("auto", 75, 8) == (
        "clean", "auto: JPEG q~75; no x8 photo weights are bundled")
    assert W.bundled_kind("auto", 81, None) == ("photo", "auto: JPEG q~81")
    assert W.bundled_kind("auto", 80, None) == ("photo-low", "auto: JPEG q~80; strongly compressed")
    # the table cell keeps the input's form only; what else decided it stays in the JSON
    assert W.brief("auto: JPEG q~70; strongly compressed") == "JPEG q~70"
    assert W.brief("auto: noisy JPEG q~98; noise ~0.0 colour, ~3.2 brightness") == \
        "noisy JPEG q~98"
    assert W.brief("auto: lossless input") == "lossless input"
    assert W.brief("--weights photo") == "--weights photo"


def test_named_bundled_weights_default_to_clean_x2():
    assert W.named_checkpoint("bundled", None) == bundled_checkpoint(2, "clean")
    assert W.named_checkpoint("bundled", 3, bundled="photo") == bundled_checkpoint(3, "photo")
    with pytest.raises(WdsrError) as e:
        W.named_checkpoint("bundled", 8, bundled="photo")
    assert e.value.message == "this version of wdsr has no bundled x8 photo weights"
    with pytest.raises(WdsrError) as e:
        W.named_checkpoint("bundled", 8)
    assert e.value.message == "this version of wdsr has no bundled x8 weights"
    assert W.named_checkpoint(None, 2) is None


def test_a_folder_named_as_checkpoint_suggests_its_best_ckpt(tmp_path):
    with pytest.raises(WdsrError) as e:
        W.named_checkpoint(tmp_path, 2, what="--init")
    assert e.value.message == f"--init '{tmp_path}' is a folder, not a checkpoint file"
    assert e.value.hint == f"pass a .ckpt file, e.g. {tmp_path / 'best.ckpt'}"


def test_an_unreadable_newer_run_is_passed_over(ckpts, tmp_path):
    runs = tmp_path / "runs"
    for run in ("good", "torn"):
        (runs / run).mkdir(parents=True)
    shutil.copy(ckpts["x2"], runs / "good" / "best.ckpt")
    (runs / "torn" / "best.ckpt").write_bytes(b"not a checkpoint")
    for i, run in enumerate(("good", "torn")):
        os.utime(runs / run / "best.ckpt", (1_700_000_000 + i,) * 2)
    w = W.resolve(scale=2, default="newest", runs_dir=runs, backend="mindspore")
    assert w.path == runs / "good" / "best.ckpt"


def test_the_reasons_of_the_engine_choice_are_exact(monkeypatch):
    _cpu(monkeypatch, "avx2 avx512f avx512_bf16", True)
    assert W._choose_engine("onnxruntime", "fp32", "CPU", None)[:2] == (
        "onnxruntime", "--backend onnxruntime")
    assert W._choose_engine("mindspore", "fp32", "CPU", None)[:2] == (
        "mindspore", "--backend mindspore")
    assert W._choose_engine("auto", "auto", "CPU", None)[:2] == (
        "openvino", "auto: bf16 native on this CPU: OpenVINO bf16 measured 2.1-3.5x faster "
        "than fp32")
    monkeypatch.setattr(W, "_installed", lambda module: module != "onnxruntime")
    assert W._choose_engine("auto", "fp32", "CPU", Path("form.onnx"))[:2] == (
        "openvino", "auto: ONNX Runtime is not installed")
    monkeypatch.setattr(W, "_installed", lambda module: module != "onnx")  # no ONNX form maker
    assert W._choose_engine("auto", "fp32", "CPU", None)[:2] == (
        "mindspore", "auto: no ONNX engine: the 'onnx' and 'onnxruntime' packages (to make "
        "the ONNX form) is not installed")
    with pytest.raises(WdsrError) as e:
        W._choose_engine("onnxruntime", "fp32", "CPU", None)
    assert e.value.message == "--backend onnxruntime needs the 'onnx' and 'onnxruntime' " \
        "packages (to make the ONNX form of this checkpoint), which is not installed"


def test_an_openvino_cpu_without_openvino_falls_back_to_onnx_runtime(monkeypatch):
    _cpu(monkeypatch, "avx2 avx512f avx512_bf16 amx_bf16", True)  # fp32 engine: OpenVINO
    monkeypatch.setattr(W, "_installed", lambda module: module != "openvino")
    assert W._choose_engine("auto", "fp32", "CPU", Path("form.onnx"))[:2] == (
        "onnxruntime", "auto: OpenVINO is not installed")


def test_an_exported_model_says_why_its_engine_and_precision(tmp_path, monkeypatch):
    _cpu(monkeypatch, "avx2", False)
    shipped = bundled_checkpoint(2).with_suffix(".onnx")
    model = tmp_path / "m.onnx"
    shutil.copy(shipped, model)
    shutil.copy(f"{shipped}.json", f"{model}.json")
    w = W.resolve(model=model, precision="fp32")
    assert w.backend_why.startswith("a ONNX model, auto: ") and w.step == 4000
    assert (w.precision, w.precision_why) == ("fp32", "--precision fp32")
    w = W.resolve(model=model, backend="onnxruntime", precision="auto")
    assert (w.backend_why, w.precision, w.precision_why) == (
        "--backend onnxruntime", "fp32", "auto: ONNX Runtime runs fp32 only")
    mindir = tmp_path / "m.mindir"  # a stand-in: resolving reads only the contract
    shutil.copy(shipped, mindir)
    shutil.copy(f"{shipped}.json", f"{mindir}.json")
    w = W.resolve(model=mindir, precision="auto")
    assert (w.kind, w.backend, w.backend_why, w.precision, w.precision_why, w.step) == (
        "mindir", "mindspore", "a MINDIR model", "fp32", "auto: MindSpore runs fp32 only", 4000)
    assert W.resolve(model=mindir, precision="fp32").precision_why == "--precision fp32"
    assert W.resolve(model=mindir, backend="mindspore").backend == "mindspore"
    with pytest.raises(WdsrError, match="runs on OpenVINO only, and '.*' is a MINDIR model"):
        W.resolve(model=mindir, precision="bf16")
    with pytest.raises(WdsrError, match="is a MINDIR model, which runs on MindSpore, not "
                                        "--backend onnxruntime"):
        W.resolve(model=mindir, backend="onnxruntime")


def test_the_reasons_of_the_precision_choice_are_exact(monkeypatch):
    _cpu(monkeypatch, "avx2 avx512f avx512_bf16", True)
    form = Path("form.onnx")
    assert W._choose_engine("onnxruntime", "fp32", "CPU", form)[2:] == ("fp32", "--precision fp32")
    assert W._choose_engine("onnxruntime", "auto", "CPU", form)[2:] == (
        "fp32", "auto: ONNX Runtime runs fp32 only")
    assert W._choose_engine("openvino", "bf16", "CPU", form)[2:] == ("bf16", "--precision bf16")
    assert W._choose_engine("auto", "auto", "CPU", form)[2:] == (
        "bf16", "auto: native bf16 on this CPU, measured faster (within the checked tolerance)")
    _cpu(monkeypatch, "avx2", False)
    assert W._choose_engine("openvino", "auto", "CPU", form)[2:] == (
        "fp32", "auto: no native bf16 on this CPU")
    _cpu(monkeypatch, "avx2 avx512f avx512_bf16", True)
    monkeypatch.setattr(W, "_installed", lambda module: module != "openvino")
    with pytest.raises(WdsrError, match="runs on OpenVINO, which cannot run here"):
        W._choose_engine("auto", "bf16", "CPU", form)


def test_what_bundled_means_is_recorded_and_runs_is_the_default_folder(ckpts, tmp_path,
                                                                        monkeypatch):
    assert W.resolve("bundled", scale=3, bundled="photo").bundled == "photo"
    assert W.resolve(scale=3).bundled == "clean"  # nothing given: the bundled weights
    assert W.resolve(ckpts["x2"]).bundled is None and W.resolve(ckpts["x2"]).device_id == 0
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "a").mkdir(parents=True)
    shutil.copy(ckpts["x3"], tmp_path / "runs" / "a" / "best.ckpt")
    w = W.resolve(scale=3, default="newest", backend="mindspore")
    assert (w.why, w.step) == (W.NEWEST_RUN, 5)
    assert W.resolve(scale=3, default="bundled").path == bundled_checkpoint(3)


def test_an_onnx_model_without_an_onnx_engine_is_refused(tmp_path, monkeypatch):
    shipped = bundled_checkpoint(2).with_suffix(".onnx")
    model = tmp_path / "m.onnx"
    shutil.copy(shipped, model)
    shutil.copy(f"{shipped}.json", f"{model}.json")
    monkeypatch.setattr(W, "_installed", lambda module: module not in ("onnxruntime",
                                                                       "openvino"))
    with pytest.raises(WdsrError, match="this ONNX model needs ONNX Runtime or OpenVINO"):
        W.resolve(model=model)


def test_scale_messages_name_what_was_given(tmp_path, monkeypatch):
    shipped = bundled_checkpoint(2).with_suffix(".onnx")
    model = tmp_path / "m.onnx"
    shutil.copy(shipped, model)
    shutil.copy(f"{shipped}.json", f"{model}.json")
    with pytest.raises(WdsrError) as e:
        W.resolve(model=model, scale=4)
    assert e.value.message == f"model '{model}' is a x2 model, but the scale asked for is x4"
    (tmp_path / "runs").mkdir()
    with pytest.raises(WdsrError) as e:
        W.resolve(scale=8, default="newest", runs_dir=tmp_path / "runs")
    assert e.value.message == "no x8 checkpoint found and no bundled x8 weights"



# ------------------------------------- the ONNX form cache, field by field (mutation, issue 34)

def _form_copy(dst: Path, kind: str = "clean") -> tuple[Path, dict]:
    """The shipped x2 form (a checked, any-size ONNX form of the bundled checkpoint) copied to
    ``dst`` with its contract; (path, contract)."""
    shipped = bundled_checkpoint(2, kind).with_suffix(".onnx")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shipped, dst)
    shutil.copy(f"{shipped}.json", f"{dst}.json")
    return dst, read_contract(dst)


def _edit_contract(path: Path, **changes) -> None:
    contract = json.loads(Path(f"{path}.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            contract[key] = {**contract.get(key, {}), **value}
        else:
            contract[key] = value
    Path(f"{path}.json").write_text(json.dumps(contract))


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WDSR_CACHE_DIR", "~/mine")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert W.cache_dir() == tmp_path / "home" / "mine"
    monkeypatch.setenv("WDSR_CACHE_DIR", "")  # empty: not set
    assert W.cache_dir() == tmp_path / "xdg" / "wdsr"
    monkeypatch.delenv("WDSR_CACHE_DIR")
    assert W.cache_dir() == tmp_path / "xdg" / "wdsr"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert W.cache_dir() == tmp_path / "home" / ".cache" / "wdsr"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert W.cache_dir() == tmp_path / "home" / ".cache" / "wdsr"


def test_a_form_is_taken_only_when_every_recorded_fact_holds(tmp_path, monkeypatch):
    """Each fact of the contract that ties a form to its checkpoint is checked by itself."""
    path, good = _form_copy(tmp_path / "m.onnx")
    sha = good["checkpoint"]["sha256"]
    assert W._form_contract(tmp_path / "none.onnx", sha) == (None, None)
    assert W._form_contract(path, sha) == (good, None)
    cases = {
        "it is not an any-size ONNX model": [{"format": "mindir"}, {"input_size": [8, 8]}],
        "it was made from another checkpoint": [{"checkpoint": {"sha256": "0" * 64}},
                                                {"checkpoint": {"step": 1, "sha256": None}}],
        "it has no passed parity check": [{"parity": {"checked": False}},
                                          {"parity": {"passed": False}}, {"parity": None}],
        "the file is not the one its contract describes (changed or truncated)": [
            {"bytes": good["bytes"] + 1}, {"sha256": "0" * 64}],
    }
    for why, edits in cases.items():
        for edit in edits:
            _form_copy(path)
            _edit_contract(path, **edit)
            assert W._form_contract(path, sha) == (None, why), edit
    _form_copy(path)
    assert W._form_contract(path, "f" * 64) == (None, "it was made from another checkpoint")
    Path(f"{path}.json").write_text("{")
    assert W._form_contract(path, sha) == (
        None, f"its contract is unreadable: contract file '{path}.json' is unreadable")
    Path(f"{path}.json").unlink()  # a form being written: its contract comes last
    assert W._form_contract(path, sha) == (None, None)
    _form_copy(path)
    for error, words in ((OSError(5, "Input/output error"), "Input/output error"),
                         (OSError("gone"), "gone")):
        def unreadable(p, error=error):
            raise error
        monkeypatch.setattr(W, "sha256_file", unreadable)
        assert W._form_contract(path, sha) == (None, f"it cannot be read: {words}")


def test_a_discarded_form_leaves_nothing_and_a_stuck_one_is_one_error(tmp_path):
    path, _ = _form_copy(tmp_path / "c.onnx")
    W._discard(path)
    assert not path.exists() and not Path(f"{path}.json").exists()
    path.write_bytes(b"a form whose contract never came")
    W._discard(path)  # a missing contract is no error
    assert not path.exists()
    W._discard(path)  # nor is nothing at all
    stuck = tmp_path / "d.onnx"
    stuck.mkdir()
    Path(f"{stuck}.json").write_text("{}")
    with pytest.raises(WdsrError) as e:
        W._discard(stuck)
    assert e.value.message == (f"the cached ONNX form '{stuck}' failed its check and cannot be "
                               "removed: Is a directory")
    assert e.value.hint == W.CACHE_HINT


def _notes(call):
    import warnings

    from wdsr_cli.core.errors import WdsrNote

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in seen if issubclass(w.category, WdsrNote)]


def test_a_damaged_cached_form_is_removed_and_a_good_one_taken(cache, tmp_path):
    ckpt = tmp_path / "w.ckpt"
    shutil.copy(bundled_checkpoint(2), ckpt)
    sha = sha256_file(ckpt)
    cached = cache / f"{sha}.onnx"
    _form_copy(cached)
    assert _notes(lambda: W.onnx_form(ckpt)) == ((cached, read_contract(cached)), [])
    (cache / f".{sha}.onnx.wdsr-tmp-999999999").write_bytes(b"x")  # a dead maker's leftover
    cached.write_bytes(cached.read_bytes()[:1000])
    found, notes = _notes(lambda: W.onnx_form(ckpt))
    assert found is None and not cached.exists() and not Path(f"{cached}.json").exists()
    assert notes == [f"the cached ONNX form '{cached}' failed its check (the file is not the "
                     "one its contract describes (changed or truncated)): it was removed and is "
                     "made again"]
    # the sha256 given is the one looked up: the checkpoint itself is not read again
    _form_copy(cached)
    assert W.onnx_form(tmp_path / "gone.ckpt", sha)[0] == cached


def test_a_damaged_form_beside_the_checkpoint_is_noted_once_and_left(cache, tmp_path,
                                                                     monkeypatch):
    real = W.sha256_file
    for n, damage in enumerate(("truncated", "contract", "unreadable")):
        ckpt = tmp_path / f"r{n}" / "best.ckpt"
        beside, _ = _form_copy(ckpt.with_suffix(".onnx"))
        shutil.copy(bundled_checkpoint(2), ckpt)
        if damage == "truncated":
            beside.write_bytes(beside.read_bytes()[:-1])
        elif damage == "contract":
            Path(f"{beside}.json").write_text("[")
        else:
            def unreadable(p):
                if Path(p).suffix == ".onnx":
                    raise OSError(5, "Input/output error")
                return real(p)
            monkeypatch.setattr(W, "sha256_file", unreadable)
        found, notes = _notes(lambda ckpt=ckpt: W.onnx_form(ckpt))
        assert found is None and beside.exists() and Path(f"{beside}.json").exists()
        assert len(notes) == 1 and notes[0].startswith(
            f"'{beside}' is not a usable ONNX form of '{ckpt}' (")
        assert notes[0].endswith("): not used")
        assert _notes(lambda ckpt=ckpt: W.onnx_form(ckpt)) == (None, [])  # once per process
    monkeypatch.setattr(W, "sha256_file", real)
    # a damaged form beside is passed over for a good one in the cache
    ckpt = tmp_path / "r0" / "best.ckpt"
    cached, contract = _form_copy(cache / f"{sha256_file(ckpt)}.onnx")
    assert W.onnx_form(ckpt) == (cached, contract)


def test_another_checkpoints_form_beside_it_is_passed_over_silently(cache, tmp_path):
    """A retrained best.ckpt next to the old best.onnx: no note (an export of another
    checkpoint is not damage), nothing removed, and the old form is never taken."""
    run = tmp_path / "run"
    beside, _ = _form_copy(run / "best.onnx")
    save_tiny_checkpoint(run / "best.ckpt", 2, step=99)
    assert _notes(lambda: W.onnx_form(run / "best.ckpt")) == (None, [])
    assert beside.exists()
    assert W.checkpoint_facts(run / "best.ckpt") == (2, 99)


def test_a_checkpoint_without_a_recorded_scale_takes_its_models(ms_cpu, tmp_path, cache,
                                                                monkeypatch):
    from wdsr_cli.core.checkpoints import save_checkpoint
    from wdsr_cli.core.config import Config, ModelConfig
    from wdsr_cli.core.model import build_model

    cfg = Config(model=ModelConfig(**{**TINY_MODEL, "scale": 3}))
    for scale in (None, "3"):
        meta = {"model": cfg.to_dict()["model"], "step": 7}
        if scale is not None:
            meta["scale"] = scale
        path = save_checkpoint(build_model(cfg.model), tmp_path / f"{scale}.ckpt", meta=meta)
        started = _started(monkeypatch)
        assert W.checkpoint_facts(path) == (3, 7)
        assert started == [("auto", 0)]  # the defaults: any device, the first
    # a form's contract answers without reading the checkpoint
    shipped = bundled_checkpoint(3)
    ckpt = tmp_path / "x3.ckpt"
    shutil.copy(shipped, ckpt)
    shutil.copy(shipped.with_suffix(".onnx"), ckpt.with_suffix(".onnx"))
    shutil.copy(f"{shipped.with_suffix('.onnx')}.json", f"{ckpt.with_suffix('.onnx')}.json")
    assert W.checkpoint_facts(ckpt) == (3, 3500)
    # (what the contract records wins: shown by a contract edited to say otherwise)
    _edit_contract(ckpt.with_suffix(".onnx"), scale=5, checkpoint={"step": 12345})
    assert W.checkpoint_facts(ckpt) == (5, 12345)


def _started(monkeypatch) -> list[tuple[str, int]]:
    calls: list[tuple[str, int]] = []
    real = W.start_mindspore
    monkeypatch.setattr(W, "start_mindspore", lambda t="auto", i=0: (calls.append((t, i)),
                                                                     real(t, i))[1])
    return calls


def test_load_predictor_runs_what_was_resolved(ckpts, cache, tmp_path, monkeypatch):
    from wdsr_cli.core.inference.export import export_model

    started = _started(monkeypatch)
    w = W.resolve(ckpts["x2"], backend="mindspore", device_target="CPU")
    started.clear()  # (resolve read the checkpoint with MindSpore)
    p = W.load_predictor(w, self_ensemble=True)
    assert (p.backend.name, p.source, p.self_ensemble) == ("MindSpore", str(ckpts["x2"]), True)
    assert started == [("CPU", 0)] and p.precision_check is None
    # a checkpoint whose form exists runs the form, starts no MindSpore and makes nothing
    ckpt = tmp_path / "run" / "best.ckpt"
    _form_copy(ckpt.with_suffix(".onnx"))
    shutil.copy(bundled_checkpoint(2), ckpt)
    started.clear()
    w = W.resolve(ckpt, backend="onnxruntime")
    p = W.load_predictor(w)
    assert w.onnx_form == ckpt.with_suffix(".onnx") and p.backend.name.startswith("ONNX Runtime")
    assert (p.source, p.meta, p.self_ensemble) == (str(ckpt), read_contract(w.onnx_form), False)
    assert started == [] and not cache.exists() and p.precision_check is None
    # exported models: ONNX as it is; MINDIR on MindSpore
    model = ckpt.with_suffix(".onnx")
    p = W.load_predictor(W.resolve(model=model, backend="openvino"), self_ensemble=True)
    assert (p.source, p.self_ensemble) == (str(model), True)
    assert p.backend.name.startswith("OpenVINO") and started == []
    mindir = tmp_path / "t.mindir"
    export_model(ckpts["x2"], "mindir", mindir, check=False)
    w = W.resolve(model=mindir)
    started.clear()
    p = W.load_predictor(w)
    assert (p.backend.name, p.source, p.scale) == ("MINDIR (MindSpore)", str(mindir), 2)
    assert started == [("CPU", 0)]


def test_a_reduced_precision_runs_only_after_its_check(tmp_path, cache, monkeypatch):
    from wdsr_cli.core.inference import precision as P
    from wdsr_cli.core.inference.device import cpu_facts

    model, contract = _form_copy(tmp_path / "m.onnx")
    asked: list[tuple] = []
    stages: list[str] = []

    def checked(cache_folder, sha256, engine, precision, cpu, scale, make):
        fp32, reduced = make()
        asked.append((cache_folder, sha256, engine, precision, cpu, scale,
                      fp32.backend.precision, reduced.backend.precision, reduced.scale,
                      reduced.receptive_radius, reduced.self_ensemble))
        return {"verdict": "passed"}

    monkeypatch.setattr(P, "ensure_checked", checked)
    w = W.Weights("onnx", model, 2, None, "--model", "openvino", "--backend openvino",
                  precision="bf16", precision_why="--precision bf16")
    p = W.load_predictor(w, on_stage=stages.append, self_ensemble=True)
    assert p.precision_check == {"verdict": "passed"} and p.backend.precision == "bf16"
    assert stages == ["checking bf16 against fp32 (once)"] and p.self_ensemble
    assert asked == [(W.cache_dir(), contract["sha256"], p.backend.name, "bf16",
                      cpu_facts().label, 2, "fp32", "bf16", 2, contract["receptive_radius"],
                      False)]
    assert W.load_predictor(w).precision_check == {"verdict": "passed"}  # no on_stage: fine
    old = _form_copy(tmp_path / "old.onnx")[0]  # a contract without the model's sha256
    _edit_contract(old, sha256=None)
    W.load_predictor(W.Weights("onnx", old, 2, None, "--model", "openvino", "",
                               precision="bf16", precision_why="--precision bf16"))
    assert asked[-1][1] == contract["sha256"]

    failed = {"uint8_max_diff": 3, "psnr_change_db": -0.01234}

    def refused(*args):
        raise P.PrecisionError("bf16 is outside its tolerance", None, failed)

    monkeypatch.setattr(P, "ensure_checked", refused)
    with pytest.raises(P.PrecisionError):  # asked for by name: refused
        W.load_predictor(w)
    auto = W.Weights("onnx", model, 2, None, "--model", "openvino", "auto: fastest here",
                     precision="bf16", precision_why="auto: native bf16")
    p = W.load_predictor(auto, self_ensemble=True)
    assert (p.backend.precision, p.precision_check, p.self_ensemble) == ("fp32", failed, True)
    assert p.precision_why == "auto: bf16 failed its check (3 levels, -0.0123 dB), so fp32"


def test_the_form_is_made_over_a_killed_makers_file_and_errors_name_the_cache(
        ckpts, cache, tmp_path, monkeypatch):
    from wdsr_cli.core import fileio
    from wdsr_cli.core.inference import export

    sha = sha256_file(ckpts["x2"])
    cache.mkdir(parents=True)
    (cache / f"{sha}.onnx").write_bytes(b"a killed maker's file: no contract yet")
    stages: list[str] = []
    started = _started(monkeypatch)
    assert W.make_onnx_form(ckpts["x2"], on_stage=stages.append) == cache / f"{sha}.onnx"
    assert started == [("CPU", 0)]  # the defaults
    assert W.onnx_form(ckpts["x2"]) == (cache / f"{sha}.onnx", read_contract(cache / f"{sha}.onnx"))
    assert stages  # the export says what it does
    for error, hint in ((WdsrError("cannot write 'x'", "choose another --output"), W.CACHE_HINT),
                        (WdsrError("the checkpoint is damaged", None), None)):
        def failing(*args, error=error, **kwargs):
            raise error
        monkeypatch.setattr(export, "export_model", failing)
        with pytest.raises(WdsrError) as e:
            W.make_onnx_form(ckpts["x2"])
        assert e.value.hint == hint
        assert e.value.message == (error.message if hint is None else
                                   "cannot make the ONNX form in the cache: cannot write 'x'")
    monkeypatch.setattr(fileio, "check_writable_folder", lambda folder, hint: None)

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setenv("WDSR_CACHE_DIR", str(tmp_path / "other"))
    monkeypatch.setattr(Path, "mkdir", full)
    with pytest.raises(WdsrError) as e:
        W.make_onnx_form(ckpts["x2"])
    assert e.value.message == (f"cannot create the cache folder '{tmp_path / 'other' / 'onnx'}': "
                               "No space left on device")
    assert e.value.hint == W.CACHE_HINT
    monkeypatch.undo()
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("WDSR_CACHE_DIR", str(tmp_path / "file"))
    with pytest.raises(WdsrError) as e:
        W.make_onnx_form(ckpts["x2"])
    assert e.value.hint == W.CACHE_HINT

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
from conftest import one_line_error, run_wdsr, save_tiny_checkpoint

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


@pytest.mark.parametrize("kind", ["clean", "photo"])
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
        "clean", f"auto: JPEG q~{W.PHOTO_MAX_QUALITY + 3}, nearly lossless")
    assert W.bundled_kind("auto", 75, 8) == (
        "clean", "auto: JPEG, but no x8 photo weights are bundled")
    assert W.bundled_kind("auto", 75, None) == ("photo", "auto: JPEG q~75")


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


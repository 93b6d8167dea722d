"""core/inference/contract.py and backends/__init__.py: the exported-model contract (what a
model written by ``wdsr export`` promises in ``<model>.json``) is checked field by field, and an
exported model runs only on an engine of its format, only with the contract of this very file.

In-process and fast: the shipped ONNX forms and one tiny MINDIR exported once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import save_tiny_checkpoint

from wdsr_cli.core.checkpoints import bundled_checkpoint
from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.inference import backends as B
from wdsr_cli.core.inference import contract as C

SHIPPED = bundled_checkpoint(2).with_suffix(".onnx")
REMOVE = object()


def _good() -> dict:
    return json.loads(Path(f"{SHIPPED}.json").read_text())


def _model(folder: Path, name: str = "m.onnx", **changes) -> Path:
    """The shipped x2 ONNX form copied as ``name`` with its contract (``changes`` applied;
    a value REMOVE removes the key)."""
    model = folder / name
    shutil.copy(SHIPPED, model)
    contract = {**_good(), **changes}
    Path(f"{model}.json").write_text(json.dumps({k: v for k, v in contract.items()
                                                 if v is not REMOVE}))
    return model


@pytest.fixture(scope="module")
def mindir(ms_cpu, tmp_path_factory) -> Path:
    from wdsr_cli.core.inference.export import export_model

    d = tmp_path_factory.mktemp("mindir")
    ckpt = save_tiny_checkpoint(d / "tiny.ckpt", 2)
    export_model(ckpt, "mindir", d / "tiny.mindir", check=False)
    return d / "tiny.mindir"


# ------------------------------------------------------------------------------ the contract


def test_the_contract_lives_next_to_the_model():
    assert C.contract_path("a/m.onnx") == Path("a/m.onnx.json")
    assert C.contract_path(Path("/x/m.mindir")) == Path("/x/m.mindir.json")
    assert C.MODEL_FORMATS == {".mindir": "mindir", ".onnx": "onnx"}


def test_a_good_contract_is_read_as_written(tmp_path):
    model = _model(tmp_path)
    assert C.read_contract(model) == _good()
    assert C.read_contract(str(model)) == _good()


def test_a_missing_or_unreadable_contract_is_one_error(tmp_path):
    model = tmp_path / "m.onnx"
    with pytest.raises(WdsrError) as e:
        C.read_contract(model)
    assert e.value.message == (f"exported model '{model}' has no contract file "
                               f"'{model}.json' next to it")
    Path(f"{model}.json").mkdir()  # a folder is no contract file either
    with pytest.raises(WdsrError, match="has no contract file"):
        C.read_contract(model)
    Path(f"{model}.json").rmdir()
    for text in (b"{", b"\xff\xfe{}"):
        Path(f"{model}.json").write_bytes(text)
        with pytest.raises(WdsrError) as e:
            C.read_contract(model)
        assert e.value.message == f"contract file '{model}.json' is unreadable"
        assert e.value.hint == "re-export with wdsr export"


BAD = [
    ([], "is not a JSON object"),
    ({"contract_version": None}, "has no contract_version"),
    ({"contract_version": "1"}, "has no contract_version"),
    ({"scale": 0}, "has no valid 'scale'"),
    ({"scale": True}, "has no valid 'scale'"),
    ({"scale": 2.0}, "has no valid 'scale'"),
    ({"scale": None}, "has no valid 'scale'"),
    ({"receptive_radius": -1}, "has no valid 'receptive_radius'"),
    ({"receptive_radius": False}, "has no valid 'receptive_radius'"),
    ({"receptive_radius": "9"}, "has no valid 'receptive_radius'"),
    ({"format": "tflite"}, "has no valid 'format'"),
    ({"format": None}, "has no valid 'format'"),
    ({"input_size": [8]}, "has an invalid 'input_size'"),
    ({"input_size": [8, 8, 8]}, "has an invalid 'input_size'"),
    ({"input_size": (8, 8)}, "has an invalid 'input_size'"),
    ({"input_size": [8, 0]}, "has an invalid 'input_size'"),
    ({"input_size": [0, 8]}, "has an invalid 'input_size'"),
    ({"input_size": [8, True]}, "has an invalid 'input_size'"),
    ({"input_size": [8.0, 8]}, "has an invalid 'input_size'"),
    ({"input_size": "8x8"}, "has an invalid 'input_size'"),
]


@pytest.mark.parametrize(("change", "what"), BAD, ids=[w + str(c) for c, w in BAD])
def test_each_bad_field_is_named(change, what):
    contract = change if isinstance(change, list) else {**_good(), **change}
    with pytest.raises(WdsrError) as e:
        C.check_contract(contract, "where.json")
    assert (e.value.message, e.value.hint) == (f"contract file 'where.json' {what}",
                                               "re-export with wdsr export")


def test_the_edges_of_each_field_are_accepted():
    for change in ({"scale": 1}, {"receptive_radius": 0}, {"format": "mindir"},
                   {"format": "air"}, {"input_size": [1, 1]}, {"input_size": [12, 10]},
                   {"input_size": None}, {"contract_version": C.CONTRACT_VERSION},
                   {"contract_version": 0}):
        contract = {**_good(), **change}
        assert C.check_contract(contract, "w.json") is contract


def test_a_contract_of_a_newer_wdsr_is_refused():
    assert C.CONTRACT_VERSION == 1
    with pytest.raises(WdsrError) as e:
        C.check_contract({**_good(), "contract_version": 2}, "w.json")
    assert e.value.message == "contract file 'w.json' was written by a newer wdsr"


# -------------------------------------------------------------------- loading an exported model


def test_the_format_comes_from_the_suffix(tmp_path):
    for name, fmt in (("a.onnx", "onnx"), ("b.ONNX", "onnx"), ("c.mindir", "mindir"),
                      ("d.MindIR", "mindir")):
        (tmp_path / name).write_bytes(b"x")
        assert B.model_format(tmp_path / name) == fmt
    (tmp_path / "e.ckpt").write_bytes(b"x")
    with pytest.raises(WdsrError, match="is not an exported model"):
        B.model_format(tmp_path / "e.ckpt")
    with pytest.raises(WdsrError, match="does not exist"):
        B.model_format(tmp_path / "f.onnx")
    (tmp_path / "g.onnx").mkdir()
    with pytest.raises(WdsrError, match="does not exist"):
        B.model_format(tmp_path / "g.onnx")


def test_onnx_runs_on_onnx_runtime_unless_openvino_is_asked(tmp_path, monkeypatch):
    model = _model(tmp_path)
    backend, contract = B.load_exported(model)
    assert isinstance(backend, B.OnnxBackend) and contract == _good()
    backend, _ = B.load_exported(model, engine="onnxruntime")
    assert isinstance(backend, B.OnnxBackend)
    monkeypatch.setenv("WDSR_CACHE_DIR", str(tmp_path / "cache"))
    backend, _ = B.load_exported(model, engine="openvino")  # compiled blobs: the wdsr cache
    assert isinstance(backend, B.OpenVinoBackend) and backend.precision == "fp32"
    assert backend.cache_folder.parent == tmp_path / "cache" / "openvino"
    assert backend.cache_folder.name.startswith(_good()["sha256"] + "-fp32-")
    backend, _ = B.load_exported(model, engine="openvino", precision="bf16",
                                 cache=tmp_path / "own")
    assert backend.precision == "bf16" and backend.cache_folder.parent == tmp_path / "own" / \
        "openvino"
    for engine in ("mindspore", "tensorrt"):
        with pytest.raises(WdsrError) as e:
            B.load_exported(model, engine=engine)
        assert e.value.message == f"'{model}' is a ONNX model, which {engine} does not run"
        assert e.value.hint == "choose onnxruntime or openvino"
    with pytest.raises(WdsrError) as e:
        B.load_exported(model, engine="onnxruntime", precision="bf16")
    assert (e.value.message, e.value.hint) == ("onnxruntime runs fp32 only, not bf16",
                                               "use --precision fp32")


def test_mindir_runs_on_mindspore_only(mindir):
    backend, contract = B.load_exported(mindir)
    assert isinstance(backend, B.MindIRBackend) and contract["format"] == "mindir"
    assert isinstance(B.load_exported(mindir, engine="mindspore")[0], B.MindIRBackend)
    with pytest.raises(WdsrError) as e:
        B.load_exported(mindir, engine="onnxruntime")
    assert (e.value.message, e.value.hint) == (
        f"'{mindir}' is a MINDIR model, which onnxruntime does not run", "choose mindspore")
    with pytest.raises(WdsrError, match="mindspore runs fp32 only, not bf16"):
        B.load_exported(mindir, precision="bf16")


def test_the_contract_must_describe_this_very_file(tmp_path):
    model = _model(tmp_path, format="mindir")
    with pytest.raises(WdsrError) as e:
        B.load_exported(model)
    assert e.value.message == (f"contract file '{model}.json' describes a mindir model, not "
                               f"'{model}'")
    assert e.value.hint == "re-export with wdsr export"
    model = _model(tmp_path, sha256="0" * 64)
    with pytest.raises(WdsrError, match="the model's sha256 differs") as e:
        B.load_exported(model)
    assert e.value.hint == "re-export with wdsr export"
    model = _model(tmp_path, sha256=REMOVE)  # an old contract without the file's sha256
    assert "sha256" not in B.load_exported(model)[1]
    # a contract given is checked as if read from the file next to the model
    given = {**_good(), "scale": 3}
    assert B.load_exported(model, contract=given)[1] is given
    with pytest.raises(WdsrError) as e:
        B.load_exported(model, contract={**_good(), "scale": 0})
    assert e.value.message == f"contract file '{model}.json' has no valid 'scale'"
    with pytest.raises(WdsrError, match="sha256 differs"):
        B.load_exported(model, contract={**_good(), "sha256": "1" * 64})
    with pytest.raises(WdsrError, match="describes a air model"):
        B.load_exported(model, contract={**_good(), "format": "air"})


# ------------------------------------------------------------------------- the engines


def test_onnx_runtime_runs_the_form_on_the_cpu_and_says_so(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    backend = B.OnnxBackend(_model(tmp_path))
    assert backend.session.get_providers() == ["CPUExecutionProvider"]
    assert backend.name == f"ONNX Runtime {ort.__version__} (CPU)"
    assert (backend.precision, backend.window) == ("fp32", 768)
    x = np.arange(2 * 3 * 5 * 7, dtype=np.float64).reshape(2, 3, 5, 7) % 255  # float64: cast
    assert backend(x).shape == (2, 3, 10, 14) and backend(x).dtype == np.float32
    # one input and one output, or it is no wdsr model
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("x", "a", "b")]
    nodes = [helper.make_node("Identity", ["x"], [o.name]) for o in io[1:]]
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", io[:1], io[1:])), str(path))
    with pytest.raises(WdsrError, match="has 1 inputs and 2 outputs"):
        B.OnnxBackend(path)


def test_a_mindir_runs_like_its_checkpoint(mindir):
    from wdsr_cli.core.inference import Predictor

    backend = B.MindIRBackend(mindir)
    assert (backend.name, backend.precision) == ("MINDIR (MindSpore)", "fp32")
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 9, 11))  # float64: cast
    want = Predictor.from_checkpoint(mindir.with_name("tiny.ckpt")).backend(x.astype(np.float32))
    assert np.abs(backend(x) - want).max() <= 1e-4 and backend(x).shape == (1, 3, 18, 22)


def test_onnx_runtime_prefers_cuda_then_the_cpu_else_what_it_has(tmp_path, monkeypatch):
    import onnxruntime as ort

    model = _model(tmp_path)
    asked: list[list[str]] = []
    real = ort.InferenceSession

    def session(path, sess_options=None, providers=None):
        asked.append(providers)
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", session)
    for available, want in (
            (["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
             ["CUDAExecutionProvider", "CPUExecutionProvider"]),
            (["CPUExecutionProvider", "AzureExecutionProvider"], ["CPUExecutionProvider"]),
            (["AzureExecutionProvider"], ["AzureExecutionProvider"])):
        monkeypatch.setattr(ort, "get_available_providers", lambda available=available: available)
        B.OnnxBackend(model)
        assert asked[-1] == want

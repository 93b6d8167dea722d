"""checkpoints.py in-process on tiny networks (no `wdsr` process, no training): what is saved is
what is read back, and every broken file is one clear error. The fast tests that kill the
mutants of the module (docs/mutation.md); resume itself is in test_train.py (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_MODEL, save_tiny_checkpoint

from wdsr_cli.core import checkpoints as C
from wdsr_cli.core.config import ModelConfig
from wdsr_cli.core.errors import WdsrError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny.ckpt", step=7)


def _save_raw(path, params: dict, meta: str | None):
    import mindspore as ms

    data = [{"name": k, "data": ms.Tensor(v)} for k, v in params.items()]
    append = {} if meta is None else {C.META_KEY: meta}
    ms.save_checkpoint(data, str(path), append_dict=append, crc_check=True)
    return path


def test_what_is_saved_is_read_back(ms_cpu, tiny, tmp_path):
    params, meta = C.read_checkpoint(tiny)
    assert meta["format_version"] == C.FORMAT_VERSION and meta["step"] == 7
    assert meta["model"]["n_feats"] == TINY_MODEL["n_feats"] and C.META_KEY not in params
    out = C.save_checkpoint([{"name": k, "data": v} for k, v in params.items()],
                            tmp_path / "copy.ckpt", {"step": 9},
                            extra={"ema.x": np.ones(3, np.float32)})
    assert out == tmp_path / "copy.ckpt" and sorted(p.name for p in tmp_path.iterdir()) == \
        ["copy.ckpt"]
    again, meta2 = C.read_checkpoint(out)
    assert meta2 == {"format_version": C.FORMAT_VERSION, "step": 9}
    assert C.as_array(again["ema.x"]).tolist() == [1, 1, 1]
    for k, v in params.items():
        np.testing.assert_array_equal(C.as_array(again[k]), C.as_array(v))
    assert C.model_config_of(meta) == ModelConfig(**TINY_MODEL)


def test_a_failed_save_is_one_line_and_leaves_nothing(ms_cpu, tiny, tmp_path, monkeypatch):
    from wdsr_cli.core import fileio

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", full)
    params, _ = C.read_checkpoint(tiny)
    with pytest.raises(WdsrError) as e:
        C.save_checkpoint([{"name": k, "data": v} for k, v in params.items()],
                          tmp_path / "a.ckpt", {})
    assert e.value.message == f"cannot write checkpoint '{tmp_path / 'a.ckpt'}': No space " \
        "left on device"
    assert list(tmp_path.iterdir()) == []


def test_broken_files_are_one_clear_error(ms_cpu, tiny, tmp_path):
    with pytest.raises(WdsrError, match="does not exist"):
        C.read_checkpoint(tmp_path / "none.ckpt")
    with pytest.raises(WdsrError, match="does not exist"):
        C.read_checkpoint(tmp_path)
    torn = tmp_path / "torn.ckpt"
    torn.write_bytes(tiny.read_bytes()[:-50])
    with pytest.raises(WdsrError, match="truncated or corrupted"):
        C.read_checkpoint(torn)
    w = {"w": np.ones((2, 2), np.float32)}
    with pytest.raises(WdsrError, match="not a wdsr checkpoint"):
        C.read_checkpoint(_save_raw(tmp_path / "foreign.ckpt", w, None))
    with pytest.raises(WdsrError, match="unreadable metadata"):
        C.read_checkpoint(_save_raw(tmp_path / "meta.ckpt", w, "{"))
    newer = json.dumps({"format_version": C.FORMAT_VERSION + 1})
    with pytest.raises(WdsrError, match="newer wdsr"):
        C.read_checkpoint(_save_raw(tmp_path / "newer.ckpt", w, newer))
    same = json.dumps({"format_version": C.FORMAT_VERSION})
    assert C.read_checkpoint(_save_raw(tmp_path / "same.ckpt", w, same))[1] == \
        {"format_version": C.FORMAT_VERSION}
    assert C.read_checkpoint(_save_raw(tmp_path / "old.ckpt", w, "{}"))[1] == {}
    with pytest.raises(WdsrError, match="no model config"):
        C.model_config_of({})


def test_non_finite_weights_are_named(ms_cpu, tmp_path):
    for bad in (np.nan, np.inf):
        w = {"a": np.ones(2, np.float32), "b": np.array([1.0, bad], np.float32)}
        with pytest.raises(WdsrError, match="NaN or infinite values \\(in 'b'\\)"):
            C.read_checkpoint(_save_raw(tmp_path / "n.ckpt", w, "{}"))
    ints = {"a": np.array([1, 2], np.int32)}
    assert "a" in C.read_checkpoint(_save_raw(tmp_path / "i.ckpt", ints, "{}"))[0]


def test_network_parameters_drop_the_optimizer_and_take_the_average():
    params = {"head.w": 1, "moment1.head.w": 2, "moment2.head.w": 3, "vhat.head.w": 4,
              "beta1_power": 5, "beta2_power": 6, "global_step": 7, "learning_rate": 8,
              "scale_sense": 9, "current_step": 10, "tail.w": 11, "ema.tail.w": 12}
    assert C.network_parameters(params) == {"head.w": 1, "tail.w": 12}


def test_load_network_gives_the_saved_weights(ms_cpu, tiny):
    params, _ = C.read_checkpoint(tiny)
    net, meta = C.load_network(tiny)
    assert meta["step"] == 7
    own = dict(net.parameters_and_names())
    assert set(own) == set(C.network_parameters(params))
    for k, v in own.items():
        np.testing.assert_array_equal(v.asnumpy(), C.as_array(params[k]))
    folded, _ = C.load_network(tiny, weight_norm=False)
    assert set(dict(folded.parameters_and_names())) != set(own)  # plain kernels
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)
    import mindspore as ms

    np.testing.assert_allclose(folded(ms.Tensor(x)).asnumpy(), net(ms.Tensor(x)).asnumpy(),
                               atol=1e-3)


def test_check_init_counts_what_fits(ms_cpu, tiny):
    cfg = ModelConfig(**TINY_MODEL)
    fits, total, meta = C.check_init(tiny, cfg)
    assert fits == total > 0 and meta["step"] == 7
    wider = ModelConfig(**{**TINY_MODEL, "n_feats": 16, "n_resblocks": 3})
    fits, total, _ = C.check_init(tiny, wider)
    assert 0 < fits < total
    params, _ = C.init_parameters(tiny)
    assert "moment1.head.0.weight_v" not in params


def test_assign_parameters_strict_and_not(ms_cpu, tiny):
    from wdsr_cli.core.model import build_model

    params, _ = C.read_checkpoint(tiny)
    weights = C.network_parameters(params)
    net = build_model(ModelConfig(**TINY_MODEL))
    names = C.assign_parameters(net, weights, "src")
    assert sorted(names) == sorted(dict(net.parameters_and_names()))
    first = names[0]
    missing = {k: v for k, v in weights.items() if k != first}
    with pytest.raises(WdsrError, match=f"checkpoint 'src' has no parameter '{first}'"):
        C.assign_parameters(net, missing, "src")
    assert C.assign_parameters(net, missing, "src", strict=False) == names[1:]
    wrong = {**weights, first: np.zeros((1, 1), np.float32)}
    with pytest.raises(WdsrError, match=f"'{first}' has shape \\(1, 1\\), the model expects"):
        C.assign_parameters(net, wrong, "src")
    assert C.assign_parameters(net, wrong, "src", strict=False) == names[1:]


def test_bundled_checkpoint_names():
    assert C.bundled_checkpoint(2).name == "wdsr_x2.ckpt"
    assert C.bundled_checkpoint(3, "photo").name == "wdsr_photo_x3.ckpt"
    assert C.bundled_checkpoint(4, "photo-low").name == "wdsr_photo_low_x4.ckpt"
    assert C.bundled_checkpoint(8) is None and C.bundled_checkpoint(2, "sharp") is None
    assert C.as_array([1, 2]).tolist() == [1, 2]


def test_a_flipped_bit_is_caught_by_the_checksum(ms_cpu, tiny, tmp_path):
    data = bytearray(tiny.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped = tmp_path / "flipped.ckpt"
    flipped.write_bytes(bytes(data))
    with pytest.raises(WdsrError, match="truncated or corrupted"):
        C.read_checkpoint(flipped)


def test_the_same_metadata_gives_the_same_file(ms_cpu, tiny, tmp_path):
    params, _ = C.read_checkpoint(tiny)
    cells = [{"name": k, "data": v} for k, v in params.items()]
    a = C.save_checkpoint(cells, tmp_path / "a.ckpt", {"step": 1, "scale": 2})
    b = C.save_checkpoint(cells, tmp_path / "b.ckpt", {"scale": 2, "step": 1})
    assert a.read_bytes() == b.read_bytes()

"""``wdsr export``: deployable MINDIR / ONNX / AIR files, checked against their checkpoint.

What :func:`export_model` does, in order:

1. **Checks before any work** (:func:`plan_export`, no MindSpore import): known format; AIR
   only on an Ascend machine; the checkpoint exists; the output (and its contract file) does
   not exist unless ``force``; the output folder exists and a file can be created in it; the
   ``onnx`` package is installed for ONNX.
2. Rebuilds the network the checkpoint describes with **weight norm folded** into plain
   convolutions (a fresh Cell per export: exporting one Cell to ONNX twice fails in
   MindSpore 2.10).
3. Writes the file under a temporary name in the output folder (the name keeps the format's
   suffix, which MindSpore would otherwise append).
   * MINDIR: input ``[None, 3, None, None]`` (any batch, height and width), or the fixed
     ``[1, 3, H, W]`` of ``input_size``.
   * ONNX (opset 11): MindSpore's exporter only takes a fixed shape and bakes the pixel
     shuffle's sizes into two Reshape constants. :func:`make_onnx_dynamic` replaces that
     Reshape -> Transpose -> Reshape with one ``DepthToSpace(mode="CRD")`` (the same
     channel order, see :mod:`.model`) and makes batch/height/width symbolic, so ONNX Runtime
     runs any size. Input and output are renamed ``lr`` and ``sr``.
   * AIR: MindSpore writes it only with the Ascend backend.
4. **Parity check** (:func:`parity_check`): the temporary file is run through the same
   :class:`~.inference.Predictor` that ``upscale``/``evaluate --model`` use (MINDIR with
   MindSpore ``ms.load`` + ``nn.GraphCell``, ONNX with ONNX Runtime) on a bundled photo
   cropped to two LR sizes, and compared with the checkpoint's own Predictor. It fails when
   the largest difference exceeds :data:`PARITY_TOLERANCE` (0..255 scale). Skipped with a
   note for AIR (MindSpore cannot run it) and for ONNX without ONNX Runtime.
5. Only a file that passed is moved into place (``os.replace``), together with its **I/O
   contract** ``<output>.json`` (:func:`contract_path`): input layout and range, output range,
   scale, receptive radius, model config, dataset id, source checkpoint sha256, shape, format,
   versions and the parity numbers. A failed check, an error or Ctrl-C leaves no file and no
   temporary behind (an existing output replaced with ``force`` is kept until the new one has
   passed).

The files are written into a private temporary folder next to the output (MindSpore's ONNX
writer chmods the folder it writes into; no folder of the user's changes mode) and moved out
of it (:mod:`.fileio`). MINDIR files come out of MindSpore with mode 0400; the exported file
gets the usual ``0666 & ~umask``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import fileio
from ..errors import WdsrError
from ..fileio import sha256_file
from ..testpoint import hold_if_asked
from .backends import ONNX_INSTALL_HINT
from .contract import CONTRACT_VERSION, contract_path

__all__ = [
    "FORMATS",
    "PARITY_TOLERANCE",
    "ExportPlan",
    "ParityError",
    "check_format",
    "contract_path",
    "default_output",
    "export_model",
    "make_onnx_dynamic",
    "parity_check",
    "parse_input_size",
    "plan_export",
]

FORMATS = ("mindir", "onnx", "air")
SUFFIXES = {"mindir": ".mindir", "onnx": ".onnx", "air": ".air"}
ONNX_OPSET = 11  # what MindSpore 2.10's exporter writes; DepthToSpace has mode= since 11

# Largest |exported - checkpoint| allowed on the 0..255 scale (float outputs, before
# rounding). Measured on this CPU (docs/export.md "The parity check"): MINDIR 0
# (bit-identical), ONNX Runtime up to ~1e-4 for WDSR-B 32x16. 0.01 leaves ~100x margin while
# still catching any real mistake (a wrong channel order or a baked-in size moves pixels by
# whole levels).
PARITY_TOLERANCE = 0.01
PARITY_PHOTO = "brushes.png"  # bundled sample photo (wdsr_cli/assets/sample)
# the bundled sample photos (package data; data.prepare.sample_dir() names the same folder,
# but inference never imports the data-preparation code)
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "assets" / "sample"
PARITY_SIZES = ((48, 64), (61, 97))  # LR crops, height x width: two sizes, one odd

StageCallback = Callable[[str], None]


class ParityError(WdsrError):
    """The exported file does not match its checkpoint; ``result`` holds the numbers."""

    def __init__(self, message: str, hint: str | None, result: dict[str, Any]) -> None:
        super().__init__(message, hint)
        self.result = result


@dataclass(frozen=True)
class ExportPlan:
    checkpoint: Path
    fmt: str
    output: Path
    input_size: tuple[int, int] | None  # (height, width); None = dynamic
    force: bool

    @property
    def contract(self) -> Path:
        return contract_path(self.output)


# ---------------------------------------------------------------------------- planning


def parse_input_size(text: str | None) -> tuple[int, int] | None:
    """``"HxW"`` (LR pixels, height first, e.g. ``"270x480"``) -> ``(H, W)``; None stays None."""
    if text is None:
        return None
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        h, w = int(parts[0]), int(parts[1])
    except ValueError:
        raise WdsrError(f"--input-size must be HxW in LR pixels, got '{text}'",
                        "for example --input-size 270x480 (height x width)") from None
    if h < 1 or w < 1:
        raise WdsrError(f"--input-size sides must be at least 1, got '{text}'",
                        "for example --input-size 270x480 (height x width), or leave it out "
                        "for any size")
    return h, w


def _is_bundled(checkpoint: Path) -> bool:
    from ..checkpoints import BUNDLED_DIR

    try:
        return checkpoint.resolve().parent == BUNDLED_DIR.resolve()
    except OSError:
        return False


def default_output(checkpoint: str | os.PathLike, fmt: str) -> Path:
    """``<checkpoint stem>.<fmt>`` next to the checkpoint; for the bundled weights (inside
    the installed package) in the current folder instead."""
    checkpoint = Path(checkpoint)
    name = checkpoint.stem + SUFFIXES[fmt]
    return Path(name) if _is_bundled(checkpoint) else checkpoint.with_name(name)


def _check_writable(folder: Path) -> None:
    try:
        fileio.probe_writable(folder)
    except OSError as exc:
        raise WdsrError(f"cannot write to folder '{folder}': {exc.strerror or exc}",
                        "choose a writable --output") from None


def check_format(fmt: str, device_target: str | None = None) -> str:
    """The format in lower case; unknown formats and AIR off Ascend are refused (instantly:
    no MindSpore import). ``device_target``: where AIR would be written (default: detected).
    """
    from .. import runtime

    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise WdsrError(f"unknown export format '{fmt}'", "choose mindir, onnx or air")
    if fmt == "air":
        target = runtime.resolve_device_target(device_target or "auto")
        if target != "Ascend":
            raise WdsrError(
                f"AIR export needs an Ascend device (MindSpore writes AIR only with the Ascend "
                f"backend), and this is a {target} machine",
                "export MINDIR (runs wherever MindSpore does) or ONNX here, or run this on the "
                "Ascend host")
    return fmt


def plan_export(checkpoint: str | os.PathLike, fmt: str, output: str | os.PathLike | None = None,
                input_size: tuple[int, int] | str | None = None, force: bool = False,
                device_target: str | None = None) -> ExportPlan:
    """Every check that needs no model, done before any work (WdsrError on a problem)."""
    fmt = check_format(fmt, device_target)
    if isinstance(input_size, str):
        input_size = parse_input_size(input_size)
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise WdsrError(f"checkpoint '{checkpoint}' does not exist",
                        "pass a .ckpt written by wdsr train (runs/<name>/best.ckpt)")
    out = default_output(checkpoint, fmt) if output is None else Path(output).expanduser()
    if out.is_dir():
        out = out / (checkpoint.stem + SUFFIXES[fmt])
    if out.suffix.lower() != SUFFIXES[fmt]:
        raise WdsrError(f"output '{out}' must end with {SUFFIXES[fmt]} for --format {fmt}",
                        f"for example --output {out.with_suffix(SUFFIXES[fmt]).name}")
    if not force:
        existing = [p for p in (out, contract_path(out)) if p.exists()]
        if existing:
            raise WdsrError(f"'{existing[0]}' already exists",
                            "pass --force to replace it, or choose another --output")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise WdsrError(f"folder '{folder}' for output '{out}' does not exist", "create it first")
    _check_writable(folder)
    if fmt == "onnx":
        import importlib.util

        if importlib.util.find_spec("onnx") is None:
            raise WdsrError("ONNX export needs the 'onnx' package (it makes the model's "
                            "height and width dynamic)", ONNX_INSTALL_HINT)
    return ExportPlan(checkpoint, fmt, out, input_size, force)


# ----------------------------------------------------------------------------- writing


def _export_mindspore(net: Any, fmt: str, path: Path, input_size: tuple[int, int] | None
                      ) -> None:
    import mindspore as ms
    from mindspore import Tensor

    if input_size is None:
        example = Tensor(shape=[None, 3, None, None], dtype=ms.float32)
    else:
        example = Tensor(np.zeros((1, 3, *input_size), np.float32))
    ms.export(net, example, file_name=str(path), file_format=fmt.upper())
    appended = Path(f"{path}{SUFFIXES[fmt]}")  # in case MindSpore appended its suffix anyway
    if not path.exists() and appended.exists():
        os.replace(appended, path)
    if not path.is_file():
        raise WdsrError(f"MindSpore wrote no {fmt.upper()} file for '{path.name}'")


def _attr(node: Any, name: str) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def make_onnx_dynamic(model: Any, scale: int, dynamic: bool = True) -> Any:
    """Rewrite MindSpore's ONNX WDSR graph in place so it runs at any size.

    The pixel shuffle comes out as ``Reshape(N, C, r, r, H, W) -> Transpose(0,1,4,2,5,3) ->
    Reshape(N, C, H*r, W*r)`` with N/H/W of the export example baked into the constants; it
    is replaced by ``DepthToSpace(blocksize=r, mode="CRD")``, which is that exact operation.
    With ``dynamic`` the input becomes ``[batch, 3, height, width]`` and the output
    ``[batch, 3, sr_height, sr_width]``; input and output are renamed ``lr`` and ``sr``.
    Raises RuntimeError when the graph does not have the expected shape (a wdsr bug).
    """
    graph = model.graph
    index = _GraphIndex(graph)
    _replace_shuffle(graph, index, _find_shuffle(index, scale), scale)
    del graph.value_info[:]  # intermediate shapes of the example size
    _name_inputs_outputs(graph, dynamic)
    return model


class _GraphIndex:
    """An ONNX graph's nodes, who produces and who consumes each tensor, and its constants."""

    def __init__(self, graph: Any) -> None:
        self.nodes = list(graph.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[Any]] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.initializers = {t.name: t for t in graph.initializer}

    def constant(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(_attr(node, "value"))
        return None


def _find_shuffle(g: _GraphIndex, scale: int) -> tuple[Any, Any, Any]:
    """The (Reshape, Transpose, Reshape) nodes of the graph's one x``scale`` pixel shuffle."""
    shuffles = []
    for t in g.nodes:
        if t.op_type != "Transpose" or list(_attr(t, "perm") or []) != [0, 1, 4, 2, 5, 3]:
            continue
        first = g.producer.get(t.input[0])
        users = g.consumers.get(t.output[0], [])
        if first is None or first.op_type != "Reshape" or len(users) != 1 \
                or users[0].op_type != "Reshape":
            continue
        shape6 = g.constant(first.input[1])
        shape4 = g.constant(users[0].input[1])
        if shape6 is None or shape4 is None or shape6.shape != (6,) or shape4.shape != (4,) \
                or int(shape6[2]) != scale or int(shape6[3]) != scale \
                or len(g.consumers.get(first.output[0], [])) != 1:
            continue
        shuffles.append((first, t, users[0]))
    if len(shuffles) != 1:
        raise RuntimeError(f"expected one x{scale} pixel shuffle in the ONNX graph, found "
                           f"{len(shuffles)}")
    return shuffles[0]


def _replace_shuffle(graph: Any, g: _GraphIndex, shuffle: tuple[Any, Any, Any],
                     scale: int) -> None:
    """Put one DepthToSpace in place of the three nodes, dropping their shape constants
    (when nothing else uses them)."""
    from onnx import helper

    first, transpose, last = shuffle
    d2s = helper.make_node("DepthToSpace", [first.input[0]], [last.output[0]],
                           name="pixel_shuffle", blocksize=scale, mode="CRD")
    dropped = {id(first), id(transpose), id(last)}
    for shape_input in (first.input[1], last.input[1]):  # their shape constants, if unshared
        node = g.producer.get(shape_input)
        if node is not None and node.op_type == "Constant" \
                and len(g.consumers.get(shape_input, [])) == 1:
            dropped.add(id(node))
    kept = []
    for n in g.nodes:
        if n is first:
            kept.append(d2s)
        if id(n) not in dropped:
            kept.append(n)
    del graph.node[:]
    graph.node.extend(kept)
    for name in (first.input[1], last.input[1]):
        if name in g.initializers and not any(name in n.input for n in kept):
            graph.initializer.remove(g.initializers[name])


def _name_inputs_outputs(graph: Any, dynamic: bool) -> None:
    """Input ``lr`` and output ``sr``; with ``dynamic``, symbolic batch, height and width."""
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise RuntimeError("expected one graph input and one graph output")
    _rename(graph, graph.input[0].name, "lr")
    _rename(graph, graph.output[0].name, "sr")
    if dynamic:
        for value, dims in ((graph.input[0], ("batch", 3, "height", "width")),
                            (graph.output[0], ("batch", 3, "sr_height", "sr_width"))):
            shape = value.type.tensor_type.shape
            for dim, want in zip(shape.dim, dims, strict=True):
                if isinstance(want, str):
                    dim.ClearField("dim_value")
                    dim.dim_param = want


def _rename(graph: Any, old: str, new: str) -> None:
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name == old:
                n.input[i] = new
        for i, name in enumerate(n.output):
            if name == old:
                n.output[i] = new
    for value in list(graph.input) + list(graph.output):
        if value.name == old:
            value.name = new


def _export_onnx(net: Any, path: Path, scale: int, input_size: tuple[int, int] | None) -> None:
    import onnx

    raw = path.with_name(f"{path.stem}.raw.onnx")
    # MindSpore exports ONNX only at a fixed example size; an odd, non-square one keeps the
    # baked-in sizes recognisable. They are removed by make_onnx_dynamic.
    _export_mindspore(net, "onnx", raw, input_size or (17, 23))
    model = onnx.load(str(raw))
    make_onnx_dynamic(model, scale, dynamic=input_size is None)
    model.producer_name = "wdsr"
    from ... import __version__

    model.producer_version = __version__
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    raw.unlink()


# ------------------------------------------------------------------------------ parity


def _parity_image(height: int, width: int) -> np.ndarray:
    """A crop of the bundled photo (mirrored outwards if it is smaller than asked)."""
    from ..data.images import read_rgb_uint8

    photo = read_rgb_uint8(SAMPLE_DIR / PARITY_PHOTO)
    ph, pw = photo.shape[:2]
    if ph < height or pw < width:
        photo = np.pad(photo, ((0, max(height - ph, 0)), (0, max(width - pw, 0)), (0, 0)),
                       mode="symmetric")
        ph, pw = photo.shape[:2]
    y0, x0 = (ph - height) // 2, (pw - width) // 2
    return np.ascontiguousarray(photo[y0:y0 + height, x0:x0 + width])


def parity_sizes(input_size: tuple[int, int] | None, receptive_radius: int
                 ) -> list[tuple[int, int]]:
    """LR sizes to compare at: two fixed ones for a dynamic model; for a fixed one its own
    size and a larger one (which runs in windows), if its sides allow windows at all."""
    if input_size is None:
        return [tuple(s) for s in PARITY_SIZES]
    h, w = input_size
    if min(h, w) <= 2 * receptive_radius:
        return [(h, w)]
    return [(h, w), (h + 13, w + 33)]


def parity_check(model_file: str | os.PathLike, contract: dict[str, Any],
                 checkpoint: str | os.PathLike, tolerance: float = PARITY_TOLERANCE
                 ) -> dict[str, Any]:
    """Run ``model_file`` (described by ``contract``) and the checkpoint through Predictors on
    real photo crops; report per size the largest float difference (0..255 scale) and how many
    8-bit values differ. ``{"checked": False, "reason": ...}`` when it cannot run here."""
    from .predictor import Predictor, to_uint8

    fmt = contract["format"]
    base = {"tolerance_max_abs_diff": tolerance}
    if fmt == "air":
        return {**base, "checked": False,
                "reason": "MindSpore cannot run AIR files (they are converted for Ascend "
                          "inference with ATC); check the MINDIR export instead"}
    if fmt == "onnx":
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:
            return {**base, "checked": False,
                    "reason": "ONNX Runtime is not installed; " + ONNX_INSTALL_HINT}
    reference = Predictor.from_checkpoint(checkpoint)
    exported = Predictor.from_model(model_file, contract=contract)
    rows = []
    for h, w in parity_sizes(contract.get("input_size"), contract["receptive_radius"]):
        lr = _parity_image(h, w)
        want = reference.predict(lr)
        got = exported.predict(lr)
        finite = bool(np.isfinite(got).all())
        diff = np.abs(want.astype(np.float64) - got.astype(np.float64))
        want8, got8 = to_uint8(want), to_uint8(got)
        differ = int((want8 != got8).sum())
        max_diff = float(diff.max()) if finite else None
        rows.append({
            "lr_size": [h, w], "max_abs_diff": max_diff,
            "mean_abs_diff": float(diff.mean()) if finite else None,
            "uint8_values": int(want8.size), "uint8_differ": differ,
            "uint8_differ_share": differ / want8.size,
            "uint8_max_diff": int(np.abs(want8.astype(int) - got8.astype(int)).max()),
            "passed": finite and max_diff <= tolerance})
    worst = [r["max_abs_diff"] for r in rows]
    runtime = getattr(exported.backend, "name", type(exported.backend).__name__)
    return {**base, "checked": True, "runtime": runtime,
            "reference": "checkpoint via MindSpore (weight norm folded)",
            "photo": PARITY_PHOTO, "images": rows,
            "max_abs_diff": None if None in worst else max(worst),
            "passed": all(r["passed"] for r in rows)}


# ------------------------------------------------------------------------------ export


def _checkpoint_record(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    record = {"path": str(path), "file": path.name, "sha256": sha256_file(path)}
    for key in ("kind", "step", "run", "metrics", "protocol", "best_psnr"):
        if key in meta:
            record[key] = meta[key]
    return record


def build_contract(plan: ExportPlan, model_file: Path, cfg: Any, meta: dict[str, Any],
                   receptive_radius: int) -> dict[str, Any]:
    """The I/O contract written next to the exported file (``<output>.json``)."""
    import mindspore as ms

    from ... import __version__

    s = cfg.scale
    dynamic = plan.input_size is None
    in_shape: list[Any] = ["N", 3, "H", "W"] if dynamic else [1, 3, *plan.input_size]
    out_shape: list[Any] = (["N", 3, f"{s}*H", f"{s}*W"] if dynamic else
                            [1, 3, plan.input_size[0] * s, plan.input_size[1] * s])
    model = dataclasses.asdict(cfg)
    model["rgb_mean"] = list(model["rgb_mean"])
    names = ("lr", "sr") if plan.fmt == "onnx" else (None, None)
    contract = {
        "contract_version": CONTRACT_VERSION,
        "format": plan.fmt,
        "file": plan.output.name,
        "sha256": sha256_file(model_file),
        "bytes": model_file.stat().st_size,
        "input": {"name": names[0], "layout": "NCHW", "dtype": "float32", "channels": "RGB",
                  "range": [0.0, 255.0], "shape": in_shape,
                  "note": "plain 0..255 values; the model subtracts the DIV2K mean itself"},
        "output": {"name": names[1], "layout": "NCHW", "dtype": "float32", "channels": "RGB",
                   "shape": out_shape, "range": "0..255 scale, NOT clipped",
                   "to_8bit": "clip to [0, 255], then round halves away from zero"},
        "scale": s,
        "dynamic_shape": dynamic,
        "input_size": None if dynamic else list(plan.input_size),
        "receptive_radius": receptive_radius,
        "tiling": f"exact with a halo of receptive_radius ({receptive_radius}) LR pixels on "
                  "every window side that is not an image border",
        "model": model,
        "weight_norm": "folded into plain convolutions",
        "dataset_id": meta.get("dataset_id"),
        "checkpoint": _checkpoint_record(plan.checkpoint, meta),
        "wdsr_version": __version__,
        "mindspore_version": ms.__version__,
        "exported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if plan.fmt == "onnx":
        import onnx

        contract["onnx_opset"] = ONNX_OPSET
        contract["onnx_version"] = onnx.__version__
    return contract


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def export_model(checkpoint: str | os.PathLike, fmt: str, output: str | os.PathLike | None = None,
                 input_size: tuple[int, int] | str | None = None, force: bool = False,
                 check: bool = True, on_stage: StageCallback | None = None,
                 tolerance: float = PARITY_TOLERANCE,
                 device_target: str | None = None) -> dict[str, Any]:
    """Export ``checkpoint`` as ``fmt`` (see the module docstring); returns a summary with the
    contract and the parity numbers. MindSpore must be set up (``runtime.init_mindspore``).
    Raises :class:`ParityError` (a WdsrError) when the check fails; nothing is written then.
    """
    from ..checkpoints import load_network
    from ..model_info import receptive_radius

    start = time.perf_counter()
    plan = plan_export(checkpoint, fmt, output, input_size, force, device_target)
    stage = on_stage or (lambda text: None)
    stage("reading the checkpoint")
    net, meta = load_network(plan.checkpoint, weight_norm=False)  # a fresh, folded Cell
    cfg = net.cfg
    radius = receptive_radius(cfg)

    # MindSpore's ONNX writer chmods the folder it writes into (0700): write into a folder of
    # our own next to the output, then move the files out of it.
    with fileio.private_folder(plan.output) as work:
        tmp = work / plan.output.name
        tmp_contract = work / plan.contract.name
        stage(f"writing {plan.fmt.upper()}")
        try:
            if plan.fmt == "onnx":
                _export_onnx(net, tmp, cfg.scale, plan.input_size)
            else:
                _export_mindspore(net, plan.fmt, tmp, plan.input_size)
        except OSError as exc:
            raise WdsrError(f"cannot write '{plan.output}': {exc.strerror or exc}",
                            "free some disk space or choose another --output") from None
        except (RuntimeError, ValueError) as exc:
            if plan.fmt != "air" or plan.input_size is not None:
                raise
            raise WdsrError(f"MindSpore could not write a dynamic-shape AIR file: {exc}",
                            "pass --input-size HxW for a fixed-shape AIR") from None
        contract = build_contract(plan, tmp, cfg, meta, radius)
        hold_if_asked(f"export-written-{plan.output.name}")  # tests only (testpoint.py)
        if check:
            stage("checking the exported model against the checkpoint")
            parity = parity_check(tmp, contract, plan.checkpoint, tolerance)
        else:
            parity = {"checked": False, "reason": "skipped (--no-check)",
                      "tolerance_max_abs_diff": tolerance}
        contract["parity"] = parity
        result = {"output": str(plan.output), "contract": str(plan.contract),
                  "format": plan.fmt, "checkpoint": str(plan.checkpoint), "scale": cfg.scale,
                  "dynamic_shape": plan.input_size is None,
                  "input_size": contract["input_size"], "bytes": contract["bytes"],
                  "sha256": contract["sha256"], "receptive_radius": radius,
                  "parity": parity, "written": False}
        if parity.get("checked") and not parity["passed"]:
            worst = parity["max_abs_diff"]
            result["seconds"] = time.perf_counter() - start
            raise ParityError(
                f"the exported {plan.fmt.upper()} does not match the checkpoint: max |diff| "
                f"{'non-finite' if worst is None else f'{worst:.3g}'} > tolerance "
                f"{tolerance} (0..255 scale); nothing was written",
                "report this; --no-check writes the file without the check", result)
        _write_json(tmp_contract, contract)
        # Without --force neither file may replace one that appeared meanwhile (another
        # export to the same name): the contract is claimed first, the model second, and a
        # contract whose model could not be placed is taken back.
        exclusive = not plan.force
        fileio.commit(tmp_contract, plan.contract, exclusive=exclusive, flag="--force")
        try:
            fileio.commit(tmp, plan.output, exclusive=exclusive, flag="--force")
        except BaseException:
            if exclusive:
                plan.contract.unlink(missing_ok=True)
            raise
    result["written"] = True
    result["seconds"] = time.perf_counter() - start
    return result


# --------------------------------------------------------------------- the export command


@dataclass
class ExportRequest:
    """What ``wdsr export`` was asked (flags as given)."""

    fmt: str = "mindir"
    checkpoint: Path | None = None
    scale: int | None = None
    output: Path | None = None
    input_size: str | None = None
    force: bool = False
    json_out: str | None = None
    runs_dir: Path = Path("runs")


def plan_export_request(r: ExportRequest, runtime_cfg: Any) -> tuple[Any, ExportPlan]:
    """(weights, plan): every check before MindSpore is imported, where the checkpoint is
    named; the default checkpoint (newest run, else bundled) is found, then checked too."""
    from .. import jsonout
    from ..config import check_scale
    from .weights import named_checkpoint, resolve

    if r.scale is not None:
        check_scale(r.scale)
    jsonout.check(r.json_out)
    target = runtime_cfg.device_target
    fmt = check_format(r.fmt, target)
    size = parse_input_size(r.input_size)
    checkpoint = named_checkpoint(r.checkpoint, r.scale)
    if checkpoint is not None:
        plan_export(checkpoint, fmt, r.output, size, r.force, target)
    weights = resolve(checkpoint, None, r.scale, "mindspore", default="newest",
                      runs_dir=r.runs_dir, device_target=target,
                      device_id=runtime_cfg.device_id)
    plan = plan_export(weights.path, fmt, r.output, size, r.force, target)
    jsonout.apart(r.json_out, [plan.output, plan.contract])
    return weights, plan

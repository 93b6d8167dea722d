"""Mutation testing of the modules where a silent bug loses data or gives wrong numbers
(issue 34; results and the equivalent mutants in docs/mutation.md). ``make mutate`` runs it.

mutmut 2.x changes one source file in place, runs a test command, and puts the file back; so
both the test process and the ``wdsr`` processes the tests spawn (they import whatever
``PYTHONPATH`` names) run the mutant. To keep the developer's tree untouched whatever happens,
each module is mutated in its own copy of the tree, ``.mutmut-work/<module>/`` (made from the
files git knows plus uncommitted changes), with its own ``.mutmut-cache`` there: modules run in
parallel (``--jobs``) without one module's mutant leaking into another module's tests, and a
second run only re-tests what changed (mutmut keys its cache on the tests' hash).

Only the functions that matter are mutated where a module is large (``functions`` below: a
hook of mutmut's skips the other lines). The test command of a module is the narrowest fast
set of tests that covers it, so one mutant costs seconds.

    python scripts/mutate.py                 # every module, table at the end
    python scripts/mutate.py metrics fileio  # some of them
    python scripts/mutate.py --jobs 2        # two modules at a time (two cores)
    python scripts/mutate.py --show metrics  # survivors of a module as diffs, no run
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutmut-work"
PYTEST = ["-x", "-q", "-p", "no:cacheprovider"]


@dataclass
class Module:
    name: str
    path: str                         # the file mutated, relative to the root
    tests: str                        # pytest arguments, run in tests/
    functions: tuple[str, ...] = ()   # only these (qualified names); () = the whole file


_ENGINE_TESTS = ("test_contract.py test_openvino.py -k 'test_contract or shipped_form_like or "
                 "fixed_per_engine or compiled_model_cache or without_openvino'")
# the Predictor with position-exact numpy networks and fakes (no MindSpore)
_PREDICTOR_TESTS = ("test_inference.py -k 'not mindspore and not from_checkpoint and not "
                    "weight_norm'")
MODULES = [
    Module("fileio", "wdsr_cli/core/fileio.py", "test_fileio.py"),
    Module("jsonout", "wdsr_cli/core/jsonout.py", "test_fileio.py"),
    # the resolver's choices; the in-process tests (the ones that spawn `wdsr` or export an
    # ONNX form take 13 of test_weights.py's 17 s)
    Module("weights", "wdsr_cli/core/inference/weights.py",
           "test_weights.py test_photo_weights.py test_noise.py -m 'not slow' -k 'not "
           "never_imports_mindspore and not reports_the_backend and not made_once_checked and "
           "not perturbed_weight and not mixed_folder and not evaluate_degrade and not "
           "bad_values_are_one_line and not every_sample_photo'",
           ("bundled_kind", "reads_noise", "named_checkpoint", "_newest_run", "_choose_engine",
            "_check_scale_matches", "_resolve_model", "resolve")),
    # the ONNX-form cache: a retrained checkpoint never runs the old form (in-process tests)
    Module("forms", "wdsr_cli/core/inference/weights.py",
           "test_weights.py -k 'cache_folder or every_recorded_fact or discarded_form or damaged "
           "or passed_over_silently or recorded_scale or load_predictor_runs or reduced_precision "
           "or killed_maker or wrong_onnx_form or retrained or knows_its_scale'",
           ("cache_dir", "_form_contract", "_discard", "onnx_form", "checkpoint_facts",
            "make_onnx_form", "load_predictor")),
    # the noise reading that sends a noisy lossless or nearly lossless input to the photo
    # weights (two of the sixteen sample photos: each one costs 0.7 s)
    Module("noise", "wdsr_cli/core/inference/noise.py",
           "test_noise.py -k 'not every_sample_photo or dogs or leaves'"),
    # what a photo's colour profile and EXIF become in the output (a wrong Orientation turns
    # every phone photo sideways)
    Module("metadata", "wdsr_cli/core/data/metadata.py", "test_metadata.py"),
    # how hard an input was compressed: what --weights auto decides on (a WebP's VP8 header)
    Module("compression", "wdsr_cli/core/data/compression.py",
           "test_compression.py test_photo_weights.py test_images.py "
           "-k 'compression or lossy_formats or camera_jpeg'"),
    Module("contract", "wdsr_cli/core/inference/contract.py", "test_contract.py"),
    Module("backends", "wdsr_cli/core/inference/backends/__init__.py", "test_contract.py",
           ("model_format", "load_exported")),
    # the engines that run an exported model (in-process tests, and one that hides OpenVINO)
    Module("ort", "wdsr_cli/core/inference/backends/ort.py", _ENGINE_TESTS),
    Module("ov", "wdsr_cli/core/inference/backends/ov.py",
           _ENGINE_TESTS[:-1] + " or isa_cap or native_bf16_is or blob_folder_names or "
           "names_itself or known_sha256 or no_wdsr_model or import_openvino_without or "
           "cache_property'"),
    Module("mindir", "wdsr_cli/core/inference/backends/mindir.py", "test_contract.py"),
    Module("metrics", "wdsr_cli/core/metrics.py", "test_metrics.py"),
    Module("windows", "wdsr_cli/core/inference/predictor.py", _PREDICTOR_TESTS,
           ("window_side", "Tile", "_axis_windows", "plan_windows", "_kept",
            "Predictor.windows_for", "Predictor._plan")),
    # the rest of the Predictor's numbers: the forward pass over the windows and the stitching,
    # predict/predict_uint8 and their rounding, the x8 self-ensemble, fixed-size models
    Module("predictor", "wdsr_cli/core/inference/predictor.py", _PREDICTOR_TESTS,
           ("FixedSizeWindows", "Dihedral", "dihedral_transforms", "to_uint8",
            "Predictor.__init__", "Predictor.from_network", "Predictor.from_model",
            "Predictor.predict", "Predictor.predict_uint8", "Predictor._forward",
            "Predictor._ensemble_window", "Predictor._ensemble_whole_image", "Predictor._call",
            "_Counter", "_is_int", "_check_rgb")),
    Module("checkpoints", "wdsr_cli/core/checkpoints.py",
           "test_checkpoints.py test_modelzoo.py -k 'not test_modelzoo or loaded_network or "
           "weight_norm_form'",
           ("save_checkpoint", "read_checkpoint", "_check_finite", "model_config_of",
            "network_parameters", "load_network", "init_parameters", "check_init", "as_array",
            "assign_parameters", "bundled_checkpoint")),
    # run folders, the run lock and what --resume reads (in-process tests of test_runs.py)
    Module("resume", "wdsr_cli/core/runs.py", "test_runs.py"),
    Module("resume-check", "wdsr_cli/core/train.py", "test_runs.py -k resume_compatible",
           ("check_resume_compatible",)),
    Module("prepare", "wdsr_cli/core/data/prepare.py", "test_prepare.py -m 'not slow'",
           ("_record_matches", "_reusable_records", "make_plan", "_check_manifest_options")),
]
BY_NAME = {m.name: m for m in MODULES}

# Surviving mutants that cannot change behaviour, found by reading them: (module, original
# line, mutated line) -> why. docs/mutation.md lists them with the same reasons.
# the noise reading's stopping rule (noise._channel_sigma)
_FIXED_POINT = ("once the weak patches stop changing, the next smallest variance is the same "
                "number: the iteration has reached its fixed point, and stopping later (or "
                "iterating on to ITERATIONS) returns it unchanged")
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("fileio", "mask = os.umask(0o022)", "mask = os.umask(19)"):
        "the umask is set only to read it and put back on the next line, under a lock; the "
        "value set in between is never used",
    ("fileio", "os.link(tmp, path, follow_symlinks=False)",
     "os.link(tmp, path, follow_symlinks=True)"):
        "on Linux, os.link links a symlink itself either way (link(2) does not follow it; "
        "checked with a symlink), and tmp is a file wdsr wrote, never a symlink",
    ("fileio", "os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))",
     "os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 385))"):
        "the claimed placeholder is replaced at once by os.replace(tmp, path), which brings "
        "tmp's mode: the placeholder's own mode (0o600 or 0o601) is never seen in the result",
    ("fileio", 'probe = temp_path(Path(folder) / "write-test", sweep=False)  # a check changes '
     'nothing', 'probe = temp_path(Path(folder) / "XXwrite-testXX", sweep=False)  # a check '
     'changes nothing'):
        "the probe's name is any fresh temporary name; it is removed at once",
    ("fileio", "while chunk := f.read(1 << 22):", "while chunk := f.read(2 << 22):"):
        "the chunk size changes memory use only; the digest is the same",
    ("fileio", "while chunk := f.read(1 << 22):", "while chunk := f.read(1 << 23):"):
        "the chunk size changes memory use only; the digest is the same",
    ("fileio", "os.ftruncate(fd, 0)", "os.ftruncate(fd, 1)"):
        "the PID line written next from offset 0 is at least 2 bytes ('N\\n'), so it covers "
        "the 1 byte left",
    ("fileio", 'text = os.read(fd, 32).decode("ascii", "replace").strip()',
     'text = os.read(fd, 33).decode("ascii", "replace").strip()'):
        "the lock file holds what lock_folder wrote: a PID of at most 7 digits and a newline",
    ("fileio", "data = f.read(limit + 1)", "data = f.read(limit + 2)"):
        "one byte over the limit is enough to see that the file grew; reading two changes "
        "nothing else",
    ("weights", 'raise WdsrError(f"this version of wdsr has no bundled x{scale or 2}{kind} '
     'weights",', 'raise WdsrError(f"this version of wdsr has no bundled x{scale or 3}{kind} '
     'weights",'):
        "with no scale the x2 weights are looked up, and both kinds of x2 weights are bundled "
        "(test_weights.py checks it): the message is never reached with scale None",
    ("checkpoints", "net.set_train(False)", "net.set_train(True)"):
        "WDSR has no layer that acts differently in training (no dropout, no batch norm: "
        "weight norm only), and inference never takes gradients",
    ("checkpoints", 'return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)',
     'return value.asnumpy() if hasattr(value, "XXasnumpyXX") else np.asarray(value)'):
        "np.asarray of a MindSpore Tensor or Parameter is its asnumpy() (Tensor.__array__)",
    ("checkpoints", 'if meta.get("format_version", 0) > FORMAT_VERSION:',
     'if meta.get("format_version", 1) > FORMAT_VERSION:'):
        "FORMAT_VERSION is 1: a file without a version (0 or 1) is never newer either way",
    ("weights", 'if precision in ("auto", "bf16") and _require("openvino", form, "") is None \\',
     'if precision in ("auto", "bf16") and _require("openvino", form, "XXXX") is None \\'):
        "only whether _require returns None is used here; the words it would return are not",
    ("weights", 'if missing is not None and _require(other, form, "") is None:',
     'if missing is not None and _require(other, form, "XXXX") is None:'):
        "only whether _require returns None is used here; the words it would return are not",
    ("weights", 'engine, why, prec, prec_why = _choose_engine(requested, precision, "CPU", model,',
     'engine, why, prec, prec_why = _choose_engine(requested, precision, "XXCPUXX", model,'):
        "with onnx_only=True (the next line) _choose_engine never looks at the target: an "
        "ONNX file runs on a CPU engine whatever the device",
    ("weights", "form and form[0])", "form and form[1])"):
        "form[1] is the form's contract, a non-empty dict: _choose_engine only asks whether "
        "it was given a form (is None), never opens it",
    ("weights", 'form = onnx_form(path) if backend != "mindspore" else None',
     'form = onnx_form(path) if backend != "XXmindsporeXX" else None'):
        "checkpoint_facts has already looked up the same checkpoint's form (scale and step "
        "come from its contract): a second look finds the same, and MindSpore drops it",
    ("forms", '"removed and is made again", WdsrNote, stacklevel=2)',
     '"removed and is made again", WdsrNote, stacklevel=3)'):
        "the CLI shows a WdsrNote as its message alone, under the filter 'always' (ui.py): "
        "the frame Python attributes it to is never seen",
    ("forms", '"not used", WdsrNote, stacklevel=2)', '"not used", WdsrNote, stacklevel=3)'):
        "the CLI shows a WdsrNote as its message alone, under the filter 'always' (ui.py): "
        "the frame Python attributes it to is never seen",
    ("forms", 'scale = meta.get("scale")', 'scale = meta.get("XXscaleXX")'):
        "every checkpoint wdsr writes (train, the model-zoo import, so the bundled ones too) "
        "records meta scale equal to its model config's: the fallback gives the same number",
    ("forms", 'scale = meta.get("scale")', 'scale = None'):
        "every checkpoint wdsr writes (train, the model-zoo import, so the bundled ones too) "
        "records meta scale equal to its model config's: the fallback gives the same number",
    ("forms", 'if "--output" not in (exc.hint or ""):  # not about writing into the cache',
     'if "--output" not in (exc.hint or "XXXX"):  # not about writing into the cache'):
        "'--output' is in neither '' nor 'XXXX': a hint of None is not about the output "
        "either way",
    ("forms", 'cache_dir(), predictor.meta.get("sha256") or sha256_file(form),',
     'cache_dir(), predictor.meta.get("XXsha256XX") or sha256_file(form),'):
        "load_exported has just checked that the contract's sha256 is the file's: computing "
        "it again gives the same value",
    ("ort", "ONNX_INSTALL_HINT = \"install the ONNX extra: pip install 'wdsr-cli[onnx]'\"",
     "ONNX_INSTALL_HINT = \"XXinstall the ONNX extra: pip install 'wdsr-cli[onnx]'XX\""):
        "the words of an error's hint (it reaches only WdsrError hints)",
    ("ort", "ONNX_INSTALL_HINT = \"install the ONNX extra: pip install 'wdsr-cli[onnx]'\"",
     "ONNX_INSTALL_HINT = None"):
        "the words of an error's hint (it reaches only WdsrError hints; None shows no hint)",
    ("ort", "options.log_severity_level = 3  # errors only",
     "options.log_severity_level = 4  # errors only"):
        "what ONNX Runtime logs (4: fatal only); its errors reach wdsr as exceptions either "
        "way",
    ("ov", 'safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in version.split("-")[0])',
     'safe = "".join(c if c.isalnum() or c in "XX.-XX" else "_" for c in '
     'version.split("-")[0])'):
        "X is alphanumeric, kept by isalnum() either way (and no '-' is left after the split)",
    ("ov", "self.cache_folder: Path | None = None", "self.cache_folder: Path & None = None"):
        "an annotation, never evaluated (from __future__ import annotations)",
    **{("ov", "self.request.infer([np.zeros((1, 3, 8, 8), np.float32)])",
        f"self.request.infer([np.zeros({shape}, np.float32)])"):
       "the warm-up window only makes OpenVINO's CPU plugin load and create its kernels "
       "while the ISA cap is hidden (oneDNN reads it once); any small image the model "
       "accepts (batch and sides are dynamic) does that, and its output is dropped"
       for shape in ("(2, 3, 8, 8)", "(1, 3, 9, 8)", "(1, 3, 8, 9)")},
    ("jsonout", 'owned: os.PathLike | str | None = None, owner: str = "") -> None:',
     'owned: os.PathLike | str | None = None, owner: str = "XXXX") -> None:'):
        "every caller that passes owned also passes owner (prepare --out, evaluate --report): "
        "the default never reaches a message",
    ("predictor", "window = window_side(receptive_radius if _is_int(receptive_radius) else 0,",
     "window = window_side(receptive_radius if _is_int(receptive_radius) else 1,"):
        "the 0 only stands in for a receptive radius that is not an integer, and such a "
        "radius is refused a few lines below, before the window is used",
    ("predictor", "self.meta: dict[str, Any] | None = None",
     "self.meta: dict[str, Any] & None = None"):
        "an annotation, never evaluated (from __future__ import annotations)",
    ("predictor", "self.precision_check: dict[str, Any] | None = None  # set by "
     "weights.load_predictor", "self.precision_check: dict[str, Any] & None = None  # set by "
     "weights.load_predictor"):
        "an annotation, never evaluated (from __future__ import annotations)",
    ("predictor", "self.precision_why: str | None = None  # set by weights.load_predictor when "
     "it differs", "self.precision_why: str & None = None  # set by weights.load_predictor "
     "when it differs"):
        "an annotation, never evaluated (from __future__ import annotations)",
    ("jsonout", "text = json.dumps({fileio.SUMMARY_MARK: command, **data}, indent=1, "
     "sort_keys=True,", "text = json.dumps({fileio.SUMMARY_MARK: command, **data}, indent=2, "
     "sort_keys=True,"):
        "indentation is whitespace: the summary a reader parses is the same",
    # how hard an input was compressed (compression.py)
    ("compression", "pct = 5000 // quality if quality < 50 else 200 - 2 * quality",
     "pct = 5001 // quality if quality < 50 else 200 - 2 * quality"):
        "5001 // q differs from 5000 // q only at q = 3 (1667 for 1666), where the scaled table "
        "rounds to the same values",
    ("compression", "pct = 5000 // quality if quality < 50 else 200 - 2 * quality",
     "pct = 5000 // quality if quality <= 50 else 200 - 2 * quality"):
        "at q = 50 both of IJG's formulas give 100 percent",
    ("compression", "pct = 5000 // quality if quality < 50 else 200 - 2 * quality",
     "pct = 5000 // quality if quality < 51 else 200 - 2 * quality"):
        "at q = 50 both of IJG's formulas give 100 percent",
    ("compression", "brands = head[8:12] + f.read(max(0, min(box, 256) - 12))[4:]  # minor "
     "version skipped", "brands = head[8:13] + f.read(max(0, min(box, 256) - 12))[4:]  # minor "
     "version skipped"):
        "head holds 12 bytes: [8:13] is [8:12]",
    ("compression", "brands = head[8:12] + f.read(max(0, min(box, 256) - 12))[4:]  # minor "
     "version skipped", "brands = head[8:12] + f.read(max(1, min(box, 256) - 12))[4:]  # minor "
     "version skipped"):
        "it differs only for a box shorter than 13 bytes, whose one extra byte [4:] drops",
    ("compression", "brands = head[8:12] + f.read(max(0, min(box, 256) - 12))[4:]  # minor "
     "version skipped", "brands = head[8:12] + f.read(max(0, min(box, 257) - 12))[4:]  # minor "
     "version skipped"):
        "a box over 256 bytes gains one byte, a partial brand that the 4-byte steps never "
        "read whole",
    ("compression", "names = {brands[i:i + 4] for i in range(0, len(brands) - 3, 4)}",
     "names = {brands[i:i + 4] for i in range(0, len(brands) + 3, 4)}"):
        "the extra slices are shorter than 4 bytes and match no brand",
    ("compression", 'if head[:4] != b"RIFF" or head[8:12] != b"WEBP":',
     'if head[:4] != b"RIFF" or head[8:13] != b"WEBP":'):
        "head holds 12 bytes: [8:13] is [8:12]",
    ("compression", "return f.read(64)", "return f.read(65)"):
        "the frame header up to the quantizer takes at most 35 bytes; one more is never read",
    ("compression", "while start + 8 <= len(data):", "while start - 8 <= len(data):"):
        "the bytes after the last whole header read as a box that is shorter than its header "
        "or runs past the end: the walk stops there either way",
    ("compression", "while start + 8 <= len(data):", "while start + 9 <= len(data):"):
        "it differs only for an empty box last in meta; every reader takes an empty box as a "
        "missing one (a box cut short, no item bytes: None)",
    ("compression", "while start + 8 <= len(data):", "while start + 8 < len(data):"):
        "it differs only for an empty box last in meta; every reader takes an empty box as a "
        "missing one (a box cut short, no item bytes: None)",
    ("compression", 'size, head = int.from_bytes(data[start + 8:start + 16], "big"), 16',
     'size, head = int.from_bytes(data[start + 9:start + 16], "big"), 16'):
        "it drops the top byte of a 64-bit size, 0 for any box under 2**56 bytes",
    ("compression", "sb_cols, sb_rows = (mi_cols + (1 << shift) - 1) >> shift, (mi_rows + (1 << "
     "shift) - 1) >> shift", "sb_cols, sb_rows = (mi_cols + (1 << shift) - 2) >> shift, "
     "(mi_rows + (1 << shift) - 1) >> shift"):
        "mi_cols is even (2 per 8 pixels): rounding it up to a multiple of 16 or 32 from 1 or 2 "
        "below gives the same",
    ("compression", "sb_cols, sb_rows = (mi_cols + (1 << shift) - 1) >> shift, (mi_rows + (1 << "
     "shift) - 1) >> shift", "sb_cols, sb_rows = (mi_cols + (1 << shift) - 1) >> shift, "
     "(mi_rows + (1 << shift) - 2) >> shift"):
        "mi_rows is even (2 per 8 pixels): rounding it up to a multiple of 16 or 32 from 1 or 2 "
        "below gives the same",
    ("compression", "max_width_sb, max_area_sb = 4096 >> (shift + 2), (4096 * 2304) >> (2 * "
     "(shift + 2))", "max_width_sb, max_area_sb = 4097 >> (shift + 2), (4096 * 2304) >> (2 * "
     "(shift + 2))"):
        "4097 >> 6 and >> 7 are 4096's: 64 and 32",
    ("compression", "max_width_sb, max_area_sb = 4096 >> (shift + 2), (4096 * 2304) >> (2 * "
     "(shift + 2))", "max_width_sb, max_area_sb = 4096 >> (shift + 2), (4097 * 2304) >> (2 * "
     "(shift + 2))"):
        "4097 * 2304 >> 12 and >> 14 are 4096 * 2304's: 2304 and 576",
    ("compression", "size = len(data) - pos", "size = len(data) + pos"):
        "an OBU without a size runs to the end either way: the slice stops there, and so "
        "does the walk",
    # the noise reading (noise.py)
    ("noise", "strides = _stride(area), _stride(area // 4), _stride(area // 16)",
     "strides = _stride(area), _stride(area / 4), _stride(area // 16)"):
        "_stride's bands start at 4 and 9 times MIN_PATCHES, whole numbers: area / 4 "
        "reaches one exactly when area // 4 does",
    ("noise", "strides = _stride(area), _stride(area // 4), _stride(area // 16)",
     "strides = _stride(area), _stride(area // 4), _stride(area / 16)"):
        "_stride's bands start at 4 and 9 times MIN_PATCHES, whole numbers: area / 16 "
        "reaches one exactly when area // 16 does",
    ("noise", "if h < PATCH or w < PATCH:", "if h < PATCH and w < PATCH:"):
        "with one side shorter than a patch, the patch rows (or columns) that follow are "
        "np.arange(0, h - PATCH + 1, STRIDE), empty: no patch either way",
    ("noise", "return np.empty(0, int), np.empty(0, int)",
     "return np.empty(0, int), np.empty(1, int)"):
        "the callers look at the number of rows only (_patches returns nothing for none)",
    ("noise", "cov /= max(n - 1, 1)", "cov /= max(n - 1, 2)"):
        "n is at least 196 here (_channel_sigma reads nothing below 4 x 49 patches)",
    ("noise", "CHUNK = 8192  # patches summed at a time into a covariance (bounds the memory a "
     "reading takes)", "CHUNK = 8193  # patches summed at a time into a covariance (bounds the "
     "memory a reading takes)"):
        "the chunk size changes memory use only; the covariance is the same sum (to rounding)",
    ("noise", "for (plane, corners), start, count in zip(tiles, starts, counts, strict=True):",
     "for (plane, corners), start, count in zip(tiles, starts, counts, strict=False):"):
        "starts and counts are made from tiles, one each: the lengths always agree",
    ("noise", "weak = energy < _gamma_quantile_99(GAMMA_SHAPE, 2.0 * var * GRAD_TRACE / (PATCH "
     "* PATCH))", "weak = energy <= _gamma_quantile_99(GAMMA_SHAPE, 2.0 * var * GRAD_TRACE / "
     "(PATCH * PATCH))"):
        "a patch whose energy equals the float threshold exactly: no test image has one, nor "
        "is one likely (the threshold is an irrational function of the variance)",
    ("noise", "break", "continue"):
        "(the first break) with too few weak patches the variance is unchanged, so the next "
        "iteration selects the same patches and continues again until ITERATIONS: the same "
        "number",
    ("noise", "if abs(new - var) <= 1e-4 * max(var, 1e-6):",
     "if abs(new - var) < 1e-4 * max(var, 1e-6):"): _FIXED_POINT,
    ("noise", "if abs(new - var) <= 1e-4 * max(var, 1e-6):",
     "if abs(new - var) <= 1e-4 * max(var, 2e-06):"): _FIXED_POINT,
}


# ------------------------------------------------------------------ the mutmut hook (child)

def _line_ranges(path: Path, functions: tuple[str, ...]) -> list[tuple[int, int]]:
    """1-based inclusive line ranges of the named functions/classes (``Class.method`` too)."""
    tree = ast.parse(path.read_text())
    found: dict[str, tuple[int, int]] = {}

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                found[name] = (first, child.end_lineno)
                if isinstance(child, ast.ClassDef):
                    walk(child, name + ".")

    walk(tree, "")
    missing = [f for f in functions if f not in found]
    if missing:
        raise SystemExit(f"{path}: no function {', '.join(missing)}")
    return [found[f] for f in functions]


def _message_lines(path: Path) -> set[int]:
    """Lines of ``raise`` statements and ``__all__``: a string changed there changes what a
    person reads (an error's words, tested by the CLI's one-line-error tests), not a number or
    a file; such mutants are not run (docs/mutation.md "How it runs")."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) or (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def _only_text_changed(original: str, mutated: str) -> bool:
    return mutated != original and mutated.replace("XX", "") == original.replace("XX", "")


def _install_hook(module: Module) -> None:
    """A ``mutmut_config`` whose pre_mutation skips lines outside ``module.functions`` and the
    words of error messages."""
    import types

    skip = _skipper(module, Path("."))
    config = types.ModuleType("mutmut_config")

    def pre_mutation(context):
        mid = context.mutation_id
        if skip(mid.line_number, mid.line, mid.index):
            context.skip = True

    config.pre_mutation = pre_mutation
    sys.modules["mutmut_config"] = config


def child(name: str) -> int:
    """Run mutmut on one module; the current folder is the module's copy of the tree."""
    module = BY_NAME[name]
    os.environ[_HOOK_ENV] = name  # mutmut checks mutants in a spawned process: see the end
    _install_hook(module)
    from mutmut.__main__ import climain  # after the hook: mutmut imports mutmut_config once

    runner = f"{sys.executable} scripts/mutate.py --pytest {name}"
    common = ["--paths-to-mutate", module.path, "--runner", runner, "--tests-dir", "tests/",
              "--swallow-output"]
    rc = _mutmut(climain, ["run", *common])
    # mutmut 2.5 leaves some mutants of lines that repeat earlier lines word for word untested
    # after the tests change (their old status stays): run those one by one, by id.
    for pk in _stale(Path(".mutmut-cache"), module):
        rc |= _mutmut(climain, ["run", str(pk), *common])
    return rc & 1  # 2, 4, 8 are survivors, timeouts, suspicious: not a failure of the run


def _mutmut(climain, argv: list[str]) -> int:
    try:
        climain.main(argv, standalone_mode=False)
    except SystemExit as exc:  # mutmut exits with a bit mask of what it found
        return int(exc.code or 0)
    return 0


def _stale(db: Path, module: Module) -> list[int]:
    """Ids of mutants not killed whose result predates the current tests (and not skipped)."""
    if not db.exists():
        return []
    current = _current_hash(db)
    skip = _skipper(module, Path("."))
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT m.id, l.line_number, l.line, m.\"index\", m.tested_against_hash FROM Mutant m "
        "JOIN Line l ON m.line = l.id JOIN SourceFile s ON l.sourcefile = s.id "
        "WHERE s.filename = ? AND m.status NOT IN ('ok_killed', 'skipped')",
        (module.path,)).fetchall()
    con.close()
    return [pk for pk, n, line, index, tested in rows
            if tested != current and not skip(n, line, index)]


# ------------------------------------------------------------------ the parent

def _sync(dest: Path) -> None:
    """``dest`` = the tree as git sees it, uncommitted changes included (cache kept)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    wanted = {f for f in files if f and not f.startswith(".mutmut")}
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(wanted):
        src, dst = ROOT / f, dest / f
        if not src.is_file():
            continue
        if dst.is_file() and dst.stat().st_size == src.stat().st_size \
                and dst.read_bytes() == src.read_bytes():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    for p in sorted(dest.rglob("*"), reverse=True):  # files git no longer knows
        rel = p.relative_to(dest).as_posix()
        if p.is_file() and rel not in wanted and not rel.startswith(".mutmut") \
                and "__pycache__" not in rel:
            p.unlink()


def run_module(name: str) -> float:
    dest = WORK / name
    _sync(dest)
    env = {**os.environ, "PYTHONPATH": str(dest), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.monotonic()
    log = dest / ".mutmut-log.txt"
    with open(log, "w") as out:
        rc = subprocess.run([sys.executable, str(dest / "scripts" / "mutate.py"), "--child",
                             name], cwd=dest, env=env, stdout=out, stderr=subprocess.STDOUT)
    took = time.monotonic() - start
    if rc.returncode:
        print(f"{name}: mutmut failed (exit {rc.returncode}); see {log}", file=sys.stderr)
    (dest / ".mutmut-time").write_text(f"{took:.0f}\n")
    return took


def _diff(original: str, mutated: str) -> tuple[str, str]:
    return original.strip(), mutated.strip()


def survivors(name: str) -> tuple[dict[str, int], list[tuple[int, str, str]]]:
    """Counts and the surviving mutants (line, original, mutated) of a module's last run."""
    module = BY_NAME[name]
    dest = WORK / name
    db = dest / ".mutmut-cache"
    counts = {"mutants": 0, "killed": 0, "survived": 0, "equivalent": 0, "timeout": 0,
              "untested": 0, "words": 0}
    found: list[tuple[int, str, str]] = []
    if not db.exists():
        return counts, found
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT l.line_number, l.line, m.\"index\", m.status, m.tested_against_hash "
        "FROM Mutant m "
        "JOIN Line l ON m.line = l.id JOIN SourceFile s ON l.sourcefile = s.id "
        "WHERE s.filename = ?", (module.path,)).fetchall()
    con.close()
    current = _current_hash(db)
    skip = _skipper(module, dest)
    for line_number, line, index, status, tested in rows:
        why = skip(line_number, line, index)
        if why == "words":
            counts["words"] += 1
        if why:
            continue
        if status != "ok_killed" and tested != current:
            status = "untested"
        counts["mutants"] += 1
        if status in ("ok_killed", "ok_suspicious"):
            counts["killed"] += 1
        elif status == "bad_timeout":  # the tests never finished: killed in effect
            counts["killed"] += 1
            counts["timeout"] += 1
        elif status == "untested":
            counts["untested"] += 1
        else:
            mutated = _mutated_line(dest, module.path, line_number, index)
            key = (name, *_diff(line, mutated))
            if key in EQUIVALENT:
                counts["equivalent"] += 1
            else:
                counts["survived"] += 1
                found.append((line_number + 1, line, mutated))
    return counts, found


def _current_hash(db: Path) -> str | None:
    con = sqlite3.connect(db)
    row = con.execute("SELECT value FROM MiscData WHERE key = 'hash_of_tests'").fetchone()
    con.close()
    return row[0] if row else None


def _skipper(module: Module, dest: Path):
    """The hook's decision for a mutant (0-based line number), as a function."""
    path = dest / module.path
    ranges = _line_ranges(path, module.functions) if module.functions else None
    messages = _message_lines(path)

    def skip(line_number: int, line: str, index: int) -> str | None:
        """Why the mutant is not run ("outside", "words"), or None."""
        n = line_number + 1
        if ranges is not None and not any(a <= n <= b for a, b in ranges):
            return "outside"
        if n in messages and _only_text_changed(
                line, _mutated_line(dest, module.path, line_number, index)):
            return "words"
        return None

    return skip


def _mutated_line(dest: Path, path: str, line_number: int, index: int) -> str:
    from mutmut import Context, RelativeMutationID, mutate

    source = (dest / path).read_text()
    lines = source.splitlines()
    ctx = Context(source=source, mutation_id=RelativeMutationID(lines[line_number], index,
                                                                line_number),
                  filename=path, dict_synonyms=[])
    new, _n = mutate(ctx)
    new_lines = new.splitlines()
    return new_lines[line_number] if line_number < len(new_lines) else "<removed>"


def table(names: list[str]) -> str:
    head = ("| module | file | mutants | killed | survived | equivalent | not run: words of "
            "an error | time |")
    out = [head, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        counts, _ = survivors(name)
        took_file = WORK / name / ".mutmut-time"
        took = f"{int(took_file.read_text()) / 60:.1f} min" if took_file.exists() else "-"
        m = BY_NAME[name]
        what = m.path.removeprefix("wdsr_cli/core/")
        if m.functions:
            what += " (" + ", ".join(m.functions) + ")"
        untested = f" ({counts['untested']} untested)" if counts["untested"] else ""
        out.append(f"| {name} | {what} | {counts['mutants']} | {counts['killed']} | "
                   f"{counts['survived']}{untested} | {counts['equivalent']} | "
                   f"{counts['words']} | {took} |")
    return "\n".join(out)


def _die_with_parent() -> None:
    """In the test process, before it starts: SIGKILL when its parent dies (Linux prctl)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: a hung mutant's tests may outlive it
        pass


def _run_tests(name: str) -> int:
    """mutmut's test command for module ``name``: its tests, exit 1 if they caught the mutant.

    mutmut 2 counts only exit code 1 as "killed", anything else as "survived". So a mutant that
    breaks the collection (exit 2, e.g. a parametrize over a constant made None) and one that
    crashes the interpreter (death by a signal: OpenVINO segfaults when a mutant leaves it
    oneDNN's ISA cap) are mapped to 1: the tests caught them too. pytest runs in a child
    process for the crash's sake; it dies with this one, which mutmut's timeout kills (a
    mutant that hangs)."""
    env = {k: v for k, v in os.environ.items() if k != _HOOK_ENV}  # worker processes of the
    # tests import this file too
    cmd = [sys.executable, "-m", "pytest", *PYTEST, *shlex.split(BY_NAME[name].tests)]
    rc = subprocess.run(cmd, cwd=ROOT / "tests", env=env, preexec_fn=_die_with_parent,
                        check=False).returncode
    return 1 if rc in (1, 2, 3) or rc < 0 else rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"of {', '.join(BY_NAME)} (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="modules at a time (default 1)")
    ap.add_argument("--show", action="store_true", help="only print the last run's survivors")
    ap.add_argument("--json", action="store_true", help="counts as JSON instead of a table")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--pytest", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    if args.pytest:  # mutmut's test command (it runs commands without a shell)
        return _run_tests(args.pytest)
    names = args.modules or list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        ap.error(f"unknown module {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    if not args.show:
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for name, took in zip(names, pool.map(run_module, names), strict=True):
                print(f"{name}: {took / 60:.1f} min", flush=True)
    bad = 0
    for name in names:
        counts, found = survivors(name)
        bad += counts["survived"]
        for line_number, line, mutated in found:
            print(f"survived {BY_NAME[name].path}:{line_number}\n  - {line.strip()}\n"
                  f"  + {mutated.strip()}")
    if args.json:
        print(json.dumps({n: survivors(n)[0] for n in names}, indent=1))
    else:
        print(table(names))
    return 1 if bad else 0


_HOOK_ENV = "WDSR_MUTATE_MODULE"
# mutmut 2.5 runs the mutants in a process made by multiprocessing's spawn, which imports this
# file again (as __mp_main__) before mutmut: the hook must be installed here, at import.
if __name__ != "__main__" and os.environ.get(_HOOK_ENV) in BY_NAME \
        and "mutmut_config" not in sys.modules \
        and Path(BY_NAME[os.environ[_HOOK_ENV]].path).is_file():
    _install_hook(BY_NAME[os.environ[_HOOK_ENV]])

if __name__ == "__main__":
    sys.exit(main())

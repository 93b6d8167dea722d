"""Benchmarks behind `make bench`: prints a Rich table and writes bench/out/bench.json.

    python scripts/bench.py               # every benchmark
    python scripts/bench.py pipeline      # only some (names: see BENCHES at the bottom)

Each benchmark is a function returning rows ``{"bench", "metric", "value", "unit", "note"}``.
To add one, write ``def bench_<name>() -> list[dict]`` and register it in ``BENCHES``.
Results of benchmarks not run this time are kept in the JSON file.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
SAMPLE = OUT / "sample"  # the bundled sample laid out and prepared once, reused by benches


def _cpu_model() -> str:
    """The CPU's model name (numbers are only comparable on the same CPU model)."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text()
                    .split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return platform.processor()
    info = {k.strip(): v.strip() for k, v in info.items()}
    avx = "AVX-512" if "avx512f" in info.get("flags", "").split() else "no AVX-512"
    return (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')} model "
            f"{info.get('model', '?')}, {avx})")


def _row(bench: str, metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"bench": bench, "metric": metric, "value": round(float(value), 3), "unit": unit,
            "note": note}


def prepared_sample() -> Path:
    """bench/out/sample/prepared: the bundled photos prepared with the --sample defaults."""
    from wdsr_cli.core.config import load_config
    from wdsr_cli.core.data import prepare as prep

    job = prep.plan_prepare(prep.PrepareRequest(sample=SAMPLE), load_config(None, []))
    job.run()
    return job.opts.out


# ------------------------------------------------------------------------ data pipeline


def bench_pipeline(seconds: float = 3.0) -> list[dict]:
    """Training patches per second from the prepared sample: x2, 48x48 LR, batch 16, one
    process (TrainPatches.batch directly, and through iterate()'s prefetch thread)."""
    from wdsr_cli.core.data.pipeline import TrainPatches

    tp = TrainPatches(prepared_sample(), scale=2, patch_size=48, batch_size=16, seed=0)
    for step in range(5):  # warm the page cache and the permutation
        tp.batch(step)
    step, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tp.batch(step)
        step += 1
    direct = step * 16 / (time.perf_counter() - start)

    n, start = 0, time.perf_counter()
    it = tp.iterate(0, 10**9, prefetch=4)
    for _ in it:
        n += 1
        if time.perf_counter() - start >= seconds:
            break
    it.close()
    threaded = n * 16 / (time.perf_counter() - start)
    note = f"x2, LR 48 / HR 96, batch 16, {tp.num_subimages} sub-images"
    return [_row("pipeline", "patch pairs/s (batch)", direct, "pairs/s", note),
            _row("pipeline", "patch pairs/s (iterate)", threaded, "pairs/s",
                 "prefetch thread, idle consumer")]


# ------------------------------------------------------------------------- prepare-data


def bench_prepare(repeats: int = 3) -> list[dict]:
    """prepare-data on the bundled sample (16 photos, x2/x3/x4, MATLAB bicubic LR), from
    scratch each time, with one worker per CPU and with one worker; median of the runs."""
    from wdsr_cli.core.config import load_config
    from wdsr_cli.core.data import prepare as prep

    cfg = load_config(None, [])
    rows = []
    cpus = os.cpu_count() or 1
    for workers in sorted({cpus, 1}, reverse=True):
        rates, secs = [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                prep.lay_out_sample(Path(tmp) / "sample")  # not timed: copying the photos
                t0 = time.perf_counter()  # what `wdsr prepare-data --sample` does after that
                job = prep.plan_prepare(prep.PrepareRequest(sample=Path(tmp) / "sample",
                                                            workers=workers), cfg)
                summary = job.run()
                total = time.perf_counter() - t0
                n = summary["processed"]
                rates.append(n / total)
                secs.append(total)
        note = (f"sample: {n} photos, x2/x3/x4, crop {summary['crop_size']}/"
                f"{summary['crop_step']}, wall time")
        rows.append(_row("prepare", f"images/s ({workers} worker{'s' * (workers > 1)})",
                         statistics.median(rates), "images/s", note))
        rows.append(_row("prepare", f"seconds ({workers} worker{'s' * (workers > 1)})",
                         statistics.median(secs), "s", "from scratch, incl. start-up"))
    return rows


# ------------------------------------------------------------------------------ upscale


def _bench_checkpoint(folder: Path) -> Path:
    """WDSR-B 32x16 x2 with random weights, saved as wdsr train saves best.ckpt (speed does not
    depend on the weights)."""
    from wdsr_cli.core.checkpoints import save_checkpoint
    from wdsr_cli.core.config import Config, ModelConfig
    from wdsr_cli.core.model import build_model

    cfg = Config(model=ModelConfig(variant="b", scale=2, n_feats=32, n_resblocks=16))
    return save_checkpoint(build_model(cfg.model), folder / "wdsr_b_32x16_x2.ckpt", meta={
        "model": cfg.to_dict()["model"], "scale": 2, "step": 0, "kind": "weights",
        "dataset_id": "bench"})


def bench_upscale(repeats: int = 5) -> list[dict]:
    """`wdsr upscale` at x2 on a 512x512 photo (bundled brushes.png, cropped) with WDSR-B
    32 features x 16 blocks (random weights: speed does not depend on them), in the
    Predictor's fixed windows: output megapixels per second (read + network + write, the
    fastest of ``repeats`` runs after a warm-up run, as other processes may share the CPU),
    and the wall time of one `wdsr upscale` process
    (start-up, checkpoint load and graph compile included).
    """
    import subprocess

    import numpy as np

    from wdsr_cli.core import runtime

    runtime.init_mindspore("CPU", mode="graph", seed=0, purpose="inference")
    from wdsr_cli.core.data.images import Image, read_image, write_image
    from wdsr_cli.core.data.prepare import sample_dir
    from wdsr_cli.core.inference import Predictor
    from wdsr_cli.core.inference.upscale import upscale_image

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = _bench_checkpoint(tmp)
        photo = read_image(sample_dir() / "brushes.png").pixels[:512, :512]
        src = tmp / "in.png"
        write_image(src, Image(pixels=np.ascontiguousarray(photo)))
        out_mp = 1024 * 1024 / 1e6
        predictor = Predictor.from_checkpoint(ckpt)
        dst = tmp / "out.png"
        upscale_image(predictor, src, dst)  # warm-up: first call of each input shape
        secs = min(upscale_image(predictor, src, dst)["seconds"] for _ in range(repeats))
        side = "x".join(map(str, predictor.window))
        rows.append(_row("upscale", "output MP/s x2", out_mp / secs, "MP/s",
                         f"512x512 -> 1024x1024, WDSR-B 32x16, windows of {side} LR px, "
                         f"{secs:.2f} s/image (best of {repeats})"))
        wdsr = str(Path(sys.executable).with_name("wdsr"))
        t0 = time.perf_counter()
        subprocess.run([wdsr, "upscale", str(src), "--checkpoint", str(ckpt), "--backend",
                        "mindspore", "-o", str(tmp / "cli.png")], check=True, capture_output=True)
        rows.append(_row("upscale", "wdsr upscale process",
                         time.perf_counter() - t0, "s",
                         "one 512x512 photo, incl. start-up, load and graph compile"))
    return rows


# ------------------------------------------------------------------------------- export


def bench_export(repeats: int = 3) -> list[dict]:
    """`upscale` at x2 on the same 512x512 photo (bundled brushes.png, cropped) with the
    checkpoint (MindSpore GRAPH), its MINDIR (MindSpore, ms.load + GraphCell) and its ONNX
    file (ONNX Runtime, CPU), WDSR-B 32 features x 16 blocks, random weights: output
    megapixels per second (read + network + write, the fastest of ``repeats`` runs after a
    warm-up, as other processes may share the CPU), in the Predictor's windows; 8-bit
    values that differ from the checkpoint's image; the export's own parity numbers and its
    time (export + check)."""

    import numpy as np

    from wdsr_cli.core import runtime

    runtime.init_mindspore("CPU", mode="graph", seed=0, purpose="inference")
    from wdsr_cli.core.data.images import Image, read_image, write_image
    from wdsr_cli.core.data.prepare import sample_dir
    from wdsr_cli.core.inference import Predictor
    from wdsr_cli.core.inference.export import export_model
    from wdsr_cli.core.inference.upscale import upscale_image

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = _bench_checkpoint(tmp)
        files = {"checkpoint": ckpt}
        for fmt in ("mindir", "onnx"):
            t0 = time.perf_counter()
            result = export_model(ckpt, fmt)
            seconds = time.perf_counter() - t0
            parity = result["parity"]
            worst = max(parity["images"], key=lambda r: r["uint8_differ_share"])
            rows.append(_row("export", f"{fmt} export + parity check", seconds, "s",
                             f"max |diff| {parity['max_abs_diff']:.2e} on 0..255, "
                             f"{100 * worst['uint8_differ_share']:.4f}% 8-bit values differ "
                             f"({parity['runtime']})"))
            files[fmt] = Path(result["output"])
        photo = read_image(sample_dir() / "brushes.png").pixels[:512, :512]
        src = tmp / "in.png"
        write_image(src, Image(pixels=np.ascontiguousarray(photo)))
        out_mp = 1024 * 1024 / 1e6
        reference = None
        for kind, path in files.items():
            predictor = (Predictor.from_checkpoint(path) if kind == "checkpoint"
                         else Predictor.from_model(path))
            dst = tmp / f"out_{kind}.png"
            upscale_image(predictor, src, dst)  # warm-up
            secs = min(upscale_image(predictor, src, dst)["seconds"] for _ in range(repeats))
            pixels = read_image(dst).pixels.astype(int)
            reference = pixels if reference is None else reference
            differ = int((pixels != reference).sum())
            note = (f"{predictor.backend.name}; 512x512 -> 1024x1024, {secs:.2f} s/image "
                    f"(best of {repeats})"
                    + ("" if kind == "checkpoint" else
                       f"; {differ} of {pixels.size} 8-bit values differ from the "
                       "checkpoint's"))
            rows.append(_row("export", f"upscale MP/s x2, {kind}", out_mp / secs, "MP/s", note))
    return rows


# ----------------------------------------------------------------------------- backends

# Bare ONNX Runtime: the bundled x2 ONNX form in one session.run over the whole image, no wdsr
# code at all (argv: model, input PNG, output PNG; prints the network seconds).
BARE_ORT = """
import sys, time
import numpy as np, onnxruntime as ort
from PIL import Image
options = ort.SessionOptions()
options.log_severity_level = 3
session = ort.InferenceSession(sys.argv[1], sess_options=options,
                               providers=["CPUExecutionProvider"])
x = np.asarray(Image.open(sys.argv[2]).convert("RGB"), np.float32).transpose(2, 0, 1)[None]
start = time.perf_counter()
y = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x)})[0]
seconds = time.perf_counter() - start
out = np.floor(np.clip(y[0].transpose(1, 2, 0), 0, 255) + 0.5).astype(np.uint8)
Image.fromarray(out).save(sys.argv[3])
print(seconds)
"""


def _timed_process(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one process (its own rusage, via wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise RuntimeError(f"{args[:3]} failed ({proc.returncode}): {err.read()[-2000:]}")
        return wall, usage.ru_maxrss / 1024, out.read()


def _photo_of_size(height: int, width: int, path: Path, shift: int = 0) -> Path:
    """A real photo (bundled brushes.png) mirrored out to height x width pixels (``shift``
    rolls it, so a folder of them holds different pictures)."""
    import numpy as np

    from wdsr_cli.core.data.images import Image, read_image, write_image
    from wdsr_cli.core.data.prepare import sample_dir

    photo = np.roll(read_image(sample_dir() / "brushes.png").pixels, shift, axis=(0, 1))
    h, w = photo.shape[:2]
    big = np.pad(photo, ((0, max(height - h, 0)), (0, max(width - w, 0)), (0, 0)), "symmetric")
    write_image(path, Image(pixels=np.ascontiguousarray(big[:height, :width])))
    return path


# Bare OpenVINO: the same ONNX file compiled (no cache) at the precision in argv[4] ("f32" or
# "bf16", always named: OpenVINO's own default on a bf16 CPU is bf16), one infer over the
# whole image, no wdsr code.
BARE_OV = """
import sys, time
import numpy as np, openvino as ov
from PIL import Image
compiled = ov.Core().compile_model(sys.argv[1], "CPU", {"INFERENCE_PRECISION_HINT": sys.argv[4]})
x = np.asarray(Image.open(sys.argv[2]).convert("RGB"), np.float32).transpose(2, 0, 1)[None]
start = time.perf_counter()
y = compiled(np.ascontiguousarray(x))[0]
seconds = time.perf_counter() - start
out = np.floor(np.clip(y[0].transpose(1, 2, 0), 0, 255) + 0.5).astype(np.uint8)
Image.fromarray(out).save(sys.argv[3])
print(seconds)
"""

# name -> `wdsr upscale` options, or the bare script and its extra arguments
HOWS = {
    "default": [],
    "onnxruntime fp32": ["--backend", "onnxruntime"],
    "openvino fp32": ["--backend", "openvino", "--precision", "fp32"],
    "openvino bf16": ["--backend", "openvino", "--precision", "bf16"],
    "mindspore": ["--backend", "mindspore"],
    "bare ONNX Runtime": (BARE_ORT, []),
    "bare OpenVINO fp32": (BARE_OV, ["f32"]),
    "bare OpenVINO bf16": (BARE_OV, ["bf16"]),
}
BARE = [n for n in HOWS if n.startswith("bare")]


def _run_upscale(how: str, src: Path, dst: Path, onnx_form: str) -> tuple[float, float, float,
                                                                          str]:
    """(network s, whole process s, peak RSS MB, engine) of one process: `wdsr upscale` with
    the options of ``HOWS[how]``, or a bare engine script."""
    if how in BARE:
        script, extra = HOWS[how]
        wall, rss, out = _timed_process([sys.executable, "-c", script, onnx_form, str(src),
                                         str(dst), *extra])
        return float(out.strip().splitlines()[-1]), wall, rss, f"{how}, whole image"
    summary = dst.with_suffix(".json")
    args = [str(Path(sys.executable).with_name("wdsr")), "upscale", str(src), "-o", str(dst),
            "--overwrite", "--json", str(summary), *HOWS[how]]
    wall, rss, _ = _timed_process(args)
    report = json.loads(summary.read_text())
    return (report["images"][0]["network_seconds"], wall, rss,
            f"{report['backend']}, {report['precision']}")


def bench_backends(repeats: int = 3) -> list[dict]:
    """The bundled x2 weights, each run its own process: `wdsr upscale` as it runs by default
    (auto engine and precision), with each engine and precision named, and the bare engines
    (the same weights' ONNX form, one call over the whole image, no wdsr code). Network output
    MP/s (the Predictor's or the engine call's time), whole-process seconds and peak RSS.
    512x512: ``repeats`` rounds (all in turn), medians; 2000x2000: one round (no MindSpore);
    4000x3000: the default path only (a whole-image call would need ~16 GB). Then a folder of
    8 photos (512x512) through the default path: images/s and MP/s of the whole batch. The
    OpenVINO model cache and bf16 check are warmed first (a user's second run)."""
    from wdsr_cli.core.checkpoints import bundled_checkpoint

    onnx_form = str(bundled_checkpoint(2).with_suffix(".onnx"))
    rows, network = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["WDSR_CACHE_DIR"] = str(tmp / "cache")  # inherited by every `wdsr` run
        warm = _photo_of_size(64, 64, tmp / "warm.png")
        for how in ("default", "openvino fp32", "openvino bf16"):
            _run_upscale(how, warm, tmp / "warm_out.png", onnx_form)
        every = list(HOWS)
        for (h, w), rounds, names in (
                ((512, 512), repeats, every),
                ((2000, 2000), 1, [n for n in every if n != "mindspore"]),
                ((3000, 4000), 1, ["default"])):
            src = _photo_of_size(h, w, tmp / f"in{w}x{h}.png")
            out_mp = 4 * h * w / 1e6
            runs: dict[str, list] = {n: [] for n in names}
            for _ in range(rounds):  # in turn, so that drift hits all alike
                for n in names:
                    runs[n].append(_run_upscale(n, src, tmp / "out.png", onnx_form))
            for n in names:
                net, wall, rss = (statistics.median(r[i] for r in runs[n]) for i in range(3))
                network[(w, h, n)] = (net, wall)
                rows.append(_row("backends", f"{w}x{h} {n}: network MP/s", out_mp / net, "MP/s",
                                 f"{runs[n][0][3]}; network {net:.2f} s, whole process "
                                 f"{wall:.2f} s, peak RSS {rss:,.0f} MB"
                                 + (f" (medians of {rounds})" if rounds > 1 else "")))
        for side in (512, 2000):
            bare = min(BARE, key=lambda n: network[(side, side, n)][0])
            net, wall = network[(side, side, "default")]
            rows.append(_row("backends", f"{side}x{side} default / fastest bare engine",
                             net / network[(side, side, bare)][0], "x",
                             f"network time vs {bare} (goal <= 1.15)"))
            rows.append(_row("backends", f"{side}x{side} default - fastest bare, whole process",
                             wall - network[(side, side, bare)][1], "s",
                             f"vs {bare} (goal <= 0.5 s at 512x512)"))
        per_px = {k: network[k][0] / (k[0] * k[1]) for k in network if k[2] == "default"}
        for w, h in ((2000, 2000), (4000, 3000)):
            rows.append(_row("backends", f"{w}x{h} default: time per pixel vs 512x512",
                             per_px[(w, h, "default")] / per_px[(512, 512, "default")], "x",
                             "network time per LR pixel (goal <= 1.3: linear in pixels)"))
        folder = tmp / "folder"
        folder.mkdir()
        for i in range(8):
            _photo_of_size(512, 512, folder / f"p{i}.png", shift=37 * i)
        summary = tmp / "folder.json"
        wall, rss, _ = _timed_process([str(Path(sys.executable).with_name("wdsr")), "upscale",
                                       str(folder), "-o", str(tmp / "folder_out"),
                                       "--json", str(summary)])
        report = json.loads(summary.read_text())
        secs = report["seconds"]
        busy = sum(i["network_seconds"] for i in report["images"]) / secs
        rows.append(_row("backends", "folder of 8 512x512 photos: output MP/s",
                         8 * 4 * 512 * 512 / 1e6 / secs, "MP/s",
                         f"{report['backend']}; {8 / secs:.2f} images/s, batch {secs:.1f} s "
                         f"(network busy {busy:.0%} of it), whole process {wall:.1f} s, peak "
                         f"RSS {rss:,.0f} MB"))
    return rows


def bench_noise(repeats: int = 3) -> list[dict]:
    """--weights auto reads the noise of each lossless (or q93+ JPEG) input: the reading's own
    time and memory on a 1920x1200 photo, and what it adds to a whole `wdsr upscale` of a
    folder of four such PNGs (peak RSS and wall time, against --weights clean, which reads
    nothing)."""
    import tracemalloc

    from wdsr_cli.core.data.images import read_image
    from wdsr_cli.core.inference.noise import noise_of

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "photos"
        folder.mkdir()
        for i in range(4):
            _photo_of_size(1200, 1920, folder / f"p{i}.png", shift=53 * i)
        image = read_image(folder / "p0.png")
        seconds, peaks = [], []
        for _ in range(repeats):
            tracemalloc.start()
            start = time.perf_counter()
            noise_of(image)
            seconds.append(time.perf_counter() - start)
            peaks.append(tracemalloc.get_traced_memory()[1] / 1e6)
            tracemalloc.stop()
        rows.append(_row("noise", "reading a 1920x1200 photo", statistics.median(seconds), "s",
                         f"peak {max(peaks):.0f} MB (tracemalloc)"))
        wdsr = str(Path(sys.executable).with_name("wdsr"))
        runs = {}
        for weights in ("auto", "clean") * repeats:  # alternating
            out = tmp / f"out_{weights}"
            shutil.rmtree(out, ignore_errors=True)
            wall, rss, _ = _timed_process([wdsr, "upscale", str(folder), "-o", str(out),
                                           "--weights", weights])
            runs.setdefault(weights, []).append((wall, rss))
        (auto_wall, auto_rss), (clean_wall, clean_rss) = (
            tuple(statistics.median(r[i] for r in runs[w]) for i in range(2))
            for w in ("auto", "clean"))
        rows.append(_row("noise", "4 1920x1200 PNGs: peak RSS, auto - clean",
                         auto_rss - clean_rss, "MB",
                         f"auto {auto_rss:,.0f} MB, clean {clean_rss:,.0f} MB (medians of "
                         f"{repeats})"))
        rows.append(_row("noise", "4 1920x1200 PNGs: wall time, auto / clean",
                         auto_wall / clean_wall, "x",
                         f"auto {auto_wall:.1f} s, clean {clean_wall:.1f} s"))
    return rows


# ---------------------------------------------------------------------------- registry

def bench_train(steps: int = 3) -> list[dict]:
    """Training throughput of the real GRAPH-mode train step (train.build_train_step), x2,
    batch 16, 48x48 LR patches, fp32 on the CPU: first-step compile time, then patches/s over
    `steps` steps (random data: the pipeline's own rate is measured by bench_pipeline)."""
    import numpy as np
    from mindspore import Tensor

    from wdsr_cli.core import runtime
    from wdsr_cli.core.config import load_config
    from wdsr_cli.core.model import build_model
    from wdsr_cli.core.schedule import learning_rates
    from wdsr_cli.core.train import build_train_step

    runtime.init_mindspore("CPU", seed=0)
    rows = []
    # The paper-size recipes (WDSR-A block width 128 alone took minutes) are left out: make
    # bench stays a few minutes on 2 cores.
    for name, note in (("bundled-x2", "WDSR-B 32x16 (bundled weights)"),
                       ("demo", "demo recipe")):
        cfg = load_config(name, ["data.patch_size=48", "data.batch_size=16"])
        rng = np.random.default_rng(0)
        p, s = cfg.data.patch_size, cfg.model.scale
        lr = Tensor(rng.uniform(0, 255, (16, 3, p, p)).astype(np.float32))
        hr = Tensor(rng.uniform(0, 255, (16, 3, p * s, p * s)).astype(np.float32))
        step = build_train_step(build_model(cfg.model), cfg.train,
                                learning_rates(cfg.train), "fp32")
        t0 = time.perf_counter()
        step(lr, hr).asnumpy()
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(steps):
            step(lr, hr).asnumpy()
        per_step = (time.perf_counter() - t0) / steps
        rows.append(_row("train", f"{name} patches/s", 16 / per_step, "patches/s",
                         f"{note}; {per_step:.2f} s/step; first step (compile) {compile_s:.1f} s"))
    return rows


BENCHES = {
    "prepare": bench_prepare,
    "pipeline": bench_pipeline,
    "upscale": bench_upscale,
    "export": bench_export,
    "train": bench_train,
    "backends": bench_backends,
    "noise": bench_noise,
}


def main(argv: list[str], flags: tuple[str, ...] = ()) -> int:
    from rich.console import Console
    from rich.table import Table

    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}",
              file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "bench.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        results = {}
    results.setdefault("benches", {})
    console = Console(stderr=True)
    if len(names) > 1:
        # One process per bench, as the CLI runs one command per process: MindSpore's state is
        # per process (training and inference cap oneDNN at different ISAs, see runtime.py).
        for name in names:
            rc = subprocess.run([sys.executable, __file__, name, "--keep", "--no-table"])
            if rc.returncode:
                return rc.returncode
        results = json.loads(path.read_text())
    else:
        console.print(f"[bold]bench[/] {names[0]} ...")
        results["benches"][names[0]] = BENCHES[names[0]]()
        results["machine"] = {"cpus": os.cpu_count(), "machine": platform.machine(),
                              "python": platform.python_version(),
                              "processor": _cpu_model()}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    if "--no-table" in flags:
        return 0

    table = Table(title=f"benchmarks ({os.cpu_count()} CPUs)", title_justify="left")
    for col in ("bench", "metric", "value", "unit", "note"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for name in names:
        for r in results["benches"][name]:
            table.add_row(r["bench"], r["metric"], f"{r['value']:,.1f}", r["unit"], r["note"])
    Console().print(table)
    print(f"written: {path.relative_to(REPO)}")
    if SAMPLE.exists() and "--keep" not in flags:
        shutil.rmtree(SAMPLE, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main([a for a in sys.argv[1:] if not a.startswith("--")],
                  tuple(a for a in sys.argv[1:] if a.startswith("--"))))

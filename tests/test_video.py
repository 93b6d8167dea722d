"""`wdsr upscale clip.mp4`: video in, video out (core/inference/video.py), through the real
entry point, on tiny clips these tests make with PyAV and a tiny random checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import WDSR, one_line_error, run_wdsr, save_tiny_checkpoint, wait_for_marker

from wdsr_cli.core.data.images import read_image

FRAMES, W, H, FPS = 8, 48, 32, 24


def make_clip(path: Path, *, frames: int = FRAMES, width: int = W, height: int = H,
              fps: int = FPS, audio: str | None = None, rotation: int | None = None,
              bt709: bool = False, video: bool = True) -> Path:
    """A small clip: moving colour waves (libx264, yuv420p), optionally an audio stream
    (``aac`` or ``pcm_s16le``: a 440 Hz tone as long as the video), a display rotation, and
    BT.709 colour tags. ``frames=0`` with audio: a video stream that has no frames."""
    out = av.open(str(path), "w")
    if video:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": "12"}
        if rotation is not None:
            v.set_display_rotation(rotation)
        if bt709:
            cc = v.codec_context
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
    a = None
    if audio:
        a = out.add_stream(audio, rate=48000)
        a.layout = "mono"
    out.start_encoding()
    if video:
        y, x = np.mgrid[0:height, 0:width]
        for i in range(frames):
            img = np.stack([np.sin(x / 5 + i / 2 + k) * np.cos(y / 4 - k) for k in range(3)], 2)
            img = np.clip(np.rint(127.5 + 110 * img), 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            if bt709:
                f = f.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=1)
            f.pts = i
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    if a is not None:
        fmt = a.codec_context.format.name
        size = a.codec_context.frame_size or 1024
        n = int(48000 * max(frames, 4) / fps)
        tone = np.sin(2 * np.pi * 440 * np.arange(n) / 48000) * 0.3
        for k in range(0, n, size):
            chunk = tone[k:k + size]
            arr = chunk.astype(np.float32)[None] if fmt.startswith("flt") else \
                (chunk * 32767).astype(np.int16)[None]
            af = av.AudioFrame.from_ndarray(arr, format=fmt, layout="mono")
            af.sample_rate, af.pts = 48000, k
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    out.close()
    return path


def decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return [f for f in c.decode(video=0)]


def rgb_frames(path: Path) -> list[np.ndarray]:
    return [f.to_ndarray(format="rgb24", src_color_range=f.color_range or None)
            for f in decoded(path)]


def packets(path: Path, kind: str) -> list[tuple[bytes, int | None]]:
    with av.open(str(path)) as c:
        stream = [s for s in c.streams if s.type == kind][0]
        return [(bytes(p), p.pts) for p in c.demux(stream) if p.size]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.fixture(scope="module")
def tiny(ms_cpu, tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_x2.ckpt", 2)


def upscale(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_wdsr("upscale", *args, "--precision", "fp32", env=env)


# --------------------------------------------------------------------- timing and streams


@pytest.mark.parametrize("suffix,audio", [(".mp4", "aac"), (".mkv", "pcm_s16le"),
                                          (".mov", None)])
def test_frames_timing_and_audio_are_kept(tiny, tmp_path, suffix, audio):
    clip = make_clip(tmp_path / f"clip{suffix}", audio=audio)
    res = upscale(str(clip), "--checkpoint", str(tiny), "--json", str(tmp_path / "s.json"))
    assert res.returncode == 0, res.stderr
    out = tmp_path / f"clip_x2{suffix}"
    src, dst = decoded(clip), decoded(out)
    assert len(dst) == len(src) == FRAMES
    assert [f.pts for f in dst] == [f.pts for f in src]  # same timestamps: fps and duration
    assert (dst[0].width, dst[0].height) == (2 * W, 2 * H)
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        assert b.streams.video[0].average_rate == a.streams.video[0].average_rate == FPS
        # The muxer rounds the container's duration to its own time scale (a 333,333 us clip
        # came out as 333,008 us in some runs); a lost frame duration would be 41,667 us.
        assert abs(b.duration - a.duration) <= 1000
        assert [s.type for s in b.streams] == [s.type for s in a.streams]
    if audio:
        assert packets(out, "audio") == packets(clip, "audio")  # stream copy, bit for bit
    summary = json.loads((tmp_path / "s.json").read_text())["images"][0]  # as for images
    assert summary["frames"] == FRAMES and summary["output_size"] == [2 * W, 2 * H]
    assert summary["copied"] == ([f"audio #1 ({audio})"] if audio else [])
    assert "frames/s" in res.stderr and hidden(tmp_path) == []


def test_rotation_and_colour_tags_are_kept(tiny, tmp_path):
    clip = make_clip(tmp_path / "turned.mov", rotation=90, bt709=True, audio="aac")
    res = upscale(str(clip), "--checkpoint", str(tiny))
    assert res.returncode == 0, res.stderr
    a, b = decoded(clip)[0], decoded(tmp_path / "turned_x2.mov")[0]
    assert b.rotation == a.rotation == 90
    for tag in ("colorspace", "color_primaries", "color_trc", "color_range"):
        assert getattr(b, tag) == getattr(a, tag) == 1, tag  # BT.709, limited range
    assert (b.width, b.height) == (2 * W, 2 * H)  # the stored pixels, not turned


# ----------------------------------------------------------- frames = the images' results


def _image_results(tiny: Path | str, clip: Path, tmp_path: Path) -> list[np.ndarray]:
    """Each decoded frame of ``clip`` saved as a PNG and upscaled as an image."""
    from wdsr_cli.core.data.images import Image, write_image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, rgb in enumerate(rgb_frames(clip)):
        write_image(folder / f"f{i}.png", Image(pixels=rgb))
    res = upscale(str(folder), "-o", str(tmp_path / "sr") + "/", "--checkpoint", str(tiny),
                  *(["--weights", "photo"] if tiny == "bundled" else []))
    assert res.returncode == 0, res.stderr
    return [read_image(tmp_path / "sr" / f"f{i}_x2.png").pixels for i in range(FRAMES)]


def test_lossless_frames_equal_the_frames_upscaled_as_images(tiny, tmp_path):
    """--codec ffv1 (lossless RGB): exactly the image path's pixels, frame by frame."""
    clip = make_clip(tmp_path / "clip.mp4", audio="aac")
    res = upscale(str(clip), "--checkpoint", str(tiny), "--codec", "ffv1", "-o",
                  str(tmp_path / "out.mkv"))
    assert res.returncode == 0, res.stderr
    got = rgb_frames(tmp_path / "out.mkv")
    want = _image_results(tiny, clip, tmp_path)
    assert len(got) == len(want) == FRAMES
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)


def test_h264_frames_are_the_image_results_through_4_2_0(tiny, tmp_path):
    """What h264 changes, measured apart: at --crf 0 (lossless in YUV) the decoded frames are
    exactly the image results taken to 4:2:0 and back (the only change is the chroma
    subsampling); the default CRF 18 adds its quantization, which stays small (PSNR over 30
    dB on these tiny, very colourful frames; docs/video.md has the numbers on a real clip).
    The bundled weights: a random tiny network's output is noise, which no lossy codec keeps."""
    clip = make_clip(tmp_path / "clip.mp4")
    want = _image_results("bundled", clip, tmp_path)
    for crf in ("0", None):
        args = ["--crf", crf, "-o", str(tmp_path / "lossless.mp4")] if crf else []
        res = upscale(str(clip), "--checkpoint", "bundled", "--weights", "photo", *args)
        assert res.returncode == 0, res.stderr
        got = rgb_frames(tmp_path / ("lossless.mp4" if crf else "clip_x2.mp4"))
        assert len(got) == FRAMES
        for g, w in zip(got, want, strict=True):
            if crf:
                yuv = av.VideoFrame.from_ndarray(w, format="rgb24").reformat(format="yuv420p")
                assert np.array_equal(g, yuv.to_ndarray(format="rgb24"))
            else:
                diff = g.astype(np.float64) - w
                psnr = 10 * np.log10(255 ** 2 / np.mean(diff ** 2))
                assert psnr > 30, psnr


def test_outscale_on_a_video_and_an_animated_gif(tiny, tmp_path):
    from PIL import Image as PILImage

    clip = make_clip(tmp_path / "clip.mp4", audio="aac")
    res = upscale(str(clip), "--checkpoint", str(tiny), "--outscale", "1.5")
    assert res.returncode == 0, res.stderr
    frames = decoded(tmp_path / "clip_x1.5.mp4")
    assert len(frames) == FRAMES and (frames[0].width, frames[0].height) == (72, 48)
    assert packets(tmp_path / "clip_x1.5.mp4", "audio") == packets(clip, "audio")
    pics = [PILImage.fromarray(np.full((H, W, 3), 40 * i, np.uint8)) for i in range(5)]
    pics[0].save(tmp_path / "anim.gif", save_all=True, append_images=pics[1:], duration=100)
    res = upscale(str(tmp_path / "anim.gif"), "--checkpoint", str(tiny))
    assert res.returncode == 0, res.stderr
    frames = decoded(tmp_path / "anim_x2.mp4")
    assert len(frames) == 5 and (frames[0].width, frames[0].height) == (2 * W, 2 * H)


# ------------------------------------------------------------------------ nothing partial


@pytest.mark.parametrize("sig,code,name", [(signal.SIGINT, 130, "Ctrl-C"),
                                           (signal.SIGTERM, 143, "SIGTERM")])
def test_interrupt_leaves_nothing_and_says_how_far_it_got(tiny, tmp_path, sig, code, name):
    clip = make_clip(tmp_path / "clip.mp4", audio="aac")
    marker = tmp_path / "held"
    proc = subprocess.Popen(
        [WDSR, "upscale", str(clip), "--checkpoint", str(tiny), "--precision", "fp32"],
        env={**os.environ, "WDSR_TEST_HOLD": f"video-frame-3={marker}"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for_marker(proc, marker)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert f"interrupted ({name}) after 3 of 8 frames" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "held"]


# ---------------------------------------------------------------------------- bad inputs


def test_bad_inputs_are_one_line_errors(tiny, tmp_path):
    (tmp_path / "text.mp4").write_text("not a video")
    make_clip(tmp_path / "voice.mp4", audio="aac", video=False)
    make_clip(tmp_path / "empty.mkv", frames=0, audio="aac")
    make_clip(tmp_path / "clip.mp4")
    from wdsr_cli.core.data.images import Image, write_image

    write_image(tmp_path / "photo.png", Image(pixels=np.zeros((8, 8, 3), np.uint8)))
    before = sorted(p.name for p in tmp_path.iterdir())
    cases = [
        (["text.mp4"], "not a video file FFmpeg can read"),
        (["voice.mp4"], "has no video stream (audio)"),
        (["empty.mkv"], "has no frames"),
        (["clip.mp4", "-o", "clip.png"], "is a video, but output 'clip.png' is not a video"),
        (["photo.png", "-o", "photo.mp4"], "is an image, but output 'photo.mp4' is a video"),
        (["clip.mp4", "photo.png"], "upscale a video on its own"),
        (["clip.mp4", "--codec", "mpeg2"], "unknown --codec 'mpeg2'"),
        (["clip.mp4", "--codec", "ffv1", "-o", "c.mov"], "cannot be stored in a .mov file"),
        (["clip.mp4", "--codec", "ffv1", "--crf", "10"], "--crf does not apply"),
        (["clip.mp4", "--crf", "70"], "--crf must be a whole number from 0 to 63"),
        (["photo.png", "--crf", "20"], "--codec and --crf are for video inputs"),
        (["clip.mp4", "--strip-metadata"], "--strip-metadata is for images"),
    ]
    for args, needle in cases:
        line = one_line_error(run_wdsr("upscale", *args, "--checkpoint", str(tiny),
                                       cwd=tmp_path))
        assert needle in line, (args, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_subtitles_are_copied_and_refused_where_they_cannot_go(tiny, tmp_path):
    """An ASS subtitle stream in a .mkv is copied packet for packet into the .mkv output; an
    .mp4 output cannot hold it: refused before any work, not dropped."""
    plain = make_clip(tmp_path / "plain.mkv", audio="aac")
    clip = tmp_path / "clip.mkv"
    with av.open(str(plain)) as src, av.open(str(clip), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in src.streams}
        sub = out.add_stream("ass")
        sub.time_base = Fraction(1, 1000)
        out.start_encoding()
        for k, text in enumerate([b"0,0,Default,,0,0,0,,hello", b"1,0,Default,,0,0,0,,bye"]):
            p = av.Packet(text)
            p.stream, p.pts, p.dts, p.duration, p.time_base = sub, 150 * k, 150 * k, 100, \
                sub.time_base
            out.mux(p)
        for p in src.demux():
            if p.size:
                p.stream = copies[p.stream_index]
                out.mux(p)
    res = upscale(str(clip), "--checkpoint", str(tiny))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "clip_x2.mkv"
    assert packets(out, "subtitle") == packets(clip, "subtitle")
    assert packets(out, "audio") == packets(clip, "audio")
    assert len(decoded(out)) == FRAMES
    line = one_line_error(run_wdsr("upscale", str(clip), "-o", str(tmp_path / "o.mp4"),
                                   "--checkpoint", str(tiny)))
    assert "subtitle #2 (ssa)" in line and "cannot be stored in a .mp4" in line
    assert not (tmp_path / "o.mp4").exists()


def test_without_pyav_a_video_is_one_line_with_the_install_hint(tiny, tmp_path):
    block = tmp_path / "block"
    (block / "av").mkdir(parents=True)
    (block / "av" / "__init__.py").write_text("raise ImportError('blocked for a test')\n")
    clip = make_clip(tmp_path / "clip.mp4")
    path = os.pathsep.join(filter(None, [str(block), os.environ.get("PYTHONPATH")]))
    line = one_line_error(run_wdsr("upscale", str(clip), "--checkpoint", str(tiny),
                                   env={"PYTHONPATH": path}))
    assert "needs PyAV" in line and "pip install 'wdsr-cli[video]'" in line

"""Video in, video out: frames stream through the network, everything else is copied.

``wdsr upscale clip.mp4`` reads the clip with PyAV (FFmpeg in its wheel; the optional extra
``wdsr-cli[video]``), super-resolves every frame of its first video stream exactly as a photo
is (the same Predictor, the same fixed window grid, so a frame's output depends on that frame
alone: no setting, tile or neighbour frame can make it flicker), encodes the frames and writes
a new file next to the clip:

* **Same timing**: every decoded frame is written once with its own timestamp and duration,
  in the source's time base: same frame count, frame rate (constant or variable) and
  duration.
* **Streams copied unchanged**: audio and subtitle streams are remuxed packet for packet
  (stream copy: the bytes are the source's), with their language and disposition. A stream
  the output container cannot hold is refused before any work (name a container that can,
  e.g. ``.mkv``); data and attachment streams and further video streams (cover art) are left
  out and the summary says so.
* **Metadata kept**: the display matrix (rotation and flips: the pixels are upscaled as
  stored and the output carries the same matrix), the colour tags (primaries, transfer,
  matrix, range) and the container and stream tags. Frames go to RGB with the source's
  matrix and range and back with the same ones, so colours survive the round trip.
* **Encoder** (``codec``): ``h264`` (libx264, default; CRF 18, close to visually
  lossless), ``h265`` (libx265, CRF 20), ``vp9`` (libvpx-vp9, CRF 24; the default for
  ``.webm``), ``av1`` (SVT-AV1, CRF 28), ``ffv1`` (lossless, RGB: the decoded output frames
  are exactly the upscaled frames). 8-bit 4:2:0 unless the source is 4:2:2/4:4:4 (kept);
  4:2:0 and 4:2:2 need even sides, so an odd output side loses its last row/column (and
  ``--outscale`` rounds video sides to even numbers).
* **Streaming, bounded memory**: a reader thread decodes at most :data:`QUEUE_FRAMES` frames
  ahead of the network and a writer thread encodes at most :data:`QUEUE_FRAMES` behind it, so
  memory does not grow with the clip's length: about ``(2 * QUEUE_FRAMES + 3)`` RGB frames
  (input and output size) plus the encoder's own look-ahead (libx264's default: about 50
  frames of 4:2:0 output) plus the network's windows.
* **Nothing half-written**: the file is written under a temporary name in the output folder
  and moved into place when complete (:func:`..fileio.replacing`); Ctrl-C or SIGTERM stops
  between frames, removes the temporary file and raises :class:`VideoInterrupted` saying how
  many frames were done (exit codes 130 and 143).

This module draws nothing; progress goes to a callback ``on_frame(done, total)`` (``total``
is the container's frame count or an estimate from duration and rate, None if unknown).
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Interrupted, WdsrError
from ..testpoint import hold_if_asked

__all__ = ["CODECS", "VIDEO_SUFFIXES", "VideoInfo", "VideoInterrupted", "check_output",
           "is_video_file", "probe", "require_av", "transcode"]

#: Suffixes read and written as video (lower case).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
#: Image suffixes that may hold an animation; an animated file with one of them is a video
#: input (written as .mp4 by default).
ANIMATED_SUFFIXES = (".gif", ".png", ".apng")  # FFmpeg cannot decode animated WebP
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska",
            ".webm": "webm", ".avi": "avi"}
#: --codec name -> (FFmpeg encoder, its codec name in a container, default CRF or None)
CODECS = {"h264": ("libx264", "h264", 18), "h265": ("libx265", "hevc", 20),
          "vp9": ("libvpx-vp9", "vp9", 24), "av1": ("libsvtav1", "av1", 28),
          "ffv1": ("ffv1", "ffv1", None)}
QUEUE_FRAMES = 4  # frames decoded ahead of the network, and upscaled frames waiting to encode
INSTALL_HINT = "pip install 'wdsr-cli[video]' (PyAV, which brings its own FFmpeg)"
_POLL = 0.1  # seconds a blocked queue waits before it looks at the stop flag again


def require_av():
    """The ``av`` module, or a WdsrError saying how to install it."""
    try:
        import av
    except ImportError:
        raise WdsrError("reading and writing video needs PyAV, which is not installed",
                        INSTALL_HINT) from None
    av.logging.set_level(av.logging.PANIC)  # FFmpeg's own warnings never reach the terminal
    return av


def is_video_file(path: str | os.PathLike) -> bool:
    """A video suffix, or an animated GIF/PNG/WebP (several frames). Looks at the header of
    the latter only."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix not in ANIMATED_SUFFIXES or not path.is_file():
        return False
    try:
        from PIL import Image as PILImage

        with PILImage.open(path) as im:
            return getattr(im, "n_frames", 1) > 1
    except Exception:  # noqa: BLE001 - not an image at all: the image reader says why
        return False


def output_suffix(source: Path) -> str:
    """The default output suffix for a video input: its own, or .mp4 for an animation."""
    suffix = source.suffix.lower()
    return suffix if suffix in VIDEO_SUFFIXES else ".mp4"


# ------------------------------------------------------------------------------- probing


@dataclass
class VideoInfo:
    width: int
    height: int
    frames: int | None  # from the container, or estimated; None if unknown
    rate: Fraction | None  # average frame rate
    duration: float | None  # seconds
    codec: str
    pix_fmt: str
    copied: list[str] = field(default_factory=list)  # "audio aac", "subtitle subrip", ...
    left_out: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float | None:
        return float(self.rate) if self.rate else None


def _describe(stream) -> str:
    lang = stream.metadata.get("language")
    name = stream.codec_context.name if stream.codec_context is not None else "?"
    return f"{stream.type} #{stream.index} ({name}" + (f", {lang})" if lang and lang != "und"
                                                       else ")")


def _open_input(av, source: Path):
    try:
        return av.open(str(source), "r")
    except av.FFmpegError as exc:
        raise WdsrError(f"cannot read video '{source}': not a video file FFmpeg can read "
                        f"({exc.strerror or type(exc).__name__})",
                        "check the file, or convert it with another tool first") from None


def _copyable(stream) -> bool:
    return stream.type in ("audio", "subtitle")


def probe(source: str | os.PathLike) -> VideoInfo:
    """What the clip holds (its header and first frame). WdsrError for a file that is not a
    video FFmpeg can read, has no video stream or no frame that decodes."""
    av = require_av()
    source = Path(source)
    with _open_input(av, source) as c:
        videos = [s for s in c.streams.video]
        if not videos:
            kinds = ", ".join(sorted({s.type for s in c.streams})) or "no streams"
            raise WdsrError(f"'{source}' has no video stream ({kinds})",
                            "pass a file with pictures in it")
        v = videos[0]
        cc = v.codec_context
        rate = v.average_rate or v.guessed_rate
        duration = float(v.duration * v.time_base) if v.duration else (
            c.duration / 1e6 if c.duration else None)
        frames = v.frames or (int(round(duration * float(rate))) if duration and rate
                              else None)
        info = VideoInfo(cc.width, cc.height, frames or None, Fraction(rate) if rate else None,
                         duration, cc.name, cc.format.name if cc.format else "?")
        for s in c.streams:
            if s is v:
                continue
            (info.copied if _copyable(s) else info.left_out).append(_describe(s))
        try:  # one frame decoded: a clip without any is refused before a model loads
            next(iter(c.decode(v)))
        except StopIteration:
            raise WdsrError(f"'{source}' has no frames that can be decoded",
                            "check the file (it may be empty or damaged)") from None
        except av.FFmpegError as exc:
            raise WdsrError(f"cannot decode video '{source}': {_error_text(exc)}",
                            "the file may be damaged or truncated") from None
    if info.width < 2 or info.height < 2:
        raise WdsrError(f"'{source}' is only {info.width}x{info.height} pixels",
                        "wdsr needs at least 2x2 pixels to upscale")
    return info


def check_output(source: str | os.PathLike, target: str | os.PathLike, codec: str | None,
                 crf: int | None) -> tuple[str, int | None]:
    """(codec, crf) for writing ``target``: the codec (default h264, vp9 for .webm) must be
    one this FFmpeg can encode and the container hold, as must every stream to be copied from
    ``source``. WdsrError before any work otherwise."""
    import io

    av = require_av()
    target = Path(target)
    suffix = target.suffix.lower()
    if suffix not in _FORMATS:
        raise WdsrError(f"output '{target}' has no video suffix",
                        "name a file ending in " + ", ".join(VIDEO_SUFFIXES))
    name = codec or ("vp9" if suffix == ".webm" else "h264")
    if name not in CODECS:
        raise WdsrError(f"unknown --codec '{name}'", "choose " + ", ".join(CODECS))
    encoder, codec_id, default_crf = CODECS[name]
    if crf is not None and (isinstance(crf, bool) or not isinstance(crf, int)
                            or not 0 <= crf <= 63):
        raise WdsrError(f"--crf must be a whole number from 0 to 63, got {crf}",
                        "lower is better and larger: 18 (h264 default) is close to "
                        "visually lossless")
    if crf is not None and default_crf is None:
        raise WdsrError(f"--crf does not apply to --codec {name} (lossless)", "drop --crf")
    if crf is not None and name == "h264" and crf > 51:
        raise WdsrError(f"--crf {crf} is above 51, the largest h264 takes", "use 0..51")
    try:
        av.codec.Codec(encoder, "w")
    except Exception:  # noqa: BLE001 - av raises UnknownCodecError or ValueError
        raise WdsrError(f"this FFmpeg cannot encode --codec {name} ({encoder})",
                        "choose another --codec") from None
    supported = av.open(io.BytesIO(), "w", format=_FORMATS[suffix]).supported_codecs
    if codec_id not in supported:
        raise WdsrError(f"--codec {name} cannot be stored in a {suffix} file",
                        "choose another --codec or output suffix (.mkv holds them all)")
    with _open_input(av, Path(source)) as c:
        for s in c.streams:
            if _copyable(s) and s.codec_context.name not in supported:
                raise WdsrError(f"{_describe(s)} of '{source}' cannot be stored in a {suffix} "
                                "file, and wdsr drops nothing", "write a .mkv, which holds "
                                "it (or remove the stream from the input first)")
    return name, crf if crf is not None else default_crf


# ------------------------------------------------------------------------------ the pipeline


class VideoInterrupted(Interrupted):
    """Ctrl-C (exit code 130) or SIGTERM (143) during a clip; nothing was written."""

    def __init__(self, message: str, hint: str | None, exit_code: int) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread between frames."""


@dataclass
class _Frame:
    rgb: np.ndarray
    pts: int | None
    duration: int
    index: int
    meta: Any = None  # the first frame's av.VideoFrame (its colour tags and display matrix)


_END = object()


class _Stop(Exception):
    """The other side has stopped: leave quietly."""


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(item, timeout=_POLL)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, worker: threading.Thread) -> Any:
    """The next item; if the worker died without sending one, its error is raised by the
    caller (the worker stores it)."""
    while True:
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            if not worker.is_alive() and q.empty():
                return _END


def _display_matrix(frame) -> list[int] | None:
    for sd in frame.side_data:
        if sd.type.name == "DISPLAYMATRIX":
            m = np.frombuffer(bytes(sd), dtype=np.int32)
            return [int(x) for x in m] if m.size == 9 else None
    return None


_KEEP_CHROMA = {"yuv422p": "yuv422p", "yuvj422p": "yuv422p", "yuv444p": "yuv444p",
                "yuvj444p": "yuv444p"}


def out_pix_fmt(codec: str, source_fmt: str) -> str:
    if codec == "ffv1":
        return "bgr0"  # lossless RGB
    fmt = _KEEP_CHROMA.get(source_fmt, "yuv420p")
    if codec == "vp9" and fmt == "yuv422p":
        return "yuv422p"
    return fmt


def even_sides(pix_fmt: str) -> tuple[bool, bool]:
    """(width must be even, height must be even) for a pixel format."""
    return {"yuv420p": (True, True), "yuv422p": (True, False)}.get(pix_fmt, (False, False))


def _fit(rgb: np.ndarray, pix_fmt: str) -> np.ndarray:
    """Drop the last column/row where the chroma subsampling needs an even side."""
    ew, eh = even_sides(pix_fmt)
    h, w = rgb.shape[:2]
    return rgb[:h - (h % 2 if eh else 0), :w - (w % 2 if ew else 0)]


class _Reader(threading.Thread):
    """Demuxes the clip: decoded frames of the first video stream (RGB, the source's matrix
    and range) and the packets of the streams to copy, in file order, into ``out``."""

    def __init__(self, av, source: Path, out: queue.Queue, stop: threading.Event) -> None:
        super().__init__(name="wdsr-video-read", daemon=True)
        self.av, self.source, self.out, self.stop = av, source, out, stop
        self.error: BaseException | None = None
        self.container = _open_input(av, source)  # opened here: errors go to the caller
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"
        self.copy = [s for s in self.container.streams if _copyable(s)]

    def run(self) -> None:
        try:
            index = 0
            for packet in self.container.demux(self.video, *self.copy):
                if packet.stream is not self.video:
                    if packet.size or packet.pts is not None or packet.dts is not None:
                        _put(self.out, packet, self.stop)  # not the demuxer's end marker
                    continue
                for frame in packet.decode():
                    rgb = frame.to_ndarray(format="rgb24", src_color_range=frame.color_range
                                           or None)
                    _put(self.out, _Frame(rgb, frame.pts, int(frame.duration or 0), index,
                                          frame if index == 0 else None), self.stop)
                    index += 1
            _put(self.out, _END, self.stop)
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
        # the container stays open: the writer reads the streams' facts and copies their
        # packets until it is done (closed by transcode once both threads have ended)


def _error_text(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class _Writer(threading.Thread):
    """Encodes the upscaled frames and muxes them with the copied packets into ``path``."""

    def __init__(self, av, reader: _Reader, path: Path, codec: str, crf: int | None,
                 finish: Callable[[np.ndarray], np.ndarray], inbox: queue.Queue,
                 stop: threading.Event) -> None:
        super().__init__(name="wdsr-video-write", daemon=True)
        self.av, self.reader, self.path, self.codec, self.crf = av, reader, path, codec, crf
        self.finish, self.inbox, self.stop = finish, inbox, stop
        self.error: BaseException | None = None
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self.out = None
        self.stream = None
        self.copies: dict[int, Any] = {}
        self.colour: dict[str, Any] = {}
        fmt = reader.video.codec_context.format
        self.pix_fmt = out_pix_fmt(codec, fmt.name if fmt else "")

    def _open(self, first: _Frame, rgb: np.ndarray) -> None:
        av, src = self.av, self.reader
        self.out = av.open(str(self.path), "w", format=_FORMATS[self.path.suffix.lower()])
        self.out.metadata.update({k: v for k, v in src.container.metadata.items()
                                  if k.lower() not in ("encoder", "major_brand",
                                                       "minor_version", "compatible_brands")})
        encoder = CODECS[self.codec][0]
        vin = src.video
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        stream = self.out.add_stream(encoder, rate=rate)
        frame = first.meta
        pix_fmt = self.pix_fmt
        stream.width, stream.height = rgb.shape[1], rgb.shape[0]
        stream.pix_fmt = pix_fmt
        stream.time_base = vin.time_base
        cc = stream.codec_context
        cc.time_base = vin.time_base
        if vin.sample_aspect_ratio:
            cc.sample_aspect_ratio = vin.sample_aspect_ratio
        if pix_fmt != "bgr0":  # the source's colour tags; RGB output carries none of them
            for name in ("color_primaries", "color_trc", "colorspace", "color_range"):
                value = getattr(frame, name)
                if value:
                    setattr(cc, name, value)
            self.colour = {"dst_colorspace": frame.colorspace or None,
                           "dst_color_range": frame.color_range or None}
        options = {}
        if self.codec == "h264":
            options = {"crf": str(self.crf), "preset": "medium"}
        elif self.codec == "h265":
            options = {"crf": str(self.crf), "preset": "medium", "x265-params": "log-level=0"}
        elif self.codec == "vp9":
            options = {"crf": str(self.crf), "b": "0", "row-mt": "1"}
        elif self.codec == "av1":
            options = {"crf": str(self.crf), "preset": "8"}
        elif self.codec == "ffv1":
            options = {"level": "3", "slicecrc": "1"}
        stream.options = options
        matrix = _display_matrix(frame)
        if matrix is not None:
            stream.set_display_matrix(matrix)
        stream.metadata.update({k: v for k, v in vin.metadata.items()
                                if k.lower() in ("language", "title", "handler_name")})
        self.stream = stream
        for s in src.copy:
            t = self.out.add_stream_from_template(s)
            t.metadata.update(s.metadata)
            try:
                t.disposition = s.disposition
            except (AttributeError, TypeError, ValueError):
                pass
            self.copies[s.index] = t
        self.out.start_encoding()

    def _encode(self, item: _Frame) -> None:
        rgb = _fit(self.finish(item.rgb), self.pix_fmt)
        if self.out is None:
            self._open(item, rgb)
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format=self.stream.pix_fmt, **self.colour)
        frame.pts = item.pts if item.pts is not None else item.index
        frame.time_base = self.reader.video.time_base
        if item.duration:
            frame.duration = item.duration
        for packet in self.stream.encode(frame):
            self.out.mux(packet)
        self.frames += 1
        self.size = (rgb.shape[1], rgb.shape[0])

    def run(self) -> None:
        try:
            pending = []  # packets that came before the first frame (the output opens there)
            while True:
                if self.stop.is_set():
                    return
                try:
                    item = self.inbox.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if item is _END:
                    break
                if isinstance(item, _Frame):
                    self._encode(item)
                    for packet in pending:
                        self._mux(packet)
                    pending = []
                elif self.out is None:
                    pending.append(item)
                else:
                    self._mux(item)
            if self.out is not None:
                for packet in self.stream.encode():
                    self.out.mux(packet)
                for packet in pending:
                    self._mux(packet)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            self.stop.set()
        finally:
            if self.out is not None:
                try:
                    self.out.close()
                except Exception as exc:  # noqa: BLE001
                    self.error = self.error or exc

    def _mux(self, packet) -> None:
        packet.stream = self.copies[packet.stream_index]
        self.out.mux(packet)


def transcode(source: str | os.PathLike, target: str | os.PathLike,
              process: Callable[[np.ndarray], np.ndarray],
              finish: Callable[[np.ndarray], np.ndarray] = lambda x: x, *,
              codec: str = "h264", crf: int | None = 18, overwrite: bool = False,
              total: int | None = None,
              on_frame: Callable[[int, int | None], None] | None = None) -> dict[str, Any]:
    """Write ``target`` from ``source``: every frame through ``process`` (HxWx3 uint8 ->
    uint8, on this thread: the network) and ``finish`` (on the writer thread: a resize),
    the other streams copied (see the module docstring). ``codec``/``crf`` as checked by
    :func:`check_output`. Returns ``{"frames", "output_size", "seconds"}``.

    The target appears complete or not at all (``overwrite``: it may replace an existing
    file; otherwise a file that appeared meanwhile is kept and WdsrError raised). Ctrl-C or
    SIGTERM: :class:`VideoInterrupted`, nothing written."""
    from ..fileio import replacing

    av = require_av()
    source, target = Path(source), Path(target)
    start = time.perf_counter()
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(QUEUE_FRAMES)
    upscaled: queue.Queue = queue.Queue(QUEUE_FRAMES)
    done = 0
    previous = _sigterm_raises()
    reader = writer = None
    finished = False
    try:
        with replacing(target, suffix=target.suffix, exclusive=not overwrite) as tmp:
            reader = _Reader(av, source, decoded, stop)
            writer = _Writer(av, reader, tmp, codec, crf, finish, upscaled, stop)
            reader.start()
            writer.start()
            try:
                while True:
                    item = _get(decoded, reader)
                    if item is _END:
                        break
                    if isinstance(item, _Frame):
                        item.rgb = process(item.rgb)
                        done += 1
                    _put(upscaled, item, stop)
                    if isinstance(item, _Frame):
                        if on_frame is not None:
                            on_frame(done, total)
                        hold_if_asked(f"video-frame-{done}")  # tests only (testpoint.py)
                if reader.error is not None:
                    raise _read_error(source, reader.error)
                if done == 0:
                    raise WdsrError(f"'{source}' has no frames that can be decoded",
                                    "check the file (it may be empty or damaged)")
                _put(upscaled, _END, stop)
                finished = True
            except _Stop:
                pass
            finally:
                if not finished:
                    stop.set()
                _join(writer)
                stop.set()
                _join(reader)
                reader.container.close()
            if writer.error is not None:
                raise _write_error(target, writer.error)
    except KeyboardInterrupt as exc:
        sig = "SIGTERM" if isinstance(exc, _Terminated) else "Ctrl-C"
        raise VideoInterrupted(
            f"interrupted ({sig}) after {done} of {total or '?'} frames of '{source.name}'; "
            f"'{target}' was not written and nothing was left behind",
            "run the command again to start over", 143 if sig == "SIGTERM" else 130) from None
    finally:
        stop.set()
        _restore_sigterm(previous)
    return {"frames": writer.frames, "output_size": list(writer.size or (0, 0)),
            "seconds": time.perf_counter() - start}


def _join(thread: threading.Thread | None) -> None:
    if thread is None:
        return
    while thread.is_alive():
        thread.join(_POLL)


def _read_error(source: Path, exc: BaseException) -> WdsrError:
    if isinstance(exc, WdsrError):
        return exc
    return WdsrError(f"cannot decode video '{source}': {_error_text(exc)}",
                     "the file may be damaged or truncated")


def _write_error(target: Path, exc: BaseException) -> WdsrError:
    if isinstance(exc, WdsrError):
        return exc
    if isinstance(exc, OSError) and not hasattr(exc, "log"):
        return WdsrError(f"cannot write '{target}': {exc.strerror or exc}",
                         "check free disk space and the folder's permissions")
    return WdsrError(f"cannot encode '{target}': {_error_text(exc)}",
                     "try another --codec or output suffix")


def _sigterm_raises():
    """SIGTERM raises in the main thread (as Ctrl-C does), so the temporary file is removed.
    Returns the previous handler (None when not on the main thread: nothing changed)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise _Terminated()

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)

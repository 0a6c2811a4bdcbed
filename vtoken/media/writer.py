"""Writing uint8 RGB frames: H.264 video, raw Y4M, or a folder of PNGs, always atomically.

The output kind comes from the path:
* .mp4 / .mkv / .mov: H.264 (libx264 when PyAV's ffmpeg has it, else its default H.264
  encoder, else MPEG-4 part 2), yuv420p (yuv444p when a side is odd: 4:2:0 needs even
  sizes), the exact frame rate (time base 1/fps, one tick per frame), every frame kept.
  Quality "high" is CRF 12 (near-transparent: ~49 dB PSNR on 1080p camera footage), "medium"
  CRF 18, "low" CRF 23, "lossless" QP 0 in yuv444p (lossless after the RGB -> YUV rounding);
  x264 preset veryfast. Audio from extract_audio is
  muxed back packet for packet.
* .y4m: YUV4MPEG2, 8-bit 4:4:4 (C444), limited range: no chroma subsampling, no compression;
  RGB -> YUV -> RGB rounding changes values by at most 2 levels. Y4M cannot tag the matrix,
  so it is the one readers assume for untagged video: BT.709 for HD (width >= 1280 or height
  >= 720), BT.601 (smpte170m) below; the `color` argument is ignored.
  Y4M holds no audio (dropped with a log message).
* a path ending with '/', an existing folder or a path without suffix: a folder of RGB PNGs
  000000.png, 000001.png, ... (bit-exact RGB; no audio). VideoReader reads such a folder
  back (at 25 fps: PNGs hold no rate).

Colour: frames are converted with the `color` tags' matrix and range when given (pass
VideoInfo.color of the input to keep its tags), else BT.709 limited range; the tags used are
written into the file (see vtoken.media.color).

The output appears only when close() succeeds: frames go to a temporary sibling that is
renamed into place; an exception inside the with-block (or abort()) removes it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import OutputError, UsageError
from ..fsutil import atomic_path, is_stream
from . import color as col
from .audio import AudioMuxer, check_audio_blob

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
QUALITY_CRF = {"high": 12, "medium": 18, "low": 23}
QUALITIES = (*QUALITY_CRF, "lossless")
# The only names a PNG-folder output writes: an existing folder keeps everything else.
FRAME_NAME = re.compile(r"^\d{6}\.png$")


def output_kind(path) -> str:
    """'video', 'y4m' or 'png' for an output path (UsageError for an unknown suffix)."""
    s = os.fspath(path)
    p = Path(s)
    if is_stream(s):
        # A pipe or device (`-o -`, /dev/stdout, a FIFO) takes a stream, never a folder.
        return "video" if p.suffix.lower() in VIDEO_SUFFIXES else "y4m"
    if s.endswith(("/", os.sep)) or p.is_dir() or not p.suffix:
        return "png"
    suffix = p.suffix.lower()
    if suffix == ".y4m":
        return "y4m"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise UsageError(f"cannot write {p.suffix} files: use .mp4, .mkv, .mov, .y4m or a folder/ for PNG frames")


INT32_MAX = (1 << 31) - 1


def writable_rate(fps: Fraction) -> Fraction:
    """`fps` as ffmpeg can hold it (32-bit signed numerator and denominator): a .mvt header
    may carry any 32-bit unsigned pair, so an out-of-range one is approximated, and one beyond
    INT32_MAX frames per second is clamped, with a log message."""
    if fps.numerator <= INT32_MAX and fps.denominator <= INT32_MAX:
        return fps
    near = fps.limit_denominator(INT32_MAX)
    if near <= 0:
        near = Fraction(1, INT32_MAX)
    if near.numerator > INT32_MAX:
        near = Fraction(INT32_MAX)
    log.warning("frame rate %s cannot be written exactly; using %s", fps, near)
    return near


def h264_encoder() -> str:
    """The H.264 encoder this ffmpeg offers (libx264 preferred), or 'mpeg4' without one."""
    for name in ("libx264", "h264"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:
            continue
    return "mpeg4"


class VideoWriter:
    """Write uint8 RGB frames to `path` (see the module docstring for the kinds)."""

    def __init__(self, path, width: int, height: int, fps: Fraction, *, overwrite: bool = False,
                 audio: tuple[bytes, str] | None = None, color: dict | None = None, quality: str = "high",
                 inputs=()):
        self.path = Path(path)
        self.kind = output_kind(path)
        if int(width) < 1 or int(height) < 1:
            raise UsageError(f"frame size {width}x{height} is not valid")
        self.width, self.height = int(width), int(height)
        self.fps = writable_rate(Fraction(fps))
        if self.fps <= 0:
            raise UsageError(f"frame rate {fps} is not positive")
        if quality not in QUALITIES:
            raise UsageError(f"quality {quality!r} is not one of {', '.join(QUALITIES)}")
        check_audio_blob(audio)
        self.quality = quality
        self.color = col.writer_color(color)
        self.frames_written = 0
        self._out = None
        self._audio = None
        # atomic_path checks overwrite / folder before we create anything
        self._stream_out = is_stream(path)
        self._atomic = atomic_path(path, overwrite=overwrite, directory=self.kind == "png", inputs=inputs,
                                   owned=FRAME_NAME)
        self._tmp = self._atomic.__enter__()
        try:
            if self.kind == "video":
                self._open_video(audio)
            elif self.kind == "y4m":
                self._open_y4m(audio)
            elif audio is not None:
                log.info("PNG frames hold no audio; audio dropped")
        except BaseException as exc:
            self._fail(exc)
            raise

    # -- opening ---------------------------------------------------------------------------

    def _tags(self, cc) -> None:
        c = self.color
        cc.color_range = col.value_of(col.RANGE_NAMES, c["range"])
        cc.colorspace = col.value_of(col.MATRIX_NAMES, c["matrix"])
        cc.color_primaries = col.value_of(col.PRIMARIES_NAMES, c["primaries"])
        cc.color_trc = col.value_of(col.TRANSFER_NAMES, c["transfer"])

    def _add_stream(self, codec: str, pix_fmt: str):
        tb = Fraction(self.fps.denominator, self.fps.numerator)
        self._tb = tb  # kept apart: the muxer rewrites stream.time_base at the header
        stream = self._out.add_stream(codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, pix_fmt
        stream.time_base = tb
        stream.codec_context.time_base = tb
        self._tags(stream.codec_context)
        return stream

    def _open_video(self, audio) -> None:
        fmt = VIDEO_SUFFIXES[self.path.suffix.lower()]
        codec = h264_encoder()
        odd = self.width % 2 or self.height % 2
        pix_fmt = "yuv444p" if (odd or self.quality == "lossless") else "yuv420p"
        if odd:
            log.info("odd frame size %dx%d: writing 4:4:4 H.264 (4:2:0 needs even sizes)", self.width, self.height)
        # A pipe cannot be seeked back to patch the index: MP4/MOV go out fragmented there.
        options = {"movflags": "frag_keyframe+empty_moov"} if self._stream_out and fmt != "matroska" else {}
        self._out = av.open(str(self._tmp), "w", format=fmt, options=options)
        self._stream = self._add_stream(codec, pix_fmt)
        if codec == "libx264":
            # veryfast: twice the speed of medium at CRF 12 for the same PSNR (measured on 1080p)
            opts = {"preset": "veryfast"}
            if self.quality == "lossless":
                opts["qp"] = "0"
            else:
                opts["crf"] = str(QUALITY_CRF[self.quality])
            self._stream.options = opts
        else:
            self._stream.codec_context.bit_rate = int(self.width * self.height * float(self.fps) * 0.5)
        self._pix_fmt = pix_fmt
        if audio is not None:
            self._audio = AudioMuxer(self._out, audio)

    def _open_y4m(self, audio) -> None:
        if audio is not None:
            log.info("Y4M holds no audio; audio dropped")
        # Y4M has no matrix tag: use the matrix readers assume for untagged video of this size
        self.color = col.writer_color({"matrix": col.decode_matrix(None, self.width, self.height), "range": "tv"})
        self._out = av.open(str(self._tmp), "w", format="yuv4mpegpipe")
        self._stream = self._add_stream("rawvideo", "yuv444p")
        self._pix_fmt = "yuv444p"

    # -- writing ---------------------------------------------------------------------------

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 [t, H, W, 3] (or one [H, W, 3]) RGB frames."""
        if self._atomic is None:
            raise OutputError(f"{self.path}: writer is closed")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise UsageError(
                f"frames must be uint8 [t, {self.height}, {self.width}, 3], got {frames.dtype} {list(frames.shape)}"
            )
        try:
            for rgb in frames:
                self._write_one(rgb)
                self.frames_written += 1
        except (av.error.FFmpegError, OSError) as exc:  # FFmpegError is an OSError too; disk full lands here
            error = OutputError(f"cannot write {self.path}: {getattr(exc, 'strerror', None) or exc}")
            self._fail(error)  # the output is unusable now: remove the partial file at once
            raise error from exc

    def _write_one(self, rgb: np.ndarray) -> None:
        if self.kind == "png":
            name = self._tmp / f"{self.frames_written:06d}.png"
            ctx = av.CodecContext.create("png", "w")
            ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, "rgb24"
            ctx.time_base = Fraction(1, 25)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            name.write_bytes(b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None)))
            return
        frame = col.rgb_to_frame(rgb, self._pix_fmt, self.color["matrix"], self.color["range"])
        frame.pts = self.frames_written
        frame.time_base = self._tb
        self._mux(self._stream.encode(frame))

    def _mux(self, packets) -> None:
        for p in packets:
            self._out.mux(p)
            if self._audio is not None and p.pts is not None:
                self._audio.mux_until(float(p.pts * p.time_base))

    # -- finishing -------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the encoder and move the output into place (only now does it exist)."""
        if self._atomic is None:
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"{self.path}: no frames were written")
            if self._out is not None:
                try:
                    self._mux(self._stream.encode(None))
                    if self._audio is not None:
                        self._audio.finish()
                    self._out.close()
                except (av.error.FFmpegError, OSError) as exc:
                    raise OutputError(f"cannot write {self.path}: {getattr(exc, 'strerror', None) or exc}") from exc
                finally:
                    self._out = None
            atomic, self._atomic = self._atomic, None
            atomic.__exit__(None, None, None)
        except BaseException as exc:
            self._fail(exc)
            raise

    def abort(self) -> None:
        """Drop everything written so far; the output path is left as it was."""
        if self._atomic is not None:
            self._fail(OutputError("aborted"))

    def _fail(self, exc: BaseException) -> None:
        if self._audio is not None:
            with contextlib.suppress(Exception):
                self._audio.close()
            self._audio = None
        if self._out is not None:
            with contextlib.suppress(Exception):
                self._out.close()
            self._out = None
        atomic, self._atomic = self._atomic, None
        if atomic is not None:
            with contextlib.suppress(BaseException):
                atomic.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._fail(exc)

    def __del__(self):
        with contextlib.suppress(Exception):
            if getattr(self, "_atomic", None) is not None:
                self._fail(OutputError("writer was never closed"))

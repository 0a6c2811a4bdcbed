"""Reading any video or image ffmpeg decodes as uint8 RGB frames [H, W, 3], in display order.

Every decoded frame is yielded once, in order: variable-frame-rate input keeps its frame count
(no frames are duplicated or dropped to make the rate constant). Rotation metadata is applied
(frames come out upright) and reported in VideoInfo.rotation. A stream that stops decoding part
way (truncated or damaged file) ends early with a warning; one that yields no frame at all is an
InputError.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..errors import InputError
from . import color as col
from .info import MAX_SIDE, VideoInfo

log = logging.getLogger(__name__)

_IMAGE_DEMUXERS = ("image2",)  # plus every "*_pipe" demuxer (png_pipe, jpeg_pipe, webp_pipe...)


def open_container(path: Path) -> av.container.InputContainer:
    """av.open with every failure turned into one clear InputError line."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        # a folder of frames as VideoWriter writes them: 000000.png, 000001.png, ...
        if not (path / "000000.png").is_file():
            raise InputError(f"{path} is a folder without 000000.png; give a video or image file")
        try:
            return av.open(str(path / "%06d.png"), "r", format="image2")
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot read the PNG frames in {path}: {exc}") from None
    if os.path.getsize(path) == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    try:
        return av.open(str(path), "r")
    except av.error.InvalidDataError:
        raise InputError(
            f"{path} is not a video or image ffmpeg can read "
            "(or it is truncated: an MP4 cut before its index cannot be decoded)"
        ) from None
    except av.error.PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"cannot open {path}: {exc}") from None


def _video_stream(container, path: Path):
    """The first real video stream (cover art in audio files does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    if container.streams.audio:
        raise InputError(f"{path} has no video stream (audio only)")
    raise InputError(f"{path} has no video stream")


def _is_image(container) -> bool:
    name = container.format.name
    return name in _IMAGE_DEMUXERS or name.endswith("_pipe")


def _png_sequence_length(folder: Path) -> int:
    n = 0
    while (folder / f"{n:06d}.png").is_file():
        n += 1
    return n


def _frame_rate(stream) -> Fraction:
    """Exact rate: the average rate, or the nominal rate when it agrees to 0.1 % (containers
    with millisecond timestamps turn 30000/1001 into 1000000/33367)."""
    avg = stream.average_rate
    nominal = stream.base_rate or stream.guessed_rate
    if avg and nominal and abs(Fraction(avg) / Fraction(nominal) - 1) < Fraction(1, 1000):
        return Fraction(nominal)
    for rate in (avg, stream.guessed_rate, nominal):
        if rate and 0 < rate <= 1000:
            return Fraction(rate)
    log.warning("no usable frame rate in the file; assuming 25 fps")
    return Fraction(25)


def _rotation_steps(frame, path: Path) -> int:
    """Quarter turns anticlockwise that make the frame upright (display matrix side data)."""
    try:
        angle = float(frame.rotation)
    except (AttributeError, ValueError, TypeError):
        return 0
    steps = int(round(angle / 90.0))
    if abs(angle - 90 * steps) > 1:
        log.warning("%s: rotation %.1f degrees is not a multiple of 90; using %d", path, angle, 90 * steps)
    return steps % 4


class VideoReader:
    """Frames of a video or image file as uint8 RGB. Use as a context manager, or call close().

    reader.info       VideoInfo (the first frame is decoded to fill it, and kept)
    reader.frames()   iterator of uint8 [H, W, 3]
    reader.chunks(n)  iterator of uint8 [t, H, W, 3], t <= n (the last may be shorter);
                      memory is bounded by one chunk
    reader.frames_read  frames yielded so far (the exact count once iteration has ended)

    Iterating again starts from the first frame (the file is reopened).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.frames_read = 0
        self._container = None
        self._open()
        first = self._first
        stream = self._stream
        self._steps = _rotation_steps(first, self.path)
        w, h = self._coded_size = first.width, first.height
        if self._steps % 2:
            w, h = h, w
        cc = stream.codec_context
        pix_fmt = first.format.name
        is_image = _is_image(self._container)
        count = 1 if is_image else (stream.frames or None)
        if self.path.is_dir():
            is_image, count = False, _png_sequence_length(self.path)
        self.info = VideoInfo(
            width=w,
            height=h,
            fps=_frame_rate(stream),
            frame_count=count,
            codec=getattr(cc.codec, "canonical_name", None) or cc.name,  # 'av1', not 'libdav1d'
            pix_fmt=pix_fmt,
            bit_depth=max(c.bits for c in first.format.components),
            color_primaries=col.name_of(col.PRIMARIES_NAMES, first.color_primaries or cc.color_primaries),
            color_transfer=col.name_of(col.TRANSFER_NAMES, first.color_trc or cc.color_trc),
            color_matrix=col.name_of(col.MATRIX_NAMES, first.colorspace or cc.colorspace),
            color_range=col.name_of(col.RANGE_NAMES, first.color_range or cc.color_range),
            rotation=90 * self._steps,
            has_audio=bool(self._container.streams.audio),
            is_image=is_image,
        )
        # decode with these, fixed from the first frame, so every frame converts the same way
        self._matrix = col.decode_matrix(self.info.color_matrix, first.width, first.height)
        self._range = col.decode_range(self.info.color_range, pix_fmt)

    def _open(self) -> None:
        """(Re)open the file and decode the first frame; every check happens here."""
        self.close()
        self._container = open_container(self.path)
        try:
            self._stream = _video_stream(self._container, self.path)
            cc = self._stream.codec_context
            if cc.width > MAX_SIDE or cc.height > MAX_SIDE:
                raise InputError(
                    f"{self.path} is {cc.width}x{cc.height}: frames larger than {MAX_SIDE} pixels "
                    "per side are not supported; scale it down first (e.g. ffmpeg -vf scale=-2:2160)"
                )
            self._stream.codec_context.thread_type = "AUTO"  # frame threads: decoding is often the bottleneck
            self._decoder = self._decode()
            self._first = next(self._decoder, None)
            if self._first is None:
                raise InputError(f"{self.path} has no decodable video frames (empty or damaged video stream)")
            if self._first.width > MAX_SIDE or self._first.height > MAX_SIDE:
                raise InputError(f"{self.path}: frames larger than {MAX_SIDE} pixels per side are not supported")
        except BaseException:
            self.close()
            raise

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Decoded frames; a decoding error after the first frame ends the stream with a warning."""
        n = 0
        try:
            for frame in self._container.decode(self._stream):
                n += 1
                yield frame
        except av.error.FFmpegError as exc:
            if n == 0:
                raise InputError(f"{self.path}: video cannot be decoded ({exc})") from None
            log.warning("%s: decoding stopped after %d frames: %s", self.path, n, exc)

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        if (frame.width, frame.height) != self._coded_size:
            # mid-stream size changes are rare (adaptive streams); scale back to the first size
            frame = frame.reformat(width=self._coded_size[0], height=self._coded_size[1])
        rgb = col.frame_to_rgb(frame, self._matrix, self._range)
        if self._steps:
            rgb = np.ascontiguousarray(np.rot90(rgb, self._steps))
        return rgb

    def frames(self) -> Iterator[np.ndarray]:
        """uint8 [H, W, 3] RGB frames in display order."""
        if self._container is None or self._first is None:
            self._open()
        first, self._first = self._first, None  # consumed: a second pass reopens the file
        self.frames_read = 0
        try:
            yield self._convert(first)
            self.frames_read = 1
            for frame in self._decoder:
                yield self._convert(frame)
                self.frames_read += 1
        finally:
            self.close()

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        """uint8 [t, H, W, 3] arrays with t <= n frames; only the last one may be shorter."""
        if n < 1:
            raise ValueError("chunk size must be at least 1")
        shape = (self.info.height, self.info.width, 3)
        buf, t = None, 0
        for frame in self.frames():
            if buf is None:
                buf, t = np.empty((n, *shape), np.uint8), 0
            buf[t] = frame
            t += 1
            if t == n:
                yield buf
                buf = None  # hand the array over; the next chunk gets a fresh one
        if buf is not None and t:
            yield buf[:t]

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def probe(path) -> VideoInfo:
    """VideoInfo of a file (opens it and decodes its first frame, so a file that probes fine
    also reads). Raises InputError for anything that is not a readable video or image."""
    with VideoReader(path) as reader:
        return reader.info


def count_frames(path) -> int:
    """Number of video packets in the file, counted by demuxing without decoding (fast).
    This is the frame count for every common codec; use it when VideoInfo.frame_count is None."""
    container = open_container(Path(path))
    try:
        stream = _video_stream(container, Path(path))
        n = 0
        try:
            for packet in container.demux(stream):
                if packet.size:
                    n += 1
        except av.error.FFmpegError as exc:
            log.warning("%s: demuxing stopped after %d packets: %s", path, n, exc)
        return n
    finally:
        container.close()

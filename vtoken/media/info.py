"""VideoInfo: what `probe` reports about an input, and the size limit."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

# Largest accepted frame side. 8K (7680x4320 UHD and 8192x4320 DCI) is supported; larger inputs
# are refused before any frame is decoded (an 8192x8192 RGB frame is already 200 MB).
MAX_SIDE = 8192


@dataclass(frozen=True)
class VideoInfo:
    """Facts about the video stream that `VideoReader.frames()` yields.

    width, height: size of the yielded frames, i.e. after rotation (upright).
    fps: exact rational rate; the stream's average rate (for variable-frame-rate input the
        average; for containers with millisecond timestamps, the nominal rate when it agrees).
        Images report the demuxer's rate (25).
    frame_count: the container's count (MP4/MOV/AVI headers), 1 for images, None when the
        container does not say (Matroska, WebM, MPEG-PS/TS, Y4M...): then count while reading
        (`VideoReader.frames_read`) or with `count_frames(path)`. A truncated file can hold
        fewer decodable frames than its header claims.
    codec, pix_fmt, bit_depth: of the coded stream (e.g. "h264", "yuv420p10le", 10).
    color_*: ffmpeg tag names or None when untagged (see vtoken.media.color for how untagged
        input is decoded).
    rotation: display rotation in degrees anticlockwise (0, 90, 180, 270) that the reader
        applied to make frames upright; width/height are already swapped for 90/270.
    has_audio: the file has at least one audio stream (see extract_audio for usability).
    is_image: a still image (PNG, JPEG, ...) read as a one-frame video.
    """

    width: int
    height: int
    fps: Fraction
    frame_count: int | None
    codec: str
    pix_fmt: str
    bit_depth: int
    color_primaries: str | None
    color_transfer: str | None
    color_matrix: str | None
    color_range: str | None
    rotation: int
    has_audio: bool
    is_image: bool

    @property
    def color(self) -> dict:
        """The colour tags as the `color` argument of VideoWriter takes them."""
        return {
            "primaries": self.color_primaries,
            "transfer": self.color_transfer,
            "matrix": self.color_matrix,
            "range": self.color_range,
        }

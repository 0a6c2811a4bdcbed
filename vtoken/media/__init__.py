"""Video I/O with PyAV: read anything ffmpeg decodes as uint8 RGB [T, H, W, 3] frames, write
H.264 / Y4M / PNG frames atomically, carry audio through untouched.

    probe(path) -> VideoInfo
    VideoReader(path): .info, .frames(), .chunks(n), .frames_read
    count_frames(path) -> int
    extract_audio(path) -> (bytes, description) | None
    VideoWriter(path, width, height, fps, *, overwrite, audio, color, quality): .write(), .close(), .abort()

Colour rules: vtoken.media.color. Output kinds: vtoken.media.writer. Frames larger than
MAX_SIDE (8192) pixels per side are refused.
"""

from .audio import extract_audio
from .info import MAX_SIDE, VideoInfo
from .reader import VideoReader, count_frames, probe
from .writer import VideoWriter, h264_encoder, output_kind

__all__ = [
    "MAX_SIDE",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "count_frames",
    "extract_audio",
    "h264_encoder",
    "output_kind",
    "probe",
]

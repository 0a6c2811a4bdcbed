"""Raw 4:2:0 video for the benchmark: y4m reading/writing and THE yuv -> RGB conversion.

Every codec is measured against the same frames converted the same way: the reference y4m
(8-bit 4:2:0, limited range, untagged) and every baseline's decoded output go through
`yuv420_to_rgb`, which is `vtoken.media.color.frame_to_rgb` with the matrix that module picks
for an untagged frame of that size (BT.601 below 1280x720, BT.709 from there) and limited
range. vtoken reads the reference y4m through the same function, so the RGB it codes is the
RGB the metrics compare against. No torch here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

# The one conversion used for every codec; recorded in results.json.
RGB_CONVERSION = {
    "function": "vtoken.media.color.frame_to_rgb",
    "matrix": "as for an untagged frame: BT.601 (smpte170m) below 1280x720, BT.709 from 1280x720",
    "range": "limited (16-235 luma, 16-240 chroma)",
    "chroma_upsampling": "swscale bilinear, full horizontal chroma interpolation, accurate rounding",
    "high_bit_depth_to_8": "round half up: (v + 2) >> 2 for 10-bit, clipped to 255",
}


@dataclass(frozen=True)
class Y4mHeader:
    width: int
    height: int
    fps_num: int
    fps_den: int
    raw: str  # the header line without the newline, kept so a rewrite is byte-identical


def _parse_header(line: bytes) -> Y4mHeader:
    text = line.decode("ascii", errors="replace").strip()
    parts = text.split(" ")
    if not parts or parts[0] != "YUV4MPEG2":
        raise InputError(f"not a y4m file (header {text[:40]!r}); create it with the bench reference step")
    width = height = 0
    fps_num, fps_den = 25, 1
    chroma = "420"
    for p in parts[1:]:
        if p.startswith("W"):
            width = int(p[1:])
        elif p.startswith("H"):
            height = int(p[1:])
        elif p.startswith("F"):
            n, d = p[1:].split(":")
            fps_num, fps_den = int(n), int(d)
        elif p.startswith("C"):
            chroma = p[1:]
    if not chroma.startswith("420") or chroma.startswith("420p1"):
        raise InputError(f"y4m chroma {chroma} is not 8-bit 4:2:0; the benchmark reference must be yuv420p")
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise InputError(f"y4m size {width}x{height} must be positive and even")
    return Y4mHeader(width, height, fps_num, fps_den, text)


def read_y4m(path: str | Path) -> tuple[Y4mHeader, np.ndarray]:
    """Read an 8-bit 4:2:0 y4m. Returns the header and the frames as packed planes,
    uint8 [T, H*3/2, W] (Y then U then V, the layout PyAV's yuv420p from_ndarray takes)."""
    data = Path(path).read_bytes()
    nl = data.find(b"\n")
    if nl < 0:
        raise InputError(f"{path}: truncated y4m header")
    header = _parse_header(data[:nl])
    w, h = header.width, header.height
    frame_bytes = w * h * 3 // 2
    frames = []
    pos = nl + 1
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0 or not data[pos:end].startswith(b"FRAME"):
            raise InputError(f"{path}: bad y4m frame marker at byte {pos}")
        pos = end + 1
        if pos + frame_bytes > len(data):
            raise InputError(f"{path}: truncated y4m frame {len(frames)}")
        frames.append(np.frombuffer(data, np.uint8, frame_bytes, pos))
        pos += frame_bytes
    if not frames:
        raise InputError(f"{path}: y4m has no frames")
    return header, np.stack(frames).reshape(len(frames), h * 3 // 2, w)


def write_y4m(path: str | Path, planes: np.ndarray, fps: tuple[int, int] = (25, 1)) -> None:
    """Write uint8 [T, H*3/2, W] packed 4:2:0 planes as a y4m (progressive, square pixels)."""
    planes = np.ascontiguousarray(planes, dtype=np.uint8)
    t, h32, w = planes.shape
    h = h32 * 2 // 3
    head = f"YUV4MPEG2 W{w} H{h} F{fps[0]}:{fps[1]} Ip A1:1 C420jpeg\n".encode("ascii")
    with open(path, "wb") as f:
        f.write(head)
        for i in range(t):
            f.write(b"FRAME\n")
            f.write(planes[i].tobytes())


def raw_to_planes(raw: bytes, width: int, height: int, bit_depth: int) -> np.ndarray:
    """Raw decoder output (yuv420p or yuv420p10le) -> uint8 [T, H*3/2, W] planes.
    10-bit samples are rounded to 8 bits (round half up), the conversion stated in
    RGB_CONVERSION, so a 10-bit codec (vvenc) is judged on the same 8-bit output as the rest."""
    if bit_depth == 8:
        arr = np.frombuffer(raw, np.uint8)
    elif bit_depth == 10:
        arr16 = np.frombuffer(raw, "<u2").astype(np.uint16)
        arr = np.minimum((arr16 + 2) >> 2, 255).astype(np.uint8)
    else:
        raise ValueError(f"bit depth {bit_depth} not supported (8 or 10)")
    per_frame = width * height * 3 // 2
    if arr.size == 0 or arr.size % per_frame:
        raise InputError(f"decoded stream has {arr.size} samples, not a whole number of {width}x{height} frames")
    return arr.reshape(-1, height * 3 // 2, width)


def yuv420_to_rgb(planes: np.ndarray) -> np.ndarray:
    """uint8 [T, H*3/2, W] 4:2:0 planes (untagged, limited range) -> uint8 [T, H, W, 3] RGB.
    The only yuv -> RGB conversion of the benchmark: reference and every codec use it."""
    import av

    from ..media.color import decode_matrix, frame_to_rgb

    t, h32, w = planes.shape
    matrix = decode_matrix(None, w, h32 * 2 // 3)
    out = np.empty((t, h32 * 2 // 3, w, 3), np.uint8)
    for i, p in enumerate(planes):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(p), format="yuv420p")
        out[i] = frame_to_rgb(frame, matrix, "tv")
    return out

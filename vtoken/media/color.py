"""Pixel conversion between decoded frames and uint8 RGB, with the colour rules written down.

Decoding (`frame_to_rgb`):
* YUV -> RGB uses the stream's tagged matrix (BT.601 / BT.709 / BT.2020 NCL / SMPTE 240M / FCC)
  and range. Untagged YUV follows what players do: BT.709 when the frame is HD (width >= 1280
  or height >= 720), BT.601 below that; untagged range is limited ("tv"), except the JPEG
  'yuvj' formats, which are full range by definition. (PyAV's own default would use BT.601
  for every untagged frame, HD included, and nearest-neighbour chroma: both are avoided.)
* Chroma is upsampled bilinearly with full horizontal interpolation and accurate rounding
  (swscale's default drops to nearest-neighbour chroma horizontally).
* High bit depth (10-bit YUV, 16-bit PNG): converted straight to 8 bits by swscale for YUV;
  RGB/grey with more than 8 bits is rounded to nearest (v * 255 / 65535), so 16-bit values
  that are 8-bit values * 257 come back exactly.
* Alpha (rgba, yuva, ya8, palette with transparency) is dropped: the colour channels are kept
  as stored (straight alpha), not composited over any background.
* Grey formats become R = G = B.
* Transfer function and primaries are never converted: RGB stays in the source's primaries
  and transfer; the tags are reported (VideoInfo) and written back by VideoWriter.

Encoding (`rgb_to_frame`): RGB -> YUV with the given matrix/range (default BT.709, limited).

Tag names are ffmpeg's (`av_color_*_name`): e.g. matrix "bt709", "smpte170m", range "tv"/"pc".
"""

from __future__ import annotations

import numpy as np
import av
from av.video.reformatter import Colorspace, Interpolation

# ffmpeg enum value -> ffmpeg name (libavutil/pixfmt.h); 2 is "unspecified" everywhere -> None.
MATRIX_NAMES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
                8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 14: "ictcp"}
PRIMARIES_NAMES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
                   8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432",
                   22: "ebu3213"}
TRANSFER_NAMES = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
                  8: "linear", 9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e",
                  13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084",
                  17: "smpte428", 18: "arib-std-b67"}
RANGE_NAMES = {1: "tv", 2: "pc"}

# matrix name -> swscale coefficients used for the conversion
_SWS_MATRIX = {
    "bt709": Colorspace.ITU709,
    "bt470bg": Colorspace.ITU601,
    "smpte170m": Colorspace.ITU601,
    "fcc": Colorspace.FCC,
    "smpte240m": Colorspace.SMPTE240M,
    "bt2020nc": Colorspace.BT2020,
    "bt2020c": Colorspace.BT2020,  # constant-luminance is not in swscale: NCL is the closest
}
_RANGE_VALUE = {"tv": 1, "pc": 2}

# bilinear, but interpolate chroma horizontally too and round accurately
DECODE_FLAGS = Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND
# average chroma from full-resolution input when subsampling
ENCODE_FLAGS = Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INP | Interpolation.ACCURATE_RND


def name_of(table: dict, value: int) -> str | None:
    return table.get(int(value))


def value_of(table: dict, name: str | None) -> int:
    """ffmpeg enum value for a tag name (2 = unspecified for unknown or None)."""
    for k, v in table.items():
        if v == name:
            return k
    return 2 if table is not RANGE_NAMES else 0


def decode_matrix(matrix: str | None, width: int, height: int) -> str:
    """The matrix actually used to decode: the tag when swscale knows it, else by size."""
    if matrix in _SWS_MATRIX:
        return matrix
    return "bt709" if (width >= 1280 or height >= 720) else "smpte170m"


def decode_range(color_range: str | None, pix_fmt: str) -> str:
    if color_range in _RANGE_VALUE:
        return color_range
    return "pc" if pix_fmt.startswith("yuvj") else "tv"


def _has_alpha(fmt: av.VideoFormat) -> bool:
    return fmt.has_palette or any(c.is_alpha for c in fmt.components)


def _round16(a: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 rounding to nearest (exact for v * 257)."""
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def frame_to_rgb(frame: av.VideoFrame, matrix: str, color_range: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB from any decoded frame (see the module docstring for the rules)."""
    fmt = frame.format
    deep = max(c.bits for c in fmt.components) > 8
    kw = {"interpolation": DECODE_FLAGS}
    if not fmt.is_rgb:
        kw["src_colorspace"] = _SWS_MATRIX[matrix]
        kw["src_color_range"] = _RANGE_VALUE[color_range]
    if _has_alpha(fmt):
        out = frame.reformat(format="rgba64le" if deep else "rgba", **kw).to_ndarray()
        out = out[..., :3]
        return np.ascontiguousarray(_round16(out) if deep else out)
    if deep and (fmt.is_rgb or len(fmt.components) == 1):
        # RGB / grey with > 8 bits: round ourselves (swscale truncates)
        return _round16(frame.reformat(format="rgb48le", **kw).to_ndarray())
    return frame.reformat(format="rgb24", **kw).to_ndarray()


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, matrix: str = "bt709", color_range: str = "tv") -> av.VideoFrame:
    """A frame in `pix_fmt` from uint8 [H, W, 3] RGB, converted with `matrix` and `color_range`
    (both must be names swscale handles; see `writer_color`)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    if pix_fmt == "rgb24":
        return frame
    return frame.reformat(
        format=pix_fmt,
        dst_colorspace=_SWS_MATRIX[matrix],
        dst_color_range=_RANGE_VALUE[color_range],
        interpolation=ENCODE_FLAGS,
    )


def writer_color(color: dict | None) -> dict:
    """Complete colour tags for an output: the input's tags where usable, else BT.709 limited.
    Keys: primaries, transfer, matrix, range (ffmpeg names). The matrix and range are the ones
    the RGB -> YUV conversion uses."""
    color = dict(color or {})
    matrix = color.get("matrix")
    if matrix not in _SWS_MATRIX:
        matrix = "bt709"
    rng = color.get("range") if color.get("range") in _RANGE_VALUE else "tv"
    return {
        "primaries": color.get("primaries") if color.get("primaries") in PRIMARIES_NAMES.values() else
        ("bt709" if matrix == "bt709" else None),
        "transfer": color.get("transfer") if color.get("transfer") in TRANSFER_NAMES.values() else
        ("bt709" if matrix == "bt709" else None),
        "matrix": matrix,
        "range": rng,
    }

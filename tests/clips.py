"""Small test media generated on the fly (shared by every test module; no checked-in blobs).

* `moving_pattern(frames, h, w)` -> uint8 [T, H, W, 3]: gradients, a moving disc and a moving
  bar, so codecs and models see real structure (edges, smooth areas, motion), not noise.
* `make_clip(path, ...)` -> Path: encodes `moving_pattern` with PyAV; container from the suffix
  (.mp4 .mkv .mov .avi .webm .ts ...), any codec / pixel format PyAV's ffmpeg can encode.
* `make_image(path, size, mode)` -> Path: a PNG (rgb / rgba / gray / rgb48 / gray16 / graya) or
  a JPEG, from the first frame of `moving_pattern`.
* `make_audio_only(path)` -> Path: an .m4a with AAC audio and no video stream.

Everything is deterministic for a given `seed`, small and fast (a 9-frame 64x48 clip takes a few
milliseconds). Only numpy and av are used, so the helpers work without torch.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["moving_pattern", "make_clip", "make_image", "make_audio_only"]


def moving_pattern(frames: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 [frames, h, w, 3] RGB: a colour gradient background, a disc moving right, a bar
    moving down and a faint fixed texture. `seed` shifts the phases and colours."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    colour = rng.integers(40, 216, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            127 + 100 * np.sin(xx / max(w, 1) * 2 * np.pi + phase[0]),
            127 + 100 * np.cos(yy / max(h, 1) * 2 * np.pi + phase[1]),
            127 + 60 * np.sin((xx + yy) / max(w + h, 1) * 4 * np.pi + phase[2]),
        ],
        axis=-1,
    )
    texture = 12 * np.sign(np.sin(xx * 0.9) * np.sin(yy * 0.7))[..., None]
    out = np.empty((frames, h, w, 3), np.uint8)
    radius = max(2.0, min(h, w) / 5)
    for t in range(frames):
        img = base + texture
        cx = (w * 0.2 + t * max(1.0, w / 20)) % max(w, 1)
        cy = h / 2 + h / 6 * np.sin(t / 3 + phase[0])
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < radius**2
        img[disc] = colour
        bar_y = int((t * max(1, h // 12)) % max(h, 1))
        img[bar_y : bar_y + max(1, h // 10), :, :] = 255 - colour
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def make_clip(
    path,
    frames: int = 9,
    size: tuple[int, int] = (64, 48),
    fps: Fraction | int = Fraction(25),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: bool = False,
    seed: int = 0,
    rotation: int = 0,
    options: dict | None = None,
    data: np.ndarray | None = None,
    pts: list[int] | None = None,
    container_options: dict | None = None,
) -> Path:
    """Encode `frames` frames of `moving_pattern` (or `data`, uint8 [T, H, W, 3]) at `size`
    = (width, height) and the exact rate `fps` into `path`, with PyAV.

    `codec`/`pix_fmt`: anything PyAV can encode (libx264, libx265, mpeg4, mpeg2video, mjpeg,
    libvpx-vp9, ffv1, png...). 4:2:0 formats need even sizes. mjpeg gets the full-range
    'yuvj' variant of the format automatically. `audio` adds a 440 Hz AAC track as long as the
    video. `rotation` stores display rotation metadata (degrees anticlockwise, as ffmpeg's
    -display_rotation). `pts`: per-frame timestamps in units of 1/fps (variable frame rate
    when uneven). `options` go to the encoder, `container_options` to the muxer (e.g.
    {"movflags": "faststart"}). Returns `Path(path)`."""
    path = Path(path)
    w, h = size
    fps = Fraction(fps)
    pix = data if data is not None else moving_pattern(frames, h, w, seed)
    if codec == "mjpeg" and pix_fmt.startswith("yuv4"):
        pix_fmt = "yuvj" + pix_fmt[3:]
    with av.open(str(path), "w", options=container_options or {}) as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        # keep our own copy: the muxer rewrites vs.time_base when it writes the header
        tb = Fraction(fps.denominator, fps.numerator)
        vs.time_base = tb
        vs.codec_context.time_base = tb
        opts = {"preset": "ultrafast"} if codec in ("libx264", "libx265") else {}
        if codec == "libx265":
            opts["x265-params"] = "log-level=none"
        opts.update(options or {})
        vs.options = opts
        if rotation:
            vs.set_display_rotation(rotation)
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=44100, layout="mono")
        for i, img in enumerate(pix):
            frame = _to_pix_fmt(np.ascontiguousarray(img), pix_fmt)
            frame.pts = i if pts is None else pts[i]
            frame.time_base = tb
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if astream is not None:
            n = int(round(len(pix) / float(fps) * 44100))
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)
            for start in range(0, n, 1024):
                chunk = tone[start : start + 1024]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate = 44100
                af.pts = start
                out.mux(astream.encode(af))
            out.mux(astream.encode(None))
    return path


def _to_pix_fmt(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """RGB -> pix_fmt with the matrix readers assume for untagged video (BT.709 for HD, BT.601
    below; limited range, full for 'yuvj'), so decoding an untagged clip gives back `rgb`."""
    from av.video.reformatter import Colorspace, ColorRange, Interpolation

    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    if not pix_fmt.startswith(("yuv", "nv")):
        return frame  # grey / RGB formats: no matrix involved, the encoder converts
    h, w = rgb.shape[:2]
    return frame.reformat(
        format=pix_fmt,
        dst_colorspace=Colorspace.ITU709 if (w >= 1280 or h >= 720) else Colorspace.ITU601,
        dst_color_range=ColorRange.JPEG if pix_fmt.startswith("yuvj") else ColorRange.MPEG,
        interpolation=Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INP | Interpolation.ACCURATE_RND,
    )


_IMAGE_FORMATS = {
    "rgb": "rgb24",
    "rgba": "rgba",
    "gray": "gray",
    "graya": "ya8",
    "rgb48": "rgb48be",
    "gray16": "gray16be",
}


def make_image(path, size: tuple[int, int] = (64, 48), mode: str = "rgb", seed: int = 0) -> Path:
    """Write one image at `size` = (width, height): PNG for a .png path (`mode` one of rgb,
    rgba, gray, graya, rgb48, gray16; alpha is a left-to-right ramp), JPEG for .jpg/.jpeg
    (mode ignored). Returns `Path(path)`. 16-bit modes hold the 8-bit pattern times 257, so
    they convert back to the 8-bit pattern exactly."""
    path = Path(path)
    w, h = size
    rgb = moving_pattern(1, h, w, seed)[0]
    if path.suffix.lower() in (".jpg", ".jpeg"):
        ctx = av.CodecContext.create("mjpeg", "w")
        ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuvj444p"
        ctx.time_base = Fraction(1, 25)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj444p")
    else:
        fmt = _IMAGE_FORMATS[mode]
        ctx = av.CodecContext.create("png", "w")
        ctx.width, ctx.height, ctx.pix_fmt = w, h, fmt
        ctx.time_base = Fraction(1, 25)
        grey = (rgb.astype(np.uint16) * [77, 150, 29]).sum(-1) // 256
        alpha = np.linspace(0, 255, w).round().astype(np.uint16)[None, :].repeat(h, 0)
        if mode == "rgb":
            arr = rgb
        elif mode == "rgba":
            arr = np.dstack([rgb, alpha]).astype(np.uint8)
        elif mode == "gray":
            arr = grey.astype(np.uint8)
        elif mode == "graya":
            arr = np.dstack([grey, alpha]).astype(np.uint8)
        elif mode == "rgb48":
            arr = (rgb.astype(np.uint16) * 257).astype(">u2")
        else:  # gray16
            arr = (grey * 257).astype(">u2")
        frame = _frame_from_array(arr, fmt)
    packets = ctx.encode(frame) + ctx.encode(None)
    path.write_bytes(b"".join(bytes(p) for p in packets))
    return path


def _frame_from_array(arr: np.ndarray, fmt: str) -> av.VideoFrame:
    """Fill a frame plane by plane (PyAV's from_ndarray does not take every packed format)."""
    h, w = arr.shape[:2]
    frame = av.VideoFrame(w, h, fmt)
    plane = frame.planes[0]
    row = arr.reshape(h, -1).view(np.uint8)
    buf = np.zeros((h, plane.line_size), np.uint8)
    buf[:, : row.shape[1]] = row
    plane.update(buf.tobytes())
    return frame


def make_audio_only(path, seconds: float = 0.5) -> Path:
    """An audio-only file (AAC in .m4a / .mp4, or whatever the suffix implies)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        st = out.add_stream("aac", rate=44100, layout="mono")
        n = int(seconds * 44100)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)
        for start in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            af.sample_rate = 44100
            af.pts = start
            out.mux(st.encode(af))
        out.mux(st.encode(None))
    return path

"""VideoReader / probe: codecs, pixel formats, sizes, rates, rotation, images, colour rules."""

from __future__ import annotations

import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest

from clips import make_clip, make_image, moving_pattern
from vtoken.media import VideoReader, count_frames, probe


def read_all(path) -> tuple[np.ndarray, object]:
    with VideoReader(path) as r:
        frames = np.stack(list(r.frames()))
        assert r.frames_read == len(frames)
        return frames, r.info


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


@pytest.mark.parametrize(
    "name, codec, pix_fmt, depth",
    [
        ("h264.mp4", "libx264", "yuv420p", 8),
        ("h264_444.mp4", "libx264", "yuv444p", 8),
        ("h264_10bit.mp4", "libx264", "yuv420p10le", 10),
        ("hevc_10bit.mkv", "libx265", "yuv420p10le", 10),
        ("mpeg4.mkv", "mpeg4", "yuv420p", 8),
        ("mpeg2.mpg", "mpeg2video", "yuv420p", 8),
        ("mjpeg.avi", "mjpeg", "yuv420p", 8),
        ("vp9.webm", "libvpx-vp9", "yuv420p", 8),
        ("ffv1_gray.mkv", "ffv1", "gray", 8),
        ("ffv1_alpha.mkv", "ffv1", "yuva420p", 8),
    ],
)
def test_codecs_and_pixel_formats(tmp_path, name, codec, pix_fmt, depth):
    src = moving_pattern(9, 48, 64)
    path = make_clip(tmp_path / name, frames=9, size=(64, 48), codec=codec, pix_fmt=pix_fmt)
    frames, info = read_all(path)
    assert frames.shape == (9, 48, 64, 3) and frames.dtype == np.uint8
    assert (info.width, info.height, info.fps, info.bit_depth) == (64, 48, Fraction(25), depth)
    assert info.pix_fmt.startswith(pix_fmt.replace("yuv4", "yuvj4") if codec == "mjpeg" else pix_fmt)
    assert info.frame_count in (9, None)
    if pix_fmt == "gray":
        assert (frames[..., 0] == frames[..., 1]).all() and (frames[..., 1] == frames[..., 2]).all()
        grey = (src.astype(np.float64) * [0.299, 0.587, 0.114]).sum(-1)
        assert np.abs(frames[..., 0] - grey).mean() < 25  # structure, not a flat or inverted image
    else:
        assert psnr(frames, src) > 22, "decoded colours far from the source: wrong matrix/range?"


def test_frame_rate_is_exact(tmp_path):
    for fps in (Fraction(30000, 1001), Fraction(24000, 1001), Fraction(50)):
        info = probe(make_clip(tmp_path / f"r{fps.numerator}.mp4", frames=5, fps=fps))
        assert info.fps == fps and isinstance(info.fps, Fraction)
    # Matroska stores milliseconds; the nominal rate must still come back exactly
    info = probe(make_clip(tmp_path / "ntsc.mkv", frames=5, fps=Fraction(30000, 1001)))
    assert info.fps == Fraction(30000, 1001)


def test_variable_frame_rate_keeps_every_frame(tmp_path):
    pts = [0, 1, 2, 4, 5, 8, 9, 10, 14]  # gaps: 9 frames over 15 ticks of 1/30 s
    path = make_clip(tmp_path / "vfr.mp4", frames=9, fps=Fraction(30), pts=pts)
    frames, info = read_all(path)
    assert len(frames) == 9 and info.frame_count == 9
    assert Fraction(15) < info.fps < Fraction(30)  # the average, not the 30 fps tick rate


@pytest.mark.parametrize("size", [(250, 142), (88, 36)])
def test_sizes_not_multiple_of_8(tmp_path, size):
    frames, info = read_all(make_clip(tmp_path / "s.mp4", frames=3, size=size))
    assert frames.shape == (3, size[1], size[0], 3) and (info.width, info.height) == size


def test_odd_size_through_yuv444_and_png(tmp_path):
    frames, info = read_all(make_clip(tmp_path / "odd.mp4", frames=3, size=(251, 143), pix_fmt="yuv444p"))
    assert frames.shape == (3, 143, 251, 3)
    frames, info = read_all(make_image(tmp_path / "odd.png", size=(33, 17)))
    assert frames.shape == (1, 17, 33, 3) and info.is_image


def test_one_frame_clip(tmp_path):
    frames, info = read_all(make_clip(tmp_path / "one.mp4", frames=1))
    assert frames.shape == (1, 48, 64, 3) and info.frame_count == 1 and not info.is_image


@pytest.mark.parametrize("mode", ["rgb", "rgba", "gray", "graya", "rgb48", "gray16"])
def test_png_images_are_one_frame_videos(tmp_path, mode):
    path = make_image(tmp_path / f"{mode}.png", size=(40, 30), mode=mode)
    frames, info = read_all(path)
    assert frames.shape == (1, 30, 40, 3) and info.is_image and info.frame_count == 1
    src = moving_pattern(1, 30, 40)[0]
    if mode.startswith("rgb"):
        # exact: alpha is dropped (colour kept as stored), 16-bit rounds back to the 8-bit values
        np.testing.assert_array_equal(frames[0], src)
    else:
        grey = (src.astype(np.uint16) * [77, 150, 29]).sum(-1) // 256
        np.testing.assert_array_equal(frames[0, ..., 1], grey.astype(np.uint8))
    assert info.bit_depth == (16 if mode in ("rgb48", "gray16") else 8)


def test_jpeg_image(tmp_path):
    frames, info = read_all(make_image(tmp_path / "p.jpg", size=(64, 48)))
    assert frames.shape == (1, 48, 64, 3) and info.is_image
    assert psnr(frames[0], moving_pattern(1, 48, 64)[0]) > 25


def _flat_yuv_clip(path, size, tag_709: bool):
    """One flat YUV 4:4:4 frame (Y, U, V) = (120, 90, 180), lossless (FFV1), optionally tagged."""
    w, h = size
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv444p"
        if tag_709:
            s.codec_context.colorspace = 1
            s.codec_context.color_range = 1
        frame = av.VideoFrame(w, h, "yuv444p")
        for plane, value in zip(frame.planes, (120, 90, 180)):
            plane.update(bytes([value]) * (plane.line_size * h))
        frame.pts = 0
        out.mux(s.encode(frame))
        out.mux(s.encode(None))
    return path


BT709 = [214, 101, 41]  # (120, 90, 180) limited range through the BT.709 matrix
BT601 = [204, 94, 44]  # ... through BT.601


@pytest.mark.parametrize(
    "size, tagged, expected",
    [((64, 48), False, BT601), ((64, 48), True, BT709), ((1280, 720), False, BT709)],
)
def test_colour_matrix_rules(tmp_path, size, tagged, expected):
    frames, info = read_all(_flat_yuv_clip(tmp_path / "flat.mkv", size, tagged))
    np.testing.assert_allclose(frames[0, 5, 5].astype(int), expected, atol=1)
    assert info.color_matrix == ("bt709" if tagged else None)


def test_chroma_is_interpolated_not_repeated(tmp_path):
    """A horizontal colour ramp in 4:2:0 must come out as a ramp (swscale's default repeats
    each chroma sample twice, which makes pairs of equal columns)."""
    ramp = np.zeros((4, 16, 64, 3), np.uint8)
    ramp[..., 0] = np.linspace(0, 255, 64).astype(np.uint8)[None, None, :]
    ramp[..., 1:] = 100
    frames, _ = read_all(make_clip(tmp_path / "ramp.mkv", frames=4, size=(64, 16), codec="ffv1", data=ramp))
    red = frames[0, 8, 8:56, 0].astype(int)
    assert (np.diff(red) > 0).mean() > 0.8


def _ffmpeg():
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_applied_like_ffmpeg(tmp_path, rotation):
    path = make_clip(tmp_path / "rot.mp4", frames=2, size=(64, 48), rotation=rotation, codec="libx264", pix_fmt="yuv444p", options={"qp": "0"})
    frames, info = read_all(path)
    assert info.rotation == rotation
    h, w = (64, 48) if rotation % 180 else (48, 64)
    assert frames.shape == (2, h, w, 3) and (info.width, info.height) == (w, h)
    # ffmpeg's CLI autorotates by default: it is the reference for the direction
    raw = subprocess.run(
        [_ffmpeg(), "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
    assert np.abs(ref.astype(int) - frames[0]).mean() < 4
    unrotated = np.rot90(frames[0], -rotation // 90)
    assert psnr(unrotated, moving_pattern(1, 48, 64)[0]) > 30


def test_chunks_are_bounded_and_complete(tmp_path):
    path = make_clip(tmp_path / "c.mkv", frames=10, codec="mpeg4")
    with VideoReader(path) as r:
        chunks = list(r.chunks(4))
        assert [len(c) for c in chunks] == [4, 4, 2]
        assert r.frames_read == 10 and r.info.frame_count is None  # Matroska has no count
    frames, _ = read_all(path)
    np.testing.assert_array_equal(np.concatenate(chunks), frames)
    assert count_frames(path) == 10


def test_iterating_twice_restarts(tmp_path):
    path = make_clip(tmp_path / "a.mp4", frames=4)
    with VideoReader(path) as r:
        a = np.stack(list(r.frames()))
        b = np.stack(list(r.frames()))
    np.testing.assert_array_equal(a, b)
    assert len(a) == 4


def test_probe_reports_audio(tmp_path):
    assert probe(make_clip(tmp_path / "a.mp4", frames=3, audio=True)).has_audio
    assert not probe(make_clip(tmp_path / "b.mp4", frames=3)).has_audio


@pytest.mark.parametrize(
    "name, args, codec",
    [
        ("theora.ogv", ["-c:v", "libtheora", "-q:v", "7"], "theora"),
        ("av1.mkv", ["-c:v", "libsvtav1", "-preset", "12"], "av1"),
        ("vp8.webm", ["-c:v", "libvpx", "-b:v", "1M"], "vp8"),
    ],
)
def test_codecs_from_ffmpeg_cli(tmp_path, name, args, codec):
    """Codecs PyAV's own ffmpeg cannot encode (theora) or that are slow to set up in PyAV:
    generated with the static ffmpeg from imageio-ffmpeg (lavfi testsrc2)."""
    path = tmp_path / name
    subprocess.run(
        [_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=30000/1001",
         "-frames:v", "6", "-pix_fmt", "yuv420p", *args, str(path)],
        check=True, capture_output=True,
    )
    frames, info = read_all(path)
    assert frames.shape == (6, 64, 96, 3) and info.codec == codec
    assert info.fps == Fraction(30000, 1001)
    assert frames.std() > 20  # testsrc2 is colourful, not a flat or black decode


def test_y4m_input(tmp_path):
    """Raw Y4M input (as other tests make it): exact size, count and rate, near-exact colour."""
    path = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=6, size=(250, 142), pix_fmt="yuv444p",
                     fps=Fraction(30000, 1001))
    frames, info = read_all(path)
    assert frames.shape == (6, 142, 250, 3) and info.fps == Fraction(30000, 1001)
    assert info.frame_count is None and count_frames(path) == 6
    assert np.abs(frames.astype(int) - moving_pattern(6, 142, 250)).max() <= 2

"""VideoWriter round trips (size, count, exact rate), Y4M / PNG exactness, audio pass-through,
atomic outputs."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from clips import make_clip, moving_pattern
from vtoken.errors import OutputError, UsageError
from vtoken.media import color as col
from vtoken.media import VideoReader, VideoWriter, extract_audio, h264_encoder, output_kind, probe


def read_all(path):
    with VideoReader(path) as r:
        return np.stack(list(r.frames())), r.info


def write(path, frames, fps=Fraction(25), **kw):
    t, h, w, _ = frames.shape
    with VideoWriter(path, w, h, fps, **kw) as wr:
        wr.write(frames[: t // 2])
        for f in frames[t // 2 :]:
            wr.write(f)  # single [H, W, 3] frames too
    return path


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def smooth_pattern(t, h, w):
    """moving_pattern without its 1-pixel texture, so 4:2:0 chroma loss stays small."""
    x = moving_pattern(t, h, w).astype(np.float32)
    k = np.ones(3) / 3
    for axis in (1, 2):
        x = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), axis, x)
    return x.round().astype(np.uint8)


def test_output_kind():
    assert output_kind("a.mp4") == output_kind("a.MKV") == output_kind("a.mov") == "video"
    assert output_kind("a.y4m") == "y4m"
    assert output_kind("frames/") == output_kind("frames") == "png"
    with pytest.raises(UsageError):
        output_kind("a.gif")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(25), Fraction(24000, 1001)])
def test_h264_round_trip_keeps_size_count_rate(tmp_path, suffix, fps):
    src = smooth_pattern(7, 48, 80)
    out = write(tmp_path / f"o{suffix}", src, fps=fps)
    frames, info = read_all(out)
    assert frames.shape == src.shape
    assert info.fps == fps
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.color_matrix == "bt709"
    # saturated synthetic colours lose ~34 dB to 4:2:0 alone: judge the codec against that
    subsampled = np.stack([col.frame_to_rgb(col.rgb_to_frame(f, "yuv420p"), "bt709", "tv") for f in src])
    assert psnr(frames, subsampled) > 36, "quality 'high' should be near-transparent"
    assert psnr(frames, src) > 30


def test_h264_odd_size_uses_444(tmp_path):
    src = moving_pattern(3, 143, 251)
    frames, info = read_all(write(tmp_path / "odd.mp4", src))
    assert frames.shape == src.shape and info.pix_fmt == "yuv444p"
    assert psnr(frames, src) > 38


def test_lossless_quality(tmp_path):
    src = moving_pattern(3, 48, 64)
    frames, _ = read_all(write(tmp_path / "l.mkv", src, quality="lossless"))
    assert np.abs(frames.astype(int) - src).max() <= 2  # only RGB <-> YUV rounding


def test_one_frame_and_quality_names(tmp_path):
    src = moving_pattern(1, 48, 64)
    frames, info = read_all(write(tmp_path / "one.mp4", src, quality="low"))
    assert frames.shape == (1, 48, 64, 3) and info.frame_count == 1
    with pytest.raises(UsageError):
        VideoWriter(tmp_path / "x.mp4", 64, 48, Fraction(25), quality="best")
    assert not (tmp_path / "x.mp4").exists()


def test_y4m_is_444_and_nearly_exact(tmp_path):
    src = moving_pattern(5, 42, 70)
    out = write(tmp_path / "o.y4m", src, fps=Fraction(30000, 1001))
    header = out.read_bytes()[:80].split(b"\n")[0].decode()
    assert "W70 H42 F30000:1001" in header and "C444" in header
    frames, info = read_all(out)
    assert frames.shape == src.shape and info.fps == Fraction(30000, 1001)
    assert np.abs(frames.astype(int) - src).max() <= 2
    assert out.stat().st_size > 5 * 70 * 42 * 3  # 5 raw 4:4:4 frames plus headers


def test_y4m_odd_size(tmp_path):
    src = moving_pattern(2, 17, 33)
    frames, _ = read_all(write(tmp_path / "odd.y4m", src))
    assert frames.shape == src.shape and np.abs(frames.astype(int) - src).max() <= 2


def test_png_folder_is_exact(tmp_path):
    src = moving_pattern(4, 17, 33)
    out = write(tmp_path / "frames", src)
    assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(4)]
    frames, info = read_all(out)
    np.testing.assert_array_equal(frames, src)
    assert info.frame_count == 4


def test_ten_bit_input_round_trip(tmp_path):
    clip = make_clip(tmp_path / "in10.mp4", frames=5, size=(80, 48), pix_fmt="yuv420p10le")
    src, info = read_all(clip)
    frames, out_info = read_all(write(tmp_path / "o.mp4", src, fps=info.fps, color=info.color))
    assert frames.shape == (5, 48, 80, 3) and out_info.fps == info.fps and out_info.bit_depth == 8


def test_audio_is_copied_untouched(tmp_path):
    clip = make_clip(tmp_path / "av.mp4", frames=25, audio=True)
    audio = extract_audio(clip)
    assert audio is not None and audio[1].startswith("aac 44100 Hz")
    src, info = read_all(clip)
    out = write(tmp_path / "o.mp4", src, fps=info.fps, audio=audio)

    def packets(path):
        with av.open(str(path)) as c:
            s = c.streams.audio[0]
            return [(bytes(p), p.pts * s.time_base) for p in c.demux(s) if p.size]

    before, after = packets(clip), packets(out)
    assert [b for b, _ in after] == [b for b, _ in before]
    # same times, AAC priming (first packet at -1024 samples) included: A/V sync is kept
    assert [t for _, t in after] == [t for _, t in before] and before[0][1] < 0
    frames, out_info = read_all(out)
    assert out_info.has_audio and len(frames) == 25


def test_audio_dropped_for_y4m_and_png(tmp_path):
    clip = make_clip(tmp_path / "av.mp4", frames=3, audio=True)
    audio = extract_audio(clip)
    src, _ = read_all(clip)
    assert not probe(write(tmp_path / "o.y4m", src, audio=audio)).has_audio
    assert (write(tmp_path / "pngs/", src, audio=audio) / "000002.png").exists()


def test_no_audio_gives_none(tmp_path):
    assert extract_audio(make_clip(tmp_path / "a.mp4", frames=2)) is None


@pytest.mark.parametrize("name", ["o.mp4", "o.y4m", "frames/"])
def test_exception_inside_with_block_leaves_nothing(tmp_path, name):
    src = moving_pattern(3, 48, 64)
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / name, 64, 48, Fraction(25)) as w:
            w.write(src)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_abort_and_empty_output_leave_nothing(tmp_path):
    w = VideoWriter(tmp_path / "a.mp4", 64, 48, Fraction(25))
    w.write(moving_pattern(2, 48, 64))
    w.abort()
    with pytest.raises(OutputError, match="no frames"):
        with VideoWriter(tmp_path / "b.mp4", 64, 48, Fraction(25)):
            pass
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path):
    target = tmp_path / "o.mp4"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists"):
        VideoWriter(target, 64, 48, Fraction(25))
    assert target.read_bytes() == b"keep me"
    write(target, moving_pattern(2, 48, 64), overwrite=True)
    assert probe(target).frame_count == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]  # no temp files left


def test_wrong_frames_are_refused(tmp_path):
    with VideoWriter(tmp_path / "o.mp4", 64, 48, Fraction(25)) as w:
        with pytest.raises(UsageError, match="uint8"):
            w.write(np.zeros((2, 48, 64, 3), np.float32))
        with pytest.raises(UsageError):
            w.write(np.zeros((2, 40, 64, 3), np.uint8))
        w.write(np.zeros((1, 48, 64, 3), np.uint8))
    assert probe(tmp_path / "o.mp4").frame_count == 1


def test_h264_encoder_is_libx264():
    # the report and the docs assume PyAV's bundled ffmpeg has libx264; fail loudly if not
    assert h264_encoder() == "libx264"


def test_audio_the_container_cannot_hold_is_dropped_with_warning(tmp_path, caplog):
    """FLAC audio (fine in .mkv) cannot go into .mov: the video is still written."""
    import logging
    import subprocess

    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    src = tmp_path / "flac.mkv"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25",
         "-f", "lavfi", "-i", "sine=duration=0.4", "-t", "0.4", "-c:v", "libx264", "-c:a", "flac", str(src)],
        check=True, capture_output=True,
    )
    audio = extract_audio(src)
    assert audio is not None and audio[1].startswith("flac")
    frames, info = read_all(src)
    assert probe(write(tmp_path / "o.mkv", frames, audio=audio)).has_audio
    with caplog.at_level(logging.WARNING):
        out = write(tmp_path / "o.mov", frames, audio=audio)
    assert not probe(out).has_audio and probe(out).frame_count == len(frames)
    assert any("flac" in r.message for r in caplog.records)


@pytest.mark.parametrize("name", ["o.mp4", "frames/"])
def test_disk_full_is_an_output_error_and_leaves_nothing(tmp_path, monkeypatch, name):
    import errno

    from vtoken.media import writer as writer_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.VideoWriter, "_mux", full)
    monkeypatch.setattr(writer_module.Path, "write_bytes", full)
    src = moving_pattern(3, 48, 64)
    with pytest.raises(OutputError, match="No space left"):
        with VideoWriter(tmp_path / name, 64, 48, Fraction(25)) as w:
            w.write(src)
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(tmp_path / "o.mkv", 64, 48, Fraction(25)) as w:
            w.write(moving_pattern(2, 48, 64))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "o.mp4", 64, 48, Fraction(25))

"""Bad input: every failure is one InputError line; damaged files decode what they can."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from clips import make_audio_only, make_clip, make_image
from vtoken.errors import InputError
from vtoken.media import MAX_SIDE, VideoReader, count_frames, extract_audio, probe


def shared_dir() -> Path:
    return Path(os.environ.get("VTOKEN_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as exc:
        probe(tmp_path / "nope.mp4")
    assert "no such file" in one_line(exc)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError) as exc:
        VideoReader(tmp_path / "empty.mp4")
    assert "empty" in one_line(exc)


def test_text_file(tmp_path):
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 20)
    with pytest.raises(InputError) as exc:
        probe(tmp_path / "notes.mp4")
    assert "not a video" in one_line(exc)


def test_audio_only_file(tmp_path):
    path = make_audio_only(tmp_path / "sound.m4a")
    with pytest.raises(InputError) as exc:
        probe(path)
    assert "no video stream" in one_line(exc)
    assert extract_audio(path) is not None  # the audio itself is fine


def test_folder_without_frames(tmp_path):
    with pytest.raises(InputError) as exc:
        probe(tmp_path)
    assert "folder" in one_line(exc)


def test_mp4_truncated_before_its_index(tmp_path):
    """moov at the end (the default): cutting the file loses the index; nothing decodes."""
    data = make_clip(tmp_path / "full.mp4", frames=20).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError) as exc:
        probe(cut)
    assert "truncated" in one_line(exc)


def test_faststart_mp4_truncated_decodes_what_it_can(tmp_path, caplog):
    """moov at the front: the frames before the cut decode; the rest are missing."""
    full = make_clip(tmp_path / "full.mp4", frames=30, size=(64, 48), container_options={"movflags": "faststart"})
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with VideoReader(cut) as r:
        assert r.info.frame_count == 30  # the header's claim
        frames = list(r.frames())
    assert 0 < len(frames) < 30
    assert all(f.shape == (48, 64, 3) for f in frames)


def test_header_only_mp4_has_no_frames(tmp_path):
    full = make_clip(tmp_path / "full.mp4", frames=30, container_options={"movflags": "faststart"})
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: data.index(b"mdat") + 4])
    with pytest.raises(InputError) as exc:
        probe(cut)
    assert "no decodable video frames" in one_line(exc)


def test_too_large_frames_are_refused(tmp_path):
    path = make_image(tmp_path / "wide.png", size=(MAX_SIDE + 8, 8))
    with pytest.raises(InputError) as exc:
        probe(path)
    assert str(MAX_SIDE) in one_line(exc)
    ok = make_image(tmp_path / "edge.png", size=(MAX_SIDE, 8))
    assert probe(ok).width == MAX_SIDE


def test_broken_audio_track_keeps_video(caplog):
    path = shared_dir() / "data/train/video/moviepy/video_with_failing_audio.mp4"
    if not path.exists():
        pytest.skip(f"{path} not available")
    with VideoReader(path) as r:
        assert r.info.has_audio
        first = next(r.chunks(8))
    assert first.shape == (8, 360, 640, 3) and first.std() > 5
    with caplog.at_level(logging.WARNING):
        audio = extract_audio(path)
    # either the audio is copied whole or it is skipped with a warning; never an exception
    assert audio is not None or any("audio" in r.message for r in caplog.records)


def test_undecodable_audio_is_skipped_with_warning(tmp_path, caplog):
    """Corrupt the audio payloads of an mp4 (keep the container valid): video still reads,
    extract_audio warns and returns None."""
    import av

    clip = make_clip(tmp_path / "av.mp4", frames=10, audio=True)
    data = bytearray(clip.read_bytes())
    with av.open(str(clip)) as c:
        spans = [(p.pos, p.size) for p in c.demux(c.streams.audio[0]) if p.size and p.pos is not None]
    for pos, size in spans:
        data[pos : pos + size] = bytes([0xFF]) * size
    bad = tmp_path / "bad_audio.mp4"
    bad.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert extract_audio(bad) is None
    assert any("audio" in r.message for r in caplog.records)
    with VideoReader(bad) as r:
        assert len(list(r.frames())) == 10


def test_count_frames_matches_decoding(tmp_path):
    path = make_clip(tmp_path / "c.mkv", frames=7, codec="mpeg4")
    with VideoReader(path) as r:
        n = sum(1 for _ in r.frames())
    assert count_frames(path) == n == 7

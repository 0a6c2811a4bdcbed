"""Issue 11: hostile and damaged .mvt files. Work is refused before it is spent, every header
value the spec allows decodes or fails cleanly, broken audio never stops the video, a
tolerant decode that conceals everything is a failure, and a file's text is escaped."""

from __future__ import annotations

import dataclasses
import io

import pytest
from click.testing import CliRunner

import vtoken
from vtoken.bitstream import Chunk, MvtReader, MvtWriter
from vtoken.cli import main
from vtoken.errors import CorruptChunkError, StreamError, UsageError

from clips import make_clip


@pytest.fixture(scope="module")
def stream(tmp_path_factory, tiny_model_json):
    """(header, chunks, audio) of a real 3-chunk stream with audio, for rewriting."""
    folder = tmp_path_factory.mktemp("hostile")
    src = make_clip(folder / "in.mp4", frames=13, size=(48, 32), audio=True)
    mvt = folder / "a.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu", chunk_frames=5, key_interval=2)
    r = MvtReader(io.BytesIO(mvt.read_bytes()))
    return r.header, [r.read_chunk(i) for i in range(len(r.entries))], r.audio()


def _write(path, header, chunks, audio=None, **changes):
    buf = io.BytesIO()
    w = MvtWriter(buf, dataclasses.replace(header, **changes))
    if audio is not None:
        w.write_audio(*audio)
    for c in chunks:
        w.write_chunk(c)
    w.close()
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture()
def no_model_work(monkeypatch):
    """Fails the test if the model decodes anything (the refusal must come first)."""
    from vtoken.models.tokenizer import Tokenizer

    def refuse(*args, **kwargs):
        raise AssertionError("the model ran on a stream that should have been refused first")

    monkeypatch.setattr(Tokenizer, "decode_bits", refuse)


def test_junk_audio_with_a_good_crc_drops_the_audio_only(tmp_path, stream):
    header, chunks, _ = stream
    bad = _write(tmp_path / "junk.mvt", header, chunks, audio=(b"\x1a\x45\xdf\xa3 junk" * 20, "aac 44100 Hz"))
    for tolerant in (False, True):
        res = vtoken.decode(bad, tmp_path / f"o{tolerant}.mp4", device="cpu", tolerant=tolerant)
        assert res.frames == 13 and any("audio dropped" in w for w in res.warnings)
    res = vtoken.decode(bad, tmp_path / "o.y4m", device="cpu")  # an output without audio never reads it
    assert res.frames == 13 and not res.warnings


def test_audio_record_with_a_bad_crc_drops_the_audio_in_strict_mode_too(tmp_path, stream):
    header, chunks, audio = stream
    good = _write(tmp_path / "a.mvt", header, chunks, audio=audio)
    data = bytearray(good.read_bytes())
    at = data.index(audio[0][:32])
    data[at + 10] ^= 0xFF
    bad = tmp_path / "bad.mvt"
    bad.write_bytes(bytes(data))
    res = vtoken.decode(bad, tmp_path / "o.mp4", device="cpu")
    assert res.frames == 13 and any("audio dropped" in w and "CRC" in w for w in res.warnings)


def test_tolerant_decode_that_conceals_everything_fails(tmp_path, stream, no_model_work):
    header, chunks, _ = stream
    path = _write(tmp_path / "all.mvt", header, chunks)
    data = bytearray(path.read_bytes())
    with MvtReader(io.BytesIO(bytes(data))) as r:
        ends = [r.segment_ends(i)[0] for i in range(len(r.entries))]
    for end in ends:  # every chunk's first segment fails its CRC
        data[end - 1] ^= 0x55
    path.write_bytes(bytes(data))
    res = CliRunner().invoke(main, ["decode", str(path), "-o", str(tmp_path / "o.y4m"), "--tolerant", "--device", "cpu"])
    assert res.exit_code == 4, res.output
    assert "nothing can be decoded" in res.stderr
    assert not (tmp_path / "o.y4m").exists()


def test_strict_decode_of_a_damaged_stream_fails_before_the_model_runs(tmp_path, stream, no_model_work):
    header, chunks, _ = stream
    path = _write(tmp_path / "d.mvt", header, chunks)
    data = bytearray(path.read_bytes())
    with MvtReader(io.BytesIO(bytes(data))) as r:
        end = r.segment_ends(2)[0]
    data[end - 1] ^= 0x55  # the last chunk's first segment
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptChunkError) as err:
        vtoken.decode(path, tmp_path / "o.y4m", device="cpu")
    assert err.value.chunk == 2 and not (tmp_path / "o.y4m").exists()


def test_chunks_larger_than_the_decoder_runs_are_refused_before_loading(tmp_path, stream, monkeypatch):
    import vtoken.models as models

    monkeypatch.setattr(models, "load_model_by_identity", lambda *a, **k: pytest.fail("model loaded"))
    header, _, _ = stream
    # 1025-frame chunks of 4096x2304 frames: every value within the spec's limits.
    t = 1 + 1024 // 4
    chunk = Chunk(0, 0, 1025, True, (t, 288, 512), 6, [b""] * 6)
    path = _write(tmp_path / "big.mvt", header, [chunk], width=4096, height=2304, frames_per_chunk=1025)
    assert path.stat().st_size < 1000
    res = CliRunner().invoke(main, ["decode", str(path), "-o", str(tmp_path / "o.y4m"), "--device", "cpu"])
    assert res.exit_code == 3 and "larger than vtoken decodes at once" in res.stderr, res.output


@pytest.mark.parametrize("field, value", [
    ("fps_num", 0xFFFFFFFF), ("fps_den", 0xFFFFFFFF), ("fps_num", 1), ("frame_count", 100_000_000),
    ("frame_count", 0), ("key_interval", 0xFFFFFFFF), ("color_primaries", 255), ("color_transfer", 0),
    ("color_matrix", 255), ("color_range", 255), ("extra", {"k": "v" * 1000}),
])
def test_header_values_at_the_spec_limits_decode_or_fail_cleanly(tmp_path, stream, field, value):
    header, chunks, audio = stream
    path = _write(tmp_path / "x.mvt", header, chunks, audio=audio, **{field: value})
    for out in ("o.mp4", "o.y4m"):
        try:
            res = vtoken.decode(path, tmp_path / out, device="cpu", overwrite=True)
        except vtoken.errors.VtokenError:
            continue  # a clean refusal is allowed; anything else fails the test
        assert res.frames == 13


def test_planes_beyond_the_file_are_refused(tmp_path, stream):
    header, chunks, _ = stream
    path = _write(tmp_path / "p.mvt", header, chunks)
    with pytest.raises(UsageError, match="from 1 to 6"):
        vtoken.decode(path, tmp_path / "o.y4m", device="cpu", planes=7)
    res = CliRunner().invoke(main, ["trim", str(path), str(tmp_path / "t.mvt"), "--planes", "7"])
    assert res.exit_code == 2 and not (tmp_path / "t.mvt").exists()


def test_text_from_the_file_is_escaped(tmp_path, stream):
    header, chunks, _ = stream
    evil = "\x1b]0;pwned\x07\x1b[2J\u202eexe.mvt"
    path = _write(tmp_path / "e.mvt", header, chunks, model_name="m" + evil, extra={"source": evil})
    runner = CliRunner()
    res = runner.invoke(main, ["info", str(path)])
    assert res.exit_code == 0
    assert "\x1b" not in res.output and "\u202e" not in res.output and "\x07" not in res.output
    assert "\\x1b" in res.output and "\\u202e" in res.output
    res = runner.invoke(main, ["decode", str(path), "-o", str(tmp_path / "o.y4m"), "--device", "cpu"])
    assert res.exit_code == 5  # the model it names is not installed
    assert "\x1b" not in res.stderr and "\\x1b" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(main, ["info", str(path), "--json"])
    assert "\x1b" not in res.stdout and "\u202e" not in res.stdout


def test_stream_error_types_stay_vtoken_errors(tmp_path, stream):
    header, chunks, _ = stream
    path = _write(tmp_path / "t.mvt", header, chunks, temporal_factor=2, frames_per_chunk=5)
    with pytest.raises(StreamError):
        vtoken.decode(path, tmp_path / "o.y4m", device="cpu")


def test_tolerant_decode_fails_when_the_only_intact_chunks_depend_on_a_lost_one(tmp_path, tiny_model_json):
    # Chunk 0 (the only key chunk) loses its first plane; chunk 1 is intact but continues
    # chunk 0's stream, so it is concealed too: nothing was decoded, and that is a failure.
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=9, size=(32, 32))
    mvt = tmp_path / "a.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu", chunk_frames=5, key_interval=8)
    data = bytearray(mvt.read_bytes())
    with MvtReader(io.BytesIO(bytes(data))) as r:
        assert [e.key for e in r.entries] == [True, False]
        end = r.segment_ends(0)[0]
    data[end - 1] ^= 0x55
    bad = tmp_path / "bad.mvt"
    bad.write_bytes(bytes(data))
    res = CliRunner().invoke(main, ["decode", str(bad), "-o", str(tmp_path / "o.y4m"), "--tolerant", "--device", "cpu"])
    assert res.exit_code == 4 and "every frame was concealed" in res.stderr, res.output
    assert not (tmp_path / "o.y4m").exists()

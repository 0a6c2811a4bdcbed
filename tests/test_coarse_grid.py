"""A stream temporal factor above the model's: every s-th frame coded, the others blended by
the decoder (vtoken.codec.coarse)."""

from __future__ import annotations

import numpy as np
import pytest

import vtoken
from vtoken.codec.coarse import coded_indices, fill
from vtoken.media import VideoReader

from clips import make_clip
from stream_checks import assert_stream_is


@pytest.mark.parametrize("stride", [2, 3, 4])
def test_coded_frames_end_each_chunk_and_step_back_by_the_stride(stride):
    for n in range(1, 30):
        for key in (True, False):
            at = coded_indices(n, stride, key)
            assert at[-1] == n - 1 and list(at) == sorted(set(at))
            assert len(at) == (1 + -(-(n - 1) // stride) if key else -(-n // stride))
            assert not key or at[0] == 0
            steps = np.diff(np.concatenate([[-1], at]) if not key else at)
            assert (steps <= stride).all() and (steps[1:] == stride).all()
    # Full chunks keep one grid across chunk boundaries: a key chunk of 1 + 4s frames and
    # continuing ones of 4s code frames 0, s, 2s, ... of the video.
    key, cont = 1 + 4 * stride, 4 * stride
    glob = list(coded_indices(key, stride, True)) + [key + i for i in coded_indices(cont, stride, False)]
    assert glob == list(range(0, key + cont, stride))


def test_frames_between_coded_ones_are_their_rounded_blend():
    coded = np.array([[[[0, 10, 255]]], [[[100, 13, 0]]], [[[7, 7, 7]]]], dtype=np.uint8)  # 3 coded frames, 1x1
    out = fill(coded, 7, 3, True, None)  # coded at 0, 3, 6
    assert out.shape == (7, 1, 1, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[[0, 3, 6]], coded)
    np.testing.assert_array_equal(out[1, 0, 0], [33, 11, 170])  # (2 * a + b + 1) // 3
    np.testing.assert_array_equal(out[2, 0, 0], [67, 12, 85])
    np.testing.assert_array_equal(out[4, 0, 0], [69, 11, 2])
    # A continuing chunk blends its first frames from the previous chunk's last frame.
    prev = np.full((1, 1, 3), 200, np.uint8)
    out = fill(coded[:2], 4, 2, False, prev)  # coded at 1, 3
    np.testing.assert_array_equal(out[0, 0, 0], [100, 105, 228])
    np.testing.assert_array_equal(out[[1, 3]], coded[:2])
    np.testing.assert_array_equal(out[2, 0, 0], [50, 12, 128])
    # Without one (nothing decoded before it) the first coded frame stands in.
    np.testing.assert_array_equal(fill(coded[:2], 4, 2, False, None)[0], coded[0])
    with pytest.raises(ValueError, match="3 decoded frames for 2 coded ones"):
        fill(coded, 4, 2, False, prev)


def _model_chunks(model, frames: np.ndarray, stride: int, chunk_frames: int, key_interval: int):
    """(bits, decoded frames) per chunk without the pipeline: the model reads the coded frames
    only, and the decoder's frames are blended between them."""
    import torch

    from vtoken.codec.frames import pad_frames, to_frames, to_tensor
    from vtoken.models.stream import StreamState

    tf, sf = model.config.temporal_factor, model.config.spatial_factor
    out, i, index, last = [], 0, 0, None
    while i < len(frames):
        key = index % key_interval == 0
        n = min(chunk_frames if key else chunk_frames - 1, len(frames) - i)
        if key:
            enc_state, dec_state = StreamState(), StreamState()
        at = coded_indices(n, stride, key)
        with torch.inference_mode():
            bits = model.encode_bits(to_tensor(pad_frames(frames[i:i + n][at], tf, sf, continuing=not key), "cpu"),
                                     state=enc_state)
            video = model.decode_bits(bits, state=dec_state)
        shown = fill(to_frames(video, len(at), frames.shape[1], frames.shape[2]), n, stride, key, last)
        out.append((bits[0].numpy(), shown))
        last = shown[-1]
        i, index = i + n, index + 1
    return out


@pytest.mark.parametrize("factor, chunk_frames", [(8, 9), (16, 17)])
def test_coarser_temporal_factor_codes_every_sth_frame(tmp_path, tiny_model_json, factor, chunk_frames):
    from vtoken.models import load_model

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=2 * chunk_frames + 5, size=(48, 40))
    mvt = tmp_path / "t.mvt"
    res = vtoken.encode(src, mvt, model=tiny_model_json, chunk_frames=chunk_frames, key_interval=2, device="cpu",
                        temporal_factor=factor, hold=0)  # the model's own signs, as _model_chunks has them
    assert res.frames == 2 * chunk_frames + 5 and res.temporal_factor == factor
    model = load_model(tiny_model_json)
    with VideoReader(src) as r:
        frames = np.stack(list(r.frames()))
    expected = _model_chunks(model, frames, factor // model.config.temporal_factor, chunk_frames, 2)
    decoded = assert_stream_is(mvt, model, expected, factor, [chunk_frames, chunk_frames - 1, 6])
    # Seeking (from the key chunk before) lands on the same frames, the blended ones included.
    part = np.concatenate(list(vtoken.decode_frames(mvt, device="cpu", start=chunk_frames + 2, frames=9,
                                                     precision="fp32")))
    np.testing.assert_array_equal(part, decoded[chunk_frames + 2:chunk_frames + 11])
    # Fewer frames through the model: fewer bytes than the model's own grid at equal planes.
    own = vtoken.encode(src, tmp_path / "own.mvt", model=tiny_model_json, chunk_frames=chunk_frames, key_interval=2,
                        device="cpu", hold=0)
    assert own.temporal_factor == 4 and res.bytes < own.bytes


def test_cli_encodes_and_decodes_on_a_coarser_grid(tmp_path, tiny_model_json):
    from click.testing import CliRunner

    from vtoken.cli import main

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=12, size=(32, 32))
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "a.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--temporal-factor", "8", "--chunk-frames", "9", "--json"])
    assert run.exit_code == 0, run.output
    assert vtoken.info(tmp_path / "a.mvt")["temporal_factor"] == 8
    out = CliRunner().invoke(main, ["decode", str(tmp_path / "a.mvt"), "-o", str(tmp_path / "a.y4m"),
                                    "--model", str(tiny_model_json), "--device", "cpu"])
    assert out.exit_code == 0, out.output
    with VideoReader(tmp_path / "a.y4m") as r:
        assert len(list(r.frames())) == 12
    # The default chunk (17 frames) does not hold a grid of 12.
    bad = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "b.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--temporal-factor", "12"])
    assert bad.exit_code != 0 and "chunk frames must be 1 + 12n" in bad.output
    assert not (tmp_path / "b.mvt").exists()


def test_a_damaged_chunk_of_a_coarse_stream_is_concealed_and_the_next_key_chunk_blends_from_nothing(
        tmp_path, tiny_model_json):
    from vtoken.bitstream import open_mvt

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=25, size=(32, 32))
    mvt = tmp_path / "d.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu", chunk_frames=9, key_interval=2, temporal_factor=8)
    clean = np.concatenate(list(vtoken.decode_frames(mvt, device="cpu")))
    data = bytearray(mvt.read_bytes())
    with open_mvt(mvt) as reader:
        ends = reader.segment_ends(1)
    data[ends[0] - 2] ^= 0xFF  # inside chunk 1's first plane segment
    (tmp_path / "bad.mvt").write_bytes(bytes(data))
    warnings: list[str] = []
    out = np.concatenate(list(vtoken.decode_frames(tmp_path / "bad.mvt", device="cpu", tolerant=True,
                                                   warnings=warnings)))
    assert len(out) == 25 and warnings
    np.testing.assert_array_equal(out[:9], clean[:9])
    np.testing.assert_array_equal(out[9:17], np.broadcast_to(clean[8], (8, *clean.shape[1:])))  # the last good frame
    np.testing.assert_array_equal(out[17:], clean[17:])  # chunk 2 is a key chunk: nothing blends across it

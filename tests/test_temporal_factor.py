"""A stream's temporal factor below the model's: every frame coded r times, the last decoded
copy kept (vtoken.codec.frames.repeat_frames / last_copies)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import vtoken
from vtoken.errors import StreamError, UsageError
from vtoken.media import VideoReader

from clips import make_clip
from stream_checks import assert_stream_is


def _frames(path) -> np.ndarray:
    with VideoReader(path) as r:
        return np.concatenate(list(r.chunks(64)))


def _model_chunks(model, frames: np.ndarray, r: int, chunk_frames: int, key_interval: int):
    """(bits, decoded frames) per chunk computed without the pipeline: the model reads every
    frame r times (a key chunk's first frame once) and the last decoded copy of each is kept."""
    import torch

    from vtoken.codec.frames import pad_frames, to_frames, to_tensor
    from vtoken.models.stream import StreamState

    tf, sf = model.config.temporal_factor, model.config.spatial_factor
    out, i, index = [], 0, 0
    while i < len(frames):
        key = index % key_interval == 0
        n = chunk_frames if key else chunk_frames - 1
        if key:
            enc_state, dec_state = StreamState(), StreamState()
        part = frames[i:i + n]
        seq = np.concatenate([part[:1], np.repeat(part[1:], r, axis=0)]) if key else np.repeat(part, r, axis=0)
        with torch.inference_mode():
            bits = model.encode_bits(to_tensor(pad_frames(seq, tf, sf, continuing=not key), "cpu"), state=enc_state)
            video = model.decode_bits(bits, state=dec_state)
        kept = video[:, :, 0::r] if key else video[:, :, r - 1::r]
        out.append((bits[0].numpy(), to_frames(kept, len(part), frames.shape[1], frames.shape[2])))
        i, index = i + n, index + 1
    return out


@pytest.mark.parametrize("factor", [2, 1])
def test_finer_temporal_factor_codes_each_frame_r_times(tmp_path, tiny_model_json, factor):
    from vtoken.models import load_model

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=23, size=(48, 40))
    mvt = tmp_path / "t.mvt"
    res = vtoken.encode(src, mvt, model=tiny_model_json, chunk_frames=9, key_interval=2, device="cpu",
                        temporal_factor=factor, hold=0)  # the model's own signs, as _model_chunks has them
    assert res.frames == 23 and res.temporal_factor == factor
    model = load_model(tiny_model_json)
    r = model.config.temporal_factor // factor
    frames = _frames(src)
    expected = _model_chunks(model, frames, r, 9, 2)
    decoded = assert_stream_is(mvt, model, expected, factor, [9, 8, 6])
    # Seeking lands on the same frames, and r times the latent frames cost more bytes.
    part = np.concatenate(list(vtoken.decode_frames(mvt, device="cpu", start=12, frames=9, precision="fp32")))
    np.testing.assert_array_equal(part, decoded[12:21])
    coarse = vtoken.encode(src, tmp_path / "c.mvt", model=tiny_model_json, chunk_frames=9, key_interval=2, device="cpu")
    assert coarse.temporal_factor == 4 and res.bytes > coarse.bytes


def test_temporal_factor_must_be_one_of_the_models_grids(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(32, 32))
    for bad in (3, 6, 36, 64):
        with pytest.raises(UsageError, match=r"temporal factor must be one of 1, 2, 4, 8, 12, 16, 20, 24, 28, 32 for "
                                             r"this model \(its own is 4\)"):
            vtoken.encode(src, tmp_path / "x.mvt", model=tiny_model_json, device="cpu", temporal_factor=bad)
    for bad in (0, -1, "2"):
        with pytest.raises(UsageError, match="temporal factor"):
            vtoken.encode(src, tmp_path / "x.mvt", model=tiny_model_json, device="cpu", temporal_factor=bad)
    assert not (tmp_path / "x.mvt").exists()


def test_a_stream_the_model_would_run_on_too_many_frames_is_refused(tiny_model_json):
    """The decoder bounds the frames its model runs on at once: a fine time grid makes a chunk
    r times longer for the model than the header's frame count says."""
    from vtoken.bitstream import StreamHeader
    from vtoken.codec.codec import Codec
    from vtoken.codec.pipeline import MAX_CHUNK_PIXELS
    from vtoken.models import load_model

    model = load_model(tiny_model_json)
    codec = Codec(model, "cpu")
    side = 256
    fpc = 1 + 4 * (MAX_CHUNK_PIXELS // (side * side) // 8)  # fits at factor 4, not when read 4 times
    header = StreamHeader(model_name=model.identity.name, model_sha256=model.identity.sha256, width=side, height=side,
                          fps_num=25, fps_den=1, bits=model.config.bits, spatial_factor=model.config.spatial_factor,
                          temporal_factor=4, frames_per_chunk=fpc, entropy_version=1)
    codec.check_header(header)
    header.temporal_factor = 1
    with pytest.raises(StreamError, match="larger than vtoken decodes at once"):
        codec.check_header(header)
    for bad in (3, 36):
        header.temporal_factor = bad
        with pytest.raises(StreamError, match="factors"):
            codec.check_header(header)
    header.temporal_factor = 16  # every 4th frame: the model runs on fewer frames than the chunk holds
    codec.check_header(header)


def test_cli_encodes_at_a_finer_temporal_factor(tmp_path, tiny_model_json):
    from click.testing import CliRunner

    from vtoken.cli import main

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=9, size=(32, 32))
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "a.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--temporal-factor", "2", "--json"])
    assert run.exit_code == 0, run.output
    assert '"temporal_factor": 2' in run.output
    assert vtoken.info(tmp_path / "a.mvt")["temporal_factor"] == 2
    bad = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "b.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--temporal-factor", "3"])
    assert bad.exit_code != 0 and "temporal factor must be one of" in bad.output
    assert not (tmp_path / "b.mvt").exists()


def _tried_in_order(trials, target):
    """Coarsest first, stopping only at the first grid past the best (or at the finest)."""
    from vtoken.codec.factor_choice import past_best

    assert [t.factor for t in trials] == [8, 4, 2, 1][:len(trials)]
    assert not any(past_best(trials[:n], target) for n in range(1, len(trials)))
    assert len(trials) == 4 or past_best(trials, target)


def test_autos_trials_decode_in_the_encoders_arithmetic(tmp_path, tiny_model_json, monkeypatch):
    """Which trial wins chooses the stream's bits: on a machine that decodes in bf16 by default
    the trials are still decoded as the encoder computes (fp32 under auto)."""
    from vtoken.codec import codec as codec_mod
    from vtoken.codec import precision as precision_mod

    monkeypatch.setattr(precision_mod, "native_bf16", lambda device: True)
    seen = []
    real = codec_mod.Codec.decompress

    def spy(self, reader, **kw):
        seen.append(kw.get("precision"))
        return real(self, reader, **kw)

    monkeypatch.setattr(codec_mod.Codec, "decompress", spy)
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=9, size=(48, 40))
    vtoken.encode(src, tmp_path / "a.mvt", model=tiny_model_json, chunk_frames=9, device="cpu", bpp=0.5,
                  temporal_factor="auto")
    assert len(seen) >= 2 and set(seen) == {"fp32"}
    before = len(seen)
    vtoken.encode(src, tmp_path / "b.mvt", model=tiny_model_json, chunk_frames=9, device="cpu", bpp=0.5,
                  temporal_factor="auto", precision="bf16")
    assert len(seen) > before and set(seen[before:]) == {"bf16"}  # asked for: the encoder and its trials in bf16


def test_auto_temporal_factor_keeps_the_grid_whose_first_chunk_scored_best(tmp_path, tiny_model_json):
    """temporal_factor="auto" with a bpp target: the first chunk is coded on every grid the
    chunk length allows, and the stream uses the grid choose() picks from those trials; each
    trial codes the first chunk as a plain encode at that grid does (its key chunk budgeted for
    the group it starts). Unsearched (refine=0): a searched auto tries no grid finer than the
    model's (test_refine.py)."""
    from vtoken.bitstream import open_mvt
    from vtoken.bitstream.records import INDEX_ENTRY
    from vtoken.codec.factor_choice import FactorTrial, choose

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=15, size=(48, 40))
    res = vtoken.encode(src, tmp_path / "a.mvt", model=tiny_model_json, chunk_frames=9, device="cpu", bpp=0.5,
                        temporal_factor="auto", refine=0)
    trials = [FactorTrial(**t) for t in res.factor_trials]
    _tried_in_order(trials, 0.5)
    assert res.temporal_factor == choose(trials, 0.5)
    with open_mvt(tmp_path / "a.mvt") as reader:
        assert reader.header.temporal_factor == res.temporal_factor
    assert len(np.concatenate(list(vtoken.decode_frames(tmp_path / "a.mvt", device="cpu")))) == 15
    for t in trials:
        plain = vtoken.encode(src, tmp_path / f"t{t.factor}.mvt", model=tiny_model_json, chunk_frames=9,
                              device="cpu", bpp=0.5, temporal_factor=t.factor)
        assert plain.planes[0] == t.planes
        with open_mvt(tmp_path / f"t{t.factor}.mvt") as reader:
            chunk_bytes = reader.entries[1].offset - reader.entries[0].offset
        # The trial's rate is its group's projection (rate.py): the key chunk's bytes and the
        # continuing chunk's, at less per pixel than the key chunk's, over the clip's 15 frames.
        key_bytes = chunk_bytes + INDEX_ENTRY.size
        assert key_bytes * 8 / (48 * 40 * 15) < t.bpp < key_bytes * 8 / (48 * 40 * 9)
    # A target the trials land well under (one plane each): each is read at the target
    # between its plane and the next, and the stream takes the grid those readings pick.
    mid = vtoken.encode(src, tmp_path / "mid.mvt", model=tiny_model_json, chunk_frames=9, device="cpu", bpp=0.07,
                        temporal_factor="auto", refine=0)
    trials = [FactorTrial(**t) for t in mid.factor_trials]
    _tried_in_order(trials, 0.07)
    assert all(t.at_target is not None for t in trials if t.bpp < 0.07 / 1.1)
    assert mid.temporal_factor == choose(trials, 0.07)
    # A target below one plane of the coarsest grid: the finer grids are not tried.
    low = vtoken.encode(src, tmp_path / "low.mvt", model=tiny_model_json, chunk_frames=9, device="cpu", bpp=0.001,
                        temporal_factor="auto", refine=0)
    assert [t["factor"] for t in low.factor_trials] == [8] and low.factor_trials[0]["planes"] == 1
    assert low.temporal_factor == 8 and low.warnings
    with pytest.raises(UsageError, match="auto needs a bpp"):
        vtoken.encode(src, tmp_path / "b.mvt", model=tiny_model_json, device="cpu", planes=3, temporal_factor="auto")
    assert not (tmp_path / "b.mvt").exists()


def test_auto_on_a_one_chunk_input_keeps_the_chosen_trial_as_the_stream(tmp_path, tiny_model_json, monkeypatch):
    """A clip that is one chunk was coded whole by its trials: the chosen trial's bytes are the
    stream, the same bytes as a plain encode at that grid, with no further coding (unsearched:
    a searched stream is coded after its trials)."""
    from vtoken.codec import codec as codec_module

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=9, size=(48, 40))
    calls = []
    real = codec_module.encode_chunks
    monkeypatch.setattr(codec_module, "encode_chunks", lambda *a, **k: calls.append(1) or real(*a, **k))
    for bpp in (0.07, 0.5):
        calls.clear()
        res = vtoken.encode(src, tmp_path / "auto.mvt", model=tiny_model_json, chunk_frames=9, device="cpu", bpp=bpp,
                            temporal_factor="auto", refine=0, overwrite=True)
        points = len(calls)  # every trial point, and no encode after them
        assert points == len(res.factor_trials) + sum(t["at_target"] is not None for t in res.factor_trials)
        plain = vtoken.encode(src, tmp_path / "plain.mvt", model=tiny_model_json, chunk_frames=9, device="cpu",
                              bpp=bpp, temporal_factor=res.temporal_factor, overwrite=True)
        assert (tmp_path / "auto.mvt").read_bytes() == (tmp_path / "plain.mvt").read_bytes()
        assert (res.bytes, res.planes, res.frames) == (plain.bytes, plain.planes, plain.frames)
    # One frame more is a second chunk: the stream is coded after the trials.
    src = make_clip(tmp_path / "in10.y4m", codec="rawvideo", frames=10, size=(48, 40))
    calls.clear()
    res = vtoken.encode(src, tmp_path / "auto10.mvt", model=tiny_model_json, chunk_frames=9, device="cpu", bpp=0.5,
                        temporal_factor="auto", refine=0)
    assert len(calls) == len(res.factor_trials) + sum(t["at_target"] is not None for t in res.factor_trials) + 1
    assert len(np.concatenate(list(vtoken.decode_frames(tmp_path / "auto10.mvt", device="cpu")))) == 10


def test_auto_choice_is_the_best_quality_within_the_target():
    from vtoken.codec.factor_choice import FactorTrial, candidate_factors, choose

    assert candidate_factors(4, 17) == [16, 8, 4, 2, 1] and candidate_factors(4, 3) == [2, 1]
    assert candidate_factors(4, 25) == [24, 12, 8, 4, 2, 1] and candidate_factors(4, 9) == [8, 4, 2, 1]
    assert candidate_factors(4, 33) == [32, 16, 8, 4, 2, 1]
    assert candidate_factors(2, 9) == [8, 4, 2, 1] and candidate_factors(2, 13) == [12, 6, 4, 2, 1] and candidate_factors(4, 2) == [1]
    trials = [FactorTrial(4, 0.060, 0.210, 64), FactorTrial(2, 0.100, 0.180, 40), FactorTrial(1, 0.100, 0.190, 20)]
    assert choose(trials, 0.10) == 2
    # A finer grid over the target (beyond the tolerance) does not count, however good.
    assert choose(trials, 0.08) == 4
    # None within the target: the coarsest grid, the fewest bits.
    assert choose([FactorTrial(4, 0.2, 0.3, 1), FactorTrial(2, 0.3, 0.2, 1)], 0.1) == 4
    # Equal quality: the coarser grid (cheaper to decode).
    assert choose([FactorTrial(2, 0.1, 0.2, 9), FactorTrial(4, 0.1, 0.2, 9)], 0.1) == 4


def test_auto_spacing_rules_halve_the_key_chunk_only_past_the_grids_reach():
    from vtoken.codec.factor_choice import FactorTrial, chosen, key_spacings, searched_reach, under_reach

    assert key_spacings(33, 4) == [17, 9, 5] and key_spacings(33, 8) == [17, 9] and key_spacings(33, 32) == []
    assert key_spacings(25, 4) == [13] and key_spacings(17, 1) == [9, 5] and key_spacings(33, 2) == [17, 9, 5]
    assert under_reach(FactorTrial(4, 0.075, 0.07, 64), 0.1, 64)
    assert not under_reach(FactorTrial(4, 0.095, 0.07, 64), 0.1, 64)  # within the tolerance: reached
    assert not under_reach(FactorTrial(4, 0.050, 0.07, 48), 0.1, 64)  # planes left to spend
    # A searched stream reaches further than its unsearched trial shows.
    assert under_reach(FactorTrial(4, 0.084, 0.20, 64), 0.1, 64)
    assert not under_reach(FactorTrial(4, 0.084, 0.20, 64), 0.1, 64, searched_reach(8))
    assert under_reach(FactorTrial(4, 0.055, 0.14, 64), 0.1, 64, searched_reach(8))
    # More steps flip more bits, up to the steps measured.
    assert searched_reach(0) == 1.0 < searched_reach(1) < searched_reach(4) < searched_reach(8) == searched_reach(20)
    base = FactorTrial(4, 0.075, 0.070, 64)
    assert chosen([base, FactorTrial(4, 0.087, 0.067, 64, chunk_frames=17, key_interval=1)], 0.1).chunk_frames == 17
    assert chosen([base, FactorTrial(4, 0.087, 0.070, 64, chunk_frames=17, key_interval=1)], 0.1) is base  # a tie
    assert chosen([base, FactorTrial(4, 0.120, 0.060, 64, chunk_frames=17, key_interval=1)], 0.1) is base  # over


def test_auto_spends_a_target_over_the_grids_reach_on_shorter_key_chunks(tmp_path, tiny_model_json, monkeypatch):
    from vtoken.codec import factor_choice
    from vtoken.codec.factor_choice import FactorTrial, chosen, key_spacings, searched_reach

    src = make_clip(tmp_path / "a.mp4", frames=33, size=(64, 48), seed=5)
    # On the model's grid alone (the coarser ones have fewer spacings: none for 32 with 33 frames),
    # at 20 bpp every plane is under the target.
    monkeypatch.setattr(factor_choice, "candidate_factors", lambda model_factor, chunk_frames: [model_factor])
    kw = dict(model=tiny_model_json, device="cpu", bpp=20.0, temporal_factor="auto", refine=0)
    res = vtoken.encode(src, tmp_path / "hi.mvt", **kw)
    trials = [FactorTrial(**t) for t in res.factor_trials]
    grids = [t for t in trials if t.chunk_frames is None]
    spaced = [t for t in trials if t.chunk_frames is not None]
    best_grid = chosen(grids, 20.0)
    assert spaced and all(t.factor == best_grid.factor and t.key_interval == 1 for t in spaced)
    assert [t.chunk_frames for t in spaced] == key_spacings(33, best_grid.factor)[:len(spaced)]
    # Each shorter spacing is tried only while the one before scored better than the last.
    scores = [best_grid.score] + [t.score for t in spaced]
    assert all(b < a for a, b in zip(scores[:-2], scores[1:-1]))
    best = chosen(trials, 20.0)
    assert (res.temporal_factor, res.chunk_frames, res.key_interval) == (
        best.factor, best.chunk_frames or 33, best.key_interval or 4)
    assert len(np.concatenate(list(vtoken.decode_frames(tmp_path / "hi.mvt", device="cpu")))) == 33

    # The first spacing forced to score better (and the next no better): the stream is coded with it.
    real = factor_choice._trial_point

    def favour_key_chunks(codec, ref, info, lpips, **options):
        rate, score, planes, stream = real(codec, ref, info, lpips, **options)
        first = key_spacings(33, options["temporal_factor"])[:1]
        return rate, score - (options["chunk_frames"] in first) + (options["chunk_frames"] < min(first + [33])), \
            planes, stream

    monkeypatch.setattr(factor_choice, "_trial_point", favour_key_chunks)
    forced = vtoken.encode(src, tmp_path / "forced.mvt", **kw)
    factor = forced.temporal_factor
    assert (forced.chunk_frames, forced.key_interval) == (key_spacings(33, factor)[0], 1)
    assert len(np.concatenate(list(vtoken.decode_frames(tmp_path / "forced.mvt", device="cpu")))) == 33
    # The one-chunk input's stream is the trial's, byte for byte what that spacing codes when asked.
    asked = dict(model=tiny_model_json, device="cpu", bpp=20.0, temporal_factor=factor, chunk_frames=17, key_interval=1)
    vtoken.encode(src, tmp_path / "asked.mvt", **asked)
    assert (tmp_path / "asked.mvt").read_bytes() == (tmp_path / "forced.mvt").read_bytes()
    # A longer input goes on in the chosen spacing past the first chunk, and the CLI says so.
    longer = make_clip(tmp_path / "b.mp4", frames=41, size=(64, 48), seed=6)
    more = vtoken.encode(longer, tmp_path / "longer.mvt", **kw)
    assert (more.chunk_frames, more.key_interval) == (17, 1)
    assert vtoken.info(tmp_path / "longer.mvt")["key_chunks"] == 3  # 17 + 17 + 7 frames
    assert len(np.concatenate(list(vtoken.decode_frames(tmp_path / "longer.mvt", device="cpu")))) == 41
    from click.testing import CliRunner

    from vtoken.cli import main
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "cli.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--temporal-factor", "auto", "--bpp", "20"])
    assert run.exit_code == 0, run.output
    assert f"temporal factor {factor} in 17-frame key chunks (first chunk tried at" in run.output
    assert f"; {factor} in 17-frame key chunks: " in run.output

    # A searched stream judges its grid's reach searched_reach(steps) times its unsearched trial's.
    reaches = []
    real_keys = factor_choice._denser_keys
    monkeypatch.setattr(factor_choice, "_denser_keys",
                        lambda *a, **k: reaches.append(a[7]) or real_keys(*a, **k))
    vtoken.encode(src, tmp_path / "plain.mvt", **kw)
    vtoken.encode(src, tmp_path / "searched.mvt", **dict(kw, refine=1))
    vtoken.encode(src, tmp_path / "searched3.mvt", **dict(kw, refine=3))
    assert reaches == [1.0, searched_reach(1), searched_reach(3)]

    # A target the grid reaches tries no spacing and keeps the stream's chunks.
    low = vtoken.encode(src, tmp_path / "lo.mvt", **dict(kw, bpp=0.01))
    assert all(t["chunk_frames"] is None for t in low.factor_trials) and (low.chunk_frames, low.key_interval) == (33, 4)


def test_auto_trials_stop_past_the_best_grid():
    from vtoken.codec.factor_choice import FactorTrial, past_best

    fits = [FactorTrial(16, 0.010, 0.40, 9), FactorTrial(8, 0.010, 0.35, 6), FactorTrial(4, 0.010, 0.37, 4)]
    assert not past_best(fits[:1], 0.01) and not past_best(fits[:2], 0.01)
    assert past_best(fits, 0.01)  # 4 scores worse than 8: 2 and 1 are not tried
    # A tie is not past the best (choose() keeps the coarser grid of a tie).
    assert not past_best(fits[:2] + [FactorTrial(4, 0.010, 0.35, 4)], 0.01)
    # A trial over the target neither counts as the best nor stops the trials.
    over = [FactorTrial(16, 0.010, 0.40, 9), FactorTrial(8, 0.020, 0.45, 6)]
    assert not past_best(over, 0.01)
    assert past_best(over + [FactorTrial(4, 0.010, 0.41, 4)], 0.01)


def test_auto_compares_grids_at_the_target_rate():
    from vtoken.codec.factor_choice import FactorTrial, choose, read_at_target

    # Halfway in log rate between 0.001 and 0.004 is 0.002.
    assert read_at_target(0.002, (0.001, 0.5), (0.004, 0.3)) == pytest.approx(0.4)
    assert read_at_target(0.002, (0.004, 0.3), (0.001, 0.5)) == pytest.approx(0.4)
    # Clamped to the two points: both under the target, the nearer one's LPIPS.
    assert read_at_target(0.01, (0.001, 0.5), (0.004, 0.3)) == pytest.approx(0.3)
    # Both over the target: nothing to read.
    assert read_at_target(0.002, (0.003, 0.5), (0.004, 0.3)) is None
    # Factor 16 landed at 0.0015 with LPIPS 0.40 and factor 8 at 0.002 with 0.39: read at the
    # target, 16 (0.36 there, one plane more reaching 0.0027) wins; without it, 8 did.
    coarse = FactorTrial(16, 0.0015, 0.40, 2, at_target=read_at_target(0.002, (0.0015, 0.40), (0.0027, 0.33)))
    assert coarse.at_target == pytest.approx(0.40 - 0.07 * math.log(4 / 3) / math.log(1.8))
    assert choose([coarse, FactorTrial(8, 0.002, 0.39, 2)], 0.002) == 16
    assert choose([FactorTrial(16, 0.0015, 0.40, 2), FactorTrial(8, 0.002, 0.39, 2)], 0.002) == 8
    # A trial over the target whose plane less is under it fits, read at the target.
    over = FactorTrial(4, 0.003, 0.30, 2, at_target=read_at_target(0.002, (0.003, 0.30), (0.0015, 0.45)))
    assert over.fits(0.002) and choose([over, FactorTrial(8, 0.002, 0.39, 2)], 0.002) == 4


def test_cli_auto_temporal_factor_says_what_it_tried(tmp_path, tiny_model_json):
    from click.testing import CliRunner

    from vtoken.cli import main

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=9, size=(48, 40))
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "a.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--temporal-factor", "auto", "--bpp", "0.5"])
    assert run.exit_code == 0, run.output
    assert "temporal factor" in run.output and "first chunk tried at 32: " in run.output and "; 16: " in run.output
    # Trials well under the target (one plane each here) also say their LPIPS read at it.
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "c.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--temporal-factor", "auto", "--bpp", "0.08"])
    assert run.exit_code == 0, run.output
    assert " at the target)" in run.output, run.output
    bad = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "b.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--temporal-factor", "best", "--bpp", "0.5"])
    assert bad.exit_code == 2 and "integer (one of the model's grids) or auto, got 'best'" in bad.output

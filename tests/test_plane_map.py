"""Entropy format 3: plane maps. A chunk may send plane k only where its map allows; the
withheld bits take the coder's prediction on both sides, so streams round-trip exactly, cut
or whole, chunk after chunk, with or without a cross-plane predictor."""

import numpy as np
import pytest

from vtoken.entropy import BitplaneCoder, fit_crossplane, fit_prior
from vtoken.errors import UsageError

from test_entropy_crossplane import correlated_bits

K, T, H, W = 6, 3, 12, 20


def block_limit(seed, t=T, h=H, w=W, block=4, k=K):
    """A map of 4 x 4 blocks, each a count in 0..k, as uint8 [T, H, W]."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, k + 1, size=(t, -(-h // block), -(-w // block)))
    return np.repeat(np.repeat(small, block, 1), block, 2)[:, :h, :w].astype(np.uint8)


def sent_where(bits, limit):
    """What a decoder must agree on: the bits the map sends (others are the coder's guess)."""
    return np.where(np.arange(bits.shape[0])[:, None, None, None] < limit[None], bits, 0)


@pytest.fixture(params=[False, True], ids=["format1-contexts", "cross-plane"])
def coders(request):
    train = [correlated_bits(s) for s in range(10, 14)]
    pred = fit_crossplane(train, K, iterations=30) if request.param else None
    prior = fit_prior(train, K, pred)
    return lambda: BitplaneCoder(K, prior, pred)


def test_a_map_round_trips_chunk_after_chunk_and_cut(coders):
    enc, dec, cut = coders(), coders(), coders()
    for i in range(4):
        bits, limit = correlated_bits(50 + i), block_limit(60 + i)
        segments = enc.encode(bits, limit=limit)
        keep = (K, 4, K, 3)[i]
        enc.commit(bits, keep, limit=limit)
        got = dec.decode(segments[:keep], (T, H, W), limit=limit)
        np.testing.assert_array_equal(sent_where(got, limit), sent_where(bits[:keep], limit))
        # a stream cut after 2 planes in every chunk: still the first two (planes <= k decide plane k)
        got_cut = cut.decode(segments[:2], (T, H, W), limit=limit)
        np.testing.assert_array_equal(got_cut, got[:2])


def test_the_decoder_holds_the_same_withheld_bits_as_the_next_chunks_context(coders):
    # Two chunks: the second's temporal context is the first's last latent frame with the
    # withheld bits filled. Encoder and decoder must fill alike or the second fails to decode.
    enc, dec = coders(), coders()
    for i in range(2):
        bits, limit = correlated_bits(70 + i), block_limit(80 + i)
        segments = enc.encode(bits, limit=limit)
        enc.commit(bits, K, limit=limit)
        got = dec.decode(segments, (T, H, W), limit=limit)
        np.testing.assert_array_equal(sent_where(got, limit), sent_where(bits, limit))
    withheld = np.arange(K)[:, None, None, None] >= block_limit(81)[None]
    assert withheld.any() and not np.array_equal(got[withheld], bits[withheld])  # filled, not the source


def test_a_full_map_codes_the_same_bytes_as_no_map(coders):
    a, b = coders(), coders()
    bits = correlated_bits(90)
    assert a.encode(bits) == b.encode(bits, limit=np.full((T, H, W), K, np.uint8))


def test_withholding_bits_saves_their_bytes(coders):
    bits = correlated_bits(91)
    full = sum(map(len, coders().encode(bits)))
    half = np.full((T, H, W), K, np.uint8)
    half[:, :, : W // 2] = 1
    assert sum(map(len, coders().encode(bits, limit=half))) < 0.7 * full


def test_a_map_of_the_wrong_shape_or_type_is_refused(coders):
    with pytest.raises(UsageError, match="plane map"):
        coders().encode(correlated_bits(1), limit=np.ones((T, H, W - 1), np.uint8))
    with pytest.raises(UsageError, match="plane map"):
        coders().decode([b""], (T, H, W), limit=np.ones((T, H, W), np.int32))


# ---------------------------------------------------------------- the map's code


from vtoken.entropy.plane_map import decode_map, encode_map, expand, grid  # noqa: E402
from vtoken.errors import CorruptChunkError  # noqa: E402

LADDER = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64])


def ladder_map(seed, t=9, mh=9, mw=16, keep=0.7):
    """Counts from a ladder that mostly repeat the previous latent frame's."""
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, len(LADDER), (mh, mw))]
    for _ in range(t - 1):
        idx.append(np.where(rng.random((mh, mw)) < keep, idx[-1], rng.integers(0, len(LADDER), (mh, mw))))
    return LADDER[np.stack(idx)].astype(np.uint8)


@pytest.mark.parametrize("top", [64, 48])
def test_map_round_trips_and_costs_less_than_its_order0_entropy(top):
    counts = np.minimum(ladder_map(3), top).astype(np.uint8)
    data = encode_map(counts, top)
    np.testing.assert_array_equal(decode_map(data, counts.shape, top), counts)
    _, n = np.unique(counts, return_counts=True)
    order0 = -(n * np.log2(n / n.sum())).sum() / 8
    assert len(data) < order0  # the previous frame predicts most counts


def test_a_still_map_costs_next_to_nothing_and_edge_cases_round_trip():
    first = ladder_map(4, t=1)
    still = np.broadcast_to(first, (9, 9, 16)).copy()
    # 8 x 144 flags "the same": the first frame of them at one half (18 bytes), then next to nothing
    assert len(encode_map(still, 64)) < len(encode_map(first, 64)) + 24
    for counts, top in [(np.zeros((1, 1, 1), np.uint8), 0), (np.full((2, 3, 1), 7, np.uint8), 7),
                        (np.array([[[0, 255]]], np.uint8), 255)]:
        np.testing.assert_array_equal(decode_map(encode_map(counts, top), counts.shape, top), counts)


def test_map_refuses_counts_above_top_and_a_damaged_map_says_so():
    with pytest.raises(UsageError, match="0..8"):
        encode_map(np.full((1, 2, 2), 9, np.uint8), 8)
    data = bytearray(encode_map(ladder_map(5), 64))
    data[:8] = b"\xff" * 8
    try:
        got = decode_map(bytes(data), (9, 9, 16), 64)
    except CorruptChunkError:
        return
    assert not np.array_equal(got, ladder_map(5))  # or it decodes to another map, never silently the same


def test_expand_cuts_edge_blocks_at_the_frame():
    counts = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    assert grid((7, 11), 4) == (2, 3)
    limit = expand(counts, 4, (7, 11))
    assert limit.shape == (1, 7, 11) and limit[0, 6, 10] == 5 and limit[0, 3, 4] == 1 and limit[0, 4, 3] == 3


# ---------------------------------------------------------------- the container


import io  # noqa: E402

from vtoken.bitstream import Chunk, MvtReader, MvtWriter, truncate_planes  # noqa: E402

from test_bitstream import make_header, seg  # noqa: E402


def mapped_stream(maps=(b"MAP0", None, b"M2")):
    buf = io.BytesIO()
    w = MvtWriter(buf, make_header(frame_count=17 * len(maps)))
    for i, m in enumerate(maps):
        counts = [100, 40, 7] if m is not None else [5 * 18 * 32] * 3
        w.write_chunk(Chunk(i, 17 * i, 17, i == 0, (5, 18, 32), 18, [seg(i, k) for k in range(3)], counts,
                            plane_map=m, map_block=5 if m is not None else 0))
    w.close()
    return buf.getvalue()


def test_chunks_with_maps_round_trip_by_index_and_by_scan_and_trim_keeps_them():
    data = mapped_stream()
    for cut_footer in (False, True):
        r = MvtReader(io.BytesIO(data[:-24] if cut_footer else data), tolerant=cut_footer)
        chunks = [r.read_chunk(i) for i in range(3)]
        assert [c.plane_map for c in chunks] == [b"MAP0", None, b"M2"]
        assert [c.map_block for c in chunks] == [5, 0, 5]
        assert chunks[0].symbol_counts == [100, 40, 7] and chunks[2].segments == [seg(2, k) for k in range(3)]
        assert r.segment_ends(0)[0] == r.entries[0].offset + 20 + 26 + 36 + 12 + 4 + 4 + len(seg(0, 0))
    out = io.BytesIO()
    truncate_planes(io.BytesIO(data), out, 1)
    r = MvtReader(io.BytesIO(out.getvalue()))
    c = r.read_chunk(2)
    assert c.plane_map == b"M2" and c.segments == [seg(2, 0)] and c.symbol_counts == [100]


def test_a_damaged_map_loses_its_chunk_with_a_message():
    data = bytearray(mapped_stream())
    at = data.index(b"MAP0")
    data[at] ^= 0xFF
    r = MvtReader(io.BytesIO(bytes(data)))
    with pytest.raises(CorruptChunkError, match="plane map damaged"):
        r.read_chunk(0)
    assert r.read_chunk(1).plane_map is None


def test_writer_refuses_more_symbols_than_positions_and_a_map_without_block():
    with pytest.raises(ValueError, match="block side"):
        Chunk(0, 0, 17, True, (5, 18, 32), 18, [b"x"], [1], plane_map=b"m")
    w = MvtWriter(io.BytesIO(), make_header(frame_count=17))
    with pytest.raises(ValueError, match="symbol counts"):
        w.write_chunk(Chunk(0, 0, 17, True, (5, 18, 32), 18, [b"x"], [5 * 18 * 32 + 1], plane_map=b"m", map_block=5))


# ---------------------------------------------------------------- the codec


import vtoken  # noqa: E402
from vtoken.errors import StreamError  # noqa: E402

from clips import make_clip  # noqa: E402


@pytest.fixture(scope="module")
def xp_model(tmp_path_factory, tiny_model_json):
    """The tiny test model with a cross-plane predictor (plane maps extend entropy format 2)."""
    from vtoken.entropy import CrossPlanePredictor
    from vtoken.entropy.crossplane import SCALE
    from vtoken.models import load_model, save_model

    base = load_model(tiny_model_json)
    k = base.config.bits
    weight = np.zeros((k, k), dtype=np.int64)
    weight[np.arange(1, k), np.arange(k - 1)] = 2 * SCALE
    folder = tmp_path_factory.mktemp("xp-models")
    return save_model(base, folder, "test-tiny-xp", entropy_predictor=CrossPlanePredictor(
        weight, np.zeros(k, np.int64), weight // 8))


@pytest.fixture(scope="module")
def mapped(tmp_path_factory, xp_model):
    """A 3-chunk clip (key, continuing, key) coded with plane maps at 3 of 6 planes."""
    tmp = tmp_path_factory.mktemp("mapped")
    src = make_clip(tmp / "in.y4m", codec="rawvideo", frames=21, size=(96, 48))
    mvt = tmp / "out.mvt"
    res = vtoken.encode(src, mvt, model=xp_model, planes=3, chunk_frames=9, key_interval=2, device="cpu",
                        plane_map=True)
    return src, mvt, res


def _chunks_with_maps(path):
    from vtoken.bitstream import open_mvt

    with open_mvt(path) as reader:
        return reader.header, [reader.read_chunk(i) for i in range(len(reader.entries))]


def test_a_plane_mapped_stream_is_format_1_1_entropy_3_and_its_maps_vary(mapped):
    _, mvt, res = mapped
    header, chunks = _chunks_with_maps(mvt)
    assert header.version == (1, 1) and header.entropy_version == 3 and header.extra["plane_map"] is True
    assert res.frames == 21 and len(chunks) == 3
    assert all(c.plane_map is not None and c.map_block == 5 for c in chunks)
    # each chunk's segments hold the bits its map sends, no more
    assert all(c.symbol_counts[0] >= c.symbol_counts[-1] for c in chunks)


@pytest.fixture(scope="module")
def searched(tmp_path_factory, xp_model, mapped):
    """`mapped`'s clip coded the same way with the encoder's search (2 steps) after the maps."""
    src = mapped[0]
    mvt = tmp_path_factory.mktemp("searched") / "out.mvt"
    res = vtoken.encode(src, mvt, model=xp_model, planes=3, chunk_frames=9, key_interval=2, device="cpu",
                        plane_map=True, refine=2)
    return src, mvt, res


@pytest.mark.parametrize("stream", ["mapped", "searched"])
def test_the_decoder_feeds_the_model_exactly_the_bits_and_map_of_each_chunk(stream, request, xp_model):
    """The decoded frames equal the model's decode of each chunk's entropy-decoded bits with
    the planes past its map's counts absent, computed here without the pipeline."""
    import torch

    from vtoken.bitstream import open_mvt
    from vtoken.codec.codec import Codec
    from vtoken.codec.frames import to_frames
    from vtoken.entropy.plane_map import decode_map, expand, grid
    from vtoken.models import load_model
    from vtoken.models.stream import StreamState

    _, mvt, _ = request.getfixturevalue(stream)
    model = load_model(xp_model)
    got = np.concatenate(list(vtoken.decode_frames(mvt, model=xp_model, device="cpu", precision="fp32")))
    want, state = [], None
    with open_mvt(mvt) as reader:
        h = reader.header
        for (i, bits), entry in zip(Codec(model, "cpu").entropy_bits(reader), reader.entries, strict=True):
            c = reader.read_chunk(i)
            t, hh, ww = c.latent_shape
            limit = expand(decode_map(c.plane_map, (t, *grid((hh, ww), c.map_block)), c.planes_coded), c.map_block,
                           (hh, ww))
            state = StreamState() if entry.key else state
            with torch.inference_mode():
                video = model.decode_bits(torch.from_numpy(bits[None]), state=state,
                                          limit=torch.from_numpy(limit[None]))
            want.append(to_frames(video, video.shape[2], h.height, h.width)[:entry.frame_count])
    np.testing.assert_array_equal(got, np.concatenate(want))


def test_a_mapped_stream_trimmed_to_one_plane_still_decodes(mapped, xp_model, tmp_path):
    from vtoken.bitstream import truncate_planes

    _, mvt, _ = mapped
    cut = tmp_path / "cut.mvt"
    with open(mvt, "rb") as fin, open(cut, "wb") as fout:
        truncate_planes(fin, fout, 1)
    frames = np.concatenate(list(vtoken.decode_frames(cut, model=xp_model, device="cpu")))
    assert frames.shape[0] == 21


def test_a_damaged_map_fails_the_decode_with_its_chunk_named_and_tolerant_conceals(mapped, xp_model, tmp_path):
    _, mvt, _ = mapped
    _, chunks = _chunks_with_maps(mvt)
    data = bytearray(mvt.read_bytes())
    at = data.index(chunks[1].plane_map)
    data[at] ^= 0x55
    bad = tmp_path / "bad.mvt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptChunkError, match="chunk 1: plane map damaged"):
        list(vtoken.decode_frames(bad, model=xp_model, device="cpu"))
    warnings = []
    out = list(vtoken.decode_frames(bad, model=xp_model, device="cpu", tolerant=True, warnings=warnings))
    assert sum(len(c) for c in out) == 21 and any("plane map damaged" in w for w in warnings)


def test_a_map_in_a_stream_of_entropy_version_2_is_refused(mapped, xp_model, tmp_path):
    import dataclasses

    from vtoken.bitstream import open_mvt
    from vtoken.codec.pipeline import read_bits
    from vtoken.entropy import coder_for
    from vtoken.models import load_model

    _, mvt, _ = mapped
    with open_mvt(mvt) as reader:
        header = dataclasses.replace(reader.header, entropy_version=2)
        with pytest.raises(CorruptChunkError, match="plane map in a stream of entropy version 2"):
            read_bits(reader, coder_for(load_model(xp_model)), 0, reader.entries[0], header)


def test_plane_maps_refuse_what_they_cannot_do(tmp_path, tiny_model_json, xp_model):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(48, 40))
    with pytest.raises(UsageError, match="cross-plane predictor"):
        vtoken.encode(src, tmp_path / "a.mvt", model=tiny_model_json, planes=2, plane_map=True, device="cpu")
    assert not any(tmp_path.glob("*.mvt"))  # nothing written for a refused encode


def test_the_search_after_a_map_keeps_the_map_and_changes_the_bits_it_sends(mapped, searched):
    _, plain, _ = mapped
    _, mvt, res = searched
    header, chunks = _chunks_with_maps(mvt)
    _, plain_chunks = _chunks_with_maps(plain)
    assert header.entropy_version == 3 and header.extra["plane_map"] is True and header.extra["refine"] == 2
    assert res.frames == 21 and all(c.plane_map is not None for c in chunks)
    # The first chunk's map is chosen on the model's bits before the search, as without it;
    # the search then flips some of the bits the map sends.
    assert chunks[0].plane_map == plain_chunks[0].plane_map
    assert chunks[0].symbol_counts == plain_chunks[0].symbol_counts
    assert chunks[0].segments != plain_chunks[0].segments


def test_a_rate_target_with_plane_maps_and_the_search_lands_near_it(tmp_path, xp_model):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=33, size=(96, 48))
    plain = vtoken.encode(src, tmp_path / "p.mvt", model=xp_model, planes=3, chunk_frames=9, device="cpu")
    res = vtoken.encode(src, tmp_path / "m.mvt", model=xp_model, bpp=plain.bpp, chunk_frames=9, device="cpu",
                        plane_map=True, refine=2)
    assert abs(res.bpp / plain.bpp - 1) < 0.25, (res.bpp, plain.bpp)


def test_a_rate_target_with_plane_maps_lands_near_it(tmp_path, xp_model):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=33, size=(96, 48))
    plain = vtoken.encode(src, tmp_path / "p.mvt", model=xp_model, planes=3, chunk_frames=9, device="cpu")
    res = vtoken.encode(src, tmp_path / "m.mvt", model=xp_model, bpp=plain.bpp, chunk_frames=9, device="cpu",
                        plane_map=True)
    assert abs(res.bpp / plain.bpp - 1) < 0.25, (res.bpp, plain.bpp)


def test_cli_encode_plane_map_flag(tmp_path, xp_model):
    from click.testing import CliRunner

    from vtoken.cli import main

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(48, 40))
    r = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "o.mvt"), "--model", str(xp_model), "--planes",
                                  "2", "--plane-map", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "planes per block (plane maps)" in r.output
    r = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "x.mvt"), "--model", str(xp_model),
                                  "--planes", "2", "--plane-map", "--refine", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "planes per block (plane maps)" in r.output and (tmp_path / "x.mvt").stat().st_size > 0


def test_plane_maps_on_finer_and_coarser_grids_decode(tmp_path, xp_model):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=17, size=(48, 40))
    for factor in (2, 8):
        mvt = tmp_path / f"g{factor}.mvt"
        vtoken.encode(src, mvt, model=xp_model, planes=3, plane_map=True, temporal_factor=factor, device="cpu")
        header, chunks = _chunks_with_maps(mvt)
        assert header.temporal_factor == factor and chunks[0].plane_map is not None
        assert sum(len(c) for c in vtoken.decode_frames(mvt, model=xp_model, device="cpu")) == 17


def test_damaged_mapped_streams_fail_cleanly_or_decode(mapped, xp_model, tmp_path):
    """Random byte damage anywhere in a stream with plane maps: a decode ends in a vtoken
    error or in frames, never in another exception, tolerant or not (how many frames a
    tolerant decode conceals depends on what the damage left of the index: the container's
    business, tested in test_bitstream*)."""
    from vtoken.errors import VtokenError

    _, mvt, _ = mapped
    clean = mvt.read_bytes()
    rng = np.random.default_rng(7)
    for trial in range(12):
        data = bytearray(clean)
        for at in rng.integers(0, len(data), size=3):
            data[at] ^= int(rng.integers(1, 256))
        bad = tmp_path / f"bad{trial}.mvt"
        bad.write_bytes(bytes(data))
        try:
            list(vtoken.decode_frames(bad, model=xp_model, device="cpu"))
        except VtokenError:
            pass
        try:
            frames = list(vtoken.decode_frames(bad, model=xp_model, device="cpu", tolerant=True))
        except VtokenError:
            continue  # the header itself was hit: nothing to conceal from
        assert frames and all(c.shape[1:] == (48, 96, 3) for c in frames)


def test_allocate_fits_the_budget_and_spends_it_where_it_buys_the_most():
    from vtoken.codec.plane_choice import allocate

    rate = np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])  # 3 counts x 2 blocks
    dist = np.array([[0.5, 0.5], [0.2, 0.45], [0.1, 0.44]])  # block 0 gains from planes, block 1 hardly
    assert allocate(dist, rate, 100).tolist() == [2, 2]  # no constraint: the lowest LPIPS
    assert allocate(dist, rate, 5).tolist() == [2, 0]  # the bytes go to block 0
    assert allocate(dist, rate, 3).tolist() == [1, 0]
    assert allocate(dist, rate, 1).tolist() == [0, 0]  # nothing fits: the cheapest everywhere


def test_a_second_pass_measures_each_block_beside_its_neighbours_counts(xp_model):
    """With every block's first choice at count c, the second pass's measure of count c is the
    uniform cut's (the same bits, limits and frames); at another count it differs."""
    import torch

    from vtoken.codec.frames import pad_frames, to_tensor
    from vtoken.codec.hold import BitHold
    from vtoken.codec.plane_choice import PlaneMapper
    from vtoken.metrics.lpips import ReferenceLPIPS
    from vtoken.models import load_model
    from vtoken.models.stream import StreamState

    from clips import moving_pattern

    model = load_model(xp_model)
    frames = moving_pattern(9, 48, 96, seed=2)
    with torch.inference_mode():
        z = model.encode(to_tensor(pad_frames(frames, 4, model.config.spatial_factor), "cpu"))[0].numpy()
    mapper = PlaneMapper(model, "cpu", block=2, passes=2)
    cands, held = [1, 2, 3], BitHold(0.5)
    bits = {c: held.bits(z, True, c, commit=False) for c in cands}
    lpips = ReferenceLPIPS(frames, "cpu")
    gh, gw = -(-z.shape[2] // 2), -(-z.shape[3] // 2)
    assert gh * gw >= 4  # a checkerboard of both colours
    dist = mapper._beside_neighbours(lpips, bits, cands, np.full((gh, gw), 1), True, frames.shape, z.shape, 1)
    uniform = mapper._decode(bits[2][:2], None, True, StreamState(), 48, 96, 1)
    np.testing.assert_allclose(dist[1], lpips.blocks(uniform[:9], (gh, gw)).sum(axis=0), rtol=1e-5, atol=1e-7)
    assert not np.allclose(dist[0], dist[1])

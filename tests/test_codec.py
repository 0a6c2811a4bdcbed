"""End to end through the library API: media in, .mvt, media out, with a tiny model."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import vtoken
from vtoken import defaults
from vtoken.errors import CorruptChunkError, ModelError, OutputError, UsageError
from vtoken.media import VideoReader

from clips import make_clip, make_image, moving_pattern


def _read_all(path) -> tuple[np.ndarray, object]:
    with VideoReader(path) as r:
        return np.concatenate(list(r.chunks(64))), r.info


def _encoded_bits(model, frames: np.ndarray, chunk_frames: int, key_interval: int,
                  hold: float = defaults.HOLD) -> list[np.ndarray]:
    """What the model produces for each chunk, computed independently of the pipeline: key
    chunks of `chunk_frames` frames start a stream, the chunks between continue it; their
    signs through the encoder's hysteresis at `hold`."""
    import torch

    from vtoken.codec.frames import pad_frames, to_tensor
    from vtoken.codec.hold import BitHold
    from vtoken.models.stream import StreamState

    cfg = model.config
    out, i, index, state, held = [], 0, 0, StreamState(), BitHold(hold)
    while i < len(frames):
        key = index % key_interval == 0
        n = chunk_frames if key else chunk_frames - 1
        if key:
            state = StreamState()
        padded = pad_frames(frames[i : i + n], cfg.temporal_factor, cfg.spatial_factor, continuing=not key)
        with torch.inference_mode():
            z = model.encode(to_tensor(padded, "cpu"), state=state)[0].numpy()
        out.append(held.bits(z, key))
        i, index = i + n, index + 1
    return out


def test_decoded_bits_equal_encoded_bits(tmp_path, tiny_model_json):
    from vtoken.bitstream import open_mvt
    from vtoken.entropy import coder_for
    from vtoken.models import load_model

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=23, size=(48, 40))
    mvt = tmp_path / "out.mvt"
    res = vtoken.encode(src, mvt, model=tiny_model_json, chunk_frames=9, key_interval=2, device="cpu")
    assert res.frames == 23 and len(res.planes) == 3
    model = load_model(tiny_model_json)
    frames, _ = _read_all(src)
    expected = _encoded_bits(model, frames, 9, 2)
    coder = coder_for(model)
    with open_mvt(mvt) as reader:
        assert [e.key for e in reader.entries] == [True, False, True]
        for i, want in enumerate(expected):
            chunk = reader.read_chunk(i)
            if chunk.key:
                coder.reset()
            got = coder.decode(list(chunk.segments), tuple(chunk.latent_shape))
            np.testing.assert_array_equal(got, want)


def test_round_trip_keeps_count_size_rate_and_quality_is_sane(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.mp4", frames=11, size=(64, 48), fps=Fraction(30000, 1001))
    mvt, out = tmp_path / "a.mvt", tmp_path / "a.mp4"
    enc = vtoken.encode(src, mvt, model=tiny_model_json, device="cpu")
    assert enc.bytes == mvt.stat().st_size and enc.bpp == pytest.approx(enc.bytes * 8 / (11 * 64 * 48))
    dec = vtoken.decode(mvt, out, device="cpu")
    frames, info = _read_all(out)
    assert frames.shape == (11, 48, 64, 3) and info.fps == Fraction(30000, 1001)
    assert dec.frames == 11


@pytest.mark.parametrize(
    "kind",
    ["one_frame", "image_png", "image_jpeg", "odd_size", "ten_bit", "yuv444"],
)
def test_shapes_round_trip(tmp_path, tiny_model_json, kind):
    if kind == "one_frame":
        src, size, n = make_clip(tmp_path / "in.mp4", frames=1, size=(64, 48)), (64, 48), 1
    elif kind == "image_png":
        src, size, n = make_image(tmp_path / "in.png", size=(70, 50)), (70, 50), 1
    elif kind == "image_jpeg":
        src, size, n = make_image(tmp_path / "in.jpg", size=(64, 40)), (64, 40), 1
    elif kind == "odd_size":
        src, size, n = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=6, size=(250, 142), pix_fmt="yuv444p"), (250, 142), 6
    elif kind == "ten_bit":
        src, size, n = make_clip(tmp_path / "in.mkv", frames=5, size=(64, 48), pix_fmt="yuv420p10le", codec="libx265"), (64, 48), 5
    else:
        src, size, n = make_clip(tmp_path / "in.mkv", frames=5, size=(66, 42), pix_fmt="yuv444p", codec="libx264"), (66, 42), 5
    mvt = tmp_path / "x.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu")
    info = vtoken.info(mvt)
    assert (info["width"], info["height"], info["frames"]) == (*size, n)
    out = tmp_path / "x.y4m"
    vtoken.decode(mvt, out, device="cpu")
    frames, meta = _read_all(out)
    assert frames.shape == (n, size[1], size[0], 3)
    with VideoReader(src) as r:
        assert meta.fps == r.info.fps


def test_planes_lower_the_rate_and_trim_matches(tmp_path, tiny_model_json):
    from vtoken.bitstream import truncate_planes

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=9, size=(64, 64))
    sizes = []
    for k in (1, 3, 6):
        mvt = tmp_path / f"k{k}.mvt"
        vtoken.encode(src, mvt, model=tiny_model_json, planes=k, device="cpu")
        sizes.append(mvt.stat().st_size)
        assert vtoken.info(mvt)["planes_max"] == k
    assert sizes[0] < sizes[1] < sizes[2]
    # Cutting planes from the full file gives the same planes as encoding with fewer.
    trimmed = tmp_path / "trim.mvt"
    with open(tmp_path / "k6.mvt", "rb") as fin, open(trimmed, "wb") as fout:
        truncate_planes(fin, fout, 3)
    a = np.concatenate(list(vtoken.decode_frames(trimmed, device="cpu")))
    b = np.concatenate(list(vtoken.decode_frames(tmp_path / "k3.mvt", device="cpu")))
    np.testing.assert_array_equal(a, b)


def test_file_cut_after_plane_k_decodes_and_is_smaller(tmp_path, tiny_model_json):
    from vtoken.bitstream import open_mvt

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(64, 48))
    mvt = tmp_path / "full.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu")
    data = mvt.read_bytes()
    with open_mvt(mvt) as reader:
        ends = reader.segment_ends(0)  # absolute byte offset where each plane segment ends
    full = np.concatenate(list(vtoken.decode_frames(mvt, device="cpu")))
    for k in (1, 3):
        cut = tmp_path / f"cut{k}.mvt"
        cut.write_bytes(data[: ends[k - 1]])
        assert cut.stat().st_size < mvt.stat().st_size
        assert vtoken.info(cut)["planes_min"] == k
        frames = np.concatenate(list(vtoken.decode_frames(cut, device="cpu")))
        assert frames.shape == full.shape
        ref = np.concatenate(list(vtoken.decode_frames(mvt, device="cpu", planes=k)))
        np.testing.assert_array_equal(frames, ref)


def test_bpp_target_keeps_the_plane_prefix_nearest_the_target(tmp_path, tiny_model_json):
    from vtoken.bitstream import open_mvt, stream_overhead

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=17, size=(96, 64))
    pixels = 17 * 96 * 64
    size, payload = {}, {}  # payload: the chunk's bytes (headers record the planes or the target)
    for k in (3, 4):
        mvt = tmp_path / f"k{k}.mvt"
        vtoken.encode(src, mvt, model=tiny_model_json, device="cpu", planes=k)
        with open_mvt(mvt) as reader:
            size[k], payload[k] = mvt.stat().st_size, mvt.stat().st_size - stream_overhead(reader.header)
    target = (size[3] + size[4]) / 2 * 8 / pixels
    res = vtoken.encode(src, tmp_path / "t.mvt", model=tiny_model_json, device="cpu", bpp=target)
    with open_mvt(tmp_path / "t.mvt") as reader:
        overhead = stream_overhead(reader.header)
    # One chunk: the nearer of 3 and 4 planes, counting the file's own headers; a miss beyond 10 % says so.
    nearest = min((3, 4), key=lambda k: (abs((payload[k] + overhead) * 8 / pixels - target), k))
    assert res.planes == [nearest]
    assert bool(res.warnings) == (abs(res.bpp / target - 1) > 0.10)
    # An unreachable target still keeps one plane per chunk rather than failing, with a warning.
    res = vtoken.encode(src, tmp_path / "low.mvt", model=tiny_model_json, device="cpu", bpp=1e-6)
    assert res.planes == [1] and "lowest reachable rate" in res.warnings[0]


def test_hold_codes_the_held_bits_and_says_so(tmp_path, tiny_model_json):
    """With the encoder's hysteresis the stream carries exactly the held bits, chunk after
    chunk (the previous latent frame crosses chunk boundaries, a key chunk starts afresh), its
    header names the threshold, and it decodes as any stream does."""
    from vtoken.bitstream import open_mvt
    from vtoken.codec.codec import Codec
    from vtoken.models import load_model

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=30, size=(48, 40))
    model = load_model(tiny_model_json)
    frames, _ = _read_all(src)
    plain, held = _encoded_bits(model, frames, 9, 2, 0.0), _encoded_bits(model, frames, 9, 2, 0.5)
    assert sum((p != h).sum() for p, h in zip(plain, held)) > 0  # 0.5 holds some of this model's bits
    for hold, want in ((0.0, plain), (np.float32(0.5), held)):  # a numpy number is taken as a float
        mvt = tmp_path / f"hold{hold}.mvt"
        vtoken.encode(src, mvt, model=tiny_model_json, chunk_frames=9, key_interval=2, device="cpu", hold=hold)
        with open_mvt(mvt) as reader:
            assert reader.header.extra["hold"] == hold
            assert [e.key for e in reader.entries] == [True, False, True, False]
            got = [bits for _, bits in Codec(model, "cpu").entropy_bits(reader)]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        assert vtoken.decode(mvt, tmp_path / f"hold{hold}.mp4", model=tiny_model_json, device="cpu").frames == 30
    for bad in (-0.1, float("nan"), True):
        with pytest.raises(UsageError, match="hold"):
            vtoken.encode(src, tmp_path / "bad.mvt", model=tiny_model_json, device="cpu", hold=bad)
    assert not (tmp_path / "bad.mvt").exists()


def test_rate_options_are_validated(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(32, 32))
    with pytest.raises(UsageError):
        vtoken.encode(src, tmp_path / "b.mvt", model=tiny_model_json, quality=9, device="cpu")
    with pytest.raises(UsageError):
        vtoken.encode(src, tmp_path / "b.mvt", model=tiny_model_json, planes=2, bpp=0.1, device="cpu")
    with pytest.raises(UsageError):
        vtoken.encode(src, tmp_path / "b.mvt", model=tiny_model_json, chunk_frames=6, device="cpu")
    assert not (tmp_path / "b.mvt").exists()


def test_seek_decodes_the_same_frames_as_a_full_decode(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=30, size=(48, 32))
    mvt = tmp_path / "s.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu", chunk_frames=5, key_interval=3)
    full = np.concatenate(list(vtoken.decode_frames(mvt, device="cpu")))
    part = np.concatenate(list(vtoken.decode_frames(mvt, device="cpu", start=12, frames=9)))
    np.testing.assert_array_equal(part, full[12:21])


def test_output_is_never_overwritten_or_half_written(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(32, 32))
    mvt = tmp_path / "o.mvt"
    mvt.write_bytes(b"keep me")
    with pytest.raises(OutputError):
        vtoken.encode(src, mvt, model=tiny_model_json, device="cpu")
    assert mvt.read_bytes() == b"keep me"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu", overwrite=True)
    assert mvt.read_bytes()[:4] != b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.y4m", "o.mvt"]


def test_damaged_chunk_fails_or_is_concealed(tmp_path, tiny_model_json):
    from vtoken.bitstream import open_mvt

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=15, size=(32, 32))
    mvt = tmp_path / "d.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu", chunk_frames=5, key_interval=2)
    data = bytearray(mvt.read_bytes())
    with open_mvt(mvt) as reader:
        ends = reader.segment_ends(1)
    data[ends[0] - 2] ^= 0xFF  # inside chunk 1's first plane segment
    bad = tmp_path / "bad.mvt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptChunkError) as err:
        list(vtoken.decode_frames(bad, device="cpu"))
    assert err.value.chunk == 1
    res = vtoken.decode(bad, tmp_path / "out.y4m", device="cpu", tolerant=True)
    assert res.frames == 15
    assert res.concealed_frames == list(range(5, 9))  # chunk 2 is a key chunk: intact again
    assert res.warnings


def test_unknown_model_is_named(tmp_path, tiny_model_json, monkeypatch):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(32, 32))
    mvt = tmp_path / "m.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu")
    monkeypatch.setenv("VTOKEN_MODEL_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="test-tiny"):
        list(vtoken.decode_frames(mvt, device="cpu"))


def test_tokenize_detokenize_share_one_vocabulary(tiny_model_json):
    from vtoken.models import load_model

    model = load_model(tiny_model_json)
    clip = moving_pattern(9, 32, 48)
    tokens = vtoken.tokenize(clip, model=model, device="cpu")
    assert tokens.shape == (3, 4, 6) and tokens.dtype == np.int64
    assert tokens.min() >= 0 and tokens.max() < 2**model.config.bits
    image_tokens = vtoken.tokenize(clip[0], model=model, device="cpu")
    # Causality: the first latent frame of the clip is the image's token grid.
    np.testing.assert_array_equal(image_tokens[0], tokens[0])
    frames = vtoken.detokenize(tokens, model=model, device="cpu")
    assert frames.shape == (9, 32, 48, 3) and frames.dtype == np.uint8
    with pytest.raises(UsageError):
        vtoken.detokenize(np.full((1, 2, 2), 2**model.config.bits), model=model, device="cpu")


def test_gpu_out_of_memory_splits_the_chunk(tmp_path, tiny_model_json, monkeypatch):
    import torch

    from vtoken.models import load_model

    model = load_model(tiny_model_json, cache=False)  # patched below: not the shared cached one
    real = model.encode

    def small_memory(video, state=None, planes=None):
        z = real(video, state=state, planes=planes)  # the state advances before the failure, as a real OOM may leave it
        if video.shape[2] > 5:  # pretend more than 5 frames at once does not fit
            raise torch.cuda.OutOfMemoryError("simulated")
        return z

    monkeypatch.setattr(model, "encode", small_memory)
    # A GPU takes the whole chunk per call (the CPU's slices would never see more than 5 frames).
    monkeypatch.setattr(defaults, "MODEL_LATENTS_PER_CALL", {})
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=17, size=(32, 32))
    mvt = tmp_path / "oom.mvt"
    res = vtoken.encode(src, mvt, model=model, device="cpu")
    assert res.frames == 17 and len(res.planes) == 4  # 17 -> 9 + 8 -> (5 + 4) + (4 + 4)
    frames = np.concatenate(list(vtoken.decode_frames(mvt, model=model, device="cpu")))
    assert frames.shape == (17, 32, 32, 3)


def test_frames_larger_than_the_codec_limit_are_refused(tmp_path, tiny_model_json, monkeypatch):
    import vtoken.codec.pipeline as pipeline
    from vtoken.errors import InputError

    monkeypatch.setattr(pipeline, "MAX_FRAME_AREA", 32 * 32)
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=1, size=(64, 32))
    with pytest.raises(InputError, match="larger than vtoken supports"):
        vtoken.encode(src, tmp_path / "big.mvt", model=tiny_model_json, device="cpu")
    assert not (tmp_path / "big.mvt").exists()


def test_same_input_gives_byte_identical_files(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.mp4", frames=9, size=(48, 32), audio=True)
    a, b = tmp_path / "a.mvt", tmp_path / "b.mvt"
    vtoken.encode(src, a, model=tiny_model_json, device="cpu", chunk_frames=5)
    vtoken.encode(src, b, model=tiny_model_json, device="cpu", chunk_frames=5)
    assert a.read_bytes() == b.read_bytes()


def test_audio_is_carried_through(tmp_path, tiny_model_json):
    import av

    src = make_clip(tmp_path / "in.mp4", frames=25, size=(48, 32), audio=True)
    mvt, out = tmp_path / "a.mvt", tmp_path / "out.mp4"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu")
    assert vtoken.info(mvt)["audio"]
    vtoken.decode(mvt, out, device="cpu")

    def packets(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]

    assert packets(out) == packets(src)


@pytest.mark.gpu
def test_stream_encoded_on_gpu_decodes_bit_exactly_on_cpu(tmp_path, tiny_model_json):
    """The entropy model runs in numpy integers on the CPU on both sides, so the device that
    ran the tokenizer cannot change the decoded bits. This checks it where CUDA exists."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from vtoken.bitstream import open_mvt
    from vtoken.entropy import coder_for
    from vtoken.models import load_model

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=17, size=(64, 48))
    mvt = tmp_path / "gpu.mvt"
    gpu_model = load_model(tiny_model_json, device="cuda")
    vtoken.encode(src, mvt, model=gpu_model, device="cuda")
    frames, _ = _read_all(src)
    with torch.inference_mode():
        from vtoken.codec.frames import pad_frames, to_tensor

        cfg = gpu_model.config
        want = gpu_model.encode_bits(to_tensor(pad_frames(frames, cfg.temporal_factor, cfg.spatial_factor), "cuda"))[0].cpu().numpy()
    coder = coder_for(gpu_model)
    with open_mvt(mvt) as reader:
        chunk = reader.read_chunk(0)
        got = coder.decode(list(chunk.segments), tuple(chunk.latent_shape))
    np.testing.assert_array_equal(got, want)
    out = np.concatenate(list(vtoken.decode_frames(mvt, device="cpu")))
    assert out.shape == (17, 48, 64, 3)


def test_outputs_get_the_usual_permissions(tmp_path, tiny_model_json):
    import os

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=1, size=(32, 32))
    mvt = tmp_path / "p.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu")
    mask = os.umask(0)
    os.umask(mask)
    assert mvt.stat().st_mode & 0o777 == 0o666 & ~mask


def test_an_unsaved_model_is_refused_with_a_reason(tmp_path):
    from vtoken.models import Tokenizer, TokenizerConfig

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=1, size=(32, 32))
    model = Tokenizer(TokenizerConfig(bits=6, channels=(8, 16, 16, 16))).eval()
    with pytest.raises(UsageError, match="save_model"):
        vtoken.encode(src, tmp_path / "x.mvt", model=model, device="cpu")


def test_model_with_cross_plane_predictor_codes_format_2(tmp_path, tiny_model_json):
    """A model that carries a cross-plane predictor writes entropy version 2; the stream
    decodes to exactly the model's bits, and a header claiming the other version is refused."""
    import dataclasses

    from vtoken.bitstream import open_mvt
    from vtoken.codec.codec import Codec
    from vtoken.entropy import CrossPlanePredictor
    from vtoken.entropy.crossplane import SCALE
    from vtoken.errors import StreamError
    from vtoken.models import load_model, save_model

    base = load_model(tiny_model_json)
    k = base.config.bits
    weight = np.zeros((k, k), dtype=np.int64)
    weight[np.arange(1, k), np.arange(k - 1)] = 2 * SCALE  # plane k leans on plane k-1
    folder = tmp_path / "models"
    folder.mkdir()
    pred = CrossPlanePredictor(weight, np.zeros(k, np.int64), weight // 8)  # ... and a little on its neighbours
    path = save_model(base, folder, "test-tiny-xp", entropy_predictor=pred)
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=13, size=(48, 40))
    mvt = tmp_path / "xp.mvt"
    vtoken.encode(src, mvt, model=path, chunk_frames=9, key_interval=2, device="cpu")
    model = load_model(path)
    frames, _ = _read_all(src)
    with open_mvt(mvt) as reader:
        assert reader.header.entropy_version == 2
        codec = Codec(model, "cpu")
        got = [bits for _, bits in codec.entropy_bits(reader)]
        with pytest.raises(StreamError, match="codes version 2"):
            codec.check_header(dataclasses.replace(reader.header, entropy_version=1))
    for g, want in zip(got, _encoded_bits(model, frames, 9, 2), strict=True):
        np.testing.assert_array_equal(g, want)
    out = tmp_path / "xp.mp4"
    assert vtoken.decode(mvt, out, model=path, device="cpu").frames == 13
    # The same weights without a predictor still write format 1.
    plain = tmp_path / "plain.mvt"
    vtoken.encode(src, plain, model=tiny_model_json, device="cpu")
    with open_mvt(plain) as reader:
        assert reader.header.entropy_version == 1

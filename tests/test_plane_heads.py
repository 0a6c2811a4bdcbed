"""Encoder heads by kept plane count (TokenizerConfig.plane_heads): the model, the codec that
chooses a head once it knows a chunk's planes, and the training options that teach them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vtoken
from vtoken.errors import UsageError
from vtoken.models import Tokenizer, TokenizerConfig, save_model
from vtoken.models.tokenizer import plane_head

from clips import make_clip

CFG = dict(bits=6, channels=(8, 16, 16, 16), res_blocks=(1, 1, 1, 1))


def _headed(seed: int = 0, heads: int = 3) -> Tokenizer:
    """A tiny model with `heads` plane heads whose output convs are not zero (as trained)."""
    torch.manual_seed(seed)
    model = Tokenizer(TokenizerConfig(**CFG, plane_heads=heads)).eval()
    for head in model.encoder.plane_heads:
        torch.nn.init.normal_(head.out.conv.weight, std=0.5)
    return model


def test_head_by_plane_count():
    assert [plane_head(k, 7) for k in (1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 64, 128)] == \
        [0, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 6]
    assert [plane_head(k, 3) for k in (1, 2, 3, 6)] == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="plane_heads"):
        TokenizerConfig(**CFG, plane_heads=9)


def test_config_stores_plane_heads_only_when_used():
    """A model saved before the field existed keeps its JSON, and so its hash."""
    assert "plane_heads" not in TokenizerConfig(**CFG).to_dict()
    cfg = TokenizerConfig(**CFG, plane_heads=3)
    assert cfg.to_dict()["plane_heads"] == 3
    assert TokenizerConfig.from_dict(cfg.to_dict()) == cfg


def test_silent_heads_code_as_the_model_without_them():
    torch.manual_seed(0)
    plain = Tokenizer(TokenizerConfig(**CFG)).eval()
    headed = Tokenizer(TokenizerConfig(**CFG, plane_heads=3)).eval()
    missing, unexpected = headed.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("encoder.plane_heads.") for k in missing)
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        for k in (None, 1, 2, 6):
            assert torch.equal(headed.encode(video, planes=k), plain.encode(video))


def test_each_plane_count_reads_its_head():
    model = _headed()
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        feats = model.encode_features(video)
        shared = model.encoder.conv_out(feats)
        for k, h in ((1, 0), (2, 1), (4, 2), (6, 2)):
            want = shared + model.encoder.plane_heads[h](feats)
            assert torch.allclose(model.encode(video, planes=k), want, atol=1e-6)
            assert torch.equal(model.latent_for(feats, k), model.encoder.head(feats, k))
        assert torch.equal(model.encode(video), model.encode(video, planes=6))  # None: all planes
        assert not torch.allclose(model.encode(video, planes=1), model.encode(video, planes=6))
        # per-sample counts (training) give each sample its own head
        mixed = model.encode(video, planes=torch.tensor([1, 6]))
        assert torch.allclose(mixed[0], model.encode(video[:1], planes=1)[0], atol=1e-6)
        assert torch.allclose(mixed[1], model.encode(video[1:], planes=6)[0], atol=1e-6)


def test_features_stream_in_slices_as_the_whole_chunk():
    from vtoken.codec import slices
    from vtoken.models.stream import StreamState

    model = _headed()
    padded = (np.random.default_rng(0).random((9, 16, 16, 3)) * 255).astype(np.uint8)
    with torch.inference_mode():
        whole = slices.encode(model, padded, StreamState(), True, "cpu", 0, planes=2)
        feats = slices.encode(model, padded, StreamState(), True, "cpu", 1, features=True)
        assert torch.allclose(model.latent_for(feats[None], 2)[0], whole, atol=1e-5)


@pytest.fixture(scope="module")
def headed_json(tmp_path_factory):
    folder = tmp_path_factory.mktemp("headed")
    return save_model(_headed(), folder, "test-headed")


def _chunk_bits(mvt, model):
    from vtoken.bitstream import open_mvt
    from vtoken.entropy import coder_for

    coder = coder_for(model)
    with open_mvt(mvt) as reader:
        chunk = reader.read_chunk(0)
        return coder.decode(list(chunk.segments), tuple(chunk.latent_shape)), len(chunk.segments)


def _expected_bits(model, src, planes: int) -> np.ndarray:
    """The one chunk's bits, computed without the pipeline: the head for `planes`, then the
    encoder's hysteresis at its default threshold."""
    from vtoken import defaults
    from vtoken.codec.frames import pad_frames, to_tensor
    from vtoken.codec.hold import BitHold
    from vtoken.media import VideoReader

    with VideoReader(src) as r:
        frames = np.concatenate(list(r.chunks(64)))
    cfg = model.config
    with torch.inference_mode():
        z = model.encode(to_tensor(pad_frames(frames, cfg.temporal_factor, cfg.spatial_factor), "cpu"), planes=planes)
    return BitHold(defaults.HOLD).bits(z[0].numpy(), True, planes)[:planes]


def test_the_codec_encodes_for_the_planes_it_keeps(tmp_path, headed_json):
    from vtoken.models import load_model

    model = load_model(headed_json)
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=9, size=(48, 40))
    streams = {}
    for planes in (2, 6):
        mvt = tmp_path / f"p{planes}.mvt"
        vtoken.encode(src, mvt, model=headed_json, planes=planes, device="cpu")
        bits, kept = _chunk_bits(mvt, model)
        assert kept == planes
        np.testing.assert_array_equal(bits[:planes], _expected_bits(model, src, planes))
        streams[planes] = bits
        assert vtoken.decode(mvt, tmp_path / f"p{planes}.y4m", model=headed_json).frames == 9
    # the heads differ, so the first two planes of the two streams do too
    assert not np.array_equal(streams[2][:2], streams[6][:2])


def test_a_rate_target_encodes_for_the_planes_it_chose(tmp_path, headed_json):
    from vtoken.models import load_model

    model = load_model(headed_json)
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=9, size=(48, 40))
    mvt = tmp_path / "bpp.mvt"
    res = vtoken.encode(src, mvt, model=headed_json, bpp=0.17, device="cpu")
    bits, kept = _chunk_bits(mvt, model)
    # 0.17 bpp keeps 2 of the 6 planes of this 48x40 clip: the head of 2, not the trial's of all 6
    assert res.planes == [kept] and 1 <= kept < 6 and plane_head(kept, 3) != plane_head(6, 3)
    np.testing.assert_array_equal(bits[:kept], _expected_bits(model, src, kept))
    assert not np.array_equal(bits[:kept], _expected_bits(model, src, 6)[:kept])


def test_tokens_come_from_the_head_of_the_token_planes(headed_json):
    from vtoken.models import load_model
    from vtoken.models.lfq import bits_to_indices

    model = load_model(headed_json)
    frames = (np.random.default_rng(1).random((5, 16, 16, 3)) * 255).astype(np.uint8)
    tokens = vtoken.tokenize(frames, model=headed_json, planes=2)
    video = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        bits = model.encode_bits(video, planes=2)[0, :2]
    np.testing.assert_array_equal(tokens, bits_to_indices(bits.long(), dim=0).numpy())


def test_log_plane_sampling_trains_every_head_about_as_often():
    from vtoken.train.losses import LossConfig, sample_planes

    cfg = LossConfig(plane_sampling="log", all_planes_prob=0.0)
    k = sample_planes(20000, 64, cfg, torch.Generator().manual_seed(0), "cpu")
    assert int(k.min()) == 1 and int(k.max()) == 64
    share = np.bincount([plane_head(int(x), 7) for x in k], minlength=7) / len(k)
    assert share.min() > 0.09 and share.max() < 0.18, share
    uniform = sample_planes(20000, 64, LossConfig(all_planes_prob=0.0), torch.Generator().manual_seed(0), "cpu")
    assert np.mean([plane_head(int(x), 7) == 6 for x in uniform]) > 0.45  # what log sampling evens out
    with pytest.raises(UsageError, match="plane_sampling"):
        LossConfig(plane_sampling="linear")

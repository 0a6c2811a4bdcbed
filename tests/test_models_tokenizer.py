"""The tokenizer on tiny configs: shapes, causality (encoder and decoder), bits API, plane
dropout, autocast and channels_last."""

import pytest
import torch

from vtoken.models import Tokenizer, TokenizerConfig

from nets import PATCH, seeded_model
from vtoken.models.stream import StreamState

TINY = TokenizerConfig.preset("vtoken-tiny", channels=(8, 8, 16, 16), bits=6, entropy_group_size=3)


@pytest.fixture(scope="module")
def model():
    return seeded_model(TINY)


@pytest.mark.parametrize("config", [TINY, PATCH], ids=["pyramid", "patch"])
@pytest.mark.parametrize("frames,latent_frames", [(1, 1), (5, 2), (17, 5)])
def test_shapes(config, frames, latent_frames):
    model = seeded_model(config)
    video = torch.rand(1, 3, frames, 16, 24) * 2 - 1
    with torch.no_grad():
        out = model(video)
    assert out.z.shape == (1, 6, latent_frames, 2, 3)
    assert out.reconstruction.shape == video.shape
    assert out.indices.shape == (1, latent_frames, 2, 3)
    assert model.latent_shape(frames, 16, 24) == (6, latent_frames, 2, 3)


@pytest.mark.parametrize("shape", [(1, 3, 4, 16, 16), (1, 3, 5, 12, 16), (1, 1, 5, 16, 16), (3, 5, 16, 16)])
def test_invalid_input_says_what_is_required(model, shape):
    with pytest.raises(ValueError, match="1 \\+ 4n|\\[B, 3, T, H, W\\]"):
        model.encode(torch.zeros(shape))


def test_encoder_is_causal(model):
    torch.manual_seed(1)
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        z = model.encode(video)
        changed = video.clone()
        changed[:, :, 5:] = torch.rand_like(changed[:, :, 5:])  # frames > 4 change
        z2 = model.encode(changed)
        first_only = video.clone()
        first_only[:, :, 1:] = 0  # frames > 0 change
        z3 = model.encode(first_only)
    # latent frame j sees frames <= 4j
    assert torch.allclose(z[:, :, :2], z2[:, :, :2], atol=1e-6)
    assert not torch.allclose(z[:, :, 2], z2[:, :, 2], atol=1e-3)
    assert torch.allclose(z[:, :, 0], z3[:, :, 0], atol=1e-6)
    # a one-frame clip encodes frame 0 exactly as inside the longer clip
    assert torch.allclose(model.encode(video[:, :, :1]), z[:, :, :1], atol=1e-5)


def test_decoder_is_causal(model):
    torch.manual_seed(2)
    q = torch.randint(0, 2, (1, 6, 3, 2, 2)).float() * 2 - 1
    with torch.no_grad():
        x = model.decode(q)
        q2 = q.clone()
        q2[:, :, 2] = -q2[:, :, 2]  # latent frame 2 -> frames 5..8
        x2 = model.decode(q2)
        x3 = model.decode(q[:, :, :1])
    assert x.shape[2] == 9
    assert torch.allclose(x[:, :, :5], x2[:, :, :5], atol=1e-6)
    assert not torch.allclose(x[:, :, 5:], x2[:, :, 5:], atol=1e-4)
    assert torch.allclose(x3, x[:, :, :1], atol=1e-5)


def test_bits_api(model):
    torch.manual_seed(3)
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    bits = model.encode_bits(video)
    assert bits.dtype == torch.uint8 and bits.shape == (2, 6, 2, 2, 2)
    assert set(bits.unique().tolist()) <= {0, 1}
    with torch.no_grad():
        z = model.encode(video)
        assert torch.equal(bits, (z >= 0).to(torch.uint8))
        q = model.quantize(z).quantized
        assert torch.equal(bits_to_q(bits), q)
        full = model.decode_bits(bits)
        assert torch.allclose(full, model.decode(q).clamp(-1, 1), atol=1e-6)
        assert full.min() >= -1 and full.max() <= 1
        # planes >= 3 fed as 0: the same as passing only 3 planes, and as decode(planes=3)
        part = model.decode_bits(bits, planes=3)
        assert torch.allclose(part, model.decode_bits(bits[:, :3]), atol=1e-6)
        assert torch.allclose(part, model.decode(q, planes=3).clamp(-1, 1), atol=1e-6)
        assert not torch.allclose(part, full, atol=1e-4)
    with pytest.raises(ValueError, match="allowed: 0..6"):
        model.decode_bits(bits, planes=7)


def bits_to_q(bits):
    return bits.float() * 2 - 1


def test_forward_trains_with_per_sample_planes():
    torch.manual_seed(4)
    m = Tokenizer(TINY).train()
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    out = m(video, planes=torch.tensor([2, 6]))
    assert (out.quantized[0, 2:] == 0).all() and (out.quantized[1] != 0).all()
    loss = (out.reconstruction - video).abs().mean() + out.losses.total
    loss.backward()
    enc_grad = m.encoder.conv_in.conv.weight.grad
    assert enc_grad is not None and enc_grad.abs().sum() > 0  # straight-through reaches the encoder


def test_bf16_autocast_and_channels_last(model):
    torch.manual_seed(5)
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        ref = model(video).reconstruction
        m_cl = Tokenizer(TINY).eval()
        m_cl.load_state_dict(model.state_dict())
        m_cl = m_cl.to(memory_format=torch.channels_last_3d)
        cl = m_cl(video.to(memory_format=torch.channels_last_3d)).reconstruction
        assert torch.allclose(cl, ref, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(video)
        assert torch.isfinite(out.reconstruction).all()
        assert out.losses.total.dtype == torch.float32
        assert (out.reconstruction.float() - ref).abs().mean() < 0.1


def test_unsaved_model_has_no_identity(model):
    assert model.identity is None and model.entropy_prior is None


@pytest.mark.parametrize("conv3d", [(False, False, True, True), (True, True, True, True), (False, False, False, False)])
def test_frame_sliced_inference_equals_whole_chunk(monkeypatch, conv3d):
    """The per-frame levels run a few frames at a time at inference (to bound memory): the
    result must be what the whole chunk gives."""
    import vtoken.models.tokenizer as tk

    temporal = (False, True, True) if any(conv3d) else (False, False, False)
    torch.manual_seed(0)
    model = tk.Tokenizer(TokenizerConfig(bits=6, channels=(8, 16, 16, 16), conv3d=conv3d, temporal_down=temporal)).eval()
    frames = 17 if any(temporal) else 6
    video = torch.rand(1, 3, frames, 32, 48) * 2 - 1
    with torch.no_grad():
        z_sliced = model.encode(video)
        q = model.quantize(z_sliced).quantized
        out_sliced = model.decode(q)
        monkeypatch.setattr(tk, "FRAME_SLICE", 0)
        z_whole = model.encode(video)
        out_whole = model.decode(q)
    assert out_sliced.shape == out_whole.shape == video.shape
    torch.testing.assert_close(z_sliced, z_whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_sliced, out_whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pieces", [(17, 16, 16), (5, 4, 8, 4, 12), (1, 4, 4)])
def test_streaming_chunks_equal_the_whole_video(pieces):
    """Chunks fed with a StreamState (first 1 + 4n frames, then 4n) give the bits and the
    frames of one pass over the whole video: the causal state is carried, not restarted. Both
    the classic pyramid and the patch-stem architecture."""
    torch.manual_seed(0)
    for config in (TokenizerConfig(bits=6, channels=(8, 16, 16, 16)),
                   PATCH):
        _check_streaming(Tokenizer(config).eval(), pieces)


def _check_streaming(model, pieces):
    total = sum(pieces)
    video = torch.rand(1, 3, total, 32, 48) * 2 - 1
    whole_bits = model.encode_bits(video)
    whole_out = model.decode_bits(whole_bits)
    bits, outs, start = [], [], 0
    enc, dec = StreamState(), StreamState()
    for n in pieces:
        bits.append(model.encode_bits(video[:, :, start : start + n], state=enc))
        outs.append(model.decode_bits(bits[-1], state=dec))
        start += n
    torch.testing.assert_close(torch.cat(bits, dim=2), whole_bits, atol=0, rtol=0)
    torch.testing.assert_close(torch.cat(outs, dim=2), whole_out, atol=1e-5, rtol=1e-5)
    # Outside the context the model is stateless again.
    torch.testing.assert_close(model.encode_bits(video), whole_bits, atol=0, rtol=0)


@pytest.mark.parametrize("config", [TINY, PATCH], ids=["pyramid", "patch"])
def test_decoding_a_slice_of_frames_gives_those_frames(config):
    """decode_bits(frames=...) skips the per-frame levels of the other frames and returns
    exactly the slice of the full decode, for a stream's first chunk and a continuing one."""
    model = seeded_model(config)
    torch.manual_seed(1)
    first = torch.randint(0, 2, (1, config.bits, 3, 4, 4), dtype=torch.uint8)
    later = torch.randint(0, 2, (1, config.bits, 2, 4, 4), dtype=torch.uint8)
    full, part = StreamState(), StreamState()
    for bits, keep in ((first, slice(0, None, 2)), (later, slice(1, None, 2))):
        want = model.decode_bits(bits, state=full)[:, :, keep]
        got = model.decode_bits(bits, state=part, frames=keep)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)

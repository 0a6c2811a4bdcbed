"""The patch-stem architecture (pixel-unshuffle in, depth-to-space out, levels that change only
the frame rate), its config, and warm-starting it from another architecture (graft)."""

import json

import pytest
import torch

from vtoken.models import Tokenizer, TokenizerConfig
from vtoken.models.layers import depth_to_space, space_to_depth
from vtoken.train.graft import graft

from nets import PATCH, seeded_model



@pytest.fixture(scope="module")
def model():
    return seeded_model(PATCH)


def test_space_to_depth_inverts_depth_to_space():
    x = torch.rand(2, 3, 5, 8, 12)
    folded = space_to_depth(x, 4)
    assert folded.shape == (2, 48, 5, 2, 3)
    # channel c*16 + 4*i + j holds pixel (4y + i, 4x + j) of colour c
    assert folded[1, 2 * 16 + 4 * 3 + 1, 4, 1, 2] == x[1, 2, 4, 4 + 3, 8 + 1]
    assert torch.equal(depth_to_space(folded, 1, 4), x)


def test_config_factors_and_json_round_trip():
    cfg = TokenizerConfig.preset("vtoken-patch")
    assert (cfg.spatial_factor, cfg.temporal_factor, cfg.bits) == (8, 4, 32)
    assert TokenizerConfig.from_json(cfg.to_json()) == cfg
    # a config written before these fields existed still loads, as the classic pyramid
    old = json.loads(TokenizerConfig.preset("vtoken-tiny").to_json())
    del old["spatial_down"], old["patch_size"]
    assert TokenizerConfig.from_dict(old) == TokenizerConfig.preset("vtoken-tiny")
    with pytest.raises(ValueError, match="patch_size"):
        TokenizerConfig.preset("vtoken-patch", patch_size=3)
    with pytest.raises(ValueError, match="spatial_down"):
        TokenizerConfig.preset("vtoken-patch", spatial_down=(True,))


def test_no_convolution_at_full_resolution(model):
    """The stem folds 4x4 patches first: every conv sees at most a quarter of the input size."""
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[-2:]))
             for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    with torch.no_grad():
        model(torch.rand(1, 3, 5, 32, 32) * 2 - 1)
    for h in hooks:
        h.remove()
    assert seen and max(s[0] for s in seen) <= 8


def test_encoder_and_decoder_are_causal(model):
    torch.manual_seed(1)
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    changed = video.clone()
    changed[:, :, 5:] = torch.rand_like(changed[:, :, 5:])
    with torch.no_grad():
        z, z2 = model.encode(video), model.encode(changed)
        assert torch.allclose(z[:, :, :2], z2[:, :, :2], atol=1e-6)
        assert not torch.allclose(z[:, :, 2], z2[:, :, 2], atol=1e-3)
        assert torch.allclose(model.encode(video[:, :, :1]), z[:, :, :1], atol=1e-5)
        q = torch.where(z >= 0, 1.0, -1.0)
        q2 = q.clone()
        q2[:, :, 2] = -q2[:, :, 2]
        y, y2 = model.decode(q), model.decode(q2)
    assert torch.allclose(y[:, :, :5], y2[:, :, :5], atol=1e-5)   # latent frame 2 covers frames 5-8
    assert not torch.allclose(y[:, :, 5:], y2[:, :, 5:], atol=1e-3)


def test_graft_extends_planes_and_keeps_the_old_ones():
    """Same trunk, K 6 -> 10: the grafted model codes the first 6 planes as the source and
    decodes them identically whatever the new planes hold (their inputs start at zero)."""
    src = seeded_model(PATCH)
    dst = Tokenizer(PATCH.replace(bits=10, entropy_group_size=5)).eval()
    report = graft(dst, src.state_dict(), k_old=6, k_new=10)
    assert report["fresh"] == [] and "encoder.conv_out.conv.weight" in report["extended"]
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        bits_src, bits_dst = src.encode_bits(video), dst.encode_bits(video)
        assert torch.equal(bits_dst[:, :6], bits_src)
        noise = (torch.rand_like(bits_dst[:, 6:].float()) > 0.5).to(torch.uint8)
        out_dst = dst.decode_bits(torch.cat([bits_src, noise], 1))
        torch.testing.assert_close(out_dst, src.decode_bits(bits_src), atol=1e-5, rtol=1e-5)


def test_graft_renames_and_leaves_misfits_fresh():
    torch.manual_seed(0)
    src = Tokenizer(TokenizerConfig.preset("vtoken-tiny", channels=(8, 8, 16, 16), bits=6, entropy_group_size=3))
    dst = Tokenizer(PATCH)
    report = graft(dst, src.state_dict(), [("encoder.blocks.2.", "encoder.blocks.3.")], 6, 6)
    w = "encoder.blocks.2.0.conv1.conv.weight"
    assert w in report["copied"]
    assert torch.equal(dst.state_dict()[w], src.state_dict()["encoder.blocks.3.0.conv1.conv.weight"])
    assert "encoder.conv_in.conv.weight" in report["fresh"]   # 48 -> 8 input channels: no source fits


TEMPORAL = PATCH.replace(decoder_temporal_blocks=1)


def test_decoder_temporal_blocks_config():
    """Stored only when used (older models hash as before); refused where the decoder has no
    per-frame level after a temporal upsampling to put them at."""
    assert "decoder_temporal_blocks" not in PATCH.to_dict()
    assert TEMPORAL.to_dict()["decoder_temporal_blocks"] == 1
    assert TokenizerConfig.from_json(TEMPORAL.to_json()) == TEMPORAL
    with pytest.raises(ValueError, match="needs per-frame levels"):
        PATCH.replace(decoder_temporal_blocks=1, conv3d=(True, True, True))
    with pytest.raises(ValueError, match="allowed is 0 or more"):
        PATCH.replace(decoder_temporal_blocks=-1)


def test_decoder_temporal_blocks_look_back_never_ahead():
    """The blocks sit at the per-frame level, after the last temporal depth-to-space: there, a
    frame's output changes with the four frames before it and never with a later one."""
    model = seeded_model(TEMPORAL)
    assert len(model.decoder.temporal) == 1
    assert model.decoder.temporal[0].conv1.conv.kernel_size == (3, 1, 1)
    torch.manual_seed(2)
    for p in model.decoder.temporal.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(1, 8, 11, 4, 4)
    q = torch.where(torch.randn(1, 6, 3, 2, 2) >= 0, 1.0, -1.0)
    block = model.decoder.temporal[0]
    with torch.no_grad():
        y = block(x, q)
        x2 = x.clone()
        x2[:, :, 4] = torch.randn(1, 8, 4, 4)  # (a constant shift would vanish in the per-frame norm)
        y2 = block(x2, q)
    assert torch.equal(y[:, :, :4], y2[:, :, :4])                   # the past never sees frame 4
    for t in range(5, 9):  # two 3x1x1 convs: the next four frames read it
        assert not torch.allclose(y[:, :, t], y2[:, :, t], atol=1e-3)
    assert torch.equal(y[:, :, 9:], y2[:, :, 9:])                   # 5 frames later it is out of reach


def test_decoder_temporal_blocks_stream_and_slice_like_the_whole_clip(monkeypatch):
    """The blocks run on the whole chunk before the frame-sliced levels, and carry their two
    past frames from one stream chunk to the next."""
    import vtoken.models.tokenizer as tk
    from vtoken.models.stream import StreamState

    model = seeded_model(TEMPORAL)
    for p in model.decoder.temporal.parameters():
        torch.nn.init.normal_(p, std=0.1)
    torch.manual_seed(3)
    video = torch.rand(1, 3, 17, 16, 24) * 2 - 1
    with torch.no_grad():
        bits = model.encode_bits(video)
        whole = model.decode_bits(bits)
        state = StreamState()
        pieces = [model.decode_bits(bits[:, :, :2], state=state), model.decode_bits(bits[:, :, 2:], state=state)]
        monkeypatch.setattr(tk, "FRAME_SLICE", 0)
        unsliced = model.decode_bits(bits)
    torch.testing.assert_close(torch.cat(pieces, dim=2), whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(unsliced, whole, atol=1e-5, rtol=1e-5)


def test_decoder_temporal_blocks_graft_as_identities():
    """Grafted with silent_new_blocks, a model with the new blocks decodes as its source."""
    src = seeded_model(PATCH)
    dst = Tokenizer(TEMPORAL).eval()
    report = graft(dst, src.state_dict(), silent_new_blocks=True)
    assert report["silenced"] == ["decoder.temporal.0"]
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        bits = src.encode_bits(video)
        assert torch.equal(dst.encode_bits(video), bits)
        torch.testing.assert_close(dst.decode_bits(bits), src.decode_bits(bits), atol=1e-6, rtol=1e-6)


def test_four_tap_temporal_downsampling_reads_every_frame_twice():
    """With 3 taps and stride 2 an odd frame enters one window; with 4, every frame enters
    two, and the frame counts stay those of the causal layout."""
    from vtoken.models.layers import Downsample

    torch.manual_seed(0)
    for taps, readers in ((3, {3: [2], 4: [2, 3]}), (4, {3: [2, 3], 4: [2, 3]})):
        down = Downsample(4, 4, temporal=True, spatial=False, time_taps=taps).eval()
        x = torch.randn(1, 4, 9, 3, 3)
        with torch.no_grad():
            y = down(x)
            assert y.shape[2] == 5
            for frame, want in readers.items():
                x2 = x.clone()
                x2[:, :, frame] = torch.randn(1, 4, 3, 3)
                changed = [t for t in range(5) if not torch.equal(down(x2)[:, :, t], y[:, :, t])]
                assert changed == want, (taps, frame, changed)
    assert "temporal_down_kernel" not in PATCH.to_dict()
    four = PATCH.replace(temporal_down_kernel=4)
    assert TokenizerConfig.from_json(four.to_json()) == four and four.to_dict()["temporal_down_kernel"] == 4
    with pytest.raises(ValueError, match="temporal_down_kernel"):
        PATCH.replace(temporal_down_kernel=5)


def test_four_tap_encoder_grafts_exactly_and_streams():
    """Grafted from 3 taps (the new oldest tap at zero) the encoder gives the source's bits;
    trained taps and all, stream chunks give the whole clip's bits."""
    from vtoken.models.stream import StreamState

    src = seeded_model(PATCH)
    dst = Tokenizer(PATCH.replace(temporal_down_kernel=4)).eval()
    report = graft(dst, src.state_dict())
    assert "encoder.downs.0.conv.conv.weight" in report["extended"] and not report["fresh"]
    torch.manual_seed(4)
    video = torch.rand(1, 3, 17, 16, 24) * 2 - 1
    with torch.no_grad():
        assert torch.equal(dst.encode(video), src.encode(video))
        for down in dst.encoder.downs:
            torch.nn.init.normal_(down.conv.conv.weight[:, :, :1], std=0.1)
        whole = dst.encode_bits(video)
        state = StreamState()
        pieces = [dst.encode_bits(video[:, :, :9], state=state), dst.encode_bits(video[:, :, 9:], state=state)]
    assert not torch.equal(whole, src.encode_bits(video))
    assert torch.equal(torch.cat(pieces, dim=2), whole)


def test_token_vocabulary_is_token_bits_of_the_coded_planes(tmp_path):
    """A codec model may code more planes than a token holds: tokenize gives the first
    token_bits planes by default, detokenize reads them back as the decoder sees them."""
    import numpy as np

    import vtoken
    from vtoken.models import save_model

    cfg = PATCH.replace(bits=8, token_bits=5, entropy_group_size=4)
    assert cfg.token_bits == 5 and cfg.replace(bits=6).token_bits == 6   # a new K resets it
    with pytest.raises(ValueError, match="token_bits"):
        PATCH.replace(token_bits=7)
    torch.manual_seed(0)
    net = Tokenizer(cfg).eval()
    (tmp_path / "zoo").mkdir()
    model = vtoken.load_model(save_model(net, tmp_path / "zoo", "tok-test"), cache=False)
    frames = np.random.default_rng(0).integers(0, 256, (5, 16, 24, 3), dtype=np.uint8)
    tokens = vtoken.tokenize(frames, model=model, device="cpu")
    assert tokens.shape == (2, 2, 3) and tokens.max() < 2**5
    all_planes = vtoken.tokenize(frames, model=model, planes=8, device="cpu")
    assert np.array_equal(all_planes % 2**5, tokens)
    with torch.no_grad():
        bits = net.encode_bits(torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1)
        want = net.decode_bits(bits[:, :5])
    got = vtoken.detokenize(tokens, model=model, device="cpu")
    ref = ((want[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    assert got.shape == ref.shape and np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_a_model_with_more_than_64_planes_codes_every_plane(tmp_path):
    """K may go past 64 up to the reader's 128: every plane of an 80-plane model is coded and
    decoded exactly, a plane count in between is a valid cut, and the token index stays an
    int64 (at most 62 planes make one)."""
    import numpy as np

    import vtoken
    from vtoken.bitstream import open_mvt
    from vtoken.codec.frames import to_tensor
    from vtoken.entropy import coder_for
    from vtoken.errors import UsageError
    from vtoken.media import VideoReader
    from vtoken.models import save_model

    from clips import make_clip

    cfg = PATCH.replace(bits=80, entropy_group_size=8)
    assert cfg.token_bits == 62
    with pytest.raises(ValueError, match="allowed: 1..128"):
        PATCH.replace(bits=129)
    net = seeded_model(cfg)
    assert net(torch.rand(1, 3, 5, 16, 16) * 2 - 1).indices.shape == (1, 2, 2, 2)
    (tmp_path / "zoo").mkdir()
    model = vtoken.load_model(save_model(net, tmp_path / "zoo", "k80-test"), cache=False)
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(32, 24))
    res = vtoken.encode(src, tmp_path / "all.mvt", model=model, device="cpu", hold=0)  # the model's own bits
    assert res.planes[0] == 80
    with open_mvt(tmp_path / "all.mvt") as reader:
        chunk = reader.read_chunk(0)
        got = coder_for(model).decode(list(chunk.segments), tuple(chunk.latent_shape))
    with VideoReader(src) as r:
        clip = np.concatenate(list(r.chunks(64)))
    with torch.no_grad():
        want = net.encode_bits(to_tensor(clip, "cpu"))[0].numpy()
    assert got.shape[0] == 80
    np.testing.assert_array_equal(got, want)
    cut = vtoken.encode(src, tmp_path / "cut.mvt", model=model, planes=70, device="cpu")
    assert cut.planes[0] == 70 and cut.bytes < res.bytes
    for name in ("all", "cut"):
        out = vtoken.decode(tmp_path / f"{name}.mvt", tmp_path / f"{name}.y4m", model=model, device="cpu")
        assert (out.frames, out.width, out.height) == (5, 32, 24)
    assert vtoken.tokenize(clip, model=model, planes=62).max() < 2**62
    with pytest.raises(UsageError, match="from 1 to 62"):
        vtoken.tokenize(clip, model=model, planes=63)

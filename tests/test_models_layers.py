"""Causal layers: time padding on the past side, strided/shuffle frame layouts, condition
expansion that respects the 1 + f (T' - 1) layout."""

import torch

from vtoken.models.layers import CausalConv3d, Downsample, Upsample, depth_to_space, expand_condition, modulate


def test_causal_conv_ignores_future_and_replicates_first_frame():
    torch.manual_seed(0)
    conv = CausalConv3d(2, 3, (3, 3, 3))
    x = torch.randn(1, 2, 6, 5, 5)
    y = conv(x)
    assert y.shape == (1, 3, 6, 5, 5)
    x2 = x.clone()
    x2[:, :, 4:] += 1
    y2 = conv(x2)
    assert torch.equal(y[:, :, :4], y2[:, :, :4]) and not torch.allclose(y[:, :, 4:], y2[:, :, 4:])
    # A still clip: replicate padding makes every output frame equal to the first.
    still = x[:, :, :1].expand(-1, -1, 4, -1, -1)
    ys = conv(still)
    assert torch.allclose(ys, ys[:, :, :1].expand_as(ys), atol=1e-6)


def test_downsample_frame_counts():
    down = Downsample(4, 4, temporal=True)
    counts = []
    for t in (1, 17, 9, 5):
        counts.append(down(torch.zeros(1, 4, t, 8, 8)).shape[2])
    assert counts == [1, 9, 5, 3]
    assert Downsample(4, 4, temporal=False)(torch.zeros(1, 4, 5, 8, 8)).shape == (1, 4, 5, 4, 4)


def test_depth_to_space_time_layout():
    # 2 input frames, rt=2: frame 0 -> [dropped, 0'], frame 1 -> [1a, 1b]: 3 = 2*2-1 frames
    x = torch.arange(2 * 2 * 1).float().reshape(1, 2, 2, 1, 1)  # channels = out(1) * rt(2)
    y = depth_to_space(x, 2, 1)
    assert y.shape == (1, 1, 3, 1, 1)
    assert y.flatten().tolist() == [x[0, 1, 0, 0, 0].item(), x[0, 0, 1, 0, 0].item(), x[0, 1, 1, 0, 0].item()]
    up = Upsample(8, 4, temporal=True)
    assert up(torch.zeros(1, 8, 5, 4, 4)).shape == (1, 4, 9, 8, 8)
    assert Upsample(8, 4, temporal=False)(torch.zeros(1, 8, 1, 4, 4)).shape == (1, 4, 1, 8, 8)


def test_expand_condition_layout():
    cond = torch.tensor([0.0, 1.0, 2.0]).reshape(1, 1, 3, 1, 1)
    out = expand_condition(cond, (9, 2, 2))
    assert out[0, 0, :, 0, 0].tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2]  # frame 4j-3..4j <- latent j
    assert out.shape == (1, 1, 9, 2, 2) and torch.equal(out[..., 1, 1], out[..., 0, 0])
    assert expand_condition(cond, (5, 1, 1))[0, 0, :, 0, 0].tolist() == [0, 1, 1, 2, 2]
    single = expand_condition(cond[:, :, :1], (1, 4, 4))
    assert single.shape == (1, 1, 1, 4, 4)


def test_modulate_equals_explicit_expansion():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 8, 12)
    scale, shift = torch.randn(2, 3, 5, 2, 3), torch.randn(2, 3, 5, 2, 3)
    ref = x * (1 + expand_condition(scale, (5, 8, 12))) + expand_condition(shift, (5, 8, 12))
    assert torch.allclose(modulate(x, scale, shift), ref, atol=1e-6)
    xcl = x.to(memory_format=torch.channels_last_3d)
    assert torch.allclose(modulate(xcl, scale, shift), ref, atol=1e-6)

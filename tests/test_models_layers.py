"""Causal layers: time padding on the past side, strided/shuffle frame layouts, condition
expansion that respects the 1 + f (T' - 1) layout."""

import pytest
import torch
import torch.nn.functional as F

from vtoken.models.layers import (CausalConv3d, Downsample, Upsample, conv3d, depth_to_space, expand_condition,
                                  frame_group_norm, normalize_modulate)


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


def _reference_frame_group_norm(x, groups, weight=None, bias=None, eps=1e-6):
    b, c, t, h, w = x.shape
    y = F.group_norm(x.transpose(1, 2).reshape(b * t, c, h, w), groups, weight, bias, eps)
    return y.reshape(b, t, c, h, w).transpose(1, 2)


@pytest.mark.parametrize("offset", [0.0, 10.0])
def test_frame_group_norm_equals_group_norm_per_frame(offset):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 6, 10) * 2 + offset
    weight, bias = torch.randn(8), torch.randn(8)
    for wb in ((None, None), (weight, bias)):
        ref = _reference_frame_group_norm(x, 4, *wb)
        assert torch.allclose(frame_group_norm(x, 4, *wb, 1e-6), ref, atol=2e-5)


def test_normalize_modulate_equals_norm_then_explicit_expansion():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 8, 12) + 1
    scale, shift = torch.randn(2, 6, 5, 2, 3), torch.randn(2, 6, 5, 2, 3)
    normed = _reference_frame_group_norm(x, 3)
    ref = normed * (1 + expand_condition(scale, (5, 8, 12))) + expand_condition(shift, (5, 8, 12))
    assert torch.allclose(normalize_modulate(x, 3, 1e-6, scale, shift), ref, atol=1e-5)
    xcl = x.to(memory_format=torch.channels_last_3d)
    assert torch.allclose(normalize_modulate(xcl, 3, 1e-6, scale, shift), ref, atol=1e-5)
    full_scale, full_shift = expand_condition(scale, (5, 8, 12)), expand_condition(shift, (5, 8, 12))
    assert torch.allclose(normalize_modulate(x, 3, 1e-6, full_scale, full_shift), ref, atol=1e-5)


@pytest.mark.parametrize("shape,kernel,stride", [
    ((1, 16, 1, 40, 64), (1, 3, 3), 1),   # one frame: PyTorch's own pick is the slow reference path
    ((1, 64, 7, 9, 16), (3, 3, 3), 1),    # a small latent grid, likewise
    ((2, 8, 9, 16, 16), (3, 3, 3), 2),
])
def test_conv3d_fast_path_matches_pytorch(shape, kernel, stride):
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(shape[1], 12, kernel, stride=stride, padding=(0, 1, 1))
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.allclose(conv3d(conv, x), conv(x), atol=1e-5)


@pytest.mark.parametrize("grad", [False, True])
def test_conv3d_under_bf16_autocast_computes_in_bf16(grad):
    """codec/precision.py's bf16 reaches the convolutions: the direct oneDNN call, which autocast
    does not see, is left to PyTorch under autocast."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(16, 12, (1, 3, 3), padding=(0, 1, 1))
    x = torch.randn(1, 16, 1, 40, 64, requires_grad=grad)
    with torch.set_grad_enabled(grad):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv3d(conv, x)
        ref = conv3d(conv, x)
    assert y.dtype == torch.bfloat16 and ref.dtype == torch.float32
    assert torch.allclose(y.float(), ref, atol=0.05 * ref.abs().max().item())


@pytest.mark.parametrize("shape,kernel,stride,groups,bias,as_2d", [
    ((1, 16, 1, 40, 64), (1, 3, 3), 1, 1, True, True),
    ((1, 16, 4, 18, 32), (3, 3, 3), 1, 1, True, True),      # the decoder's causal conv on a padded slice
    ((1, 8, 9, 16, 16), (3, 3, 3), 2, 1, True, True),       # the encoder's strided time downsampling
    ((1, 8, 6, 10, 12), (4, 3, 3), (2, 1, 1), 1, False, True),
    ((1, 8, 3, 10, 12), (1, 1, 1), 1, 1, True, True),
    ((1, 8, 6, 10, 12), (3, 3, 3), 1, 2, True, False),      # groups: PyTorch takes oneDNN itself
    ((2, 8, 9, 16, 16), (3, 3, 3), 2, 1, True, False),      # a batch, likewise
    ((1, 32, 5, 200, 16), (3, 3, 3), 1, 1, True, False),    # N*C*D*H over 20480, likewise
])
def test_conv3d_with_a_gradient_matches_pytorch(shape, kernel, stride, groups, bias, as_2d, monkeypatch):
    """With a gradient, where PyTorch's rule would take its reference kernel, the helper runs
    the conv as one 2-D conv over the output frames; the output and the gradients of input,
    weight and bias are PyTorch's own either way."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    pad = (0, kernel[1] // 2, kernel[2] // 2)
    conv = torch.nn.Conv3d(shape[1], 12, kernel, stride=stride, padding=pad, groups=groups, bias=bias)
    x = torch.randn(shape, requires_grad=True)
    calls = []
    conv2d = F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda *a, **k: calls.append(a[0].shape) or conv2d(*a, **k))
    ours = conv3d(conv, x)
    monkeypatch.undo()
    theirs = conv(x)
    if as_2d:  # one 2-D conv, a batch of the output frames
        assert len(calls) == 1 and calls[0][0] == shape[0] * theirs.shape[2]
    else:
        assert not calls
    assert ours.shape == theirs.shape and ours.is_contiguous()
    assert torch.allclose(ours, theirs, atol=1e-5)
    weight = torch.randn_like(theirs)
    params = [x, conv.weight] + ([conv.bias] if bias else [])
    ours_grads = torch.autograd.grad((ours * weight).sum(), params)
    theirs_grads = torch.autograd.grad((theirs * weight).sum(), params)
    for a, b in zip(ours_grads, theirs_grads):
        assert torch.allclose(a, b, atol=1e-4 * b.abs().max().item())

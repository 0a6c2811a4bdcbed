"""LFQ: bit order (pinned), sign quantization, straight-through gradient, entropy penalty,
nested plane dropout."""

import numpy as np
import pytest
import torch

from vtoken.models.lfq import LFQ, bits_to_indices, indices_to_bits, plane_mask


def test_bit_order_is_plane0_least_significant_torch():
    bits = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1]], dtype=torch.uint8)
    assert bits_to_indices(bits, dim=-1).tolist() == [5, 6, 8, 15]
    assert indices_to_bits(torch.tensor([5, 6, 8, 15]), 4, dim=-1).tolist() == bits.tolist()


def test_bit_order_numpy_and_channel_dim():
    # [B=1, K=3, 2] with planes along dim 1: position 0 has bits (1,1,0) -> 3, position 1 (0,0,1) -> 4
    bits = np.array([[[1, 0], [1, 0], [0, 1]]], dtype=np.uint8)
    idx = bits_to_indices(bits, dim=1)
    assert idx.dtype == np.int64 and idx.tolist() == [[3, 4]]
    assert np.array_equal(indices_to_bits(idx, 3, dim=1), bits)


def test_bits_indices_round_trip_18_bits():
    idx = torch.randint(0, 2**18, (2, 3, 4))
    bits = indices_to_bits(idx, 18, dim=1)
    assert bits.shape == (2, 18, 3, 4) and bits.dtype == torch.uint8
    assert torch.equal(bits_to_indices(bits, dim=1), idx)
    assert bits_to_indices(torch.ones(18, dtype=torch.uint8)).item() == 2**18 - 1


def test_quantize_signs_zero_is_plus_one_and_indices():
    lfq = LFQ(bits=3).eval()
    z = torch.tensor([0.5, -0.2, 0.0]).reshape(1, 3, 1, 1, 1)
    out = lfq(z)
    assert out.quantized.flatten().tolist() == [1.0, -1.0, 1.0]
    assert out.indices.flatten().tolist() == [1 + 4]
    assert out.losses is None  # eval mode: no entropy computation unless asked


def test_straight_through_gradient():
    lfq = LFQ(bits=4)
    z = torch.randn(2, 4, 1, 3, 3, requires_grad=True)
    w = torch.randn(2, 4, 1, 3, 3)
    (lfq(z).quantized * w).sum().backward()
    assert torch.allclose(z.grad, w)


def test_entropy_penalty_prefers_confident_diverse_codes():
    torch.manual_seed(0)
    lfq = LFQ(bits=12, entropy_group_size=6)
    assert len(lfq.groups) == 2
    n = 4096
    diverse = (torch.randint(0, 2, (1, 12, n, 1, 1)).float() * 2 - 1)
    collapsed = torch.ones(1, 12, n, 1, 1)
    unsure = torch.randn(1, 12, n, 1, 1) * 1e-4
    ld, lc, lu = (lfq(z, return_losses=True).losses for z in (diverse, collapsed, unsure))
    assert ld.entropy < lc.entropy - 5 and ld.entropy < lu.entropy - 5
    # each of 2 groups of 6 bits: uniform usage -> 6 ln 2 nats
    assert ld.codebook_entropy.item() == pytest.approx(12 * np.log(2), rel=0.02)
    assert lc.codebook_entropy.item() == pytest.approx(0.0, abs=1e-3)
    assert lu.per_sample_entropy.item() == pytest.approx(12 * np.log(2), rel=0.01)
    assert ld.commitment.item() == pytest.approx(0.0) and lu.commitment.item() == pytest.approx(1.0, rel=0.01)


def test_plane_dropout_int_and_per_sample():
    lfq = LFQ(bits=6).eval()
    z = torch.randn(3, 6, 2, 2, 2)
    q = lfq(z, planes=2).quantized
    assert (q[:, :2] != 0).all() and (q[:, 2:] == 0).all()
    q = lfq(z, planes=torch.tensor([0, 3, 6])).quantized
    assert (q[0] == 0).all()
    assert (q[1, :3] != 0).all() and (q[1, 3:] == 0).all()
    assert (q[2] != 0).all()
    with pytest.raises(ValueError, match="allowed: 0..6"):
        plane_mask(7, 6, 1, "cpu")


def test_lfq_runs_in_fp32_under_autocast():
    lfq = LFQ(bits=4)
    z = torch.randn(1, 4, 1, 4, 4).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lfq(z, return_losses=True)
    assert out.quantized.dtype == torch.bfloat16
    assert out.losses.entropy.dtype == torch.float32 and torch.isfinite(out.losses.total)


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match="expects 4 channels"):
        LFQ(bits=4)(torch.zeros(1, 3, 1, 1, 1))

"""benchmarks/plane_map_probe.py: the block LPIPS it chooses by adds up to the frame's LPIPS,
and its fronts, count-map cost and frame-to-latent map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scripts import load_benchmark

from vtoken.metrics.lpips import fold_frames, get_lpips


@pytest.fixture(scope="module")
def probe():
    return load_benchmark("plane_map_probe")


def _pair(frames=3, size=64):
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 3, frames, size, size, generator=gen) * 2 - 1
    dist = (ref + 0.3 * torch.randn(ref.shape, generator=gen)).clamp(-1, 1)
    return ref, dist


def test_block_lpips_on_one_block_is_the_frames_lpips(probe):
    lpips = get_lpips("cpu")
    ref, dist = _pair()
    with torch.inference_mode():
        feats = [lpips.features(fold_frames(ref))]
        expected = lpips(fold_frames(ref), fold_frames(dist)).double().numpy()
    got = probe.block_lpips(lpips, feats, dist, (1, 1))
    assert got.shape == (3, 1, 1)
    np.testing.assert_allclose(got[:, 0, 0], expected, rtol=1e-5)


def test_block_lpips_splits_the_frame_where_it_differs(probe):
    lpips = get_lpips("cpu")
    ref, dist = _pair(frames=1, size=128)
    dist[..., :64] = ref[..., :64]  # the left half untouched
    with torch.inference_mode():
        feats = [lpips.features(fold_frames(ref))]
        whole = float(lpips(fold_frames(ref), fold_frames(dist)))
    blocks = probe.block_lpips(lpips, feats, dist, (2, 2))[0]
    # the damage is on the right (deep layers see past the seam, so the left is not zero)
    assert blocks[:, 1].min() > 2 * blocks[:, 0].max()
    # pooled maps keep the mean, up to the rows and columns that two blocks share (maps of 31, 15
    # and 7 positions pooled to 2)
    assert blocks.mean() == pytest.approx(whole, rel=0.1)


def test_front_drops_points_a_cheaper_one_matches(probe):
    points = [(1, 100, 0.5), (2, 200, 0.4), (3, 300, 0.45), (4, 400, 0.4), (5, 500, 0.3)]
    assert probe.front(points) == [(1, 100, 0.5), (2, 200, 0.4), (5, 500, 0.3)]


def test_map_bits_is_the_order0_code_length(probe):
    assert probe.map_bits(np.zeros((2, 3, 4), dtype=int)) == 0
    assert probe.map_bits(np.array([0, 1, 0, 1])) == pytest.approx(4.0)
    assert probe.map_bits(np.array([0, 0, 0, 1])) == pytest.approx(-3 * np.log2(0.75) - np.log2(0.25))


def test_latent_of_frames_is_the_causal_grouping(probe):
    assert probe.latent_of_frames(9, 4).tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2]


def test_mixed_latent_takes_each_blocks_bits_and_zeroes_past_its_count(probe):
    k, t, h, w = 4, 2, 4, 6
    gen = np.random.default_rng(0)
    bits = {1: gen.integers(0, 2, (k, t, h, w), dtype=np.uint8), 3: gen.integers(0, 2, (k, t, h, w), dtype=np.uint8)}
    choice = np.array([[[0, 1, 0], [1, 1, 0]], [[1, 0, 1], [0, 0, 0]]])  # [T', BY, BX] over 2 x 2 blocks
    q = probe.mixed_latent(bits, [1, 3], choice, (2, 2))
    for ti in range(t):
        for y in range(h):
            for x in range(w):
                c = choice[ti, y // 2, x // 2]
                planes = [1, 3][c]
                sign = bits[[1, 3][c]][:, ti, y, x].astype(np.float32) * 2 - 1
                np.testing.assert_array_equal(q[:planes, ti, y, x], sign[:planes])
                assert not q[planes:, ti, y, x].any()


class _HalfCoder:
    """Every bit at probability 1/2: one bit of code length each."""

    def probabilities(self, bits):
        return np.full(bits.shape, 0.5)


def test_block_code_lengths_sum_the_kept_planes_per_block(probe):
    bits = np.zeros((8, 3, 10, 15), dtype=np.uint8)
    got = probe.block_code_lengths(_HalfCoder(), bits, 5, (5, 5))
    assert got.shape == (3, 2, 3)
    np.testing.assert_allclose(got, 5 * 25)

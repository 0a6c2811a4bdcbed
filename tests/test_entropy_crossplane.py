"""Entropy format 2: the cross-plane bucket. Exact round trips and truncation with a
predictor, format 1 untouched without one, cheap commits, fitting, and model files."""

import numpy as np
import pytest

from vtoken.entropy import BitplaneCoder, CrossPlanePredictor, estimate_bits, fit_crossplane, fit_prior
from vtoken.entropy.contexts import N_BASE_CONTEXTS
from vtoken.entropy.crossplane import N_BUCKETS, SCALE, neighbour_signs
from vtoken.entropy.synthetic import smooth_bits
from vtoken.errors import ModelError, UsageError

K, T, H, W = 6, 3, 12, 20


def correlated_bits(seed, k=K, t=T, h=H, w=W):
    """Smooth bits where each plane after the first mostly repeats or flips a mix of the
    earlier ones at the same position: what an LFQ encoder's correlated channels look like."""
    rng = np.random.default_rng(seed)
    base = smooth_bits(k, t, h, w, seed=seed).astype(np.int64)
    out = base.copy()
    for j in range(1, k):
        vote = (2 * out[:j] - 1).sum(0) * (1 if j % 2 else -1)
        agree = rng.random((t, h, w)) < 0.9
        out[j] = np.where(agree, vote > 0, base[j])
    return out.astype(np.uint8)


def predictor_for(chunks, k=K):
    return fit_crossplane(chunks, k, iterations=50)


def nbytes(segments):
    return sum(len(s) for s in segments)


def test_fitted_predictor_lowers_the_rate_and_round_trips_with_cut_streams():
    train = [correlated_bits(s) for s in range(10, 16)]
    pred = predictor_for(train)
    assert pred.weight.shape == (K, K) and not np.triu(pred.weight).any()
    test = [correlated_bits(s) for s in (20, 21, 22)]
    plain = estimate_bits(test, K, fit_prior(train, K)).sum()
    crossed = estimate_bits(test, K, fit_prior(train, K, pred), predictor=pred).sum()
    assert crossed < 0.85 * plain  # 0.80 here: the planes are mostly a vote of the ones below
    prior = fit_prior(train, K, pred)
    enc, dec, cut = (BitplaneCoder(K, prior, pred) for _ in range(3))
    for i, bits in enumerate(test):
        segments = enc.encode(bits)
        keep = (K, 4, K)[i]
        enc.commit(bits, keep)
        np.testing.assert_array_equal(dec.decode(segments[:keep], (T, H, W)), bits[:keep])
        # A stream cut after 2 planes everywhere still decodes them (planes < k only).
        np.testing.assert_array_equal(cut.decode(segments[:2], (T, H, W)), bits[:2])


def test_commit_of_fewer_planes_replays_exactly():
    # The encoder keeps per-plane records instead of full copies of its counts: committing k
    # planes must leave the state a full walk of k planes leaves, byte for byte after.
    pred = predictor_for([correlated_bits(s) for s in range(30, 33)])
    first, second = correlated_bits(40), correlated_bits(41)
    for keep in (1, 3, K):
        cached, walked = BitplaneCoder(K, None, pred), BitplaneCoder(K, None, pred)
        cached.encode(first)
        cached.commit(first, keep)
        walked.commit(first, keep)  # no cached encode: walks the planes again
        assert cached.encode(second) == walked.encode(second)
        for a, b in ((cached._counts.own, walked._counts.own), (cached._counts.shared, walked._counts.shared)):
            np.testing.assert_array_equal(a, b)


def test_without_a_predictor_every_bucket_is_zero_and_a_format_1_prior_still_fits():
    bits = smooth_bits(K, T, H, W, seed=50)
    prior = fit_prior([smooth_bits(K, T, H, W, seed=s) for s in (51, 52)], K)
    assert prior[:, N_BASE_CONTEXTS:].sum() == 0 and prior.shape[1] == N_BASE_CONTEXTS * N_BUCKETS
    narrow = prior[:, :N_BASE_CONTEXTS]  # what a model of format 1 stores
    assert narrow.shape[1] == N_BASE_CONTEXTS
    assert BitplaneCoder(K, narrow).encode(bits) == BitplaneCoder(K, prior).encode(bits)


def test_neighbour_signs():
    s = np.array([[[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]]])  # one frame, 2 x 3
    assert neighbour_signs(s).tolist() == [[[-2.0, 1.0, 0.0], [0.0, -1.0, 0.0]]]


def test_bucket_arithmetic_is_exact_integer():
    weight, nweight = np.zeros((3, 3), dtype=np.int64), np.zeros((3, 3), dtype=np.int64)
    weight[1, 0], weight[2, 0], weight[2, 1] = 3 * SCALE, -SCALE // 2, 2 * SCALE + 1
    nweight[2, 0] = 3
    pred = CrossPlanePredictor(weight, np.array([-5 * SCALE, 0, -1], dtype=np.int64), nweight)
    signs = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [0, 0, 0, 0]])
    neighbours = np.array([[4.0, -4.0, 0.0, 2.0], [0, 0, 0, 0], [0, 0, 0, 0]])
    # plane 0: bias -5 logits -> the lowest bucket everywhere
    assert pred.buckets(0, signs, neighbours).tolist() == [0] * 4
    # plane 1: +-3 logits -> buckets 4 + 3 = 7 and 4 - 3 = 1 (plane 1 has no neighbour weight)
    assert pred.buckets(1, signs, neighbours).tolist() == [7, 1, 7, 1]
    # plane 2: -0.5 * s0 + (2 + 1/64) * s1 + 3/64 * n0 - 1/64, floor-divided per logit
    want = [(-32 * a + 129 * b + 3 * n - 1) // SCALE + 4 for a, b, n in zip(signs[0], signs[1], neighbours[0])]
    assert pred.buckets(2, signs, neighbours).tolist() == [min(max(v, 0), 7) for v in want]


def test_bad_predictors_are_refused():
    ok, zero = np.zeros((K, K), dtype=np.int64), np.zeros(K, dtype=np.int64)
    with pytest.raises(ModelError, match="lower triangular"):
        CrossPlanePredictor(np.eye(K, dtype=np.int64), zero, ok)
    with pytest.raises(ModelError, match="lower triangular"):
        CrossPlanePredictor(ok, zero, np.eye(K, dtype=np.int64))
    with pytest.raises(ModelError, match="expected integer"):
        CrossPlanePredictor(ok.astype(np.float32), zero, ok)
    with pytest.raises(ModelError, match="expected integer"):
        CrossPlanePredictor(ok, zero, ok[:3])
    with pytest.raises(ModelError, match="out of range"):
        big = ok.copy()
        big[1, 0] = 1 << 40
        CrossPlanePredictor(ok, zero, big)
    with pytest.raises(UsageError, match="for 6 planes"):
        BitplaneCoder(K + 1, None, CrossPlanePredictor(ok, zero, ok))


@pytest.mark.parametrize("scale", [SCALE, 1 << 20])
def test_all_planes_at_once_are_the_plane_by_plane_buckets(scale):
    """The encoder's one product (all_buckets) and the decoder's plane-by-plane scores give the
    same integers, in float32 for small weights and float64 where float32 could round; a
    stream coded by one decodes with the other."""
    rng = np.random.default_rng(scale)
    weight = np.tril(rng.integers(-scale, scale + 1, (K, K)), -1)
    nweight = np.tril(rng.integers(-scale, scale + 1, (K, K)), -1)
    bias = rng.integers(-scale, scale + 1, K)
    weight[-1, :-1] = nweight[-1, :-1] = scale  # the last plane's score reaches 25 * scale
    pred = CrossPlanePredictor(weight, bias, nweight)
    assert pred.dtype == (np.float32 if scale == SCALE else np.float64)
    bits = correlated_bits(7)
    signs = bits.reshape(K, -1).astype(pred.dtype) * 2 - 1
    neighbours = neighbour_signs(signs.reshape(bits.shape)).reshape(K, -1)
    s64, n64 = signs.astype(np.int64), neighbours.astype(np.int64)
    exact = bias[:, None] + weight @ s64 + nweight @ n64  # int64 reference
    want = np.clip(exact // SCALE + N_BUCKETS // 2, 0, N_BUCKETS - 1)
    assert np.array_equal(pred.all_buckets(signs, neighbours), want)
    assert all(np.array_equal(pred.buckets(k, signs, neighbours), want[k]) for k in range(K))
    coder = BitplaneCoder(K, None, pred)
    segments = coder.encode(bits)
    assert np.array_equal(BitplaneCoder(K, None, pred).decode(segments, bits.shape[1:]), bits)


def test_per_bit_probabilities_are_what_the_coder_codes_with():
    # Each bit's probability, in coding context, gives the coder's own estimate of the chunk
    # (with the predictor, across a chunk that continues the previous one), and a bit the
    # coder finds likely gets a probability near its value.
    chunks = [correlated_bits(s) for s in range(3)]
    coder = BitplaneCoder(K, predictor=predictor_for(chunks[:2]))
    coder.commit(chunks[0], K)
    p1 = coder.probabilities(chunks[1])
    assert p1.shape == chunks[1].shape and 0 < p1.min() and p1.max() < 1
    ideal = -np.log2(np.where(chunks[1] == 1, p1, 1 - p1)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(ideal, coder.estimate(chunks[1]), rtol=1e-9)
    assert (np.where(chunks[1] == 1, p1, 1 - p1) > 0.5).mean() > 0.7

"""The encoder's hysteresis (vtoken.codec.hold): which bits it holds, where it looks for the
previous value, and what it does at chunk and key boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from vtoken.codec.hold import BitHold
from vtoken.entropy import motion as mo

W = 0.5  # a previous-value weight for the tests of that rule (the encoder's default is 0)


def _latents(rng, k=6, t=3, h=16, w=24, scale=2.0):
    return rng.normal(0, scale, (k, t, h, w)).astype(np.float32)


def test_threshold_zero_codes_the_models_signs():
    z = _latents(np.random.default_rng(0))
    assert np.array_equal(BitHold(0).bits(z, key=True), (z >= 0).astype(np.uint8))
    with pytest.raises(ValueError, match="hold threshold"):
        BitHold(-0.1)
    with pytest.raises(ValueError, match="hold threshold"):
        BitHold(float("nan"))
    with pytest.raises(ValueError, match="prev_weight"):
        BitHold(0.3, -1.0)


def test_a_still_scenes_near_zero_flips_are_held_and_real_changes_are_not():
    rng = np.random.default_rng(1)
    z = _latents(rng, t=1)
    noisy = z + rng.normal(0, 0.3, z.shape).astype(np.float32)  # the same scene, noise on top
    changed = -z  # every sign changes, by as much as the scene's values
    stream = np.concatenate([z, noisy, changed], axis=1)
    bits = BitHold(0.5).bits(stream, key=True)
    own = (stream >= 0).astype(np.uint8)
    assert np.array_equal(bits[:, 0], own[:, 0])  # a key frame is coded as the model gives it
    small = np.abs(noisy[:, 0]) < 0.5
    assert small.mean() > 0.1 and (own[:, 1] != own[:, 0])[small].any()  # the case is exercised
    assert np.array_equal(bits[:, 1][small], bits[:, 0][small])  # near zero: the previous bit
    assert np.array_equal(bits[:, 1][~small], own[:, 1][~small])  # beyond it: the model's own
    small = np.abs(changed[:, 0]) < 0.5
    assert np.array_equal(bits[:, 2][~small], own[:, 2][~small])
    # every sign changed: the motion search matches some shift, and near zero that is what is held
    cost = sum(mo.block_sums(mo.mismatch(own[p, 2], bits[p, 1])) for p in range(mo.MOTION_PLANES))
    moved = mo.compensate(bits[:, 1], mo.gather_index(mo.best_field(cost), *z.shape[2:]))
    assert np.array_equal(bits[:, 2][small], moved[small])
    flips = lambda b: (b[:, 1] != b[:, 0]).mean()  # noqa: E731
    assert flips(bits) < flips(own)


def test_the_previous_bit_comes_from_where_the_coders_motion_search_points():
    """A pan of (1, 2) latent positions: the first planes (large values) show the motion, the
    others are near zero and take the bit the pan brings, not the co-located one."""
    rng = np.random.default_rng(2)
    k, h, w = 6, 16, 24
    scene = rng.normal(0, 2.0, (k, h + 4, w + 4)).astype(np.float32)
    scene[mo.MOTION_PLANES:] = np.where(scene[mo.MOTION_PLANES:] >= 0, 1.0, -1.0)
    prev, cur = scene[:, 2:-2, 2:-2], scene[:, 1:-3, 0:-4].copy()  # cur[y, x] = prev[y - 1, x - 2]
    cur[mo.MOTION_PLANES:] = rng.uniform(-0.1, 0.1, cur[mo.MOTION_PLANES:].shape)  # unsure: to be held
    bits = BitHold(0.2).bits(np.stack([prev, cur], axis=1), key=True)
    moved = bits[mo.MOTION_PLANES:, 0, :-1, :-2]  # the previous frame where the pan came from
    assert np.array_equal(bits[mo.MOTION_PLANES:, 1, 1:, 2:], moved)
    colocated = bits[mo.MOTION_PLANES:, 0, 1:, 2:]
    assert not np.array_equal(moved, colocated)  # the test tells the two apart


def _a_key_chunk_then_an_unsure_frame(rng):
    """(hold, the last latent frame it gave, a next frame whose motion planes repeat that frame
    firmly, so the search finds no motion, and whose other planes are all within 0.05 of zero)."""
    hold = BitHold(0.1)
    last = hold.bits(_latents(rng, t=2), key=True)[:, -1]
    unsure = rng.uniform(-0.05, 0.05, (6, 1, 16, 24)).astype(np.float32)
    unsure[: mo.MOTION_PLANES, 0] = (last[: mo.MOTION_PLANES] * 2.0 - 1) * 10
    return hold, last, unsure


def test_the_state_crosses_chunks_and_a_key_chunk_resets_it():
    rng = np.random.default_rng(3)
    hold, last, unsure = _a_key_chunk_then_an_unsure_frame(rng)
    assert np.array_equal(hold.bits(unsure, key=False)[:, 0], last)  # continues the stream
    assert np.array_equal(hold.bits(unsure, key=True)[:, 0], (unsure[:, 0] >= 0).astype(np.uint8))
    other_size = rng.uniform(-0.05, 0.05, (6, 1, 8, 8)).astype(np.float32)
    assert np.array_equal(hold.bits(other_size, key=False)[:, 0], (other_size[:, 0] >= 0).astype(np.uint8))


def test_the_threshold_falls_above_full_planes():
    """Up to FULL_PLANES kept planes the threshold applies in full; at 4x as many a quarter."""
    from vtoken.codec.hold import FULL_PLANES

    rng = np.random.default_rng(4)
    z = _latents(rng, t=1)
    z = np.concatenate([z, z + rng.normal(0, 0.3, z.shape).astype(np.float32)], axis=1)
    held = lambda planes, threshold=0.4: BitHold(threshold).bits(z, key=True, planes=planes)  # noqa: E731
    assert np.array_equal(held(FULL_PLANES), held(1)) and np.array_equal(held(None), held(z.shape[0]))
    assert np.array_equal(held(4 * FULL_PLANES), BitHold(0.1).bits(z, key=True))
    assert not np.array_equal(held(4 * FULL_PLANES), held(FULL_PLANES))


def test_a_trial_leaves_the_state_and_only_sent_planes_are_held_across_chunks():
    rng = np.random.default_rng(5)
    hold, last, unsure = _a_key_chunk_then_an_unsure_frame(rng)
    hold.bits(_latents(rng, t=2), key=True, commit=False)  # a trial of something else entirely
    own = (unsure[:, 0] >= 0).astype(np.uint8)
    hold.sent(4)  # the previous chunk went out with 4 planes: the decoder has no planes 4-5 of it
    got = hold.bits(unsure, key=False)[:, 0]
    assert np.array_equal(got[:4], last[:4]) and np.array_equal(got[4:], own[4:])
    with pytest.raises(ValueError, match="finite"):
        BitHold(float("inf"))


def test_with_a_previous_weight_bits_unsure_in_both_frames_are_held_and_firm_ones_are_sent():
    """With prev_weight W, held where abs(z) + W * abs(previous z) < threshold: sign noise of
    a still scene is held, a firm value that only just crosses zero is sent, and a bit held
    against its sign counts as unsure when the next frame looks back at it."""
    rng = np.random.default_rng(1)
    z = _latents(rng, t=1)
    noisy = z + rng.normal(0, 0.3, z.shape).astype(np.float32)  # the same scene, noise on top
    z[4, 0, 0], noisy[4, 0, 0] = 1.6, -0.3  # a row of firm values that only just cross zero
    changed = -z  # every sign changes, by as much as the scene's values
    stream = np.concatenate([z, noisy, changed], axis=1)
    tau = 1.0
    bits = BitHold(tau, W).bits(stream, key=True)
    own = (stream >= 0).astype(np.uint8)
    assert np.array_equal(bits[:, 0], own[:, 0])  # a key frame is coded as the model gives it
    unsure = np.abs(noisy[:, 0]) + W * np.abs(z[:, 0]) < tau
    assert unsure.mean() > 0.05 and (own[:, 1] != own[:, 0])[unsure].any()  # the case is exercised
    assert np.array_equal(bits[:, 1][unsure], bits[:, 0][unsure])  # unsure twice: the previous bit
    assert np.array_equal(bits[:, 1][~unsure], own[:, 1][~unsure])  # otherwise the model's own
    firm_before = (np.abs(noisy[:, 0]) < tau) & ~unsure & (own[:, 1] != own[:, 0])
    assert firm_before[4, 0].all()  # near zero now, firm before: sent, though abs(z) alone would hold it
    # The last frame looks back at the sent bits: a bit held against its sign counts as 0.
    cost = sum(mo.block_sums(mo.mismatch(own[p, 2], bits[p, 1])) for p in range(mo.MOTION_PLANES))
    index = mo.gather_index(mo.best_field(cost), *z.shape[2:])
    before = np.where(bits[:, 1] != own[:, 1], 0.0, np.abs(noisy[:, 0]))
    unsure = np.abs(changed[:, 0]) + W * mo.compensate(before, index) < tau
    assert unsure.any() and (bits[:, 1] != own[:, 1]).any()
    assert np.array_equal(bits[:, 2][unsure], mo.compensate(bits[:, 1], index)[unsure])
    assert np.array_equal(bits[:, 2][~unsure], own[:, 2][~unsure])
    flips = lambda b: (b[:, 1] != b[:, 0]).mean()  # noqa: E731
    assert flips(bits) < flips(own)


def test_the_previous_chunks_last_values_count_across_the_boundary():
    """With prev_weight W the next chunk's first latent frame weighs the last frame of the
    chunk before it: a bit that was firm there is sent when it only just flips, one that was
    unsure is held."""
    rng = np.random.default_rng(6)
    motion = np.where(rng.normal(size=(mo.MOTION_PLANES, 1, 16, 24)) >= 0, 10.0, -10.0).astype(np.float32)
    rest = np.where(rng.normal(size=(3, 1, 16, 24)) >= 0, 1.0, -1.0).astype(np.float32)
    for size, held in ((3.0, False), (0.2, True)):
        hold = BitHold(1.0, W)
        first = hold.bits(np.concatenate([motion, rest * size]), key=True)
        nxt = hold.bits(np.concatenate([motion, -0.05 * rest]), key=False)
        assert np.array_equal(nxt[mo.MOTION_PLANES:] == first[mo.MOTION_PLANES:], np.full((3, 1, 16, 24), held))

"""benchmarks/plane_map_prefix_probe.py: a map found on the first latent frames, given to the
whole chunk, takes each block's bits from its own count's stream."""

from __future__ import annotations

import numpy as np
from scripts import load_benchmark

from vtoken.codec.hold import BitHold


def test_mapped_chunk_takes_each_blocks_bits_from_its_count():
    probe = load_benchmark("plane_map_prefix_probe")
    rng = np.random.default_rng(0)
    z = rng.normal(scale=0.4, size=(16, 3, 7, 9)).astype(np.float32)
    counts = np.array([[2, 16], [4, 8]], np.uint8)  # blocks of 5: the last row and column cut at 7 x 9
    held = BitHold(0.5)
    bits, limit = probe.mapped_chunk(held, z, counts, 5)
    assert limit.shape == (3, 7, 9) and (limit[:, :5, :5] == 2).all() and (limit[:, 5:, 5:] == 8).all()
    for (rows, cols), c in [((slice(0, 5), slice(5, 9)), 16), ((slice(5, 7), slice(0, 5)), 4)]:
        want = held.bits(z, True, c, commit=False)[:, :, rows, cols]
        np.testing.assert_array_equal(bits[:, :, rows, cols], want)
    # the hysteresis is weaker above 8 planes: the 16-plane block holds fewer bits than a 2-plane one would
    assert not np.array_equal(held.bits(z, True, 16, commit=False), held.bits(z, True, 2, commit=False))

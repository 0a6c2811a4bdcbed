"""Property test: any small shape, content mix, key pattern and kept-plane pattern round-trips."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vtoken.entropy import BitplaneCoder


@st.composite
def streams(draw):
    k = draw(st.integers(1, 4))
    t = draw(st.integers(1, 3))
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 4))
    rng = np.random.default_rng(seed)
    chunks = []
    for _ in range(n):
        kind = draw(st.sampled_from(["random", "static", "zeros", "biased"]))
        if kind == "random":
            bits = rng.integers(0, 2, (k, t, h, w))
        elif kind == "static":
            bits = np.repeat(rng.integers(0, 2, (k, 1, h, w)), t, axis=1)
        elif kind == "zeros":
            bits = np.zeros((k, t, h, w))
        else:
            bits = rng.random((k, t, h, w)) < 0.03
        chunks.append((bits.astype(np.uint8), draw(st.booleans()), draw(st.integers(0, k))))
    return k, chunks


@settings(max_examples=60, deadline=None)
@given(streams())
def test_any_stream_round_trips(case):
    k, chunks = case
    enc, dec = BitplaneCoder(k), BitplaneCoder(k)
    for bits, key, keep in chunks:
        if key:
            enc.reset()
            dec.reset()
        segments = enc.encode(bits)
        enc.commit(bits, keep)
        np.testing.assert_array_equal(dec.decode(segments[:keep], bits.shape[1:]), bits[:keep])

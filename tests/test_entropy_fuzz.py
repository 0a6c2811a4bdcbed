"""Property test: any small shape, content mix, key pattern and kept-plane pattern round-trips,
and so does the same stream cut after a fixed number of planes in every chunk."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vtoken.entropy import BitplaneCoder


@st.composite
def streams(draw):
    k = draw(st.integers(1, 4))
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 4))
    rng = np.random.default_rng(seed)
    chunks = []
    for _ in range(n):
        t = draw(st.integers(1, 3))
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
    return k, draw(st.integers(0, k)), chunks


@settings(max_examples=80, deadline=None)
@given(streams())
def test_any_stream_round_trips(case):
    k, cut, chunks = case
    enc, dec, cut_dec = BitplaneCoder(k), BitplaneCoder(k), BitplaneCoder(k)
    for bits, key, keep in chunks:
        if key:
            enc.reset()
            dec.reset()
            cut_dec.reset()
        segments = enc.encode(bits)
        enc.commit(bits, keep)
        np.testing.assert_array_equal(dec.decode(segments[:keep], bits.shape[1:]), bits[:keep])
        # a file cut after `cut` planes of every chunk (after writing) still decodes them
        c = min(cut, keep)
        np.testing.assert_array_equal(cut_dec.decode(segments[:c], bits.shape[1:]), bits[:c])

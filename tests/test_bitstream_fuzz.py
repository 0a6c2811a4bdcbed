"""Short fuzz of the .mvt reader; the long run is benchmarks/fuzz_container.py, whose mutation
and parsing code this reuses. Mutated files may only raise vtoken errors, and fast."""

import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from vtoken.errors import VtokenError

from scripts import load_benchmark

fuzz = load_benchmark("fuzz_container")

BASES = fuzz.base_streams()
REGIONS = [fuzz.crc_regions(b) for b in BASES]


def test_crc_regions_rebuild_valid_streams_exactly():
    for data, regions in zip(BASES, REGIONS):
        b = bytearray(data)
        for start, end, at in regions:
            b[at:at + 4] = b"\0\0\0\0"
        fuzz.fix_crcs(b, regions)
        assert bytes(b) == data


def test_unmutated_streams_parse_cleanly():
    for data in BASES:
        assert fuzz.exercise(data, tolerant=False)[0] == "opened clean"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_mutated_files_raise_only_vtoken_errors_and_fast(seed):
    rng = random.Random(seed)
    which = rng.randrange(len(BASES))
    data, kinds = fuzz.mutate(rng, BASES[which], REGIONS[which])
    t = time.perf_counter()
    try:
        fuzz.exercise(data, tolerant=rng.random() < 0.5)
    except VtokenError:
        pass
    assert time.perf_counter() - t < fuzz.SLOW_S, kinds


def test_a_100_byte_file_cannot_claim_much():
    # Every 100-byte prefix-preserving corruption of a tiny stream parses in milliseconds.
    data = BASES[2][:100]
    for pos in range(len(data)):
        b = bytearray(data)
        b[pos] ^= 0xFF
        t = time.perf_counter()
        try:
            fuzz.exercise(bytes(b), tolerant=True)
        except VtokenError:
            pass
        assert time.perf_counter() - t < 0.05

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


STRUCTURED = fuzz.structured_module()
PARTS = [STRUCTURED.parts(b) for b in BASES]


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_structure_aware_mutations_raise_only_vtoken_errors_and_fast(seed):
    # Issue 11: fields at their limits, empty/oversized segments, records out of order, with
    # every CRC valid, so the checks behind the CRCs are reached.
    rng = random.Random(seed)
    data, kind = STRUCTURED.mutate(rng, PARTS[rng.randrange(len(PARTS))])
    t = time.perf_counter()
    try:
        fuzz.exercise(data, tolerant=rng.random() < 0.5)
    except VtokenError:
        pass
    assert time.perf_counter() - t < fuzz.SLOW_S, kind


def test_structure_aware_mutations_reach_every_kind_and_past_the_crcs():
    rng = random.Random(5)
    kinds, opened = set(), 0
    for _ in range(600):
        data, kind = STRUCTURED.mutate(rng, PARTS[rng.randrange(len(PARTS))])
        kinds.add(kind.split(":")[0].split("@")[0])
        try:
            fuzz.exercise(data, tolerant=True)
            opened += 1
        except VtokenError:
            pass
    assert kinds >= {"header-field", "chunk-field", "empty-segments", "no-segments", "oversized-segment",
                     "long-descriptor", "extra-segments", "order", "index", "audio", "cut", "key"}
    assert opened > 300  # most files get past the header: the deeper checks are exercised

"""Long fuzz of the .mvt reader (hostile input must end in vtoken's own errors): mutate valid streams, parse each one the way a
decoder would, and count outcomes. Only vtoken.errors types may escape; any other exception
is a bug and is printed with its seed. Half of the in-place mutations get their CRCs
recomputed afterwards, so the limit checks behind the CRCs are exercised too.

    python benchmarks/fuzz_container.py --files 100000 [--seed 0] [--out results.txt]
    python benchmarks/fuzz_container.py --files 100000 --structured --memory   # issue 11

`--structured` uses benchmarks/fuzz_structured.py's structure-aware mutations (every header
field at its limits, empty and oversized segments, records out of order, all CRCs valid);
`--memory` records each file's peak Python allocation (tracemalloc) and reports the largest.

tests/test_bitstream_fuzz.py imports this file for its short version.
"""

from __future__ import annotations

import argparse
import collections
import io
import random
import sys
import time
import traceback
import zlib

from vtoken.bitstream import Chunk, MvtReader, MvtWriter, StreamHeader, truncate_planes
from vtoken.bitstream.records import CHUNK_FIXED, FOOTER, RECORD_HEAD, SEGMENT_DESC
from vtoken.errors import CorruptChunkError, VtokenError

SLOW_S = 0.5  # a parse slower than this counts as a failure


def _stream(audio: bool, plan: list[tuple[int, int]], **header) -> bytes:
    buf = io.BytesIO()
    h = StreamHeader("fuzz-模型", bytes(range(32)), 64, 48, 25, 1,
                     sum(n for n, _ in plan), extra={"a": [1, 2], "s": "x"}, **header)
    with MvtWriter(buf, h) as w:
        if audio:
            w.write_audio(b"pcm-data" * 5, "pcm_s16le 48000")
        first = 0
        for i, (n, p) in enumerate(plan):
            w.write_chunk(Chunk(i, first, n, i % 2 == 0, (5, 6, 8), 18,
                                [bytes([i, k]) * (k + 2) for k in range(p)]))
            first += n
    return buf.getvalue()


def base_streams() -> list[bytes]:
    return [
        _stream(False, [(17, 3), (13, 2)]),
        _stream(True, [(17, 4), (17, 0), (5, 1)]),
        _stream(True, []),
        _stream(False, [(17, 18)] * 3 + [(1, 2)], key_interval=3),
    ]


def crc_regions(data: bytes) -> list[tuple[int, int, int]]:
    """(start, end, crc_offset) of every CRC in a valid stream, in the order to recompute
    them (a segment's CRC lives inside its chunk header, so segments come first)."""
    r = MvtReader(io.BytesIO(data))
    hs = r.header_size
    regions = [(0, hs - 4, hs - 4)]
    offsets = [e.offset for e in r.entries]
    if r.audio_offset:
        offsets.append(r.audio_offset)
    index_offset = int.from_bytes(data[-FOOTER.size:-FOOTER.size + 8], "little")
    for off in offsets + [index_offset]:
        regions.append((off, off + 16, off + 16))
        length = int.from_bytes(data[off + 8:off + 16], "little")
        body = off + RECORD_HEAD.size
        if off in offsets[:len(r.entries)]:
            nseg = data[body + 18]
            head_end = body + CHUNK_FIXED.size + nseg * SEGMENT_DESC.size
            pos = head_end + 4
            for k in range(nseg):
                desc = body + CHUNK_FIXED.size + k * SEGMENT_DESC.size
                n = int.from_bytes(data[desc:desc + 4], "little")
                regions.append((pos, pos + n, desc + 8))
                pos += n
            regions.append((body, head_end, head_end))
        else:
            regions.append((body, body + length - 4, body + length - 4))
    end = len(data)
    regions.append((end - FOOTER.size, end - FOOTER.size + 12, end - FOOTER.size + 12))
    return regions


def fix_crcs(b: bytearray, regions) -> None:
    for start, end, at in regions:
        if at + 4 <= len(b):
            b[at:at + 4] = (zlib.crc32(b[start:end]) & 0xFFFFFFFF).to_bytes(4, "little")


EXTREMES = [0, 1, 2, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 63, (1 << 64) - 1]


def mutate(rng: random.Random, data: bytes, regions) -> tuple[bytes, str]:
    b = bytearray(data)
    in_place = True
    kinds = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["flip", "byte", "field", "field", "cut", "insert", "delete", "dup"])
        kinds.append(kind)
        pos = rng.randrange(len(b) + 1)
        if kind == "flip" and pos < len(b):
            b[pos] ^= 1 << rng.randrange(8)
        elif kind == "byte" and pos < len(b):
            b[pos] = rng.randrange(256)
        elif kind == "field":
            width = rng.choice([1, 2, 4, 8])
            value = rng.choice(EXTREMES) % (1 << (8 * width))
            b[pos:pos + width] = value.to_bytes(width, "little")[:max(0, len(b) - pos)]
        elif kind == "cut":
            del b[pos:]
            in_place = False
        elif kind == "insert":
            b[pos:pos] = rng.randbytes(rng.randint(1, 40))
            in_place = False
        elif kind == "delete":
            del b[pos:pos + rng.randint(1, 40)]
            in_place = False
        elif kind == "dup":
            span = b[pos:pos + rng.randint(1, 200)]
            b[rng.randrange(len(b) + 1):0] = span
            in_place = False
    if in_place and rng.random() < 0.5:
        fix_crcs(b, regions)
        kinds.append("crc-fixed")
    return bytes(b), "+".join(kinds)


def exercise(data: bytes, tolerant: bool) -> tuple[str, int, int]:
    """Parse like a decoder. Returns (open outcome, chunks read, chunks refused); vtoken
    errors from opening propagate."""
    r = MvtReader(io.BytesIO(data), tolerant=tolerant)
    good = bad = 0
    for i in range(len(r.entries)):
        try:
            r.read_chunk(i)
            r.key_chunk_before(i)
            good += 1
        except CorruptChunkError:
            bad += 1
    if r.frame_count:
        r.chunk_for_frame(r.frame_count - 1)
    try:
        r.audio()
    except CorruptChunkError:
        bad += 1
    if r.index_used and not bad:
        truncate_planes(io.BytesIO(data), io.BytesIO(), 1)
    return ("opened with warnings" if r.warnings else "opened clean"), good, bad


def run_one(data: bytes, tolerant: bool) -> tuple[str, int, int]:
    try:
        return exercise(data, tolerant)
    except VtokenError as e:
        return type(e).__name__, 0, 0


def structured_module():
    """benchmarks/fuzz_structured.py, loaded by path (benchmarks/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent / "fuzz_structured.py"
    spec = importlib.util.spec_from_file_location("fuzz_structured", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_structured", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _file(args, n: int, bases, regions, split, structured):
    """File number `n` of a run with these arguments: (data, kinds, tolerant)."""
    rng = random.Random(args.seed * 1_000_003 + n)
    which = rng.randrange(len(bases))
    data, kinds = structured.mutate(rng, split[which]) if structured else mutate(rng, bases[which], regions[which])
    return data, kinds, rng.random() < 0.5


def _retime(args) -> int:
    """Best of three parses of each listed file: tells a slow file from a stalled machine."""
    bases = base_streams()
    regions = [crc_regions(b) for b in bases]
    structured = structured_module() if args.structured else None
    split = [structured.parts(b) for b in bases] if structured else None
    slow = 0
    for n in (int(v) for v in args.only.split(",") if v.strip()):
        data, kinds, tolerant = _file(args, n, bases, regions, split, structured)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            run_one(data, tolerant)
            best = min(best, time.perf_counter() - t)
        slow += best > SLOW_S
        print(f"n={n} {kinds} ({len(data)} bytes, tolerant={tolerant}): best of 3 {best * 1e3:.2f} ms")
    return 1 if slow else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--structured", action="store_true", help="structure-aware mutations (fuzz_structured.py)")
    ap.add_argument("--memory", action="store_true", help="measure each file's peak Python allocation")
    ap.add_argument("--only", help="re-time only these file numbers (comma list, e.g. the SLOW ones of a run)")
    ap.add_argument("--out", help="also write the summary to this file")
    args = ap.parse_args(argv)
    if args.only:
        return _retime(args)

    bases = base_streams()
    regions = [crc_regions(b) for b in bases]
    structured = structured_module() if args.structured else None
    split = [structured.parts(b) for b in bases] if structured else None
    if args.memory:
        import tracemalloc

        tracemalloc.start()
    outcomes, kinds_seen = collections.Counter(), collections.Counter()
    chunks_ok = chunks_refused = failures = slow = stalls = 0
    worst, worst_kind, peak, peak_kind = 0.0, "", 0, ""
    t0 = time.perf_counter()
    for n in range(args.files):
        data, kinds, tolerant = _file(args, n, bases, regions, split, structured)
        if structured:
            kinds_seen[kinds.split(":")[0].split("@")[0]] += 1
        if args.memory:
            tracemalloc.reset_peak()
            base_mem = tracemalloc.get_traced_memory()[0]
        t = time.perf_counter()
        try:
            outcome, good, bad = run_one(data, tolerant)
        except Exception:  # noqa: BLE001 - anything here is a finding to report
            failures += 1
            print(f"FAIL seed={args.seed} n={n} ({kinds}):", file=sys.stderr)
            traceback.print_exc()
            continue
        dt = time.perf_counter() - t
        if args.memory:
            used = tracemalloc.get_traced_memory()[1] - base_mem
            if used > peak:
                peak, peak_kind = used, f"n={n} {kinds} ({len(data)} bytes)"
        if dt > SLOW_S:
            # On a shared machine a parse can stall for CPU: a slow file counts only if a
            # second parse of it is slow too.
            t = time.perf_counter()
            run_one(data, tolerant)
            again = time.perf_counter() - t
            if again > SLOW_S:
                slow += 1
                print(f"SLOW {dt:.2f}s then {again:.2f}s seed={args.seed} n={n} ({kinds})", file=sys.stderr)
            else:
                stalls += 1
                dt = again
        if dt > worst:
            worst, worst_kind = dt, f"n={n} {kinds} ({len(data)} bytes)"
        outcomes[outcome] += 1
        chunks_ok += good
        chunks_refused += bad
    elapsed = time.perf_counter() - t0
    lines = [
        f"fuzz_container: {args.files} {'structure-aware ' if structured else ''}mutated .mvt files, seed {args.seed}, "
        f"{elapsed:.1f} s ({elapsed / max(args.files, 1) * 1e6:.0f} us/file, "
        f"slowest {worst * 1e3:.1f} ms: {worst_kind})",
        f"non-vtoken exceptions: {failures}; parses over {SLOW_S} s: {slow} "
        f"(and {stalls} that took under {SLOW_S} s when parsed again: CPU contention)",
    ]
    if args.memory:
        lines.append(f"largest peak Python allocation per file: {peak / 1024:.0f} KiB ({peak_kind})")
    if kinds_seen:
        lines.append("mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds_seen.items())))
    lines += [
        "outcome per file (the error that ended its parse, or how it opened):",
        *(f"  {k:<26} {v}" for k, v in outcomes.most_common()),
        f"chunk/audio reads: {chunks_ok} ok, {chunks_refused} refused (CorruptChunkError)",
        f"python {sys.version.split()[0]}",
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    return 1 if failures or slow else 0


if __name__ == "__main__":
    sys.exit(main())

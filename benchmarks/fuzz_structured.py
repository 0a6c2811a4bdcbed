"""Structure-aware .mvt mutations (issue 11), shared by fuzz_container.py and fuzz_decoder.py.

Byte-level mutations rarely get past the CRCs to the checks behind them; these rebuild the
file from its parts with every CRC valid, so each case reaches the code it aims at:

* header-field: one header field at a limit (0, 1, the spec's bound, bound + 1, the field's
  maximum), packed raw (the writer would refuse most of them);
* chunk-field: one chunk-header field at a limit (index, first frame, frame count, flags,
  planes coded, T' H' W', symbol count);
* empty / none / oversized / extra segments: every segment b"", no segment, one segment of
  up to 64 KiB of noise, a descriptor claiming more bytes than the file holds, more segments
  than planes;
* order: records swapped, duplicated, dropped, reversed; audio moved, doubled or placed after
  the index; chunk 0 not a key chunk;
* index / footer: one entry or footer field at a limit, CRCs recomputed;
* audio: description and length fields at their limits, junk data with a valid CRC;
* cut: the file cut at a record boundary or inside the header.

`parts(data)` splits a valid stream; `mutate(rng, parts)` returns (bytes, kind).
"""

from __future__ import annotations

import dataclasses
import io
import random

from vtoken.bitstream import Chunk, MvtReader
from vtoken.bitstream.records import (
    CHUNK_FIXED,
    FLAG_KEY,
    FOOTER,
    HEADER_FIXED,
    INDEX_ENTRY,
    INDEX_FIXED,
    REC_AUDIO,
    REC_CHUNK,
    REC_INDEX,
    RECORD_HEAD,
    SEGMENT_DESC,
    U16,
    U32,
    U64,
    ChunkEntry,
    crc32,
    pack_audio,
    pack_chunk,
    pack_footer,
    pack_header,
    pack_index,
    pack_record,
)

# Per header field: (bits of its field, the spec's bounds) -> values at and beyond them.
HEADER_LIMITS = {
    "width": (32, [0, 1, 16384, 16385]), "height": (32, [0, 1, 16384, 16385]),
    "fps_num": (32, [0, 1, 0x7FFFFFFF, 0x80000000]), "fps_den": (32, [0, 1, 0x7FFFFFFF, 0x80000000]),
    "frame_count": (64, [0, 1, 100_000_000, 100_000_001]),
    "color_primaries": (8, [0, 2, 255]), "color_transfer": (8, [0, 2, 255]), "color_matrix": (8, [0, 255]),
    "color_range": (8, [0, 1, 2, 3, 255]), "bits": (8, [0, 1, 64, 127, 128, 129, 255]),
    "spatial_factor": (8, [0, 1, 64, 65]), "temporal_factor": (8, [0, 1, 2, 64, 65]),
    "frames_per_chunk": (16, [0, 1, 5, 1025, 1026, 1029]), "key_interval": (32, [0, 1]),
    "entropy_version": (16, [0, 2]),
}
CHUNK_FIELDS = ["index", "first_frame", "frame_count", "key", "planes_coded", "t", "h", "w", "symbols"]


@dataclasses.dataclass
class Parts:
    header: object
    chunks: list
    audio: tuple | None


def parts(data: bytes) -> Parts:
    r = MvtReader(io.BytesIO(data))
    return Parts(r.header, [r.read_chunk(i) for i in range(len(r.entries))], r.audio())


def _mask(value: int, bits: int) -> int:
    return value & ((1 << bits) - 1)


def _edge(rng: random.Random, bits: int) -> int:
    top = (1 << bits) - 1
    return rng.choice([0, 1, 2, top, top - 1, top >> 1, (top >> 1) + 1])


def _raw_chunk(c: Chunk, **raw) -> bytes:
    """pack_chunk, with any CHUNK_FIXED field or symbol count replaced (no validation)."""
    t, h, w = c.latent_shape
    fields = dict(index=c.index, first_frame=c.first_frame, frame_count=c.frame_count,
                  flags=FLAG_KEY if c.key else 0, planes_coded=c.planes_coded, nseg=len(c.segments), t=t, h=h, w=w)
    symbols = raw.pop("symbols", None)
    lengths = raw.pop("lengths", None)
    fields.update(raw)
    head = CHUNK_FIXED.pack(*(fields[k] for k in ("index", "first_frame", "frame_count", "flags", "planes_coded",
                                                  "nseg", "t", "h", "w")))
    n = t * h * w
    for k, s in enumerate(c.segments):
        length = len(s) if lengths is None else lengths[k]
        head += SEGMENT_DESC.pack(_mask(length, 32), _mask(n if symbols is None else symbols, 32), crc32(s))
    return head + U32.pack(crc32(head)) + b"".join(c.segments)


def _assemble(header_bytes: bytes, records: list[tuple[int, bytes, Chunk | None]], index: str = "auto",
              rng: random.Random | None = None) -> bytes:
    """Header, records, then an index of the chunk records as written and a footer.
    `index`: auto, none (no index/footer: a cut stream), or edit (one entry at a limit)."""
    out = bytearray(header_bytes)
    entries, audio_at, frames = [], 0, 0
    for rtype, payload, chunk in records:
        if rtype == REC_CHUNK and chunk is not None:
            entries.append(ChunkEntry(len(entries), len(out), chunk.first_frame, chunk.frame_count, chunk.key,
                                      len(chunk.segments), chunk.planes_coded))
            frames += chunk.frame_count
        elif rtype == REC_AUDIO and not audio_at:
            audio_at = len(out)
        out += pack_record(rtype, payload)
    if index == "none":
        return bytes(out)
    at = len(out)
    body = bytearray(pack_index(entries, frames, audio_at))
    if index == "edit" and rng is not None:
        if entries and rng.random() < 0.7:
            k = rng.randrange(len(entries))
            base = INDEX_FIXED.size + k * INDEX_ENTRY.size
            widths = [(0, 8), (8, 8), (16, 4), (20, 4), (24, 1), (25, 1), (26, 1)]
            off, width = rng.choice(widths)
            body[base + off:base + off + width] = _edge(rng, 8 * width).to_bytes(width, "little")
        else:
            off, width = rng.choice([(0, 4), (8, 8), (16, 8)])
            body[off:off + width] = _edge(rng, 8 * width).to_bytes(width, "little")
        body[-4:] = U32.pack(crc32(bytes(body[:-4])))
    out += pack_record(REC_INDEX, bytes(body))
    footer = bytearray(pack_footer(at, len(entries)))
    if index == "edit" and rng is not None and rng.random() < 0.3:
        off, width = rng.choice([(0, 8), (8, 4)])
        footer[off:off + width] = _edge(rng, 8 * width).to_bytes(width, "little")
        footer[12:16] = U32.pack(crc32(bytes(footer[:12])))
    return bytes(out + footer)


def _header_bytes(h, field: str | None = None, value: int | None = None) -> bytes:
    if field is None:
        return pack_header(h)
    raw = pack_header(h)
    # Patch the fixed block in place (pack_header would not overflow-check, struct would).
    name_len = U16.unpack_from(raw, 16)[0]
    fixed_at = 16 + 2 + name_len + 32
    order = ["width", "height", "fps_num", "fps_den", "frame_count", "color_primaries", "color_transfer",
             "color_matrix", "color_range", "bits", "spatial_factor", "temporal_factor", None,
             "frames_per_chunk", "key_interval", "entropy_version"]
    fmt = "IIIIQBBBBBBBxHIH"
    offsets, pos = {}, 0
    codes = [c for c in fmt]
    sizes = {"I": 4, "Q": 8, "B": 1, "H": 2, "x": 1}
    for name, code in zip(order, codes):
        offsets[name] = (pos, sizes[code])
        pos += sizes[code]
    assert pos == HEADER_FIXED.size
    off, width = offsets[field]
    b = bytearray(raw)
    b[fixed_at + off:fixed_at + off + width] = _mask(value, 8 * width).to_bytes(width, "little")
    b[-4:] = U32.pack(crc32(bytes(b[:-4])))
    return bytes(b)


def mutate(rng: random.Random, p: Parts) -> tuple[bytes, str]:
    """One structure-aware mutation of the stream `p` (see the module docstring)."""
    h, chunks, audio = p.header, list(p.chunks), p.audio
    kind = rng.choice(["header-field", "header-field", "chunk-field", "chunk-field", "empty-segments",
                       "no-segments", "oversized-segment", "long-descriptor", "extra-segments", "order",
                       "order", "index", "audio", "cut", "key"])
    header = pack_header(h)
    records: list[tuple[int, bytes, Chunk | None]] = []
    if audio is not None:
        records.append((REC_AUDIO, pack_audio(*audio), None))
    records += [(REC_CHUNK, pack_chunk(c), c) for c in chunks]
    index = "auto"
    label = kind
    if kind == "header-field":
        field = rng.choice(list(HEADER_LIMITS))
        bits, values = HEADER_LIMITS[field]
        value = rng.choice(values + [_edge(rng, bits)])
        header = _header_bytes(h, field, value)
        label = f"{kind}:{field}={value}"
    elif kind in ("chunk-field", "empty-segments", "no-segments", "oversized-segment", "long-descriptor",
                  "extra-segments", "key") and chunks:
        k = rng.randrange(len(chunks))
        c = chunks[k]
        if kind == "chunk-field":
            field = rng.choice(CHUNK_FIELDS)
            t, hh, w = c.latent_shape
            limits = {"index": 32, "first_frame": 64, "frame_count": 32, "key": 8, "planes_coded": 8,
                      "t": 16, "h": 16, "w": 16, "symbols": 32}
            value = rng.choice([0, 1, _edge(rng, limits[field]), {"t": t + 1, "h": hh + 64, "w": w + 65}.get(field, 2)])
            raw = {"flags": _mask(value, 8)} if field == "key" else {field: value}
            payload = _raw_chunk(c, **raw)
            label = f"{kind}:{field}={value}"
        elif kind == "empty-segments":
            payload = pack_chunk(dataclasses.replace(c, segments=[b""] * len(c.segments), symbol_counts=None))
        elif kind == "no-segments":
            payload = pack_chunk(dataclasses.replace(c, segments=[], symbol_counts=None))
        elif kind == "oversized-segment":
            junk = rng.randbytes(rng.choice([1, 255, 4096, 65536]))
            segs = list(c.segments) or [b""]
            segs[rng.randrange(len(segs))] = junk
            payload = pack_chunk(dataclasses.replace(c, segments=segs, symbol_counts=None))
        elif kind == "long-descriptor":
            lengths = [len(s) for s in c.segments] or [0]
            if not c.segments:
                c = dataclasses.replace(c, segments=[b""], symbol_counts=None)
            lengths[rng.randrange(len(lengths))] = _edge(rng, 32)
            payload = _raw_chunk(c, lengths=lengths)
        elif kind == "extra-segments":
            more = list(c.segments) + [rng.randbytes(rng.randint(0, 8)) for _ in range(rng.choice([1, 60, 255 - len(c.segments)]))]
            payload = _raw_chunk(dataclasses.replace(c, segments=more[:255], symbol_counts=None),
                                 planes_coded=rng.choice([c.planes_coded, 255]))
        else:  # key: flip the key flag of a chunk (chunk 0 no longer a key chunk, or an extra key)
            payload = _raw_chunk(c, flags=0 if c.key else FLAG_KEY)
        at = k + (1 if audio is not None else 0)
        records[at] = (REC_CHUNK, payload, None if kind in ("chunk-field", "long-descriptor", "extra-segments") else
                       dataclasses.replace(c, key=not c.key) if kind == "key" else None)
        if rng.random() < 0.5:
            index = "none"  # make the reader scan, so its own checks see the record
    elif kind == "order" and records:
        op = rng.choice(["swap", "dup", "drop", "reverse", "audio-last", "audio-twice", "after-index"])
        label = f"{kind}:{op}"
        if op == "swap" and len(records) > 1:
            i, j = rng.sample(range(len(records)), 2)
            records[i], records[j] = records[j], records[i]
        elif op == "dup":
            i = rng.randrange(len(records))
            records.insert(rng.randrange(len(records) + 1), records[i])
        elif op == "drop":
            records.pop(rng.randrange(len(records)))
        elif op == "reverse":
            records.reverse()
        elif op == "audio-last" and audio is not None:
            records.append(records.pop(0))
        elif op == "audio-twice":
            records.insert(rng.randrange(len(records) + 1), (REC_AUDIO, pack_audio(rng.randbytes(64), "x"), None))
        elif op == "after-index":
            data = _assemble(header, records)
            tail = pack_record(rng.choice([REC_CHUNK, REC_AUDIO, 7]), records[0][1])
            return data + tail, label
        index = rng.choice(["auto", "none"])
    elif kind == "index":
        index = "edit"
    elif kind == "audio":
        op = rng.choice(["junk", "desc-len", "data-len", "empty"])
        label = f"{kind}:{op}"
        desc, data = ("aac 44100 Hz", rng.randbytes(rng.choice([0, 16, 4096])))
        payload = bytearray(pack_audio(data, desc))
        if op == "desc-len":
            payload[0:2] = U16.pack(_edge(rng, 16))
        elif op == "data-len":
            d = U16.unpack_from(payload, 0)[0]
            payload[2 + d:10 + d] = U64.pack(_edge(rng, 64))
        elif op == "empty":
            payload = bytearray(pack_audio(b"", ""))
        payload[-4:] = U32.pack(crc32(bytes(payload[:-4])))
        if audio is not None:
            records[0] = (REC_AUDIO, bytes(payload), None)
        else:
            records.insert(0, (REC_AUDIO, bytes(payload), None))
    elif kind == "cut":
        data = _assemble(header, records)
        bounds = [len(header)]
        pos = len(header)
        for _, payload, _ in records:
            pos += RECORD_HEAD.size + len(payload)
            bounds.append(pos)
        cut = rng.choice(bounds + [rng.randrange(len(data)), len(data) - FOOTER.size, 8, 16])
        return data[:cut], f"{kind}@{cut}"
    return _assemble(header, records, index=index, rng=rng), label

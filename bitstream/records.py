"""Byte layouts of the .mvt records (SPEC.md is the prose version of this file) and the
dataclasses they map to. Packing never validates against limits; parsing always does."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction

from vtoken.errors import StreamError, UnsupportedVersionError

from .limits import Limits

FORMAT_MAJOR = 1
FORMAT_MINOR = 0
MAP_MINOR = 1  # a stream of entropy version 3 may hold chunks with plane maps (SPEC 4.1)

# PNG-style magic: the high byte and CR LF / SUB catch 7-bit and newline-mangling transfers.
MAGIC = b"\x8aMVT\r\n\x1a\n"
SYNC = b"\x8dMVR"
FOOTER_MAGIC = b"\x8aMVTIDX\n"

REC_CHUNK = 1
REC_AUDIO = 2
REC_INDEX = 3

# magic, major, minor, body length
HEADER_PREFIX = struct.Struct("<8sHHI")
HEADER_FIXED = struct.Struct("<IIIIQBBBBBBBxHIH")  # after name + sha256
RECORD_HEAD = struct.Struct("<4sB3xQI")  # sync, type, payload length, crc of the 16 before
CHUNK_FIXED = struct.Struct("<IQIBBBxHHH")
SEGMENT_DESC = struct.Struct("<III")  # byte length, symbol count, crc32
INDEX_FIXED = struct.Struct("<IxxxxQQ")  # count, total frames, audio record offset (0 = none)
INDEX_ENTRY = struct.Struct("<QQIIBBBx")  # offset, first frame, frames, index, flags, stored, coded
FOOTER = struct.Struct("<QII8s")  # index record offset, chunk count, crc of 12 bytes, magic
assert len(MAGIC) == 8 and len(FOOTER_MAGIC) == 8 and len(SYNC) == 4
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")

FLAG_KEY = 1
FLAG_MAP = 2  # the chunk carries a plane map (format 1.1, entropy format 3)
MAP_DESC = struct.Struct("<B3xII")  # block side, byte length, crc32


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


@dataclass
class StreamHeader:
    """Everything a decoder needs before the first chunk. Colour fields are ISO/IEC 23091-2
    code points (2 = unspecified); colour_range is 0 unspecified, 1 limited, 2 full."""

    model_name: str
    model_sha256: bytes
    width: int
    height: int
    fps_num: int
    fps_den: int
    frame_count: int = 0  # frames expected at write time; 0 = unknown (the index is exact)
    bits: int = 18
    spatial_factor: int = 8
    temporal_factor: int = 4
    frames_per_chunk: int = 17
    key_interval: int = 8
    color_primaries: int = 2
    color_transfer: int = 2
    color_matrix: int = 2
    color_range: int = 0
    entropy_version: int = 1  # vtoken.entropy.FORMAT_VERSION the segments were coded with
    extra: dict = field(default_factory=dict)
    version: tuple[int, int] = (FORMAT_MAJOR, FORMAT_MINOR)

    def __post_init__(self):
        # Callers often hold the sha256 as hex; store the 32 raw bytes either way.
        if isinstance(self.model_sha256, str):
            self.model_sha256 = bytes.fromhex(self.model_sha256)

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @property
    def sha256_hex(self) -> str:
        return bytes(self.model_sha256).hex()


@dataclass
class Chunk:
    """One chunk: `segments[k]` is the entropy-coded plane k (plane 0 most important).
    `frame_count` counts real frames, before temporal padding."""

    index: int
    first_frame: int
    frame_count: int
    key: bool
    latent_shape: tuple[int, int, int]
    planes_coded: int
    segments: list[bytes]
    symbol_counts: list[int] | None = None  # default: T'*H'*W' for every segment
    # Segments the chunk header lists (what the encoder kept). A reader sets it; fewer
    # `segments` than this means a cut or damaged chunk, not rate control.
    planes_listed: int | None = None
    # A plane map (entropy format 3): how many planes each block of map_block x map_block
    # latent positions of each latent frame sends, coded by vtoken.entropy.plane_map; the
    # segments then hold only the bits it sends (symbol_counts say how many).
    plane_map: bytes | None = None
    map_block: int = 0

    def __post_init__(self):
        self.latent_shape = tuple(int(v) for v in self.latent_shape)
        if self.symbol_counts is None:
            n = self.latent_shape[0] * self.latent_shape[1] * self.latent_shape[2]
            self.symbol_counts = [n] * len(self.segments)
        if (self.plane_map is None) != (self.map_block == 0) or not 0 <= self.map_block <= 255:
            raise ValueError(f"a plane map needs a block side of 1..255, got {self.map_block}")

    @property
    def planes(self) -> int:
        return len(self.segments)


@dataclass(frozen=True)
class ChunkEntry:
    """Where a chunk is and what it holds, from the index or from a scan. `damaged` entries
    stand for chunks whose header could not be read: reading them raises."""

    index: int
    offset: int
    first_frame: int
    frame_count: int
    key: bool
    planes_stored: int
    planes_coded: int
    damaged: bool = False


# ---------------------------------------------------------------- header


def pack_header(h: StreamHeader) -> bytes:
    name = h.model_name.encode("utf-8")
    extra = json.dumps(h.extra, sort_keys=True, separators=(",", ":")).encode("utf-8")
    body = b"".join([
        U16.pack(len(name)), name, bytes(h.model_sha256),
        HEADER_FIXED.pack(
            h.width, h.height, h.fps_num, h.fps_den, h.frame_count,
            h.color_primaries, h.color_transfer, h.color_matrix, h.color_range,
            h.bits, h.spatial_factor, h.temporal_factor, h.frames_per_chunk, h.key_interval,
            h.entropy_version,
        ),
        U32.pack(len(extra)), extra,
    ])
    minor = MAP_MINOR if h.entropy_version >= 3 else FORMAT_MINOR
    head = HEADER_PREFIX.pack(MAGIC, FORMAT_MAJOR, minor, len(body)) + body
    return head + U32.pack(crc32(head))


def check_header(h: StreamHeader, limits: Limits) -> str | None:
    """The first way `h` breaks the format or `limits`, as a message; None when valid."""
    if len(h.model_name.encode("utf-8")) > limits.max_name_bytes:
        return f"model name longer than {limits.max_name_bytes} bytes"
    if len(bytes(h.model_sha256)) != 32:
        return "model sha256 must be 32 bytes"
    if not (1 <= h.width <= limits.max_width and 1 <= h.height <= limits.max_height):
        return (f"frame size {h.width}x{h.height} outside 1x1..{limits.max_width}x"
                f"{limits.max_height}")
    if h.fps_num < 1 or h.fps_den < 1 or h.fps_num > 0xFFFFFFFF or h.fps_den > 0xFFFFFFFF:
        return f"frame rate {h.fps_num}/{h.fps_den} must be two positive 32-bit integers"
    if not 0 <= h.frame_count <= limits.max_frames:
        return f"frame count {h.frame_count} above the limit {limits.max_frames}"
    if not 1 <= h.bits <= limits.max_planes:
        return f"bits per token {h.bits} outside 1..{limits.max_planes}"
    if not (1 <= h.spatial_factor <= 64 and 1 <= h.temporal_factor <= 64):
        return f"down-sampling factors {h.spatial_factor}/{h.temporal_factor} outside 1..64"
    fpc = h.frames_per_chunk
    if not 1 <= fpc <= limits.max_frames_per_chunk or (fpc - 1) % h.temporal_factor:
        return (f"frames per chunk {fpc} must be 1 + {h.temporal_factor}*m and at most "
                f"{limits.max_frames_per_chunk}")
    if not 1 <= h.key_interval <= 0xFFFFFFFF:
        return f"key-chunk interval {h.key_interval} must be at least 1"
    if not 0 <= h.entropy_version <= 0xFFFF:
        return f"entropy coder version {h.entropy_version} is not a 16-bit integer"
    for name in ("color_primaries", "color_transfer", "color_matrix", "color_range"):
        if not 0 <= getattr(h, name) <= 255:
            return f"{name} {getattr(h, name)} is not a byte"
    if not isinstance(h.extra, dict):
        return "extra metadata must be a JSON object"
    return None


def parse_header(f, base: int, size: int, limits: Limits) -> tuple[StreamHeader, int]:
    """Read the header at `base`; returns it and its length in bytes."""
    f.seek(base)
    prefix = f.read(HEADER_PREFIX.size)
    if len(prefix) < HEADER_PREFIX.size or prefix[:8] != MAGIC:
        raise StreamError("not a .mvt file (bad magic bytes)")
    _, major, minor, body_len = HEADER_PREFIX.unpack(prefix)
    if major > FORMAT_MAJOR:
        raise UnsupportedVersionError(
            f"this .mvt file uses format version {major}.{minor}, newer than the {FORMAT_MAJOR}.x "
            f"this vtoken reads: upgrade vtoken")
    if major < 1:
        raise StreamError(f"unknown .mvt format version {major}.{minor}")
    total = HEADER_PREFIX.size + body_len + 4
    if body_len > limits.max_header_bytes or total > size:
        raise StreamError(f".mvt header of {total} bytes does not fit in the file's {size} "
                          "bytes (file cut or damaged)")
    rest = f.read(body_len + 4)
    if len(rest) != body_len + 4:
        raise StreamError(".mvt header is cut short")
    body, stored_crc = rest[:body_len], U32.unpack_from(rest, body_len)[0]
    if crc32(prefix + body) != stored_crc:
        raise StreamError(".mvt header CRC mismatch: the file is damaged")
    try:
        (name_len,) = U16.unpack_from(body, 0)
        pos = 2
        if name_len > limits.max_name_bytes:
            raise StreamError(f"model name of {name_len} bytes exceeds the limit")
        name = body[pos:pos + name_len].decode("utf-8")
        pos += name_len
        sha = body[pos:pos + 32]
        pos += 32
        fixed = HEADER_FIXED.unpack_from(body, pos)
        pos += HEADER_FIXED.size
        (extra_len,) = U32.unpack_from(body, pos)
        pos += 4
        if extra_len > limits.max_extra_bytes or pos + extra_len > body_len:
            raise StreamError(f"extra metadata of {extra_len} bytes exceeds the header")
        extra = json.loads(body[pos:pos + extra_len].decode("utf-8")) if extra_len else {}
        # Bytes after `extra` belong to newer minor versions: skipped on purpose.
    except (struct.error, UnicodeDecodeError, ValueError, RecursionError) as e:
        if isinstance(e, StreamError):
            raise
        raise StreamError(f".mvt header does not parse: {e}") from None
    (w, h, fn, fd, frames, cp, tc, mc, cr, bits, sf, tf, fpc, ki, ev) = fixed
    header = StreamHeader(
        model_name=name, model_sha256=sha, width=w, height=h, fps_num=fn, fps_den=fd,
        frame_count=frames, bits=bits, spatial_factor=sf, temporal_factor=tf,
        frames_per_chunk=fpc, key_interval=ki, color_primaries=cp, color_transfer=tc,
        color_matrix=mc, color_range=cr, entropy_version=ev, extra=extra, version=(major, minor))
    problem = check_header(header, limits)
    if problem:
        raise StreamError(f".mvt header out of limits: {problem}")
    return header, total


# ---------------------------------------------------------------- records


def pack_record(rtype: int, payload: bytes) -> bytes:
    head = RECORD_HEAD.pack(SYNC, rtype, len(payload), 0)[:16]
    return head + U32.pack(crc32(head)) + payload


def unpack_record_head(raw: bytes) -> tuple[int, int] | None:
    """(type, payload length) of a valid record head, else None."""
    if len(raw) < RECORD_HEAD.size or raw[:4] != SYNC:
        return None
    _, rtype, length, stored = RECORD_HEAD.unpack_from(raw)
    if crc32(raw[:16]) != stored:
        return None
    return rtype, length


def pack_chunk(c: Chunk) -> bytes:
    t, h, w = c.latent_shape
    flags = (FLAG_KEY if c.key else 0) | (FLAG_MAP if c.plane_map is not None else 0)
    head = CHUNK_FIXED.pack(c.index, c.first_frame, c.frame_count, flags,
                            c.planes_coded, len(c.segments), t, h, w)
    descs = b"".join(SEGMENT_DESC.pack(len(s), n, crc32(s))
                     for s, n in zip(c.segments, c.symbol_counts))
    head += descs
    plane_map = b""
    if c.plane_map is not None:
        plane_map = bytes(c.plane_map)
        head += MAP_DESC.pack(c.map_block, len(plane_map), crc32(plane_map))
    return head + U32.pack(crc32(head)) + plane_map + b"".join(bytes(s) for s in c.segments)


@dataclass
class ChunkHead:
    index: int
    first_frame: int
    frame_count: int
    key: bool
    planes_coded: int
    latent_shape: tuple[int, int, int]
    segments: list[tuple[int, int, int]]  # (length, symbols, crc)
    size: int  # bytes of the chunk header itself
    plane_map: tuple[int, int, int] | None = None  # (block side, length, crc): it follows the header

    @property
    def map_size(self) -> int:
        return self.plane_map[1] if self.plane_map else 0

    @property
    def payload_size(self) -> int:
        return self.size + self.map_size + sum(s[0] for s in self.segments)


def parse_chunk_head(raw: bytes, header: StreamHeader, limits: Limits) -> ChunkHead | str:
    """Parse and check a chunk header; returns a message instead when it is invalid."""
    if len(raw) < CHUNK_FIXED.size:
        return "chunk header cut short"
    idx, first, count, flags, coded, nseg, t, h, w = CHUNK_FIXED.unpack_from(raw)
    mapped = bool(flags & FLAG_MAP)
    size = CHUNK_FIXED.size + nseg * SEGMENT_DESC.size + (MAP_DESC.size if mapped else 0) + 4
    if len(raw) < size:
        return "chunk header cut short"
    if crc32(raw[:size - 4]) != U32.unpack_from(raw, size - 4)[0]:
        return "chunk header CRC mismatch"
    segs = [SEGMENT_DESC.unpack_from(raw, CHUNK_FIXED.size + k * SEGMENT_DESC.size)
            for k in range(nseg)]
    plane_map = MAP_DESC.unpack_from(raw, size - 4 - MAP_DESC.size) if mapped else None
    if plane_map is not None and not plane_map[0]:
        return "plane map with a block side of 0"
    if not 1 <= count <= header.frames_per_chunk:
        return f"frame count {count} outside 1..{header.frames_per_chunk}"
    if first + count > limits.max_frames:
        return f"frames beyond the limit {limits.max_frames}"
    if not nseg <= coded <= header.bits:
        return f"{nseg} stored planes of {coded} coded, {header.bits} bits per token"
    max_t = (header.frames_per_chunk - 1) // header.temporal_factor + 1
    max_h = -(-header.height // header.spatial_factor) + limits.pad_allowance
    max_w = -(-header.width // header.spatial_factor) + limits.pad_allowance
    if not (1 <= t <= max_t and 1 <= h <= max_h and 1 <= w <= max_w):
        return f"latent shape {t}x{h}x{w} outside the header's frame size"
    symbols = t * h * w
    if symbols > limits.max_symbols:
        return f"{symbols} symbols per plane exceed the limit {limits.max_symbols}"
    for k, (_, n, _) in enumerate(segs):
        # with a plane map, a plane holds the bits the map sends: checked once it is decoded
        if n != symbols and not (plane_map is not None and n <= symbols):
            return f"plane {k} holds {n} symbols, latent shape gives {symbols}"
    return ChunkHead(idx, first, count, bool(flags & FLAG_KEY), coded, (t, h, w), segs, size, plane_map)


def pack_audio(data: bytes, description: str) -> bytes:
    desc = description.encode("utf-8")
    body = U16.pack(len(desc)) + desc + U64.pack(len(data)) + bytes(data)
    return body + U32.pack(crc32(body))


def pack_index(entries: list[ChunkEntry], total_frames: int, audio_offset: int) -> bytes:
    body = INDEX_FIXED.pack(len(entries), total_frames, audio_offset) + b"".join(
        INDEX_ENTRY.pack(e.offset, e.first_frame, e.frame_count, e.index,
                         FLAG_KEY if e.key else 0, e.planes_stored, e.planes_coded)
        for e in entries)
    return body + U32.pack(crc32(body))


def pack_footer(index_offset: int, count: int) -> bytes:
    head = U64.pack(index_offset) + U32.pack(count)
    return head + U32.pack(crc32(head)) + FOOTER_MAGIC


# ---------------------------------------------------------------- sizes, for rate control


def chunk_overhead(planes: int, plane_map: int | None = None) -> int:
    """Bytes a chunk with `planes` segments costs beyond its segments: record head, chunk
    header (with its CRC) and its index entry; and a plane map of `plane_map` bytes."""
    mapped = 0 if plane_map is None else MAP_DESC.size + plane_map
    return RECORD_HEAD.size + CHUNK_FIXED.size + planes * SEGMENT_DESC.size + 4 + INDEX_ENTRY.size + mapped


def stream_overhead(header: StreamHeader) -> int:
    """Bytes of a stream that no chunk pays for: header, index record head and footer."""
    return len(pack_header(header)) + RECORD_HEAD.size + INDEX_FIXED.size + 4 + FOOTER.size


def audio_record_size(data: bytes, description: str) -> int:
    """Bytes the audio record costs in the file (a rate target counts them)."""
    return RECORD_HEAD.size + 2 + len(description.encode("utf-8")) + 8 + len(data) + 4

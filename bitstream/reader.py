"""The .mvt reader: index from the footer when it is valid, otherwise a scan of the records
from the start; CRC checks on every read. Only vtoken.errors types leave this module."""

from __future__ import annotations

import bisect
import functools
import struct
from fractions import Fraction

from vtoken.errors import CorruptChunkError, InputError, StreamError, UsageError, VtokenError

from .limits import Limits
from .records import (
    CHUNK_FIXED,
    FOOTER,
    FOOTER_MAGIC,
    INDEX_ENTRY,
    INDEX_FIXED,
    RECORD_HEAD,
    REC_AUDIO,
    REC_CHUNK,
    REC_INDEX,
    SEGMENT_DESC,
    SYNC,
    U16,
    U32,
    U64,
    Chunk,
    ChunkEntry,
    ChunkHead,
    StreamHeader,
    crc32,
    parse_chunk_head,
    parse_header,
)

MAX_CHUNK_HEAD = CHUNK_FIXED.size + 255 * SEGMENT_DESC.size + 4
# The smallest chunk record (no segments); bounds how many chunks a skipped span can hide.
MIN_CHUNK_RECORD = RECORD_HEAD.size + CHUNK_FIXED.size + 4
_SCAN_BLOCK = 1 << 16

# Python errors a malformed file could still raise past the explicit checks.
_PARSE_ERRORS = (struct.error, UnicodeDecodeError, ValueError, OverflowError, IndexError,
                 KeyError, TypeError, RecursionError)


def _guarded(method):
    """Turn any stray parsing exception into a StreamError, so callers only see vtoken
    errors whatever the bytes are."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except VtokenError:
            raise
        except OSError as e:
            raise InputError(f"cannot read the .mvt file: {e}") from None
        except _PARSE_ERRORS as e:
            raise StreamError(f"malformed .mvt file: {type(e).__name__}: {e}") from None

    return wrapper


class MvtReader:
    """Random access to a .mvt stream held in a seekable binary file object."""

    @_guarded
    def __init__(self, fileobj, tolerant: bool = False, limits: Limits = Limits()):
        self._f = fileobj
        self.tolerant = tolerant
        self.limits = limits
        self.warnings: list[str] = []
        self.truncated = False
        self.entries: list[ChunkEntry] = []
        self.index_used = False
        self._owned = False
        self._audio_offset = 0
        self._damage: dict[int, str] = {}  # why a damaged entry could not be read
        try:
            self._base = fileobj.tell()
        except (OSError, AttributeError):
            self._base = 0
        fileobj.seek(0, 2)
        self._size = fileobj.tell() - self._base
        self.file_bytes = self._size
        self.header, self._header_size = parse_header(fileobj, self._base, self._size, limits)
        self.index_used = self._load_index()
        if not self.index_used:
            self._scan()
        self._firsts = [e.first_frame for e in self.entries]

    # ------------------------------------------------------------ low level

    def _read(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self._size - offset))
        self._f.seek(self._base + offset)
        return self._f.read(n)

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def _record_head(self, offset: int) -> tuple[int, int] | None:
        raw = self._read(offset, RECORD_HEAD.size)
        if len(raw) < RECORD_HEAD.size or raw[:4] != SYNC:
            return None
        _, rtype, length, stored = RECORD_HEAD.unpack(raw)
        if crc32(raw[:16]) != stored:
            return None
        return rtype, length

    def _chunk_head(self, offset: int, length: int) -> ChunkHead | str:
        avail = min(length, self._size - offset - RECORD_HEAD.size)
        raw = self._read(offset + RECORD_HEAD.size, min(avail, MAX_CHUNK_HEAD))
        return parse_chunk_head(raw, self.header, self.limits)

    # ------------------------------------------------------------ index

    def _load_index(self) -> bool:
        if self._size < self._header_size + FOOTER.size:
            self.truncated = True
            return False
        raw = self._read(self._size - FOOTER.size, FOOTER.size)
        index_offset, count, stored, magic = FOOTER.unpack(raw)
        if magic != FOOTER_MAGIC:
            self.truncated = True  # no footer: the writer never closed, or the file was cut
            return False
        problem = "footer CRC mismatch" if crc32(raw[:12]) != stored else \
            self._parse_index(index_offset, count)
        if problem:
            self._warn(f"index damaged ({problem}); chunks found by scanning the file")
            return False
        return True

    def _parse_index(self, offset: int, count: int) -> str | None:
        lim, h = self.limits, self.header
        index_end = self._size - FOOTER.size
        if count > lim.max_chunks:
            return f"{count} chunks exceed the limit {lim.max_chunks}"
        if not self._header_size <= offset <= index_end - RECORD_HEAD.size:
            return "index offset outside the file"
        head = self._record_head(offset)
        if head is None or head[0] != REC_INDEX:
            return "no index record at the footer's offset"
        length = head[1]
        if length != INDEX_FIXED.size + count * INDEX_ENTRY.size + 4 or \
                offset + RECORD_HEAD.size + length != index_end:
            return "index length disagrees with the footer"
        payload = self._read(offset + RECORD_HEAD.size, length)
        if crc32(payload[:-4]) != U32.unpack_from(payload, length - 4)[0]:
            return "index CRC mismatch"
        n, total, audio = INDEX_FIXED.unpack_from(payload)
        if n != count:
            return "index chunk count disagrees with the footer"
        entries, frame, min_offset = [], 0, self._header_size
        for k in range(n):
            off, first, frames, idx, flags, stored, coded = INDEX_ENTRY.unpack_from(
                payload, INDEX_FIXED.size + k * INDEX_ENTRY.size)
            if idx != k or first != frame or not 1 <= frames <= h.frames_per_chunk or \
                    not stored <= coded <= h.bits or not min_offset <= off or \
                    off + MIN_CHUNK_RECORD > offset:
                return f"entry {k} is inconsistent"
            entries.append(ChunkEntry(k, off, first, frames, bool(flags & 1), stored, coded))
            frame += frames
            min_offset = off + MIN_CHUNK_RECORD
        if frame != total or total > lim.max_frames:
            return "index frame total is inconsistent"
        if entries and not entries[0].key:
            return "first chunk is not a key chunk"
        if audio and not self._header_size <= audio <= offset - RECORD_HEAD.size:
            return "audio offset outside the file"
        self.entries, self._audio_offset = entries, audio
        return None

    # ------------------------------------------------------------ scan

    def _scan(self) -> None:
        pos, size = self._header_size, self._size
        while pos < size:
            if len(self.entries) > self.limits.max_chunks:
                raise StreamError(f"more than {self.limits.max_chunks} chunks")
            head = self._record_head(pos)
            if head is None:
                remaining = size - pos
                if remaining == FOOTER.size and \
                        self._read(pos + 16, 8) == FOOTER_MAGIC:
                    break  # a footer whose index was damaged: nothing more to find
                nxt = self._find_sync(pos + 1)
                if nxt is None:
                    if remaining < RECORD_HEAD.size:
                        self.truncated = True
                        self._warn(f"file ends inside a record header at offset {pos}")
                    else:
                        self._warn(f"{remaining} bytes at offset {pos} are not records: "
                                   "ignored")
                    break
                self._warn(f"{nxt - pos} damaged bytes at offset {pos} skipped")
                self._resync_gap = nxt - pos
                pos = nxt
                continue
            rtype, length = head
            end = pos + RECORD_HEAD.size + length
            if rtype == REC_CHUNK:
                self._scan_chunk(pos, length, end > size)
            elif rtype == REC_AUDIO:
                if end > size:
                    self.truncated = True
                    self._warn("file ends inside the audio record: audio dropped")
                elif not self._audio_offset:
                    self._audio_offset = pos
            elif rtype == REC_INDEX:
                break  # the index is always last; it failed its checks if we are here
            # Unknown record types come from newer minor versions: skipped.
            self._resync_gap = 0
            pos = end

    _resync_gap = 0

    def _find_sync(self, start: int) -> int | None:
        """Offset of the next valid record head at or after `start`, or None."""
        pos = start
        while pos < self._size - RECORD_HEAD.size + 1:
            block = self._read(pos, _SCAN_BLOCK + 3)
            at = block.find(SYNC)
            while at >= 0:
                if self._record_head(pos + at) is not None:
                    return pos + at
                at = block.find(SYNC, at + 1)
            pos += _SCAN_BLOCK
        return None

    def _next_frame(self) -> int:
        e = self.entries[-1] if self.entries else None
        return e.first_frame + e.frame_count if e else 0

    def _placeholder_frames(self, first: int) -> int:
        fpc, expected = self.header.frames_per_chunk, self.header.frame_count
        if expected > first:
            return min(fpc, expected - first)
        return fpc

    def _scan_chunk(self, pos: int, length: int, cut: bool) -> None:
        expected, first = len(self.entries), self._next_frame()
        ch = self._chunk_head(pos, length)
        if isinstance(ch, str) and cut and ch == "chunk header cut short":
            self.truncated = True
            self._warn(f"file ends inside the header of chunk {expected}: chunk dropped")
            return
        if isinstance(ch, str) or ch.payload_size != length:
            why = ch if isinstance(ch, str) else "record length disagrees with its header"
            self._warn(f"chunk {expected} is damaged ({why})")
            self._damage[expected] = why
            self.entries.append(ChunkEntry(expected, pos, first, self._placeholder_frames(first),
                                           False, 0, 0, damaged=True))
            return
        if ch.index != expected or ch.first_frame != first:
            if not self._fill_gap(ch, pos):
                self._warn(f"chunk record at offset {pos} is out of order: ignored")
                return
        stored = len(ch.segments)
        if cut:
            self.truncated = True
            end, stored = pos + RECORD_HEAD.size + ch.size + ch.map_size, 0
            for seg_len, _, _ in ch.segments:
                if end + seg_len > self._size:
                    break
                end += seg_len
                stored += 1
            if end < self._size:  # bytes of an incomplete segment are left over
                self._warn(f"file ends inside chunk {ch.index}: {stored} of "
                           f"{len(ch.segments)} planes kept")
        self.entries.append(ChunkEntry(ch.index, pos, ch.first_frame, ch.frame_count, ch.key,
                                       stored, ch.planes_coded))

    def _fill_gap(self, ch: ChunkHead, pos: int) -> bool:
        """Stand-ins for chunks lost in a damaged span the scan skipped, when the chunk found
        after it agrees (index, frames, and a span big enough to have held them)."""
        expected, first = len(self.entries), self._next_frame()
        gap = ch.index - expected
        fpc = self.header.frames_per_chunk
        if gap < 1 or not self._resync_gap or ch.first_frame - first != gap * fpc or \
                gap > self._resync_gap // MIN_CHUNK_RECORD + 1:
            return False
        for k in range(gap):
            self.entries.append(ChunkEntry(expected + k, pos, first + k * fpc, fpc, False, 0, 0,
                                           damaged=True))
        lost = f"chunk {expected}" if gap == 1 else f"chunks {expected}..{ch.index - 1}"
        self._warn(f"{lost} lost in a damaged span")
        for k in range(gap):
            self._damage[expected + k] = "lost in a damaged span"
        return True

    # ------------------------------------------------------------ public

    @property
    def frame_count(self) -> int:
        """Frames the stream's chunks cover (damaged chunks included)."""
        return self._next_frame()

    @_guarded
    def read_chunk(self, i: int) -> Chunk:
        """Chunk `i` with its stored (or, when tolerant, its intact leading) plane segments."""
        if not 0 <= i < len(self.entries):
            raise UsageError(f"chunk {i} does not exist (the stream has {len(self.entries)})")
        e = self.entries[i]
        last = e.first_frame + e.frame_count - 1
        if e.damaged:
            raise CorruptChunkError(
                f"chunk {i} (frames {e.first_frame}-{last}) cannot be decoded: "
                f"{self._damage.get(i, 'damaged')}",
                chunk=i)
        head = self._record_head(e.offset)
        if head is None or head[0] != REC_CHUNK:
            raise CorruptChunkError(f"chunk {i}: record header damaged (CRC mismatch)", chunk=i)
        ch = self._chunk_head(e.offset, head[1])
        if isinstance(ch, str):
            raise CorruptChunkError(f"chunk {i}: {ch}", chunk=i)
        if (ch.index, ch.first_frame, ch.frame_count, ch.key) != \
                (i, e.first_frame, e.frame_count, e.key) or ch.payload_size != head[1] or \
                (self.index_used and len(ch.segments) != e.planes_stored):
            raise CorruptChunkError(f"chunk {i}: header disagrees with the index", chunk=i)
        segments: list[bytes] = []
        pos = e.offset + RECORD_HEAD.size + ch.size
        plane_map = None
        if ch.plane_map is not None:
            _, map_len, map_crc = ch.plane_map
            plane_map = self._read(pos, map_len) if pos + map_len <= self._size else b""
            if len(plane_map) != map_len or crc32(plane_map) != map_crc:
                # without its map no plane of the chunk can be placed
                raise CorruptChunkError(f"chunk {i}: plane map damaged (CRC mismatch)", chunk=i)
            pos += map_len
        for k, (seg_len, _, seg_crc) in enumerate(ch.segments[:e.planes_stored]):
            if pos + seg_len > self._size:
                break  # a cut file: the scan already warned
            data = self._read(pos, seg_len)
            if crc32(data) != seg_crc:
                msg = f"chunk {i}: plane {k} segment CRC mismatch"
                if not self.tolerant:
                    raise CorruptChunkError(
                        f"{msg} (file damaged; tolerant decoding keeps the intact planes)",
                        chunk=i)
                self._warn(f"{msg}: {k} of {len(ch.segments)} planes kept")
                break
            segments.append(data)
            pos += seg_len
        return Chunk(i, ch.first_frame, ch.frame_count, ch.key, ch.latent_shape,
                     ch.planes_coded, segments, [s[1] for s in ch.segments[:len(segments)]],
                     planes_listed=len(ch.segments), plane_map=plane_map,
                     map_block=ch.plane_map[0] if ch.plane_map else 0)

    @_guarded
    def segment_ends(self, i: int) -> list[int]:
        """File offsets where each plane segment that chunk `i` lists ends: cutting the file
        at one of them keeps a decodable prefix of planes (tools and tests use this)."""
        e = self.entries[i]
        head = self._record_head(e.offset)
        ch = self._chunk_head(e.offset, head[1]) if head is not None else "record header damaged"
        if isinstance(ch, str):
            raise CorruptChunkError(f"chunk {i}: {ch}", chunk=i)
        ends, pos = [], e.offset + RECORD_HEAD.size + ch.size + ch.map_size
        for seg_len, _, _ in ch.segments:
            pos += seg_len
            ends.append(pos)
        return ends

    @_guarded
    def audio(self) -> tuple[bytes, str] | None:
        """(data, description) of the carried audio, or None when there is none."""
        off = self._audio_offset
        if not off:
            return None
        head = self._record_head(off)
        problem = None
        if head is None or head[0] != REC_AUDIO:
            problem = "record header damaged"
        elif head[1] > self._size - off - RECORD_HEAD.size or head[1] < 14:
            problem = "record longer than the file"
        else:
            payload = self._read(off + RECORD_HEAD.size, head[1])
            body = payload[:-4]
            (dlen,) = U16.unpack_from(body, 0)
            if crc32(body) != U32.unpack_from(payload, len(body))[0]:
                problem = "CRC mismatch"
            elif dlen > self.limits.max_description_bytes or 2 + dlen + 8 > len(body):
                problem = "description length out of range"
            else:
                (data_len,) = U64.unpack_from(body, 2 + dlen)
                if 2 + dlen + 8 + data_len != len(body):
                    problem = "audio length disagrees with the record"
                else:
                    return body[10 + dlen:], body[2:2 + dlen].decode("utf-8")
        if self.tolerant:
            self._warn(f"audio record damaged ({problem}): audio dropped")
            return None
        raise CorruptChunkError(f"audio record damaged ({problem})", chunk=None)

    def chunk_for_frame(self, frame: int) -> int:
        """Index of the chunk holding `frame`."""
        if not 0 <= frame < self.frame_count:
            raise UsageError(f"frame {frame} is outside the stream (0..{self.frame_count - 1})")
        return bisect.bisect_right(self._firsts, frame) - 1

    def key_chunk_before(self, i: int) -> int:
        """The nearest intact key chunk at or before chunk `i`: where decoding must start."""
        for j in range(min(i, len(self.entries) - 1), -1, -1):
            e = self.entries[j]
            if e.key and not e.damaged:
                return j
        raise CorruptChunkError(f"no intact key chunk at or before chunk {i}", chunk=i)

    @property
    def fps(self) -> Fraction:
        return self.header.fps

    @property
    def header_size(self) -> int:
        """Bytes of the stream header (where the first record starts)."""
        return self._header_size

    @property
    def audio_offset(self) -> int:
        """Offset of the audio record, 0 when there is none."""
        return self._audio_offset

    def close(self) -> None:
        if self._owned:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_mvt(path, tolerant: bool = False, limits: Limits = Limits()) -> MvtReader:
    """Open a .mvt file; the reader closes it (use it as a context manager)."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot open {path}: {e.strerror or e}") from None
    try:
        reader = MvtReader(f, tolerant=tolerant, limits=limits)
    except BaseException:
        f.close()
        raise
    reader._owned = True
    return reader


def read_info(path, verify: bool = False) -> dict:
    """JSON-ready summary of a .mvt file. With `verify`, every chunk's CRCs are checked and
    failures are listed in `warnings` instead of raised."""
    with open_mvt(path, tolerant=True) as r:
        h: StreamHeader = r.header
        if verify:
            for i in range(len(r.entries)):
                try:
                    r.read_chunk(i)
                except CorruptChunkError as e:
                    r._warn(str(e))
            r.audio()
        intact = [e for e in r.entries if not e.damaged]
        frames = r.frame_count
        pixels = frames * h.width * h.height
        audio = r._audio_offset != 0
        return {
            "format_version": f"{h.version[0]}.{h.version[1]}",
            "file_bytes": r.file_bytes,
            "size": f"{h.width}x{h.height}",
            "width": h.width,
            "height": h.height,
            "fps": f"{h.fps.numerator}/{h.fps.denominator}",
            "fps_float": float(h.fps),
            "frames": frames,
            "duration_s": float(frames / h.fps),
            "bits": h.bits,
            "planes_min": min((e.planes_stored for e in intact), default=0),
            "planes_max": max((e.planes_stored for e in intact), default=0),
            "planes_coded": max((e.planes_coded for e in intact), default=0),
            "chunks": len(r.entries),
            "key_chunks": sum(1 for e in r.entries if e.key),
            "frames_per_chunk": h.frames_per_chunk,
            "temporal_factor": h.temporal_factor,
            "key_interval": h.key_interval,
            "bpp": r.file_bytes * 8 / pixels if pixels else 0.0,
            "model": {"name": h.model_name, "sha256": h.sha256_hex},
            "colour": {"primaries": h.color_primaries, "transfer": h.color_transfer,
                       "matrix": h.color_matrix, "range": h.color_range},
            "audio": audio,
            "extra": h.extra,
            "truncated": r.truncated,
            "warnings": list(r.warnings),
        }

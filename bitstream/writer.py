"""Streaming .mvt writer: one pass, any object with `write`, chunk count unknown up front."""

from __future__ import annotations

from vtoken.errors import InputError

from .limits import Limits
from .records import (
    REC_AUDIO,
    REC_CHUNK,
    REC_INDEX,
    Chunk,
    ChunkEntry,
    StreamHeader,
    check_header,
    pack_audio,
    pack_chunk,
    pack_footer,
    pack_header,
    pack_index,
    pack_record,
)


class MvtWriter:
    """Writes the header at once, each chunk as it comes, and the index + footer on `close()`.
    Offsets are counted from the writer's first byte, so the file object needs no `tell`."""

    def __init__(self, fileobj, header: StreamHeader, limits: Limits = Limits()):
        problem = check_header(header, limits)
        if problem:
            raise InputError(f"cannot write this video as .mvt: {problem}")
        self._f = fileobj
        self.header = header
        self._limits = limits
        self._pos = 0
        self._entries: list[ChunkEntry] = []
        self._next_frame = 0
        self._audio_offset = 0
        self._closed = False
        self._write(pack_header(header))

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._pos += len(data)

    def write_chunk(self, chunk: Chunk) -> None:
        """Append a chunk; chunks must come in order, contiguous in frames."""
        self._check_open()
        h = self.header
        t, hh, ww = chunk.latent_shape
        symbols = t * hh * ww
        if chunk.index != len(self._entries):
            raise ValueError(f"chunk index {chunk.index}, expected {len(self._entries)}")
        if chunk.first_frame != self._next_frame:
            raise ValueError(f"chunk {chunk.index} starts at frame {chunk.first_frame}, "
                             f"expected {self._next_frame}")
        if not 1 <= chunk.frame_count <= h.frames_per_chunk:
            raise ValueError(f"chunk frame count {chunk.frame_count} outside "
                             f"1..{h.frames_per_chunk}")
        if chunk.index == 0 and not chunk.key:
            raise ValueError("the first chunk must be a key chunk")
        if not len(chunk.segments) <= chunk.planes_coded <= h.bits:
            raise ValueError(f"{len(chunk.segments)} segments, {chunk.planes_coded} planes "
                             f"coded, {h.bits} bits per token")
        if len(chunk.symbol_counts) != len(chunk.segments) or any(
                n != symbols and not (chunk.plane_map is not None and 0 <= n <= symbols) for n in chunk.symbol_counts):
            raise ValueError(f"symbol counts must all equal T'*H'*W' = {symbols} (at most that with a plane map)")
        if not all(0 < v <= 0xFFFF for v in chunk.latent_shape) or \
                symbols > self._limits.max_symbols:
            raise ValueError(f"latent shape {chunk.latent_shape} out of limits")
        if self._next_frame + chunk.frame_count > self._limits.max_frames:
            raise InputError(f"video longer than the .mvt limit of "
                             f"{self._limits.max_frames} frames")
        offset = self._pos
        self._write(pack_record(REC_CHUNK, pack_chunk(chunk)))
        self._entries.append(ChunkEntry(
            index=chunk.index, offset=offset, first_frame=chunk.first_frame,
            frame_count=chunk.frame_count, key=chunk.key,
            planes_stored=len(chunk.segments), planes_coded=chunk.planes_coded))
        self._next_frame += chunk.frame_count

    def write_audio(self, data: bytes, description: str) -> None:
        """Store the input's audio untouched (at most one audio record per file)."""
        self._check_open()
        if self._audio_offset:
            raise ValueError("audio was already written")
        if len(description.encode("utf-8")) > self._limits.max_description_bytes:
            raise ValueError("audio description too long")
        if len(data) > self._limits.max_audio_bytes:
            raise InputError(f"audio track larger than {self._limits.max_audio_bytes} bytes")
        self._audio_offset = self._pos
        self._write(pack_record(REC_AUDIO, pack_audio(data, description)))

    @property
    def bytes_written(self) -> int:
        """Bytes written so far (the file's size once closed; works on a pipe too)."""
        return self._pos

    @property
    def entries(self) -> list[ChunkEntry]:
        return list(self._entries)

    def close(self) -> None:
        """Write the index and footer. Does not close the file object. Idempotent."""
        if self._closed:
            return
        self._closed = True
        index_offset = self._pos
        self._write(pack_record(REC_INDEX, pack_index(
            self._entries, self._next_frame, self._audio_offset)))
        self._write(pack_footer(index_offset, len(self._entries)))

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("MvtWriter is closed")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # On an exception the output is discarded by the caller's atomic write; leaving the
        # index out keeps a half stream from looking complete.
        if exc_type is None:
            self.close()

"""Stream rewriting that needs no decoding: keeping fewer planes per chunk."""

from __future__ import annotations

from vtoken.errors import UsageError

from .reader import MvtReader
from .records import Chunk
from .writer import MvtWriter


def truncate_planes(src_fileobj, dst_fileobj, planes: int) -> dict:
    """Copy a stream keeping only the first `planes` segments of every chunk: a smaller,
    valid, lower-quality stream (the entropy model codes plane k from planes <= k only).
    Returns {"chunks", "bytes_in", "bytes_out"}."""
    if planes < 0:
        raise UsageError(f"planes must be >= 0, got {planes}")
    reader = MvtReader(src_fileobj)
    audio = reader.audio()
    # Keep the audio where it was relative to the chunks, so the layout stays familiar.
    audio_first = audio is not None and (
        not reader.entries or reader.audio_offset < reader.entries[0].offset)
    writer = MvtWriter(dst_fileobj, reader.header, reader.limits)
    if audio_first:
        writer.write_audio(*audio)
    for i in range(len(reader.entries)):
        c = reader.read_chunk(i)
        writer.write_chunk(Chunk(c.index, c.first_frame, c.frame_count, c.key, c.latent_shape,
                                 c.planes_coded, c.segments[:planes], c.symbol_counts[:planes],
                                 plane_map=c.plane_map, map_block=c.map_block))
    if audio is not None and not audio_first:
        writer.write_audio(*audio)
    writer.close()
    return {"chunks": len(reader.entries), "bytes_in": reader.file_bytes,
            "bytes_out": writer.bytes_written}

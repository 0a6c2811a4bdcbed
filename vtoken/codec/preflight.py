"""Cheap checks of a stream before the expensive stages (model load, entropy decoding, the
model itself) run: what a hostile or damaged file can make a decode spend.

Everything here reads only the container (CRCs, chunk headers, shapes), so it costs time in
proportion to the bytes of the file. A strict decode of a stream with a damaged chunk, or a
tolerant decode of a stream with nothing decodable in it, fails here, before the model has
decoded a single frame; frame sizes and chunk sizes beyond what the decoder runs at once are
refused before anything is allocated."""

from __future__ import annotations

from ..errors import CorruptChunkError, StreamError, UnsupportedVersionError, UsageError
from .pipeline import check_chunk_size, check_frame_area, decode_window, expected_latent_shape


def check_container_header(header, src="stream") -> None:
    """The model-free part of Codec.check_header: the entropy format, and frame and chunk
    sizes beyond what the decoder runs at once (refused before anything is allocated)."""
    from ..entropy import SUPPORTED_VERSIONS

    if header.entropy_version not in SUPPORTED_VERSIONS:
        versions = " and ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise UnsupportedVersionError(
            f"{src}: entropy coder version {header.entropy_version}; this vtoken decodes versions {versions}")
    check_frame_area(header.width, header.height, str(src), StreamError)
    check_chunk_size(header.frames_per_chunk, header.width, header.height, str(src), StreamError)


class _Factors:
    """The header's down-sampling factors, in the shape expected_latent_shape wants."""

    def __init__(self, header):
        self.temporal_factor = header.temporal_factor
        self.spatial_factor = header.spatial_factor


def check_stream(reader, start: int = 0, count: int | None = None, planes: int | None = None,
                 tolerant: bool = False, src="stream") -> None:
    """Refuse, before any decoding, a stream (or the requested window of it) that cannot
    decode: sizes beyond the decoder's, planes the file does not have, and (strict) any
    damaged chunk in the window or (tolerant) a window without a single decodable chunk."""
    h = reader.header
    check_container_header(h, src)
    if planes is not None and planes > h.bits:
        raise UsageError(f"planes must be from 1 to {h.bits} for this file, got {planes}")
    window = decode_window(reader, start, count)
    if window is None:
        return
    first, stop = window
    entries = reader.entries
    try:
        begin = reader.key_chunk_before(first)
    except CorruptChunkError:
        if not tolerant:
            raise
        begin = first
    factors, usable = _Factors(h), 0
    for i in range(begin, len(entries)):
        entry = entries[i]
        if entry.first_frame >= stop:
            break
        try:
            chunk = reader.read_chunk(i)
            want = expected_latent_shape(entry.frame_count, h.height, h.width, factors, key=entry.key)
            if tuple(chunk.latent_shape) != want:
                raise CorruptChunkError(f"chunk {i}: latent shape {tuple(chunk.latent_shape)} does not match "
                                        f"the video ({want})", chunk=i)
            if not chunk.segments:
                raise CorruptChunkError(f"chunk {i} has no decodable plane", chunk=i)
        except CorruptChunkError:
            if not tolerant:
                raise
            continue
        usable += 1
    if tolerant and usable == 0:
        raise CorruptChunkError("no chunk of the requested frames is intact: nothing can be decoded "
                                "(tolerant decoding conceals damaged chunks, but needs at least one good one)")

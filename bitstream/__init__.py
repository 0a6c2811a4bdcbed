"""The .mvt container: header, chunk / audio / index records and a footer. Standard library
only, so a stream can be inspected or rewritten without torch or numpy. See SPEC.md."""

from .limits import Limits
from .records import (
    FORMAT_MAJOR,
    FORMAT_MINOR,
    Chunk,
    ChunkEntry,
    StreamHeader,
    audio_record_size,
    chunk_overhead,
    stream_overhead,
)
from .reader import MvtReader, open_mvt, read_info
from .writer import MvtWriter
from .tools import truncate_planes

__all__ = [
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "Chunk",
    "ChunkEntry",
    "Limits",
    "MvtReader",
    "MvtWriter",
    "StreamHeader",
    "audio_record_size",
    "chunk_overhead",
    "stream_overhead",
    "open_mvt",
    "read_info",
    "truncate_planes",
]

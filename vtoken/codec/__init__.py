"""The codec pipeline: chunking, padding, rate control; model <-> entropy coder <-> container."""

from .pipeline import DecodedChunk, Timings, decode_chunks, encode_chunks
from .rate import QUALITY_LEVELS, RateController, planes_for_quality

__all__ = [
    "DecodedChunk", "Timings", "decode_chunks", "encode_chunks",
    "QUALITY_LEVELS", "RateController", "planes_for_quality",
]

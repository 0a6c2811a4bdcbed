"""The codec: `Codec(model, device).compress(...)` / `.decompress(...)` (codec.py) over the
chunk pipeline (pipeline.py: chunking, padding, stage threads), rate control (rate.py)."""

from .codec import Codec, Compressed
from .pipeline import DecodedChunk, Timings, decode_chunks, encode_chunks
from .rate import QUALITY_LEVELS, RateController, planes_for_quality

__all__ = [
    "Codec", "Compressed", "DecodedChunk", "Timings", "decode_chunks", "encode_chunks",
    "QUALITY_LEVELS", "RateController", "planes_for_quality",
]

"""Bounds every size, count and length read from a .mvt file is checked against before the
reader allocates or loops, so that a small hostile file cannot cost memory or time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_width: int = 16384
    max_height: int = 16384
    max_frames: int = 100_000_000  # about 38 days at 30 fps
    max_frames_per_chunk: int = 1025
    max_planes: int = 128  # the header's u8 could say 255; a model has no use for more
    max_chunks: int = 10_000_000
    # Symbols (bits) of one plane of one chunk: 16384^2 pixels / 8^2 * 32 latent frames.
    max_symbols: int = 1 << 27
    # Latent rows/columns a chunk may have beyond ceil(height / spatial_factor): room for the
    # model's padding to its block size, without letting a header claim absurd shapes.
    pad_allowance: int = 64
    max_name_bytes: int = 1024
    max_extra_bytes: int = 1 << 20
    max_description_bytes: int = 1024
    max_header_bytes: int = 2 << 20
    max_audio_bytes: int = 1 << 34

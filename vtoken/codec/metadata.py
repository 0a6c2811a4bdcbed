"""Colour tags between the media layer (ffmpeg names) and the container (ISO/IEC 23091-2
code points, which are ffmpeg's enum values; 2 = unspecified, range 0 = unspecified)."""

from __future__ import annotations

from ..media.color import MATRIX_NAMES, PRIMARIES_NAMES, RANGE_NAMES, TRANSFER_NAMES, value_of


def color_code_points(info) -> dict:
    """StreamHeader colour fields from a VideoInfo."""
    return {
        "color_primaries": value_of(PRIMARIES_NAMES, info.color_primaries),
        "color_transfer": value_of(TRANSFER_NAMES, info.color_transfer),
        "color_matrix": value_of(MATRIX_NAMES, info.color_matrix),
        "color_range": value_of(RANGE_NAMES, info.color_range),
    }


def color_names(header) -> dict:
    """VideoWriter's `color` argument from a StreamHeader (None where unspecified)."""
    return {
        "primaries": PRIMARIES_NAMES.get(header.color_primaries),
        "transfer": TRANSFER_NAMES.get(header.color_transfer),
        "matrix": MATRIX_NAMES.get(header.color_matrix),
        "range": RANGE_NAMES.get(header.color_range),
    }

"""Strict reading of the dataclass sections of a training config: a misspelt key is an error
that names the allowed ones, not a silently ignored setting."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError


def known_fields(cls, data: dict[str, Any], what: str, ignore: frozenset = frozenset()) -> dict[str, Any]:
    """`data` without the keys in `ignore`; UsageError if any other key is not a field of `cls`."""
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - known - ignore)
    if unknown:
        raise UsageError(f"unknown {what} config fields {unknown}; allowed: {sorted(known)}")
    return {k: v for k, v in data.items() if k not in ignore}
